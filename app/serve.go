package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/notify"
)

// ServeOptions are serve's settings beside the config file.
type ServeOptions struct {
	Daemon daemon.Config
	// DrainTimeout is how long SIGTERM waits for running rotations.
	DrainTimeout time.Duration
	// HealthListen serves /metrics, /healthz and /readyz; "" serves none.
	HealthListen string
	API          APIListen
	// Reload reads the config files again on SIGHUP.
	Reload func() (*config.Config, error)
}

// Serve runs the daemon until ctx ends: it applies the migrations (ours and
// River's), starts River with the session's policies, the health and API
// servers, and tells systemd READY, WATCHDOG and STOPPING. SIGHUP reloads
// the config for the daemon and the API from the same read: a bad file keeps
// the old policies in both and is logged. When ctx ends it drains: running
// rotations get DrainTimeout to finish, then are cancelled, which leaves
// each resumable by another replica.
func (s *Session) Serve(ctx context.Context, o ServeOptions) error {
	logger := s.Logger
	if err := s.MigrateAll(ctx); err != nil {
		return err
	}
	set := s.PolicySet()
	// The config's YAML trees are garbage now (tens of MiB for ten thousand
	// policies): hand them back, so the idle daemon's footprint is its
	// working set.
	debug.FreeOSMemory()
	notifier := notify.New(s.NotifyConfig(), logger)
	o.Daemon.Notifier = notifier
	d, err := s.NewDaemon(set, o.Daemon)
	if err != nil {
		return err
	}
	metrics := daemon.NewMetrics(len(set.Policies))
	if err := notifier.Register(metrics.Registry); err != nil {
		return err
	}
	d.OnResult = metrics.Observe
	metrics.Watch(d)
	if err := d.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	// The timeline pages show the policies the daemon plans with.
	var shown atomic.Pointer[daemon.PolicySet]
	shown.Store(set)
	if o.HealthListen != "" {
		stopHealth, err := s.ServeStatus(o.HealthListen, o.API.Timeouts, metrics.Registry, shown.Load)
		if err != nil {
			_ = d.Stop(context.Background())
			return err
		}
		defer stopHealth()
	}
	apiServer, err := s.ServeAPI(o.API, metrics.Registry)
	if err != nil {
		_ = d.Stop(context.Background())
		return err
	}
	defer apiServer.Close()
	logger.Info("swarmkey serving", "policies", len(set.Policies), "workers", o.Daemon.Workers, "files", s.Config.Files)
	_, _ = systemd.SdNotify(false, systemd.SdNotifyReady)
	defer startWatchdog()()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if rt := s.reload(ctx, o.Reload, d); rt != nil {
				notifier.Reload(rt.NotifyConfig())
				metrics.Reloaded(len(rt.Config.Policies), true)
				apiServer.Reload(rt)
				shown.Store(rt.PolicySet())
			} else {
				metrics.Reloaded(0, false)
			}
		case <-ctx.Done():
			logger.Info("draining", "timeout", o.DrainTimeout)
			_, _ = systemd.SdNotify(false, systemd.SdNotifyStopping)
			drainCtx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
			err := d.Stop(drainCtx)
			cancel()
			if err != nil {
				logger.Warn("drain ended with an error; unfinished rotations stay resumable", "error", err)
			}
			logger.Info("stopped")
			return nil
		}
	}
}

// reload reads the config files again and hands the daemon the new
// policies; it returns the new runtime, or nil when a bad file keeps the
// old policies. The old runtime's stores stay open for rotations still
// running with the old set; they are few and small, and close at exit.
func (s *Session) reload(ctx context.Context, read func() (*config.Config, error), d *daemon.Daemon) *Runtime {
	logger := s.Logger
	cfg, err := read()
	if err != nil {
		logger.Error("reload failed; keeping the old policies", "error", err)
		return nil
	}
	rt := NewRuntime(cfg, logger)
	set := rt.PolicySet()
	if err := d.Reload(ctx, set); err != nil {
		rt.Close()
		logger.Error("reload failed; keeping the old policies", "error", err)
		return nil
	}
	logger.Info("reloaded", "policies", len(set.Policies), "files", cfg.Files)
	return rt
}

// startWatchdog pings systemd's watchdog at half its interval, when enabled,
// and returns what stops it.
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
