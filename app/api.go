package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/providers"
)

// Catalog builds the API's view of the configured policies; stores are
// opened through the runtime on first read and cached there.
func (r *Runtime) Catalog() api.Catalog {
	c := api.Catalog{}
	for i := range r.Config.Policies {
		p := &r.Config.Policies[i]
		c[p.Name] = api.Entry{Name: p.Name, Tags: p.Tags, Read: func(ctx context.Context) (providers.Version, error) {
			st, err := r.Store(ctx, p.Store)
			if err != nil {
				return providers.Version{}, err
			}
			return api.ReadCurrent(ctx, st, p.SecretID)
		}}
	}
	return c
}

// APIListen says where and how serve offers the HTTP API.
type APIListen struct {
	// Address is unix:/path or tcp:HOST:PORT; "" serves nothing.
	Address, TLSCert, TLSKey string
	// Explicit: the operator gave the address. The default socket is best
	// effort (see ServeAPI); a listener the operator asked for is not.
	Explicit bool
	// Timeouts of the API's and the health server's connections; zero
	// fields take api's defaults (5s headers, 15s whole request, 30s write, 2m idle).
	Timeouts api.Timeouts
	// ReadLimit and ReadBurst limit each token's credential reads (see
	// api.Options); zero takes api.DefaultReadLimit and DefaultReadBurst.
	ReadLimit float64
	ReadBurst int
}

// APIServer is the running HTTP API.
type APIServer struct {
	http    *http.Server
	catalog atomic.Pointer[api.Catalog]
}

// ServeAPI serves the HTTP API on l with the session's policies; nil (and
// no error) when l.Address is empty, or when the default socket cannot be
// served: a missing /run/swarmkey or a socket another process already
// serves is a warning then, so that a daemon started by hand, or a second
// replica on one host, still rotates. Any listener given explicitly must
// work (an InputError naming the flag otherwise).
func (s *Session) ServeAPI(l APIListen, reg *prometheus.Registry) (*APIServer, error) {
	if l.Address == "" {
		return nil, nil
	}
	if l.ReadLimit < 0 || math.IsNaN(l.ReadLimit) {
		return nil, Inputf("--api-read-rate %g: give the reads a second one token may make (such as 20)", l.ReadLimit)
	}
	if l.ReadBurst < 0 {
		return nil, Inputf("--api-read-burst %d: give the reads one token may make at once (such as 100)", l.ReadBurst)
	}
	ln, err := api.Listen(l.Address, l.TLSCert, l.TLSKey)
	if err != nil && !l.Explicit && errors.Is(err, api.ErrSocketFolderMissing) {
		ln, l.Address, err = s.listenPrivateSocket(err)
	}
	if err != nil {
		if !l.Explicit && (errors.Is(err, api.ErrSocketFolderMissing) || errors.Is(err, api.ErrSocketInUse)) {
			s.Logger.Warn("the HTTP API is not served", "reason", err.Error())
			return nil, nil
		}
		return nil, Inputf("--api-listen %q: %v", l.Address, err)
	}
	a := &APIServer{}
	first := s.Catalog()
	a.catalog.Store(&first)
	srv, err := api.New(api.Options{
		DB:         s.DB,
		Policies:   func() api.Catalog { return *a.catalog.Load() },
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Registerer: reg,
		Logger:     s.Logger,
		ReadLimit:  rate.Limit(l.ReadLimit),
		ReadBurst:  l.ReadBurst,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	a.http = api.HTTPServer(srv, l.Timeouts)
	logger := s.Logger
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("the HTTP API stopped", "error", err)
		}
	}()
	logger.Info("serving the HTTP API", "listen", l.Address, "tls", l.TLSCert != "")
	return a, nil
}

// Reload makes the API serve rt's policies from now on. The old runtime's
// stores stay open for reads in flight.
func (a *APIServer) Reload(rt *Runtime) {
	if a == nil {
		return
	}
	c := rt.Catalog()
	a.catalog.Store(&c)
}

// Close stops the API, giving requests in flight five seconds.
func (a *APIServer) Close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.http.Shutdown(ctx)
}

// ServeHealth serves /metrics, /healthz (the process runs) and /readyz (the
// database answers) on addr, with the API's connection limits (timeouts t,
// see api.HTTPServer), and returns what stops it.
func (s *Session) ServeHealth(addr string, t api.Timeouts, reg *prometheus.Registry) (func(), error) {
	return s.serveHTTP(addr, t, reg, nil)
}

// serveHTTP is ServeHealth with pages, when not nil, serving every other
// path.
func (s *Session) serveHTTP(addr string, t api.Timeouts, reg *prometheus.Registry, pages http.Handler) (func(), error) {
	mux := http.NewServeMux()
	if pages != nil {
		mux.Handle("/", pages)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.DB.Ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, Inputf("--http-listen %q: %v", addr, err)
	}
	srv := api.HTTPServer(mux, t)
	logger := s.Logger
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
