package rotator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// StepError is a rotation that failed at Step. Its text is scrubbed of every
// value the rotation handled; Unwrap gives the cause for errors.Is.
type StepError struct {
	Policy     string
	Token      string
	Step       Step
	Outcome    state.Outcome
	RolledBack bool
	// Reason is the scrubbed text of the cause (and of a failed rollback).
	Reason string
	cause  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("rotate policy %q: %s (rotation %s, %s)", e.Policy, e.Reason, e.Token, e.Outcome)
}

func (e *StepError) Unwrap() error { return e.cause }

// fail ends a rotation whose step failed. Before promote it rolls back
// (rollBack): single sets the target back to the current credential,
// alternating sets the changed user back to the previous one, an issued key
// is revoked, then this rotation's pending version is discarded; the outcome
// is failed. If the rollback fails or cannot undo the target (the reason
// then names what is left), or the failure came after promote, the outcome
// is needs_attention. A cancelled context (a drain, a caller's timeout) or a
// deferral is not a failure: the rotation stays resumable from the last
// recorded step.
func (run *rotation) fail(ctx context.Context, step Step, cause error) (Result, error) {
	reason := run.scrub.Text(fmt.Sprintf("%s: %v", step, cause))

	if errors.Is(cause, ErrDeferred) {
		run.audit(ctx, "rotation.deferred", map[string]any{"before_step": string(step), "reason": reason})
		run.r.logger.Info("rotation deferred", "policy", run.p.Name, "token", run.row.Token, "reason", reason)
		return run.result, &StepError{Policy: run.p.Name, Token: run.row.Token, Step: step, Outcome: state.OutcomeRunning, Reason: reason, cause: cause}
	}
	if ctx.Err() != nil {
		run.r.logger.Warn("rotation interrupted; it stays resumable", "policy", run.p.Name, "token", run.row.Token, "step", step)
		return run.result, &StepError{Policy: run.p.Name, Token: run.row.Token, Step: step, Outcome: state.OutcomeRunning,
			Reason: "interrupted during " + string(step) + "; the rotation stays resumable", cause: ctx.Err()}
	}

	// Bookkeeping and rollback must run even if the caller gives up now.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()

	outcome := state.OutcomeFailed
	rolledBack := false
	if stepIndex(string(step)) >= stepIndex(string(StepFinish)) {
		// Promoted already: the new credential is current and works; what
		// failed is retiring the old one, which needs a person.
		outcome = state.OutcomeNeedsAttention
	} else if err := run.rollBack(cctx, step); err != nil {
		outcome = state.OutcomeNeedsAttention
		reason += "; rollback failed: " + run.scrub.Text(err.Error())
	} else {
		rolledBack = true
	}

	run.result.Outcome = outcome
	run.result.RolledBack = rolledBack
	ended := run.auditEntry("rotation."+string(outcome), map[string]any{"step": string(step), "reason": reason, "rolled_back": rolledBack})
	if err := run.r.db.FinishRotation(cctx, run.row.Token, outcome, reason, rolledBack, nil, false, ended); err != nil {
		run.r.logger.Error("recording the outcome failed", "policy", run.p.Name, "token", run.row.Token, "error", err)
	}
	run.r.logger.Error("rotation "+string(outcome), "policy", run.p.Name, "token", run.row.Token, "step", step,
		"reason", reason, "rolled_back", rolledBack)
	return run.result, &StepError{Policy: run.p.Name, Token: run.row.Token, Step: step, Outcome: outcome, RolledBack: rolledBack, Reason: reason, cause: cause}
}

// rollBack undoes a rotation that failed at step (before promote). The
// target is undone from what this rotation created, kept in memory since
// create, so a pending version that another writer replaced, or that the
// store refused to take, is undone all the same. Then this rotation's
// pending version, if the store holds one, is discarded; another writer's
// is left to its owner. An error says what is left on the target.
func (run *rotation) rollBack(ctx context.Context, step Step) error {
	p := run.p
	beforeSet := stepIndex(string(step)) < stepIndex(string(StepSet))
	created := run.created
	if created.IsZero() {
		// A resumed rotation that failed before it read its pending
		// version: the store is the only place that has it.
		v, err := p.Store.Get(ctx, p.SecretID, providers.StagePending)
		switch {
		case err == nil && v.Token == run.row.Token && run.wrote(v):
			run.scrub.AddDocument(v.Value)
			created = v.Value
		case err != nil && !errors.Is(err, providers.ErrNotFound):
			return fmt.Errorf("read pending version: %w; %s", err, run.leftBehind(beforeSet))
		}
	}
	if created.IsZero() {
		if step == StepCreate {
			return nil // Create returned nothing: it left nothing behind
		}
		return fmt.Errorf("the target cannot be undone: this rotation's pending version is not in the store (another writer replaced it) and this process never read it; %s",
			run.leftBehind(false))
	}

	// Restore even when set never began: a target whose Create had an
	// effect (an API that issued a key) undoes it; the others do nothing.
	if err := run.restoreWhileUnavailable(ctx, providers.Version{Token: run.row.Token, Value: created}, beforeSet); err != nil {
		return fmt.Errorf("%w; %s", err, run.leftBehind(beforeSet))
	}
	// By the version id the write produced when it is known: a version
	// another writer put in under this rotation's token is not this
	// rotation's to discard.
	var err error
	if run.row.PendingVersion != "" {
		err = p.Store.DiscardPendingVersion(ctx, p.SecretID, run.row.PendingVersion)
	} else {
		err = p.Store.DiscardPending(ctx, p.SecretID, run.row.Token)
	}
	if err != nil {
		return fmt.Errorf("discard pending version: %w", err)
	}
	return nil
}

// leftBehind says what a rollback that could not undo the target leaves
// there, by principal (a role, a key id), never by value.
func (run *rotation) leftBehind(beforeSet bool) string {
	cred := "this rotation's credential"
	if who := run.result.Principal; who != "" {
		cred = fmt.Sprintf("this rotation's credential for %q", who)
	}
	if beforeSet {
		return "what is left: " + cred + " (what create made, an issued key) may still be valid on the target"
	}
	lost := "the current credential"
	if run.p.Strategy == targets.Alternating {
		lost = "the previous credential"
	}
	return "what is left: " + cred + " may still be valid on the target, and " + lost + " may no longer work"
}

// restore asks the target to undo what pending did, against what the store
// holds as current and previous now. A version the target cannot read (one
// a rotation replaced) goes to it as none: there is nothing of the target's
// to put back.
func (run *rotation) restore(ctx context.Context, pending providers.Version, beforeSet bool) error {
	current, err := run.stageValue(ctx, providers.StageCurrent)
	if err != nil {
		return err
	}
	previous, err := run.stageValue(ctx, providers.StagePrevious)
	if err != nil {
		return err
	}
	if current, err = run.readable(ctx, current); err != nil {
		return err
	}
	if previous, err = run.readable(ctx, previous); err != nil {
		return err
	}
	err = run.p.Target.Restore(ctx, targets.RestoreRequest{
		Token: pending.Token, Strategy: run.p.Strategy, Pending: pending.Value, Current: current, Previous: previous,
		BeforeSet: beforeSet,
	})
	if err != nil {
		return fmt.Errorf("restore target: %w", err)
	}
	return nil
}

// Tries of a rollback's restore that met an unavailable target, and the
// waits between them: 0.25 s doubling to 4 s, some 16 s in all, inside
// cleanupTimeout.
const (
	restoreTries       = 8
	restoreFirstWait   = 250 * time.Millisecond
	restoreLongestWait = 4 * time.Second
)

// restoreWhileUnavailable is restore, tried again while the target (or the
// store) is unavailable. A rollback runs right after a step failed, and the
// fault that failed the step often still holds: a database that restarts
// fails every call for a second or two, and the pooled connections it cut
// fail once more each before the pool dials anew. Without the retries one
// such call turned a rotation that could be undone into needs_attention
// with the target holding this rotation's password: the current credential
// locked out. Restore may be repeated (targets.Target says so); an error
// that is not about reaching the target ends the tries at once.
func (run *rotation) restoreWhileUnavailable(ctx context.Context, pending providers.Version, beforeSet bool) error {
	wait := restoreFirstWait
	for try := 1; ; try++ {
		err := run.restore(ctx, pending, beforeSet)
		if err == nil || try == restoreTries || !unavailable(err) {
			return err
		}
		run.r.logger.Warn("undoing the target failed; trying again", "policy", run.p.Name, "token", run.row.Token,
			"try", try, "in", wait, "error", run.scrub.Text(err.Error()))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, restoreLongestWait)
	}
}

// unavailable reports whether err is about reaching a server rather than
// what it answered: a refused, reset or cut connection, a timeout, or a
// database that is shutting down, starting up or cut the session (SQLSTATE
// class 08, and PostgreSQL's 57P01 to 57P03). Every error of an HTTP
// client is a *url.Error, a net.Error, so all count, a refused certificate
// too: trying that again only loses time, while giving up leaves the
// target undone (a balancer may serve an old certificate beside a good one).
func unavailable(err error) bool {
	var netErr net.Error
	var sqlErr interface{ SQLState() string }
	switch {
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &sqlErr):
		code := sqlErr.SQLState()
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
	}
	return false
}

// stageValue reads a stage's value, zero when no version holds it.
func (run *rotation) stageValue(ctx context.Context, stage providers.Stage) (secret.Secret, error) {
	v, err := run.p.Store.Get(ctx, run.p.SecretID, stage)
	if errors.Is(err, providers.ErrNotFound) {
		return secret.Secret{}, nil
	}
	if err != nil {
		return secret.Secret{}, fmt.Errorf("read %s version: %w", stage, err)
	}
	run.scrub.AddDocument(v.Value)
	return v.Value, nil
}

// reconcileStalePending deals with a pending version that no unfinished
// rotation owns, before a new rotation starts.
//
// A pending version that swarmkey did not write (no rotation of this policy
// recorded its token and version id: another tool, a rotation Lambda, a
// copy of the secret) is refused with a *ForeignPendingError, audited, and
// nothing is changed: not the store, not the target. An operator resolves
// it with `swarmkey resolve`.
//
// A pending version of an earlier rotation of this policy (one that ended
// failed or needs_attention with its pending left) is reconciled: if the
// current credential works, the stale pending is restored as if applied
// and discarded; if only the pending one passes the canary (a
// single-strategy set that was never promoted), it is promoted; with
// neither working and nothing current, it is discarded; otherwise a person
// must look. A pending stage on the current version is no pending version
// (the store's Get does not return it), so there is nothing to reconcile.
func (run *rotation) reconcileStalePending(ctx context.Context) error {
	p := run.p
	listed, owner, err := run.stalePending(ctx)
	if err != nil || listed == nil {
		return err
	}
	pending, err := p.Store.Get(ctx, p.SecretID, providers.StagePending)
	if err != nil {
		return fmt.Errorf("read pending version %s: %w", listed.ID, err)
	}
	if pending.ID != listed.ID {
		return fmt.Errorf("%w: pending moved from version %s to %s while it was read", providers.ErrConflict, listed.ID, pending.ID)
	}
	run.scrub.AddDocument(pending.Value)
	detail := func(action string) map[string]any {
		return map[string]any{"stale_pending": pending.ID, "stale_rotation": owner.Token, "action": action}
	}

	current, err := p.Store.Get(ctx, p.SecretID, providers.StageCurrent)
	currentID := ""
	switch {
	case err == nil:
		currentID = current.ID
		run.scrub.AddDocument(current.Value)
		if p.Target.Verify(ctx, targets.VerifyRequest{Credential: current.Value}) == nil {
			// Whether the stale pending was applied is unknown: undo it as
			// if it was (restoring a credential that is already in place
			// changes nothing), so an issued key is revoked too.
			if err := run.restore(ctx, pending, false); err != nil {
				return fmt.Errorf("stale pending version %s: %w", pending.ID, err)
			}
			if err := p.Store.DiscardPendingVersion(ctx, p.SecretID, pending.ID); err != nil {
				return fmt.Errorf("discard stale pending version %s: %w", pending.ID, err)
			}
			run.audit(ctx, "rotation.reconciled", detail("discarded"))
			return nil
		}
	case !errors.Is(err, providers.ErrNotFound):
		return fmt.Errorf("read current version: %w", err)
	}

	if p.Target.Verify(ctx, targets.VerifyRequest{Credential: pending.Value, Canary: true}) == nil {
		req := providers.PromoteRequest{Token: owner.Token, PendingID: pending.ID, ExpectedCurrentID: currentID}
		if err := p.Store.Promote(ctx, p.SecretID, req); err != nil {
			return fmt.Errorf("promote stale pending version %s: %w", pending.ID, err)
		}
		run.audit(ctx, "rotation.reconciled", detail("promoted"))
		return nil
	}
	if currentID == "" {
		// Nothing works yet and nothing was current: a first rotation that
		// died before set. Its pending value was never used.
		if err := p.Store.DiscardPendingVersion(ctx, p.SecretID, pending.ID); err != nil {
			return fmt.Errorf("discard stale pending version %s: %w", pending.ID, err)
		}
		run.audit(ctx, "rotation.reconciled", detail("discarded"))
		return nil
	}
	return run.refuse(ctx, fmt.Errorf("stale pending version %s of rotation %s: neither it nor current version %s logs in; check the target, then run `swarmkey resolve %s --discard-pending` (or --promote-pending once it works)",
		pending.ID, owner.Token, currentID, p.Name), map[string]any{"pending_version": pending.ID, "stale_rotation": owner.Token})
}
