package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/daemon"
)

func newServeCommand(g *globals) *cobra.Command {
	var (
		cfg          daemon.Config
		drainTimeout time.Duration
		httpListen   string
		apiListen    app.APIListen
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
			ctx, logger := cmd.Context(), sess.Logger
			if err := sess.MigrateAll(ctx); err != nil {
				return err
			}
			set := sess.PolicySet()
			// The config's YAML trees are garbage now (tens of MiB for ten
			// thousand policies): hand them back, so the idle daemon's
			// footprint is its working set.
			debug.FreeOSMemory()
			d, err := sess.NewDaemon(set, cfg)
			if err != nil {
				return err
			}
			metrics := daemon.NewMetrics(len(set.Policies))
			d.OnResult = metrics.Observe
			if err := d.Start(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("start daemon: %w", err)
			}
			if httpListen != "" {
				stopHTTP, err := sess.ServeHealth(httpListen, metrics.Registry)
				if err != nil {
					_ = d.Stop(context.Background())
					return err
				}
				defer stopHTTP()
			}
			apiListen.Explicit = cmd.Flags().Changed("api-listen")
			apiServer, err := sess.ServeAPI(apiListen, metrics.Registry)
			if err != nil {
				_ = d.Stop(context.Background())
				return err
			}
			defer apiServer.Close()
			logger.Info("swarmkey serving", "policies", len(set.Policies), "workers", cfg.Workers, "files", sess.Config.Files)
			_, _ = systemd.SdNotify(false, systemd.SdNotifyReady)

			stopWatchdog := startWatchdog()
			defer stopWatchdog()

			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					// The daemon and the API reload from the same files,
					// read once: a bad file keeps the old policies in both.
					if rt := reload(ctx, g, logger, d); rt != nil {
						metrics.Reloaded(len(rt.Config.Policies), true)
						apiServer.Reload(rt)
					} else {
						metrics.Reloaded(0, false)
					}
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
	cmd.Flags().StringVar(&apiListen.Address, "api-listen", api.DefaultListen,
		`the HTTP API: unix:/path or tcp:HOST:PORT (TLS required unless HOST is loopback); "" serves none`)
	cmd.Flags().StringVar(&apiListen.TLSCert, "api-tls-cert", "", "TLS certificate (PEM) of a tcp: --api-listen")
	cmd.Flags().StringVar(&apiListen.TLSKey, "api-tls-key", "", "TLS private key (PEM) of --api-tls-cert")
	cmd.Flags().StringVar(&httpListen, "http-listen", "", "address for /metrics, /healthz and /readyz (e.g. 127.0.0.1:9184); off by default")
	return cmd
}

// reload reads the config files again and hands the daemon the new
// policies; it returns the new runtime, or nil when a bad file keeps the
// old policies. The old runtime's stores stay open for rotations still
// running with the old set; they are few and small, and close at exit.
func reload(ctx context.Context, g *globals, logger *slog.Logger, d *daemon.Daemon) *app.Runtime {
	cfg, err := g.loadConfig()
	if err != nil {
		logger.Error("reload failed; keeping the old policies", "error", err)
		return nil
	}
	rt := app.NewRuntime(cfg, logger)
	set := rt.PolicySet()
	if err := d.Reload(ctx, set); err != nil {
		rt.Close()
		logger.Error("reload failed; keeping the old policies", "error", err)
		return nil
	}
	logger.Info("reloaded", "policies", len(set.Policies), "files", cfg.Files)
	return rt
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
