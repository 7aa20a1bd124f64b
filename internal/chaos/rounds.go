package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/internal/faultproxy"
)

// Injection kinds, as the report names them.
const (
	KillLocal    = "kill -9 rotate --local"
	KillServe    = "kill -9 serve replica"
	PGRestart    = "PostgreSQL restart"
	ReadOnly     = "read-only store folder"
	ProxyPrefix  = "aws proxy: "
	GCPPrefix    = "gcp fake: "
	GCPCrash     = "gcp: crash after a step"
	AnotherWrite = "another writer: "
)

// killDelay bounds the random delay between a kill's event and the kill,
// about the length of the step it aims at on this machine, so kills land
// all over the step rather than at its start.
var killDelay = map[string]time.Duration{"create": 40 * time.Millisecond, "set": 15 * time.Millisecond,
	"test": 15 * time.Millisecond, "promote": 20 * time.Millisecond, "finish": 10 * time.Millisecond,
	"succeed": 2 * time.Millisecond}

// pickLocal picks a local policy of store ("" for any) that is not stuck;
// nil when there is none left.
func (h *Harness) pickLocal(store string) *Policy {
	var ps []*Policy
	for _, p := range h.Local() {
		if (store == "" || p.Store == store) && !h.Quarantined(p) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		h.Stats.Outcome("round skipped: every policy it could use is stuck")
		return nil
	}
	return ps[h.intn(len(ps))]
}

// LocalKillRound starts `rotate --local` of a random local policy and kills
// it (kill -9) a moment after a chosen step completed, or, on an AWS policy
// now and then, while the answer of one of its store calls is held (the
// call landed, the process never learns it). Then it recovers and checks.
func (h *Harness) LocalKillRound(ctx context.Context) {
	p := h.pickLocal("")
	if p == nil {
		return
	}
	target := killTargets[h.intn(len(killTargets))]
	since := time.Now()
	var (
		r    LocalResult
		note string
	)
	if p.Store == StoreAWS && h.intn(3) == 0 {
		// Kill inside a store call: the proxy holds the answer of the
		// Nth call of one kind and the harness kills the process then.
		calls := []string{"secretsmanager.PutSecretValue", "secretsmanager.UpdateSecretVersionStage",
			"secretsmanager.DescribeSecret", "secretsmanager.GetSecretValue"}
		call := calls[h.intn(len(calls))]
		nth := 1 + h.intn(2)
		var victim = make(chan *Proc, 1)
		id := h.Proxy.Add(faultproxy.Rule{Call: call, Nth: nth, Kind: faultproxy.Hold, Hold: 10 * time.Second,
			Match: func(c faultproxy.Call) bool { return c.SecretID == p.SecretID },
			OnFire: func(faultproxy.Call) {
				select {
				case pr := <-victim:
					pr.Kill()
				default:
				}
			}})
		trig := &Trigger{After: "rotating", Do: func(pr *Proc) { victim <- pr }}
		r = h.RotateLocal(p, trig, 2*time.Minute)
		fired := !h.Proxy.Armed(id)
		h.Proxy.Remove(id)
		r.Fired = fired && r.Code == -1
		note = fmt.Sprintf("inside %s #%d", call, nth)
	} else {
		delay := h.duration(0, killDelay[target])
		r = h.RotateLocal(p, &Trigger{After: after[target], Delay: delay, Do: func(pr *Proc) { pr.Kill() }}, 2*time.Minute)
		note = fmt.Sprintf("%s after %s", delay.Round(time.Millisecond), after[target])
	}
	if !r.Fired {
		h.Stats.Outcome("kill -9 rotate --local: the process ended before the kill")
	} else {
		where, token, err := h.landing(ctx, p.Name, since)
		if err != nil {
			h.t.Fatalf("chaos: landing of a kill of %s: %v", p.Name, err)
		}
		h.Stats.Inject(KillLocal, where, p.Name, note+" token "+token)
	}
	// What clients see before anyone recovers: a rotation killed between
	// set and promote may leave single's current not working (pending
	// does); nothing else may be broken.
	h.Check(ctx, p, true)
	if h.RecoverLocal(ctx, p, "a kill of rotate --local") {
		h.Check(ctx, p, false)
	}
}

// outcomeOf names how a `rotate --local` under a fault ended.
func outcomeOf(r LocalResult) string {
	switch {
	case r.TimedOut:
		return "hung (killed after its limit)"
	case r.Code == 0 && r.Resumed:
		return "resumed an unfinished rotation"
	case r.Code == 0:
		return "rotated"
	case strings.Contains(r.Output, "rolled back"):
		return "failed, rolled back"
	case strings.Contains(r.Output, "needs_attention"):
		return "failed, needs attention"
	case r.Code == 3:
		return "in progress elsewhere"
	default:
		return fmt.Sprintf("exit %d", r.Code)
	}
}

// RecoverAll recovers every local policy and checks every policy (the
// served ones under their locks, relaxed).
func (h *Harness) RecoverAll(ctx context.Context, rs *Replicas, cause string) {
	for _, p := range h.Local() {
		if !h.Quarantined(p) && h.RecoverLocal(ctx, p, cause) {
			h.Check(ctx, p, false)
		}
	}
	if rs != nil {
		rs.Revive()
		rs.CheckServed(ctx)
	}
}

// PGRestartRound restarts PostgreSQL (pg_ctl restart, -m fast or -m
// immediate) a moment after a chosen step of a `rotate --local`, while the
// serve replicas run, then recovers and checks every policy.
func (h *Harness) PGRestartRound(ctx context.Context, rs *Replicas) {
	p := h.pickLocal("")
	if p == nil {
		return
	}
	target := killTargets[h.intn(len(killTargets))]
	mode := []string{"fast", "immediate"}[h.intn(2)]
	done := make(chan error, 1)
	since := time.Now()
	var where string
	trig := &Trigger{After: after[target], Delay: h.duration(0, killDelay[target]), Do: func(*Proc) {
		where, _, _ = h.landing(ctx, p.Name, since)
		go func() { done <- h.PG.Restart(mode) }()
	}}
	r := h.RotateLocal(p, trig, 3*time.Minute)
	if !r.Fired {
		where = "between rotations"
		go func() { done <- h.PG.Restart(mode) }()
	}
	if err := <-done; err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	h.Stats.Inject(PGRestart+" -m "+mode, where, "", fmt.Sprintf("during rotate --local of %s, which ended: %s", p.Name, outcomeOf(r)))
	h.Stats.Outcome("rotate --local across a PostgreSQL restart: " + outcomeOf(r))
	h.Check(ctx, p, true)
	h.RecoverAll(ctx, rs, "a PostgreSQL restart")
}

// ReadOnlyRound makes the file store's folder read-only (mode 0500 for the
// children's unprivileged user) a moment after a chosen step of a `rotate
// --local` of a file policy, keeps it so for a while (the served file
// policies meet it too), then makes it writable again, recovers and
// checks.
func (h *Harness) ReadOnlyRound(ctx context.Context, rs *Replicas) {
	p := h.pickLocal(StoreFile)
	if p == nil {
		return
	}
	target := killTargets[h.intn(len(killTargets))]
	dir := filepath.Join(h.Dir, "secrets")
	since := time.Now()
	var where string
	trig := &Trigger{After: after[target], Delay: h.duration(0, killDelay[target]), Do: func(*Proc) {
		if err := os.Chmod(dir, 0o500); err != nil {
			h.t.Errorf("chaos: chmod: %v", err)
		}
		where, _, _ = h.landing(ctx, p.Name, since)
		since = time.Now()
	}}
	r := h.RotateLocal(p, trig, 2*time.Minute)
	if !r.Fired {
		where = "between rotations"
		since = time.Now()
		if err := os.Chmod(dir, 0o500); err != nil {
			h.t.Fatalf("chaos: chmod: %v", err)
		}
	}
	hold := h.duration(500*time.Millisecond, 4*time.Second)
	time.Sleep(time.Until(since.Add(hold)))
	if err := os.Chmod(dir, 0o700); err != nil {
		h.t.Fatalf("chaos: chmod: %v", err)
	}
	if rs != nil {
		rs.Pause(time.Since(since))
	}
	h.Stats.Inject(ReadOnly, where, "", fmt.Sprintf("%s for %s, during rotate --local of %s, which ended: %s",
		dir, hold.Round(time.Millisecond), p.Name, outcomeOf(r)))
	h.Stats.Outcome("rotate --local with the store folder read-only: " + outcomeOf(r))
	h.Check(ctx, p, true)
	h.RecoverAll(ctx, rs, "a read-only store folder")
}

// awsCalls are the Secrets Manager calls the AWS store makes, and how many
// of each one rotation makes at most (for picking an occurrence).
var awsCalls = []struct {
	name string
	max  int
}{
	{"secretsmanager.DescribeSecret", 5},
	{"secretsmanager.GetSecretValue", 8},
	{"secretsmanager.PutSecretValue", 1},
	{"secretsmanager.UpdateSecretVersionStage", 2},
}

// ProxyRound runs `rotate --local` of an AWS policy with one fault armed in
// the proxy: a throttle (now and then a storm: every call for a few
// seconds), a 500 or 503, a lost answer, a held answer, or another writer's
// label change between two calls. Then it recovers and checks.
func (h *Harness) ProxyRound(ctx context.Context) {
	p := h.pickLocal(StoreAWS)
	if p == nil {
		return
	}
	kinds := []faultproxy.Kind{faultproxy.Throttle, faultproxy.ServerError, faultproxy.Unavailable, faultproxy.Lost,
		faultproxy.Hold, faultproxy.Hook}
	f := AWSFault{Kind: kinds[h.intn(len(kinds))]}
	c := awsCalls[h.intn(len(awsCalls))]
	f.Call, f.Nth = c.name, 1+h.intn(c.max)
	switch f.Kind {
	case faultproxy.Hold:
		f.Hold = h.duration(200*time.Millisecond, 3*time.Second)
	case faultproxy.Throttle:
		if h.intn(4) == 0 {
			f.Storm = h.duration(time.Second, 8*time.Second)
		}
	case faultproxy.Hook:
		actions := writerActions(p.Strategy)
		f.Writer = actions[h.intn(len(actions))]
	}
	h.InjectAWS(ctx, p, f)
}

// AWSFault is one fault of the proxy on one `rotate --local`.
type AWSFault struct {
	Kind faultproxy.Kind
	// Call and Nth pick the call ("secretsmanager.PutSecretValue", 1).
	Call string
	Nth  int
	// Hold: how long a Hold holds the answer.
	Hold time.Duration
	// Storm, for Throttle: every call of the secret is throttled for this
	// long (Call and Nth are ignored).
	Storm time.Duration
	// Writer, for Hook: another writer's action (WriterStrayPending …).
	Writer string
}

// InjectAWS runs `rotate --local` of the AWS policy p with f armed in the
// proxy, checks what clients see once it has ended, recovers as an
// operator would, and checks again. It is what ProxyRound does with random
// choices; a test repeats one case with it.
func (h *Harness) InjectAWS(ctx context.Context, p *Policy, f AWSFault) {
	rule := faultproxy.Rule{Call: f.Call, Nth: f.Nth, Kind: f.Kind, Hold: f.Hold,
		Match: func(call faultproxy.Call) bool { return call.SecretID == p.SecretID }}
	name := ProxyPrefix + string(f.Kind)
	where := fmt.Sprintf("%s #%d", strings.TrimPrefix(f.Call, "secretsmanager."), f.Nth)
	didCh := make(chan string, 1)
	switch {
	case f.Kind == faultproxy.Hold:
		where += fmt.Sprintf(" for %s", f.Hold.Round(100*time.Millisecond))
	case f.Kind == faultproxy.Throttle && f.Storm > 0:
		rule.Call, rule.Nth = "", 0
		name = ProxyPrefix + "throttle storm"
		where = fmt.Sprintf("every call for %s", f.Storm.Round(100*time.Millisecond))
	case f.Kind == faultproxy.Hook:
		rule.Hook = func() { didCh <- h.anotherWriter(p, f.Writer) }
	}
	id := h.Proxy.Add(rule)
	if f.Storm > 0 {
		defer time.AfterFunc(f.Storm, func() { h.Proxy.Remove(id) }).Stop()
	}
	r := h.RotateLocal(p, nil, 2*time.Minute)
	fired := rule.Nth == 0 || !h.Proxy.Armed(id)
	h.Proxy.Remove(id)
	if f.Kind == faultproxy.Hook {
		did := ""
		select {
		case did = <-didCh:
		default:
		}
		name = AnotherWrite + did
		if did == "" {
			fired = false
		}
	}
	if !fired {
		h.Stats.Outcome("aws fault: the call it waited for never came")
	} else {
		h.Stats.Inject(name, where, p.Name, "rotate --local: "+outcomeOf(r))
		h.Stats.Outcome(name + ": " + outcomeOf(r))
	}
	// What clients see once the faulty rotation has ended, before anyone
	// recovers.
	h.Check(ctx, p, true)
	if h.RecoverLocal(ctx, p, name+" at "+where) {
		h.Check(ctx, p, false)
	}
}

// HangProbe holds the answer of the first GetSecretValue of a `rotate
// --local` of an AWS policy for 90s. The AWS store sets no timeout on its
// calls and rotate --local none on its run, so the process waits as long
// as the answer is held; the harness gives it 60s, kills it and counts it.
func (h *Harness) HangProbe(ctx context.Context) {
	p := h.pickLocal(StoreAWS)
	if p == nil {
		return
	}
	id := h.Proxy.Add(faultproxy.Rule{Call: "secretsmanager.GetSecretValue", Nth: 1, Kind: faultproxy.Hold, Hold: 90 * time.Second,
		Match: func(c faultproxy.Call) bool { return c.SecretID == p.SecretID }})
	r := h.RotateLocal(p, nil, time.Minute)
	h.Proxy.Remove(id)
	h.Stats.Inject(ProxyPrefix+"answer held for 90s", "GetSecretValue #1", p.Name, "rotate --local: "+outcomeOf(r))
	h.Stats.Outcome("rotate --local with an answer held for 90s: " + outcomeOf(r))
	h.Check(ctx, p, true)
	if h.RecoverLocal(ctx, p, "an answer held for 90s") {
		h.Check(ctx, p, false)
	}
}
