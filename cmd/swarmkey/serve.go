package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/rotator"
)

func newServeCommand(g *globals) *cobra.Command {
	var (
		cfg          daemon.Config
		drainTimeout time.Duration
		httpListen   string
		apiOpts      apiFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the rotation daemon",
		Long: `serve applies the migrations, then plans and runs rotations on River until
SIGTERM. Several replicas on one database share the work; River elects the
leader that plans. SIGHUP reloads the config files: a bad file keeps the old
policies and logs why. SIGTERM drains: running rotations get --drain-timeout
to finish, then are cancelled, which leaves each resumable by another
replica. Under systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("log-level") {
				g.logLevel = "info"
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			ctx, logger := cmd.Context(), sess.logger
			if _, err := sess.db.Migrate(ctx); err != nil {
				return err
			}
			if err := daemon.MigrateRiver(ctx, sess.db); err != nil {
				return err
			}
			set, err := sess.env.policySet()
			if err != nil {
				return usageError("%v", err)
			}
			// The config's YAML trees are garbage now (tens of MiB for ten
			// thousand policies): hand them back, so the idle daemon's
			// footprint is its working set.
			debug.FreeOSMemory()
			cfg.Logger = logger
			d, err := daemon.New(sess.db, set, cfg)
			if err != nil {
				return err
			}
			metrics := newMetrics(len(set.Policies))
			d.OnResult = metrics.observe
			if err := d.Start(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("start daemon: %w", err)
			}
			if httpListen != "" {
				stopHTTP, err := serveHTTP(httpListen, metrics.registry, sess)
				if err != nil {
					_ = d.Stop(context.Background())
					return err
				}
				defer stopHTTP()
			}
			apiOpts.explicit = cmd.Flags().Changed("api-listen")
			stopAPI, err := startAPI(g, sess, metrics.registry, apiOpts)
			if err != nil {
				_ = d.Stop(context.Background())
				return err
			}
			defer stopAPI()
			logger.Info("swarmkey serving", "policies", len(set.Policies), "workers", cfg.Workers, "files", sess.cfg.Files)
			_, _ = systemd.SdNotify(false, systemd.SdNotifyReady)

			stopWatchdog := startWatchdog()
			defer stopWatchdog()

			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					reload(ctx, g, sess, d, metrics)
				case <-ctx.Done():
					logger.Info("draining", "timeout", drainTimeout)
					_, _ = systemd.SdNotify(false, systemd.SdNotifyStopping)
					drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
					err := d.Stop(drainCtx)
					cancel()
					if err != nil {
						logger.Warn("drain ended with an error; unfinished rotations stay resumable", "error", err)
					}
					logger.Info("stopped")
					return nil
				}
			}
		},
	}
	cmd.Flags().IntVar(&cfg.Workers, "workers", 10, "rotations this process runs at once")
	cmd.Flags().DurationVar(&cfg.PlanInterval, "plan-interval", 2*time.Second,
		"how often the leader plans; jobs are inserted twice this ahead of their slot")
	cmd.Flags().DurationVar(&cfg.RescueAfter, "rescue-after", time.Minute,
		"resume a rotation whose replica died after this long (keep it above your longest canary)")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 30*time.Second, "how long SIGTERM waits for running rotations")
	cmd.Flags().StringVar(&cfg.ID, "id", "", "this replica's name in River and logs (default: host and pid)")
	cmd.Flags().StringVar(&apiOpts.listen, "api-listen", api.DefaultListen,
		`the HTTP API: unix:/path or tcp:HOST:PORT (TLS required unless HOST is loopback); "" serves none`)
	cmd.Flags().StringVar(&apiOpts.tlsCert, "api-tls-cert", "", "TLS certificate (PEM) of a tcp: --api-listen")
	cmd.Flags().StringVar(&apiOpts.tlsKey, "api-tls-key", "", "TLS private key (PEM) of --api-tls-cert")
	cmd.Flags().StringVar(&httpListen, "http-listen", "", "address for /metrics, /healthz and /readyz (e.g. 127.0.0.1:9184); off by default")
	return cmd
}

// reload reads the config files again. A bad file keeps the old policies.
func reload(ctx context.Context, g *globals, sess *session, d *daemon.Daemon, m *metrics) {
	logger := sess.logger
	cfg, err := g.loadConfig()
	if err != nil {
		logger.Error("reload failed; keeping the old policies", "error", err)
		m.reloadFailures.Inc()
		return
	}
	env := newEnvironment(cfg, logger)
	set, err := env.policySet()
	if err == nil {
		err = d.Reload(ctx, set)
	}
	if err != nil {
		env.Close()
		logger.Error("reload failed; keeping the old policies", "error", err)
		m.reloadFailures.Inc()
		return
	}
	// The old environment's stores stay open for rotations still running
	// with the old set; they are few and small, and close at exit.
	sess.cfg, sess.env = cfg, env
	m.policies.Set(float64(len(set.Policies)))
	logger.Info("reloaded", "policies", len(set.Policies), "files", cfg.Files)
}

// startWatchdog pings systemd's watchdog at half its interval, when enabled.
func startWatchdog() func() {
	interval, err := systemd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = systemd.SdNotify(false, systemd.SdNotifyWatchdog)
			}
		}
	}()
	return func() { close(done) }
}

type metrics struct {
	registry       *prometheus.Registry
	rotations      *prometheus.CounterVec
	policies       prometheus.Gauge
	reloadFailures prometheus.Counter
}

func newMetrics(policies int) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_rotations_total", Help: "Rotation jobs run, by outcome.",
		}, []string{"outcome"}),
		policies:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "swarmkey_policies", Help: "Configured policies."}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "swarmkey_reload_failures_total", Help: "SIGHUP reloads that kept the old policies."}),
	}
	m.registry.MustRegister(m.rotations, m.policies, m.reloadFailures)
	m.policies.Set(float64(policies))
	return m
}

func (m *metrics) observe(_ daemon.RotateArgs, res rotator.Result, err error) {
	outcome := string(res.Outcome)
	if outcome == "" {
		outcome = "deferred"
		if err == nil {
			outcome = "succeeded"
		}
	}
	m.rotations.WithLabelValues(outcome).Inc()
}

// serveHTTP serves /metrics, /healthz (the process runs) and /readyz (the
// database answers).
func serveHTTP(addr string, reg *prometheus.Registry, sess *session) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := sess.db.Pool.Ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError("--http-listen %q: %v", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sess.logger.Error("http server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
