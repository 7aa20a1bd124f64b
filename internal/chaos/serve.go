package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/internal/faultproxy"
)

// logEvent is a line of serve's JSON log that the harness acts on.
type logEvent struct {
	Msg    string `json:"msg"`
	Policy string `json:"policy"`
	Token  string `json:"token"`
	Step   string `json:"step"`
}

// Replicas are the `swarmkey serve` processes of a run. Each slot has one
// live replica at a time; a killed one is replaced by a new process with a
// new River id.
type Replicas struct {
	h *Harness

	mu    sync.Mutex
	procs []*Proc
	gens  []int
	ready []chan struct{}
	// watch, when set, sees every event of every replica; it returns true
	// when it is done (it is then removed).
	watch func(slot int, ev logEvent) bool

	stopMonitor chan struct{}
	monitorDone chan struct{}
	lastOK      map[string]time.Time // policy → last success seen
	stuckSince  map[string]bool
	maxGap      map[string]time.Duration
	gaps        *planGaps // planning as seen from the outside
}

// serveArgs: plan often, rescue a dead replica's job after 10s (a rotation
// here takes well under a second), drain quickly, no API socket.
var serveArgs = []string{"serve", "--log-format", "json", "--plan-interval", "500ms", "--rescue-after", jobTimeout.String(),
	"--drain-timeout", "2s", "--api-listen", ""}

// StartReplicas starts n serve replicas and a monitor that counts a served
// policy as stuck when it has not rotated for stuckAfter while replicas ran
// (the faults go on meanwhile; Settle judges the daemon once they stop).
// They are all killed when the test ends.
func (h *Harness) StartReplicas(n int, stuckAfter time.Duration) *Replicas {
	rs := &Replicas{h: h, procs: make([]*Proc, n), gens: make([]int, n), ready: make([]chan struct{}, n),
		stopMonitor: make(chan struct{}), monitorDone: make(chan struct{}), lastOK: map[string]time.Time{},
		stuckSince: map[string]bool{}, maxGap: map[string]time.Duration{}}
	// All at once, as systemd starts replicas on several hosts; one that
	// exits (River's migrations race on a fresh database) is started again
	// and counted.
	for i := range n {
		rs.start(i)
	}
	for i := range n {
		rs.waitReady(i, 60*time.Second)
	}
	rs.Revive()
	now := time.Now()
	for _, p := range h.Served() {
		rs.lastOK[p.Name] = now
	}
	go rs.monitor(stuckAfter)
	rs.gaps = &planGaps{stop: make(chan struct{}), stopped: make(chan struct{})}
	go rs.gaps.run(h)
	h.t.Cleanup(rs.Stop)
	return rs
}

func (rs *Replicas) start(slot int) {
	rs.mu.Lock()
	rs.gens[slot]++
	id := fmt.Sprintf("replica-%c-%d", 'a'+slot, rs.gens[slot])
	ready := make(chan struct{})
	rs.ready[slot] = ready
	rs.mu.Unlock()
	var once sync.Once
	onLine := func(line string) {
		var ev logEvent
		if json.Unmarshal([]byte(line), &ev) != nil {
			return
		}
		if ev.Msg == "swarmkey serving" {
			once.Do(func() { close(ready) })
		}
		rs.mu.Lock()
		w := rs.watch
		rs.mu.Unlock()
		if w != nil && w(slot, ev) {
			rs.mu.Lock()
			rs.watch = nil
			rs.mu.Unlock()
		}
	}
	// Its sessions carry its id (application_name), so that the harness
	// can tell which replica holds the planning lock.
	env := []string{"SWARMKEY_DATABASE_URL=" + rs.h.PG.URL(stateDB) + "&application_name=" + id}
	p := rs.h.StartEnv(id, onLine, env, append(append([]string(nil), serveArgs...), "--id", id)...)
	rs.mu.Lock()
	rs.procs[slot] = p
	rs.mu.Unlock()
}

// waitReady waits for the slot's replica to log that it serves (some
// replica leads).
func (rs *Replicas) waitReady(slot int, limit time.Duration) bool {
	rs.mu.Lock()
	ready, p := rs.ready[slot], rs.procs[slot]
	rs.mu.Unlock()
	select {
	case <-ready:
		return true
	case <-p.Done():
		return false
	case <-time.After(limit):
		return false
	}
}

// Revive restarts every replica that exited on its own (counted).
func (rs *Replicas) Revive() {
	for slot := range rs.procs {
		rs.mu.Lock()
		p := rs.procs[slot]
		rs.mu.Unlock()
		if p.Exited() {
			why := lastLines(p.Output(), 1)
			if len(why) > 120 {
				why = why[:120] + "…"
			}
			rs.h.Stats.Outcome("serve replica exited on its own: " + why)
			rs.h.opts.Logf("replica %s exited on its own:\n%s", p.Name, lastLines(p.Output(), 10))
			rs.start(slot)
			rs.waitReady(slot, 60*time.Second)
		}
	}
}

// Stop kills every replica and the monitor.
func (rs *Replicas) Stop() {
	select {
	case <-rs.stopMonitor:
	default:
		close(rs.stopMonitor)
		<-rs.monitorDone
		close(rs.gaps.stop)
		<-rs.gaps.stopped
	}
	rs.mu.Lock()
	procs := append([]*Proc(nil), rs.procs...)
	rs.mu.Unlock()
	for _, p := range procs {
		p.Kill()
		p.Wait(10 * time.Second)
	}
}

// monitor polls the last success of each served policy.
func (rs *Replicas) monitor(stuckAfter time.Duration) {
	defer close(rs.monitorDone)
	h := rs.h
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-rs.stopMonitor:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rows, err := h.pool.Query(ctx, `SELECT policy, max(finished_at) FROM rotations
			WHERE outcome = 'succeeded' AND policy LIKE 'svc-%' GROUP BY 1`)
		if err == nil {
			for rows.Next() {
				var policy string
				var at time.Time
				if rows.Scan(&policy, &at) == nil {
					rs.mu.Lock()
					if last := rs.lastOK[policy]; at.After(last) {
						rs.maxGap[policy] = max(rs.maxGap[policy], at.Sub(last))
						rs.lastOK[policy] = at
						rs.stuckSince[policy] = false
					}
					rs.mu.Unlock()
				}
			}
			rows.Close()
		}
		cancel()
		rs.mu.Lock()
		for policy, at := range rs.lastOK {
			if time.Since(at) > stuckAfter && !rs.stuckSince[policy] {
				rs.stuckSince[policy] = true
				h.Violate(context.Background(), Stuck, h.Policy(policy), "no rotation succeeded for %s while serve replicas ran\n%s",
					stuckAfter, rs.grepLocked(policy, 8))
			}
		}
		rs.mu.Unlock()
	}
}

// grepLocked returns each replica's last n log lines about policy; rs.mu
// is held.
func (rs *Replicas) grepLocked(policy string, n int) string {
	var b strings.Builder
	b.WriteString("    the replicas' last log lines about it:")
	for _, p := range rs.procs {
		var lines []string
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, `"policy":"`+policy+`"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		for _, l := range lines {
			if len(l) > 400 {
				l = l[:400] + "…"
			}
			b.WriteString("\n      " + p.Name + ": " + l)
		}
	}
	return b.String()
}

// MaxGaps returns, per served policy, the longest time between two
// successful rotations that the monitor saw.
func (rs *Replicas) MaxGaps() map[string]time.Duration {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := map[string]time.Duration{}
	for k, v := range rs.maxGap {
		out[k] = v
	}
	return out
}

// Settle waits, with no more faults, until every served policy that is not
// stuck already has rotated successfully since now, at most limit; a policy
// that has not is stuck: the daemon did not get it going again by itself.
func (rs *Replicas) Settle(ctx context.Context, limit time.Duration) {
	h := rs.h
	rs.Revive()
	since := time.Now()
	deadline := since.Add(limit)
	for _, p := range h.Served() {
		rs.mu.Lock()
		already := rs.stuckSince[p.Name]
		rs.mu.Unlock()
		if already {
			continue
		}
		for {
			var ok bool
			err := h.query(ctx, func(ctx context.Context) error {
				return h.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rotations WHERE policy = $1 AND outcome = 'succeeded'
					AND finished_at > $2)`, p.Name, since).Scan(&ok)
			})
			if err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				rs.mu.Lock()
				h.Violate(ctx, Stuck, p, "the serve replicas did not rotate it within %s after the faults stopped\n%s", limit, rs.grepLocked(p.Name, 8))
				rs.mu.Unlock()
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	h.Stats.Outcome(fmt.Sprintf("serve replicas settled in %s after the faults stopped", time.Since(since).Round(time.Second)))
}

// Pause tells the monitor to start counting afresh (after the harness held
// the replicas back on purpose, e.g. a read-only store).
func (rs *Replicas) Pause(d time.Duration) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for policy, at := range rs.lastOK {
		rs.lastOK[policy] = at.Add(d)
	}
}

// KillRound kills (kill -9) the replica that runs a served policy's
// rotation a moment after the chosen step completed, replaces it, and
// counts where the kill landed. killed is false when no rotation came.
func (rs *Replicas) KillRound(ctx context.Context) (killed bool) {
	h := rs.h
	target := killTargets[h.intn(len(killTargets))]
	delay := h.duration(0, killDelay[target])
	type hit struct {
		slot  int
		token string
	}
	hits := make(chan hit, 1)
	var once sync.Once
	rs.mu.Lock()
	rs.watch = func(slot int, ev logEvent) bool {
		if !strings.HasPrefix(ev.Policy, "svc-") {
			return false
		}
		match := false
		switch after[target] {
		case "rotating":
			match = ev.Msg == "rotation started"
		default:
			match = ev.Msg == "step completed" && ev.Step == after[target]
		}
		if !match {
			return false
		}
		once.Do(func() {
			rs.mu.Lock()
			p := rs.procs[slot]
			rs.mu.Unlock()
			time.AfterFunc(delay, func() {
				p.Kill()
				hits <- hit{slot: slot, token: ev.Token}
			})
		})
		return true
	}
	rs.mu.Unlock()
	var got hit
	select {
	case got = <-hits:
	case <-time.After(30 * time.Second):
		rs.mu.Lock()
		rs.watch = nil
		rs.mu.Unlock()
		h.Stats.Outcome("kill -9 serve replica: no rotation seen within 30s")
		rs.Revive()
		return false
	}
	rs.mu.Lock()
	victim := rs.procs[got.slot]
	rs.mu.Unlock()
	victim.Wait(10 * time.Second)
	where, err := h.rowLanding(ctx, got.token)
	if err != nil {
		h.t.Fatalf("chaos: landing of a kill of %s: %v", victim.Name, err)
	}
	policy := ""
	_ = h.query(ctx, func(ctx context.Context) error {
		return h.pool.QueryRow(ctx, `SELECT policy FROM rotations WHERE token::text = $1`, got.token).Scan(&policy)
	})
	h.Stats.Inject(KillServe, where, policy, fmt.Sprintf("%s, %s after %s, token %s", victim.Name, delay.Round(time.Millisecond), after[target], got.token))
	rs.start(got.slot)
	if !rs.waitReady(got.slot, 60*time.Second) {
		h.Stats.Outcome("serve replica not ready within 60s of its start")
	}
	return true
}

// CheckServed checks each served policy under its lock (so that no rotation
// moves while the harness reads), with the relaxed rule for an unfinished
// single rotation.
func (rs *Replicas) CheckServed(ctx context.Context) {
	h := rs.h
	for _, p := range h.Served() {
		release, err := h.LockPolicy(ctx, p.Name, 30*time.Second)
		if err != nil {
			h.Stats.Outcome("check: served policy stayed locked for 30s")
			continue
		}
		h.Check(ctx, p, true)
		release()
	}
}

// jobTimeout is serve's --rescue-after in serveArgs: a rotation job is
// cancelled after it (and resumable).
const jobTimeout = 10 * time.Second

// HoldRound holds the answer of one store call of a served AWS policy's
// rotation past the rotation job's timeout: the job is cancelled in the
// middle of the call (the call lands), the rotation stays resumable, and a
// later job must finish it.
func (rs *Replicas) HoldRound(ctx context.Context) {
	h := rs.h
	var ps []*Policy
	for _, p := range h.Served() {
		if p.Store == StoreAWS {
			ps = append(ps, p)
		}
	}
	p := ps[h.intn(len(ps))]
	c := awsCalls[h.intn(len(awsCalls))]
	fired := make(chan struct{})
	var once sync.Once
	id := h.Proxy.Add(faultproxy.Rule{Call: c.name, Nth: 1, Kind: faultproxy.Hold, Hold: jobTimeout + 2*time.Second,
		Match:  func(call faultproxy.Call) bool { return call.SecretID == p.SecretID },
		OnFire: func(faultproxy.Call) { once.Do(func() { close(fired) }) }})
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		h.Proxy.Remove(id)
		h.Stats.Outcome("aws fault: the call it waited for never came")
		return
	}
	time.Sleep(jobTimeout + 3*time.Second)
	h.Stats.Inject(ProxyPrefix+"hold past the serve job's timeout", strings.TrimPrefix(c.name, "secretsmanager."), p.Name, "")
}
