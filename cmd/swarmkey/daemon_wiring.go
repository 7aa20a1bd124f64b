package main

import (
	"context"
	"fmt"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
)

// policySet turns the config into the daemon's policy set. Stores and
// targets are opened per rotation (Open), through env, which caches stores.
func (env *environment) policySet() (*daemon.PolicySet, error) {
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	for _, w := range env.cfg.Deny {
		dw, err := denyWindow(w)
		if err != nil {
			return nil, err
		}
		set.Deny = append(set.Deny, dw)
	}
	for i := range env.cfg.Policies {
		p := &env.cfg.Policies[i]
		plan, err := schedulePolicy(p)
		if err != nil {
			return nil, err
		}
		set.Policies[p.Name] = daemon.Scheduled{
			Plan: plan, Strategy: string(p.Strategy), Store: p.Store, SecretID: p.SecretID, Tags: p.Tags,
			MaxAttempts: p.MaxAttempts,
			Open:        func(ctx context.Context) (rotator.Credential, error) { return env.openPolicy(ctx, p) },
		}
	}
	return set, nil
}

// schedulePolicy is the planning half of a policy.
func schedulePolicy(p *config.Policy) (schedule.Timing, error) {
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
