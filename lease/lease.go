// Package lease holds a lease on policies for as long as a command runs and
// gives the command their current credentials as environment variables: the
// library side of `swarmkey exec`.
//
// A Source takes, renews and ends leases and reads credentials:
// StoreSource from the state database and the secret stores, APISource
// through the runner HTTP API. Take holds a lease through either; Held.ReadEnv
// reads the credentials under it and maps their fields to variables (see
// ParsePolicies and ParseMappings); Held.Keep renews it while the command
// runs; Held.End ends it.
//
// Errors the user fixes by changing the input are InputErrors. Their texts
// name the flags of `swarmkey exec`, the one caller of this syntax.
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/secret"
)

// InputError is an error the user fixes by changing the input: a flag, a
// policy name, a token, a policy that was never rotated. The CLI exits 2 on
// it, as on app's InputError (this package sits below app, so it has its
// own).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Inputf returns an InputError with a formatted message.
func Inputf(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// ErrGone is what Source.Heartbeat returns (wrapped) when the lease expired
// or ended: heartbeats do not revive it, a new lease is needed.
var ErrGone = errors.New("the lease expired or ended")

// Request is what a lease is taken for.
type Request struct {
	// Run names the run in the lease, as `swarmkey runs` and the calendar
	// show it.
	Run string
	// Uses are the policies the lease holds.
	Uses []string
	// Holder says who holds it: USER@HOST:PID.
	Holder string
	// TTL is how long the lease outlives its last heartbeat.
	TTL time.Duration
}

// Source is where a lease is held and credentials are read: the stores and
// the state database (StoreSource), or the HTTP API (APISource).
type Source interface {
	// Start takes a lease and returns its id.
	Start(ctx context.Context, req Request) (string, error)
	// Heartbeat renews lease id; it returns ErrGone (wrapped) when the lease
	// expired or ended.
	Heartbeat(ctx context.Context, id string) error
	// End ends lease id.
	End(ctx context.Context, id string) error
	// Read reads the current credential of each of policies, in order,
	// under lease leaseID of run, and gives its fields to each, every field
	// as the text a variable gets (see wire.FieldTexts). It stops at the first
	// policy whose read fails and at the first error of each, and returns
	// that error. Every read is audited before Read returns nil; when the
	// audit fails Read fails, and nothing each was given may be handed on.
	Read(ctx context.Context, policies []string, leaseID, run string, each func(policy string, fields map[string]secret.Secret) error) error
	// Close releases what the source opened.
	Close()
}

var _ Source = (*APISource)(nil)

// Held is a lease taken through a Source. Keep renews it in the background
// and may replace it by a new lease; End ends the one held then.
type Held struct {
	src    Source
	req    Request
	report func(msg string)

	mu sync.Mutex
	id string
}

// Take takes a lease for req through src. report receives the warnings of
// Keep and End, one line each without a newline; they name lease ids and
// durations, never a value.
func Take(ctx context.Context, src Source, req Request, report func(msg string)) (*Held, error) {
	id, err := src.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Held{src: src, req: req, report: report, id: id}, nil
}

// ID returns the id of the lease held now.
func (h *Held) ID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id
}

func (h *Held) setID(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.id = id
}

// ReadEnv reads the credential of each policy under the lease, in order, and
// returns the variables a command gets: each field as PREFIX_FIELD or as
// maps say, SWARMKEY_LEASE_ID and SWARMKEY_POLICIES. It stops at the first
// read that fails or the first two fields that would set one variable (an
// InputError), so that no policy is read (and audited) past a refusal.
func (h *Held) ReadEnv(ctx context.Context, policies []Policy, maps []Mapping) (map[string]secret.Secret, error) {
	id := h.ID()
	env := newEnvBuilder(id, maps)
	byName := make(map[string]Policy, len(policies))
	for _, p := range policies {
		byName[p.Name] = p
	}
	// One Read for all: the source may audit the reads together (one round
	// trip to the state database), before anything is returned here.
	err := h.src.Read(ctx, Names(policies), id, h.req.Run, func(name string, fields map[string]secret.Secret) error {
		return env.add(byName[name], fields)
	})
	if err != nil {
		return nil, err
	}
	return env.vars()
}

// Keep heartbeats every TTL/3 in the background until ctx ends or stop is
// called; stop returns once the heartbeat in flight, if any, is done. A
// lease found expired or ended is replaced by a new one, with a warning:
// rotations may have run meanwhile. A failing heartbeat is reported once,
// and again when heartbeats get through.
func (h *Held) Keep(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.keep(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (h *Held) keep(ctx context.Context) {
	ttl := h.req.TTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := h.ID()
		err := h.src.Heartbeat(ctx, id)
		if errors.Is(err, ErrGone) {
			newID, startErr := h.src.Start(ctx, h.req)
			if startErr == nil {
				h.report(fmt.Sprintf("warning: lease %s expired (no heartbeat got through within %s), so rotations may have run and the command may hold an old credential; took lease %s",
					id, ttl, newID))
				h.setID(newID)
				failing = false
				continue
			}
			err = startErr
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				h.report(fmt.Sprintf("warning: heartbeat of lease %s failed (retrying every %s; the lease expires %s after the last success): %v",
					id, ttl/3, ttl, err))
			}
			failing = true
			continue
		}
		if failing {
			h.report(fmt.Sprintf("lease %s heartbeats again", id))
		}
		failing = false
	}
}

// End ends the lease held now, within five seconds of its own: it runs when
// the caller's context may be cancelled already (a signal ended the wait).
// A failure is reported, not returned: the lease expires by its TTL anyway.
func (h *Held) End() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := h.ID()
	if err := h.src.End(ctx, id); err != nil {
		h.report(fmt.Sprintf("warning: could not end lease %s (it expires by its TTL, %s): %v", id, h.req.TTL, err))
	}
}

// OperatorName is who runs this process, as lease holders and audit actors
// name them: the login name, else $USER, else "unknown".
func OperatorName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown"
}
