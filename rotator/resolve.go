package rotator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// ResolveAction is what an operator decides about a pending version that a
// rotation refused (`swarmkey resolve NAME --discard-pending |
// --promote-pending`).
type ResolveAction string

const (
	// ResolveDiscard discards the pending version.
	ResolveDiscard ResolveAction = "discard-pending"
	// ResolvePromote verifies the pending credential with the target's
	// canary and, only if it passes, promotes it.
	ResolvePromote ResolveAction = "promote-pending"
)

// ResolveOptions of one Resolve call.
type ResolveOptions struct {
	// Actor is the operator: "operator:alice".
	Actor  string
	Action ResolveAction
}

// Resolution is what Resolve did.
type Resolution struct {
	Action ResolveAction
	// VersionID is the pending version it acted on.
	VersionID string
	// Owner is the token of the rotation of this policy that wrote the
	// version, "" when swarmkey did not write it.
	Owner string
	// Principal of the promoted credential.
	Principal string
	// PreviousCurrent is the version that was current before a promote.
	PreviousCurrent string
}

var (
	// ErrNothingToResolve: the secret holds no pending version (a pending
	// stage on the current version is none).
	ErrNothingToResolve = errors.New("no pending version to resolve")
	// ErrUnknownResolveAction: the action is neither discard nor promote.
	ErrUnknownResolveAction = errors.New("unknown resolve action: use discard-pending or promote-pending")
)

// ResolveRefusedError is a Resolve that did not act: the canary refused the
// pending credential, a rotation of the policy is unfinished, or the store
// rotates the secret itself. Nothing was changed.
type ResolveRefusedError struct {
	Policy string
	Reason string
	cause  error
}

func (e *ResolveRefusedError) Error() string {
	return fmt.Sprintf("resolve policy %q: %s; nothing was changed", e.Policy, e.Reason)
}

func (e *ResolveRefusedError) Unwrap() error { return e.cause }

// Resolve carries out an operator's decision about the pending version of
// p's secret, under the policy's advisory lock (*InProgressError when
// another process holds it). It refuses (*ResolveRefusedError) while a
// rotation of p is unfinished (resuming it is the way on) and when the
// store rotates the secret itself; it returns ErrNothingToResolve when no
// version is pending.
//
// ResolveDiscard discards the pending version in the store, whoever wrote
// it; the target is not touched (what another tool did to it is unknown).
// ResolvePromote runs the target's canary with the pending credential, with
// the policy's attempts, and only when it passes promotes it, guarded by
// the current version it read (compare-and-swap) and by the version id.
// Either is audited as `rotation.resolved` with the actor and the action,
// and recorded as the policy's last outcome; a promote makes the version
// the policy's current one.
func (r *Rotator) Resolve(ctx context.Context, p Credential, opts ResolveOptions) (Resolution, error) {
	if opts.Action != ResolveDiscard && opts.Action != ResolvePromote {
		return Resolution{}, fmt.Errorf("resolve policy %q: %q: %w", p.Name, opts.Action, ErrUnknownResolveAction)
	}
	lock, err := r.db.TryLockPolicy(ctx, p.Name)
	if errors.Is(err, state.ErrLocked) {
		return Resolution{}, &InProgressError{Policy: p.Name, Token: r.lockHolder(ctx, p.Name)}
	}
	if err != nil {
		return Resolution{}, fmt.Errorf("resolve policy %q: %w", p.Name, err)
	}
	defer lock.Release()

	refused := func(reason string, cause error) error {
		return &ResolveRefusedError{Policy: p.Name, Reason: reason, cause: cause}
	}
	if running, err := r.db.RunningRotation(ctx, p.Name); err == nil {
		return Resolution{}, refused(fmt.Sprintf("rotation %s is unfinished (last step %q): resume it with `swarmkey rotate %s --local`, which finishes or rolls back its own pending version",
			running.Token, running.Step, p.Name), nil)
	} else if !errors.Is(err, state.ErrNotFound) {
		return Resolution{}, fmt.Errorf("resolve policy %q: %w", p.Name, err)
	}
	if _, err := checkNative(ctx, p); err != nil {
		return Resolution{}, refused(err.Error(), err)
	}

	var scrub secret.Scrubber
	pending, err := p.Store.Get(ctx, p.SecretID, providers.StagePending)
	if errors.Is(err, providers.ErrNotFound) {
		return Resolution{}, fmt.Errorf("resolve policy %q: %s secret %q: %w", p.Name, p.Store.Name(), p.SecretID, ErrNothingToResolve)
	}
	if err != nil {
		return Resolution{}, fmt.Errorf("resolve policy %q: read pending version: %w", p.Name, err)
	}
	scrub.AddDocument(pending.Value)
	res := Resolution{Action: opts.Action, VersionID: pending.ID}
	owner, err := r.ownerOf(ctx, p, pending)
	if err != nil {
		return res, fmt.Errorf("resolve policy %q: %w", p.Name, err)
	}
	if owner != nil {
		res.Owner = owner.Token
	}
	actor := opts.Actor
	if actor == "" {
		actor = "unknown"
	}
	ps := state.PolicyState{Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID}
	entry := state.AuditEntry{Actor: actor, Policy: p.Name, Rotation: res.Owner, Action: "rotation.resolved", Detail: map[string]any{
		"action": string(opts.Action), "pending_version": pending.ID, "claimed_token": pending.Token,
		"written_by_swarmkey": owner != nil,
	}}

	if opts.Action == ResolveDiscard {
		if err := p.Store.DiscardPendingVersion(ctx, p.SecretID, pending.ID); err != nil {
			return res, fmt.Errorf("resolve policy %q: discard pending version %s: %s", p.Name, pending.ID, scrub.Text(err.Error()))
		}
		if err := r.db.RecordResolved(context.WithoutCancel(ctx), ps, false, entry); err != nil {
			return res, fmt.Errorf("resolve policy %q: pending version %s was discarded, but recording it failed: %w", p.Name, pending.ID, err)
		}
		r.logger.Info("pending version discarded", "policy", p.Name, "version", pending.ID, "actor", actor)
		return res, nil
	}

	currentID := ""
	current, err := p.Store.Get(ctx, p.SecretID, providers.StageCurrent)
	switch {
	case err == nil:
		currentID = current.ID
		scrub.AddDocument(current.Value)
	case !errors.Is(err, providers.ErrNotFound):
		return res, fmt.Errorf("resolve policy %q: read current version: %w", p.Name, err)
	}
	res.PreviousCurrent = currentID
	if err := canary(ctx, p, pending.Value); err != nil {
		reason := scrub.Text(fmt.Sprintf("the canary refused pending version %s: %v", pending.ID, err))
		failed := entry
		failed.Action, failed.Detail = "rotation.resolve_refused", map[string]any{"action": string(opts.Action), "pending_version": pending.ID, "reason": reason}
		if aerr := r.db.AppendAudit(context.WithoutCancel(ctx), failed); aerr != nil {
			r.logger.Error("audit write failed", "policy", p.Name, "error", aerr)
		}
		return res, refused(reason, nil)
	}
	req := providers.PromoteRequest{PendingID: pending.ID, ExpectedCurrentID: currentID}
	if err := p.Store.Promote(ctx, p.SecretID, req); err != nil {
		// A promote that took effect before an error (AWS's second call)
		// is told by current; anything else changed nothing.
		if v, gerr := p.Store.Get(ctx, p.SecretID, providers.StageCurrent); gerr != nil || v.ID != pending.ID {
			return res, fmt.Errorf("resolve policy %q: promote pending version %s over current %s: %s", p.Name, pending.ID,
				orNone(currentID), scrub.Text(err.Error()))
		}
	}
	res.Principal = principalOf(pending.Value)
	ps.CurrentVersion, ps.Principal, ps.CurrentToken = pending.ID, res.Principal, res.Owner
	entry.Detail["previous_current"] = currentID
	entry.Detail["principal"] = res.Principal
	if err := r.db.RecordResolved(context.WithoutCancel(ctx), ps, true, entry); err != nil {
		return res, fmt.Errorf("resolve policy %q: pending version %s was promoted, but recording it failed: %w", p.Name, pending.ID, err)
	}
	r.logger.Info("pending version promoted", "policy", p.Name, "version", pending.ID, "previous_current", currentID, "actor", actor)
	return res, nil
}

// canary runs the target's canary with cred, retrying for propagation
// delay: the policy's attempts (default 3) at its interval (default 1s).
// The test step and resolve --promote-pending both prove a credential so.
func canary(ctx context.Context, p Credential, cred secret.Secret) error {
	attempts, interval := p.Canary.Attempts, p.Canary.Interval
	if attempts <= 0 {
		attempts = 3
	}
	if interval <= 0 {
		interval = time.Second
	}
	for attempt := 1; ; attempt++ {
		err := p.Target.Verify(ctx, targets.VerifyRequest{Credential: cred, Canary: true})
		if err == nil {
			return nil
		}
		if attempt >= attempts {
			return fmt.Errorf("canary failed after %d attempts: %w", attempts, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
