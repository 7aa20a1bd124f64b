package app

import (
	"context"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/state"
)

// PolicySet turns the config into the daemon's policy set: each policy's
// Timing and the global deny windows, as config built them. Stores and
// targets are opened per rotation (Open), through the runtime, which caches
// stores.
func (r *Runtime) PolicySet() *daemon.PolicySet {
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	for _, w := range r.Config.Deny {
		set.Deny = append(set.Deny, w.DenyWindow)
	}
	for i := range r.Config.Policies {
		p := &r.Config.Policies[i]
		set.Policies[p.Name] = daemon.Scheduled{
			Plan: &p.Timing, Strategy: string(p.Strategy), Store: p.Store, SecretID: p.SecretID, Tags: p.Tags,
			MaxAttempts: p.MaxAttempts,
			Open:        func(ctx context.Context) (rotator.Credential, error) { return r.OpenCredential(ctx, p) },
		}
	}
	return set
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
	return daemon.Enqueue(ctx, s.pool, s.DB, s.PolicySet(), req)
}

// Follow reports a ticket's progress until its job is done (see
// daemon.Follow).
func (s *Session) Follow(ctx context.Context, t daemon.Ticket, report func(daemon.Progress)) (*state.Rotation, error) {
	return daemon.Follow(ctx, s.pool, s.DB, t, report)
}
