// Package rotator runs rotations: the step machine create → set → test →
// promote → finish (docs/design.md, "The step machine"), with rollback on a
// failure before promote and resumption from the recorded step after a crash.
//
// A rotation holds the policy's advisory lock for its whole run, writes its
// row in `rotations` before it touches the target, records each step as it
// completes, and never lets a value reach a log, an error, or a row.
package rotator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// Step is one step of a rotation. The names are the contract (after the AWS
// rotation protocol) and are used in logs, metrics, rows and docs alike.
type Step string

const (
	StepCreate  Step = "create"
	StepSet     Step = "set"
	StepTest    Step = "test"
	StepPromote Step = "promote"
	StepFinish  Step = "finish"
)

// Steps in the order they run.
var Steps = []Step{StepCreate, StepSet, StepTest, StepPromote, StepFinish}

func stepIndex(s string) int {
	for i, step := range Steps {
		if string(step) == s {
			return i
		}
	}
	return -1 // "" : nothing completed yet
}

// PastSet reports whether a rotation whose last recorded step is step has
// applied its credential to the target: from then on it must be finished,
// not abandoned.
func PastSet(step string) bool { return stepIndex(step) >= stepIndex(string(StepSet)) }

// CanaryRetry bounds how long the test step retries a failing canary, for
// systems that take a moment to propagate a new credential.
type CanaryRetry struct {
	// Attempts in all; 0 means 3.
	Attempts int
	// Interval between attempts; 0 means one second.
	Interval time.Duration
}

// Credential is what the rotator needs of one policy, with its store and target
// already opened.
type Credential struct {
	Name     string
	Strategy targets.Strategy
	Store    providers.Store
	SecretID string
	Target   targets.Target
	Password PasswordRules
	// Grace is how long after promote the finish step waits before it
	// retires what fell off.
	Grace  time.Duration
	Canary CanaryRetry
	// DestroyRetired asks stores that distinguish it to destroy, not just
	// disable, versions that fell off.
	DestroyRetired bool
}

// StepEvent reports one completed step.
type StepEvent struct {
	Policy    string
	Token     string
	Step      Step
	Duration  time.Duration
	Principal string
	// Note says what the step did when it did not do the usual thing
	// ("already applied", "retire due at …").
	Note string
}

// Options of one Rotate call.
type Options struct {
	// Actor is who asked: "operator:alice", "daemon", "run-due".
	Actor string
	// Force is recorded on the rotation and in the audit log.
	Force bool
	// OnStep is called after each step completes.
	OnStep func(StepEvent)
	// BeforeSet is called right before the set step, the point of no
	// return. An error wrapping ErrDeferred leaves the rotation resumable
	// (the daemon snoozes it); any other error rolls it back.
	BeforeSet func(ctx context.Context) error
	// BeforeStart is called right before a new rotation is recorded, with
	// the policy's lock held: its error (returned as is) starts nothing.
	// The daemon checks a fire's window here as well as before the job
	// began, since opening the policy and taking its lock take time.
	BeforeStart func(ctx context.Context) error
	// RequestKey names what asked for this rotation: "fire:<policy>:<time>"
	// for a schedule fire, "request:<uuid>" for an operator's request. A key
	// rotates at most once: if a rotation of the key already succeeded, or
	// promoted and then ended needs_attention, Rotate returns it
	// (Result.AlreadyDone, with that rotation's outcome) and touches nothing. "" means
	// no key (a break-glass `rotate --local`).
	RequestKey string
	// ReplaceUnreadableCurrent lets the rotation go on when the target
	// cannot read the current version (targets.UnreadableError): the
	// rotation treats it as if nothing were current and replaces it, after
	// an audit row rotation.adopted that names Actor and the version. Without
	// it such a rotation stops at create with *UnreadableCurrentError and
	// nothing changed. It is an operator's explicit choice (`rotate --local
	// --replace-unreadable-current`), never the daemon's.
	ReplaceUnreadableCurrent bool
	// AfterStep is a fault-injection seam for tests and drills, called after
	// each step is recorded (finish: after it ran, before it is recorded
	// with the outcome). Returning ErrCrash stops the rotation the way a
	// killed process would: no rollback, no further writes, and the lock
	// goes with its database session. Any other error fails the step.
	AfterStep func(Step) error
}

var (
	// ErrDeferred is wrapped by a BeforeSet error that means "not now".
	ErrDeferred = errors.New("rotation deferred")
	// ErrCrash is returned by an AfterStep hook to simulate a crash.
	ErrCrash = errors.New("simulated crash")
)

// InProgressError says that another process holds the policy's lock.
type InProgressError struct {
	Policy string
	// Token of the rotation holding the lock; "" if it has not recorded
	// its row yet.
	Token string
}

func (e *InProgressError) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("rotate policy %q: rotation in progress: another process holds the lock and has not recorded its token yet", e.Policy)
	}
	return fmt.Sprintf("rotate policy %q: rotation in progress: rotation %s holds the lock", e.Policy, e.Token)
}

// Result of a rotation.
type Result struct {
	// AlreadyDone: a rotation of Options.RequestKey had settled it before
	// (succeeded, or promoted and ended needs_attention: Outcome says which).
	AlreadyDone bool
	Token       string
	Outcome     state.Outcome
	Principal   string
	Resumed     bool
	RolledBack  bool
	// Replaced is the id of the current version the target could not read
	// and the rotation replaced (Options.ReplaceUnreadableCurrent); "" when
	// it replaced none.
	Replaced string
	Steps    []StepEvent
}

// Config configures New.
type Config struct {
	// Logger receives the rotator's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of step timings and grace periods; nil means
	// time.Now().UTC().
	Now func() time.Time
}

// Rotator runs rotations against the state database.
type Rotator struct {
	db     *state.DB
	logger *slog.Logger
	now    func() time.Time
}

// New returns a Rotator that records its rotations in db.
func New(db *state.DB, cfg Config) *Rotator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	return &Rotator{db: db, logger: cfg.Logger, now: cfg.Now}
}

// Rotate runs one rotation of p, or resumes the one a crashed process left
// unfinished (then that one is the rotation: Result.Resumed is set). It
// returns *InProgressError when another process rotates p right now, and an
// error wrapping the cause when the rotation did not succeed; Result tells
// the outcome either way. Rollback happens before Rotate returns; a context
// cancelled mid-step leaves the rotation resumable instead.
func (r *Rotator) Rotate(ctx context.Context, p Credential, opts Options) (Result, error) {
	lock, err := r.db.TryLockPolicy(ctx, p.Name)
	if errors.Is(err, state.ErrLocked) {
		return Result{}, &InProgressError{Policy: p.Name, Token: r.lockHolder(ctx, p.Name)}
	}
	if err != nil {
		return Result{}, fmt.Errorf("rotate policy %q: %w", p.Name, err)
	}
	// After a simulated crash (Abandon) Release has nothing left to do.
	defer lock.Release()

	if opts.RequestKey != "" {
		done, err := r.db.SettledByKey(ctx, opts.RequestKey)
		if err == nil {
			return Result{AlreadyDone: true, Token: done.Token, Outcome: done.Outcome, Principal: done.Principal}, nil
		}
		if !errors.Is(err, state.ErrNotFound) {
			return Result{}, fmt.Errorf("rotate policy %q: %w", p.Name, err)
		}
	}
	for {
		run := &rotation{r: r, p: p, opts: opts, lock: lock}
		res, err := run.start(ctx)
		if err != nil {
			return res, err
		}
		res, err = run.steps(ctx)
		if err != nil || !res.Resumed || opts.RequestKey == "" || run.row.RequestKey == opts.RequestKey {
			return res, err
		}
		// This resumed another request's rotation, a crashed process's;
		// now this request's own.
	}
}

// lockHolder finds the token of the rotation whose process holds the lock.
// The holder writes its row right after it takes the lock, so a loser that
// raced it waits a moment for the row.
func (r *Rotator) lockHolder(ctx context.Context, policy string) string {
	for range 20 {
		running, err := r.db.RunningRotation(ctx, policy)
		if err == nil {
			return running.Token
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ""
}

func newToken() (string, error) {
	// UUIDv7: time-ordered, so tokens sort by when the rotation began.
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new rotation token: %w", err)
	}
	return id.String(), nil
}
