package api

import (
	"net/http"
	"time"
)

// MaxBodyBytes caps every request body served by HTTPServer: the API's
// bodies are small JSON objects (a lease request is well under 1 KiB). A
// larger body is refused (413, or 400 from a JSON endpoint) and the
// connection closed.
const MaxBodyBytes = 64 << 10

// MaxHeaderBytes caps a request's header block: a bearer token and the usual
// headers take well under 2 KiB.
const MaxHeaderBytes = 32 << 10

// Default timeouts of HTTPServer (see Timeouts).
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// Timeouts bound how long one client may hold a connection of HTTPServer.
// A zero field takes its default.
type Timeouts struct {
	// ReadHeader bounds the request line and headers, from the moment the
	// server starts reading them (a TLS handshake included). Default 5s.
	ReadHeader time.Duration
	// Read bounds the whole request, headers and body, from the same moment
	// (http.Server.ReadTimeout): a client that trickles its body gets 408
	// from a JSON endpoint and its connection is closed at most Read after
	// it started sending. The deadline is lifted once the body has been
	// read, so a slow store does not cut a request off. Default 15s.
	Read time.Duration
	// Write bounds the handler and the writing of its answer, from the end
	// of the headers (http.Server.WriteTimeout); above the API client's own
	// 15s, so it only cuts off a client that stopped reading. Default 30s.
	Write time.Duration
	// Idle bounds how long a kept-alive connection waits for its next
	// request. Default 2m.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&t.ReadHeader, DefaultReadHeaderTimeout},
		{&t.Read, DefaultReadTimeout},
		{&t.Write, DefaultWriteTimeout},
		{&t.Idle, DefaultIdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	return t
}

// HTTPServer returns the http.Server every listener of swarmkey runs (the
// API and the health server): header, read, write and idle timeouts from t
// (defaults for zero fields), headers capped at MaxHeaderBytes and bodies at
// MaxBodyBytes.
func HTTPServer(h http.Handler, t Timeouts) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           http.MaxBytesHandler(h, MaxBodyBytes),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
