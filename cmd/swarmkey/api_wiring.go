package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/providers"
)

// apiFlags are serve's API flags.
type apiFlags struct {
	listen, tlsCert, tlsKey string
	// explicit: --api-listen was given. The default socket is best effort
	// (see startAPI); a listener the operator asked for is not.
	explicit bool
}

// catalog builds the API's view of the configured policies; stores are
// opened through env on first read and cached there.
func catalog(env *environment) api.Catalog {
	c := api.Catalog{}
	for i := range env.cfg.Policies {
		p := &env.cfg.Policies[i]
		c[p.Name] = api.Entry{Name: p.Name, Tags: p.Tags, Read: func(ctx context.Context) (providers.Version, error) {
			st, err := env.store(ctx, p.Store)
			if err != nil {
				return providers.Version{}, err
			}
			return api.ReadCurrent(ctx, st, p.SecretID)
		}}
	}
	return c
}

// startAPI serves the HTTP API as flags say and returns what stops it; an
// empty --api-listen serves nothing.
//
// With the default listener (not given on the command line), a missing
// /run/swarmkey or a socket another process already serves is a warning,
// not a failure: a daemon started by hand, or a second replica on one
// host, still rotates. Any listener given explicitly must work.
//
// The API reloads the policies on SIGHUP itself, as serve does for the
// daemon: the same files, read at the same moment; a bad file keeps the
// API's old policies too.
func startAPI(g *globals, sess *session, reg *prometheus.Registry, f apiFlags) (func(), error) {
	if f.listen == "" {
		return func() {}, nil
	}
	logger := sess.logger
	ln, err := api.Listen(f.listen, f.tlsCert, f.tlsKey)
	if err != nil {
		if !f.explicit && (errors.Is(err, api.ErrSocketFolderMissing) || errors.Is(err, api.ErrSocketInUse)) {
			logger.Warn("the HTTP API is not served", "reason", err.Error())
			return func() {}, nil
		}
		return nil, usageError("--api-listen %q: %v", f.listen, err)
	}
	var current atomic.Pointer[api.Catalog]
	first := catalog(sess.env)
	current.Store(&first)
	srv, err := api.New(api.Options{
		DB:         sess.db,
		Policies:   func() api.Catalog { return *current.Load() },
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Registerer: reg,
		Logger:     logger,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	hsrv := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := hsrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("the HTTP API stopped", "error", err)
		}
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				cfg, err := g.loadConfig()
				if err != nil {
					logger.Warn("API reload failed; the API keeps the old policies", "error", err)
					continue
				}
				// The old environment's stores stay open for reads in flight.
				c := catalog(newEnvironment(cfg, logger))
				current.Store(&c)
			}
		}
	}()
	logger.Info("serving the HTTP API", "listen", f.listen, "tls", f.tlsCert != "")
	return func() {
		signal.Stop(hup)
		close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hsrv.Shutdown(ctx)
	}, nil
}
