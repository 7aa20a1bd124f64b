package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Plan says how many injections of each kind a run makes, at most, and
// how long it may take; the run stops at whichever bound comes first.
type Plan struct {
	LocalKills int // kill -9 of rotate --local
	ServeKills int // kill -9 of serve replicas
	PGRestarts int
	ReadOnly   int // read-only store folder
	AWSFaults  int // proxy faults and another writer, on `rotate --local` of AWS policies
	GCPFaults  int // faults and crashes of the in-process GCP rotations
	// ServeHolds hold an AWS answer of a served policy past the serve
	// job's timeout (by the replicas' killer, between its kills).
	ServeHolds int
	// HangProbes hold an AWS answer of `rotate --local` for 90s: the
	// store sets no timeout of its own, so the process waits (the harness
	// kills it after 60s and counts it).
	HangProbes int
	// PlannerKills kill -9 the replica that plans (half of them: River's
	// leader), between the serve kills.
	PlannerKills int
	// StateDowns stop the state database just before a store call of a
	// `rotate --local`, so that the record of its step fails.
	StateDowns int
	Duration   time.Duration
	// StuckAfter: a served policy that has not rotated for this long while
	// replicas run (and faults go on) is stuck; default 5m.
	StuckAfter time.Duration
	// SettleWithin: once the faults stop, the replicas must rotate every
	// served policy within this; default 2m.
	SettleWithin time.Duration
}

// Run runs the plan: serve replicas rotate their policies throughout and
// one goroutine kills them; another runs the rounds of `rotate --local`
// (kills, AWS faults), the in-process GCP rounds, and, with the replicas'
// killer paused, the PostgreSQL restarts and the read-only folder. At the
// end the replicas are stopped and every policy must rotate once more with
// `rotate --local` and pass the checks.
func (h *Harness) Run(ctx context.Context, plan Plan) {
	deadline := time.Now().Add(plan.Duration)
	if plan.StuckAfter == 0 {
		plan.StuckAfter = 5 * time.Minute
	}
	if plan.SettleWithin == 0 {
		plan.SettleWithin = 2 * time.Minute
	}
	for _, p := range h.All() {
		h.Stats.Track(p.Name)
	}
	var gcp *GCP
	if plan.GCPFaults > 0 {
		gcp = h.StartGCP()
		for _, p := range gcp.Policies {
			h.Stats.Track(p.Name)
		}
	}
	rs := h.StartReplicas(h.opts.Replicas, plan.StuckAfter)
	doubles := map[string]bool{}

	// The killer of serve replicas pauses (global.Lock) while a global
	// round runs.
	var global sync.RWMutex
	serveDone := make(chan struct{})
	lateSeen := map[string]bool{} // late starts counted (one violation each)
	go func() {
		defer close(serveDone)
		// Holds come evenly spread between the kills.
		every := 0
		if plan.ServeHolds > 0 {
			every = max(1, plan.ServeKills/plan.ServeHolds)
		}
		// A round that saw no rotation to kill is tried again (at most
		// as many times as the plan has kills).
		planEvery := 0
		if plan.PlannerKills > 0 {
			planEvery = max(1, plan.ServeKills/plan.PlannerKills)
		}
		kills, misses, plannerKills := 0, 0, 0
		for i := 0; kills < plan.ServeKills && misses <= plan.ServeKills && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
			global.RLock()
			if every > 0 && i%every == every-1 {
				rs.HoldRound(ctx)
			}
			if planEvery > 0 && i%planEvery == planEvery-1 && plannerKills < plan.PlannerKills {
				rs.PlannerKillRound(ctx, plannerKills%2 == 1)
				plannerKills++
			}
			if rs.KillRound(ctx) {
				kills++
			} else {
				misses++
			}
			if i%10 == 9 {
				rs.CheckServed(ctx)
				h.CheckDoubleRotations(ctx, doubles)
				h.CheckLateStarts(ctx, lateSeen)
			}
			global.RUnlock()
			if i%25 == 24 {
				h.opts.Logf("%s: %d serve kills", h.Stats.Elapsed().Round(time.Second), kills)
			}
		}
	}()

	left := map[string]int{"local": plan.LocalKills, "pg": plan.PGRestarts, "ro": plan.ReadOnly, "aws": plan.AWSFaults,
		"gcp": plan.GCPFaults, "hang": plan.HangProbes, "state": plan.StateDowns}
	order := []string{"local", "pg", "ro", "aws", "gcp", "hang", "state"}
	// A kill that came after its process ended is tried again (at most as
	// many times as the plan has kills), so the plan counts kills that
	// landed.
	misses := 0
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		total := 0
		for _, k := range order {
			total += left[k]
		}
		if total == 0 {
			break
		}
		pick := h.intn(total)
		kind := ""
		for _, k := range order {
			if pick < left[k] {
				kind = k
				break
			}
			pick -= left[k]
		}
		left[kind]--
		switch kind {
		case "local":
			if !h.LocalKillRound(ctx) && misses < plan.LocalKills {
				misses++
				left["local"]++
			}
		case "aws":
			h.ProxyRound(ctx)
		case "gcp":
			gcp.Round(ctx)
		case "hang":
			h.HangProbe(ctx)
		case "pg", "ro", "state":
			global.Lock()
			switch kind {
			case "pg":
				h.PGRestartRound(ctx, rs)
			case "ro":
				h.ReadOnlyRound(ctx, rs)
			default:
				h.StateDownRound(ctx, rs)
			}
			h.CheckDoubleRotations(ctx, doubles)
			global.Unlock()
		}
		if n%50 == 49 {
			h.opts.Logf("%s: %d rounds, %d local kills, %d serve kills", h.Stats.Elapsed().Round(time.Second), n+1,
				h.Stats.Injections(KillLocal), h.Stats.Injections(KillServe))
		}
	}
	if time.Now().After(deadline) {
		h.Stats.Outcome("run stopped at its time bound")
	}
	<-serveDone

	// The end: the replicas must get every served policy going again by
	// themselves; then they stop and every policy rotates once more.
	rs.Settle(ctx, plan.SettleWithin)
	rs.CheckServed(ctx)
	for policy, gap := range rs.MaxGaps() {
		h.Stats.Outcome(fmt.Sprintf("longest gap between two successful rotations of %s: %s", policy, gap.Round(time.Second)))
	}
	rs.ReportPlanning()
	h.CheckLateStarts(ctx, lateSeen)
	rs.Stop()
	rs.CheckServed(ctx)
	for _, p := range h.All() {
		if !h.Quarantined(p) && h.RecoverLocal(ctx, p, "the end of the run") {
			h.Check(ctx, p, false)
		}
	}
	if gcp != nil {
		gcp.Final(ctx)
	}
	h.CheckDoubleRotations(ctx, doubles)
	h.CheckProxyPromotions(ctx)
	h.CheckTempFiles(ctx, nil)
}
