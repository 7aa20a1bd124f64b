package chaos

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Landings: where an injection hit a rotation, named by the step it hit
// ("start" is before the rotation's row exists, "succeed" between the last
// step and the recorded outcome, "exit" after the outcome).
var (
	killTargets = []string{"create", "set", "test", "promote", "finish", "succeed"}
	// after is the event that precedes a landing: the start line, or the
	// step before it completing.
	after = map[string]string{"create": "rotating", "set": "create", "test": "set", "promote": "test",
		"finish": "promote", "succeed": "finish"}
	next = map[string]string{"": "create", "create": "set", "set": "test", "test": "promote", "promote": "finish",
		"finish": "succeed"}
)

// Trigger acts on a running `rotate --local`: Delay after its line of the
// event After ("rotating", or a step that completed), Do runs once.
type Trigger struct {
	After string
	Delay time.Duration
	Do    func(*Proc)
}

// LocalResult is what one `rotate --local` did.
type LocalResult struct {
	Code     int
	Output   string
	Fired    bool // the trigger ran
	TimedOut bool // killed by the harness for running past its limit
	Resumed  bool // it finished an unfinished rotation
	Rotated  bool // it printed "rotated"
}

var stepLine = regexp.MustCompile(`^  (create|set|test|promote|finish) `)

// RotateLocal runs `rotate NAME --local` to its end (at most limit; then it
// is killed and TimedOut), with trig acting on it when its event comes.
func (h *Harness) RotateLocal(p *Policy, trig *Trigger, limit time.Duration) LocalResult {
	ready := make(chan struct{})
	var (
		proc      *Proc
		mu        sync.Mutex
		timer     *time.Timer
		timerDone = make(chan struct{})
		fired     bool
	)
	onLine := func(line string) {
		if trig == nil {
			return
		}
		event := ""
		if strings.HasPrefix(line, "rotating ") {
			event = "rotating"
		} else if m := stepLine.FindStringSubmatch(line); m != nil {
			event = m[1]
		}
		if event != trig.After {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			return
		}
		timer = time.AfterFunc(trig.Delay, func() {
			defer close(timerDone)
			<-ready
			if !proc.Exited() {
				trig.Do(proc)
				mu.Lock()
				fired = true
				mu.Unlock()
			}
		})
	}
	proc = h.Start("rotate "+p.Name, onLine, "rotate", p.Name, "--local")
	close(ready)
	code, ok := proc.Wait(limit)
	r := LocalResult{}
	if !ok {
		proc.Kill()
		code, _ = proc.Wait(30 * time.Second)
		r.TimedOut = true
	}
	// A trigger that is running finishes before the result is read.
	mu.Lock()
	t := timer
	mu.Unlock()
	if t != nil && !t.Stop() {
		<-timerDone
	}
	mu.Lock()
	r.Fired = fired
	mu.Unlock()
	r.Code, r.Output = code, proc.Output()
	r.Rotated = strings.Contains(r.Output, "rotated "+p.Name+":")
	r.Resumed = strings.Contains(r.Output, "(resumed an unfinished rotation)")
	return r
}

// landing says where a kill (or another fault) hit policy's rotation: the
// step after the running rotation's last recorded one; "exit" when the
// rotation begun since since is already finished; "start" when none began.
func (h *Harness) landing(ctx context.Context, policy string, since time.Time) (where, token string, err error) {
	var step string
	err = h.query(ctx, func(ctx context.Context) error {
		return h.pool.QueryRow(ctx, `SELECT token::text, step FROM rotations WHERE policy = $1 AND outcome = 'running'`,
			policy).Scan(&token, &step)
	})
	if err == nil {
		return next[step], token, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", "", err
	}
	err = h.query(ctx, func(ctx context.Context) error {
		return h.pool.QueryRow(ctx, `SELECT token::text FROM rotations WHERE policy = $1 AND started_at >= $2
			ORDER BY started_at DESC LIMIT 1`, policy, since.Add(-50*time.Millisecond)).Scan(&token)
	})
	if err == nil {
		return "exit", token, nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return "start", "", nil
	}
	return "", "", err
}

// rowLanding is the landing of the rotation token.
func (h *Harness) rowLanding(ctx context.Context, token string) (string, error) {
	var step, outcome string
	err := h.query(ctx, func(ctx context.Context) error {
		return h.pool.QueryRow(ctx, `SELECT step, outcome FROM rotations WHERE token::text = $1`, token).Scan(&step, &outcome)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "start", nil
	}
	if err != nil {
		return "", err
	}
	if outcome != "running" {
		return "exit", nil
	}
	return next[step], nil
}

// query retries fn while the server restarts (at most a minute).
func (h *Harness) query(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := fn(qctx)
		cancel()
		if err == nil || errors.Is(err, pgx.ErrNoRows) || time.Now().After(deadline) || ctx.Err() != nil || !transient(err) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// transient: the server is restarting or the connection was cut.
func transient(err error) bool {
	s := err.Error()
	for _, t := range []string{"connect", "connection", "shutting down", "starting up", "terminating", "EOF", "broken pipe",
		"reset by peer", "timeout", "deadline", "57P01", "57P03", "08006", "08001", "recovery"} {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// RecoverLocal does what an operator does after a crash or a fault: run
// `rotate --local` until a fresh rotation (not a resumed one) succeeds. It
// counts the policy as stuck when none does within attempts tries.
func (h *Harness) RecoverLocal(ctx context.Context, p *Policy, cause string) bool {
	const attempts = 4
	busy := 0
	var outputs []string
	for try := 0; try < attempts; {
		r := h.RotateLocal(p, nil, 2*time.Minute)
		switch {
		case r.TimedOut:
			h.Stats.Outcome("recovery: rotate --local hung (killed after 2m)")
		case r.Code == 3 && busy < 50:
			// The killed process's session has not ended yet.
			busy++
			time.Sleep(200 * time.Millisecond)
			continue
		case r.Code == 0 && r.Resumed:
			h.Stats.Outcome("recovery: resumed and finished the unfinished rotation")
		case r.Code == 0:
			return true
		case refusedForeign(r.Output) && h.takeStray(p):
			// What the refusal tells an operator to do about another
			// writer's pending version; then a fresh rotation is due.
			res := h.Resolve(p)
			if res.Code == 0 {
				h.Stats.Outcome("recovery: refused another writer's pending version; the operator discarded it (resolve --discard-pending)")
				continue
			}
			h.Stats.Outcome(fmt.Sprintf("recovery: resolve --discard-pending exit %d", res.Code))
			outputs = append(outputs, lastLines(res.Output, 3))
		default:
			h.Stats.Outcome(fmt.Sprintf("recovery: rotate --local exit %d", r.Code))
		}
		outputs = append(outputs, lastLines(r.Output, 3))
		try++
	}
	h.Violate(ctx, Stuck, p, "after %s, %d `rotate --local` runs did not give a fresh successful rotation: %s",
		cause, attempts, strings.Join(outputs, " | "))
	h.Quarantine(p)
	if !p.Serve {
		h.Replace(ctx, p)
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// Resolve runs `swarmkey resolve NAME --discard-pending`, what a refusal of
// another writer's pending version tells the operator to do.
func (h *Harness) Resolve(p *Policy) LocalResult {
	proc := h.Start("resolve "+p.Name, nil, "resolve", p.Name, "--discard-pending")
	code, ok := proc.Wait(2 * time.Minute)
	r := LocalResult{}
	if !ok {
		proc.Kill()
		code, _ = proc.Wait(30 * time.Second)
		r.TimedOut = true
	}
	r.Code, r.Output = code, proc.Output()
	return r
}
