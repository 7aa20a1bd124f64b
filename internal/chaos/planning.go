package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// KillPlanner and KillLeader name the kills of the replica that plans (it
// holds the planning lock, state.TryLockPlanner) and of River's leader.
const (
	KillPlanner = "kill -9 serve replica while it plans"
	KillLeader  = "kill -9 serve replica that leads"
)

// plannerHolder is the application_name of the session that holds the
// planning lock (the replicas name their sessions after their --id).
const plannerHolder = `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
	AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('swarmkey/planner', 0)`

// planGaps watches planning from the outside: every newly inserted rotation
// job is a plan's work (the served policies fire every 2s, so a planner
// that works inserts some every tick). A gap is the time between two
// moments at which new jobs appeared.
type planGaps struct {
	mu      sync.Mutex
	last    time.Time   // the newest job's insert, as last seen
	gaps    []gap       // every gap seen
	kills   []time.Time // the planner and leader kills
	stop    chan struct{}
	stopped chan struct{}
}

type gap struct{ from, to time.Time }

func (g *planGaps) run(h *Harness) {
	defer close(g.stopped)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var newest *time.Time
		err := h.pool.QueryRow(ctx, `SELECT max(created_at) FROM river_job WHERE kind = 'swarmkey_rotate'`).Scan(&newest)
		cancel()
		if err != nil || newest == nil {
			continue
		}
		g.mu.Lock()
		if newest.After(g.last) {
			if !g.last.IsZero() {
				g.gaps = append(g.gaps, gap{g.last, *newest})
			}
			g.last = *newest
		}
		g.mu.Unlock()
	}
}

func (g *planGaps) kill(at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.kills = append(g.kills, at)
}

// afterKills returns the gap that holds each kill, sorted, and the longest
// gap of the whole run.
func (g *planGaps) afterKills() (gaps []time.Duration, longest time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range g.kills {
		for _, x := range g.gaps {
			if !k.Before(x.from) && k.Before(x.to) {
				gaps = append(gaps, x.to.Sub(x.from))
				break
			}
		}
	}
	for _, x := range g.gaps {
		longest = max(longest, x.to.Sub(x.from))
	}
	slices.Sort(gaps)
	return gaps, longest
}

// PlannerKillRound kills (kill -9) the replica that holds the planning lock
// at the moment it plans, or, every other time, River's leader; then
// starts it again. killed is false when none was caught within 30s.
func (rs *Replicas) PlannerKillRound(ctx context.Context, leader bool) (killed bool) {
	h := rs.h
	query, kind := plannerHolder, KillPlanner
	if leader {
		query, kind = `SELECT leader_id FROM river_leader WHERE expires_at > now()`, KillLeader
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var id string
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := h.pool.QueryRow(qctx, query).Scan(&id)
		cancel()
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if slot := rs.slotOf(id); slot >= 0 {
			rs.mu.Lock()
			victim := rs.procs[slot]
			rs.mu.Unlock()
			victim.Kill()
			at := time.Now()
			rs.gaps.kill(at)
			victim.Wait(10 * time.Second)
			h.Stats.Inject(kind, "planning", "", victim.Name)
			rs.start(slot)
			if !rs.waitReady(slot, 60*time.Second) {
				h.Stats.Outcome("serve replica not ready within 60s of its start")
			}
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Stats.Outcome(kind + ": none caught within 30s")
	return false
}

// slotOf finds the slot whose running replica has id (-1 when none).
func (rs *Replicas) slotOf(id string) int {
	if id == "" {
		return -1
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for slot, p := range rs.procs {
		if p.Name == id && !p.Exited() {
			return slot
		}
	}
	return -1
}

// ReportPlanning puts the planning gaps into the report: the gap that held
// each kill of the planner or the leader (p50 and max), beside the longest
// gap of the run (PostgreSQL restarts included).
func (rs *Replicas) ReportPlanning() {
	gaps, longest := rs.gaps.afterKills()
	if len(gaps) == 0 {
		rs.h.Stats.Outcome("planning gap after a planner or leader kill: none measured")
		return
	}
	rs.h.Stats.Outcome(fmt.Sprintf("planning gap after a planner or leader kill (%d): p50 %s, max %s; longest gap of the run %s",
		len(gaps), gaps[len(gaps)/2].Round(100*time.Millisecond), gaps[len(gaps)-1].Round(100*time.Millisecond),
		longest.Round(100*time.Millisecond)))
}

// CheckLateStarts counts the daemon's rotations that began after their
// fire's window ended (the served policies' windows are 1.9s): a job that
// can no longer start inside its window must be recorded as missed instead.
// A start is late when its row was written more than lateSlack after the
// window's end (the worker checks the window just before the rotator writes
// the row). A fire that policy's `missed: asap` rule brought back (audited)
// is not late.
func (h *Harness) CheckLateStarts(ctx context.Context, seen map[string]bool) {
	const lateSlack = time.Second
	var rows pgx.Rows
	err := h.query(ctx, func(ctx context.Context) error {
		var err error
		rows, err = h.pool.Query(ctx, `SELECT r.policy, r.request_key, r.started_at, r.token::text FROM rotations r
			WHERE r.actor = 'daemon' AND r.request_key LIKE 'fire:svc-%'
			AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.policy = r.policy AND a.action = 'rotation.missed'
				AND a.detail->>'missed_rule' = 'asap' AND 'fire:' || r.policy || ':' || (a.detail->>'fire') = r.request_key)`)
		return err
	})
	if err != nil {
		h.Stats.Outcome("check: state unreadable")
		return
	}
	type late struct {
		policy, key, token string
		by                 time.Duration
	}
	var found []late
	for rows.Next() {
		var policy, key, token string
		var started time.Time
		if rows.Scan(&policy, &key, &started, &token) != nil {
			continue
		}
		fire, err := time.Parse(time.RFC3339, strings.TrimPrefix(key, "fire:"+policy+":"))
		if err != nil {
			continue
		}
		end := fire.Add(servedWindow)
		if started.After(end.Add(lateSlack)) && !seen[token] {
			seen[token] = true
			found = append(found, late{policy, key, token, started.Sub(end)})
		}
	}
	rows.Close()
	for _, l := range found {
		h.Violate(ctx, LateStart, h.Policy(l.policy), "rotation %s of %s started %s after its window ended",
			l.token, l.key, l.by.Round(time.Millisecond))
	}
}
