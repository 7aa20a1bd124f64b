package app

import (
	"context"
	"fmt"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// PolicySet turns the config into the daemon's policy set. Stores and
// targets are opened per rotation (Open), through the runtime, which
// caches stores.
func (r *Runtime) PolicySet() (*daemon.PolicySet, error) {
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	for _, w := range r.Config.Deny {
		dw, err := denyWindow(w)
		if err != nil {
			return nil, err
		}
		set.Deny = append(set.Deny, dw)
	}
	for i := range r.Config.Policies {
		p := &r.Config.Policies[i]
		plan, err := timing(p)
		if err != nil {
			return nil, err
		}
		set.Policies[p.Name] = daemon.Scheduled{
			Plan: plan, Strategy: string(p.Strategy), Store: p.Store, SecretID: p.SecretID, Tags: p.Tags,
			MaxAttempts: p.MaxAttempts,
			Open:        func(ctx context.Context) (rotator.Credential, error) { return r.OpenCredential(ctx, p) },
		}
	}
	return set, nil
}

// timing is the planning half of a policy.
func timing(p *config.Policy) (schedule.Timing, error) {
	sched, err := schedule.New(p.ScheduleSpec, p.Location)
	if err != nil {
		return schedule.Timing{}, fmt.Errorf("%s:%d: policies[%s].schedule: %w", p.File, p.Line, p.Name, err)
	}
	out := schedule.Timing{
		Name: p.Name, Schedule: sched, Window: p.Window, ExpectedDuration: p.ExpectedDuration,
		GuardBefore: p.GuardBefore, GuardAfter: p.GuardAfter, MaxAge: p.MaxAge,
		OnOverdue: string(p.OnOverdue), Missed: string(p.Missed),
	}
	for _, w := range p.Deny {
		dw, err := denyWindow(w)
		if err != nil {
			return schedule.Timing{}, err
		}
		out.Deny = append(out.Deny, dw)
	}
	return out, nil
}

func denyWindow(w config.DenyWindow) (schedule.DenyWindow, error) {
	sched, err := schedule.New(w.Spec, w.Location)
	if err != nil {
		return schedule.DenyWindow{}, fmt.Errorf("%s:%d: deny: %w", w.File, w.Line, err)
	}
	return schedule.DenyWindow{Name: w.Name, Schedule: sched, Duration: w.Duration}, nil
}

// MigrateAll applies swarmkey's migrations and River's.
func (s *Session) MigrateAll(ctx context.Context) error {
	if _, err := s.DB.Migrate(ctx); err != nil {
		return err
	}
	return daemon.MigrateRiver(ctx, s.pool)
}

// NewDaemon builds the daemon over the session's database with set.
func (s *Session) NewDaemon(set *daemon.PolicySet, cfg daemon.Config) (*daemon.Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = s.Logger
	}
	return daemon.New(s.pool, s.DB, set, cfg)
}

// Enqueue asks the daemon for a rotation now (see daemon.Enqueue).
func (s *Session) Enqueue(ctx context.Context, req daemon.Request) (daemon.Ticket, error) {
	if _, err := s.Policy(req.Policy); err != nil {
		return daemon.Ticket{}, err
	}
	set, err := s.PolicySet()
	if err != nil {
		return daemon.Ticket{}, &InputError{Err: err}
	}
	return daemon.Enqueue(ctx, s.pool, s.DB, set, req)
}

// Follow reports a ticket's progress until its job is done (see
// daemon.Follow).
func (s *Session) Follow(ctx context.Context, t daemon.Ticket, report func(daemon.Progress)) (*state.Rotation, error) {
	return daemon.Follow(ctx, s.pool, s.DB, t, report)
}
