package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// cleanupTimeout bounds rollback and bookkeeping that must run even when
// the caller's context is already done.
const cleanupTimeout = 30 * time.Second

// rotation is one run of Rotate: the policy, its row, and what it has seen.
type rotation struct {
	r      *Rotator
	p      Credential
	opts   Options
	lock   *state.PolicyLock
	row    state.Rotation
	result Result
	// scrub learns every value this run handled, so that any error text
	// recorded or returned is scrubbed of them as a last line of defence.
	scrub secret.Scrubber
	// retireAfter is when the finish step's retiring is due; retired says
	// it already ran.
	retireAfter *time.Time
	retired     bool
	// fellOff is the version that was previous before this rotation's
	// promote, kept in memory for finish.
	fellOff secret.Secret
	// created is this rotation's pending document as Create returned it (or
	// as it read it back from the store), kept so that a rollback undoes the
	// target even when the store no longer has, or never had, the version.
	created secret.Secret
	// native is what the store knows of its own rotator of the secret
	// (none, for most stores), for the messages of a refusal.
	native providers.NativeRotation
	// promoted is the policy's new current version once the promote step
	// has seen it in the store, recorded with the step.
	promoted state.PolicyState
	// finished is the finish step's timing once it has run in this
	// process: it is recorded with the outcome.
	finished *state.StepTiming
}

// start finds the rotation to run: the unfinished one of this policy, if a
// crashed process left one, or a new one. A stale pending version that no
// unfinished rotation owns is reconciled first. Before anything, a secret
// that its store rotates itself is refused: nothing is changed on it.
func (run *rotation) start(ctx context.Context) (Result, error) {
	native, err := checkNative(ctx, run.p)
	if err != nil {
		var nre *NativeRotationError
		if errors.As(err, &nre) {
			return Result{}, run.refuse(ctx, err, map[string]any{"rotator": nre.Rotator})
		}
		return Result{}, fmt.Errorf("rotate policy %q: %w", run.p.Name, err)
	}
	run.native = native
	// Every version this rotation writes is recorded as it is written.
	run.p.Store = ledgerStore{Store: run.p.Store, run: run}
	p := run.p
	db := run.r.db
	// Nobody else starts a rotation of the policy while this one holds its
	// lock: what is running now is what runs below.
	open, err := db.OpenRotationsOf(ctx, p.Name, run.r.now())
	if err != nil {
		return Result{}, fmt.Errorf("rotate policy %q: %w", p.Name, err)
	}
	if open.Running == nil {
		// A pending version of another writer is refused before anything
		// changes, the retiring of earlier rotations included.
		if _, _, err := run.stalePending(ctx); err != nil {
			var foreign *ForeignPendingError
			if errors.As(err, &foreign) {
				return Result{}, err
			}
			return Result{}, fmt.Errorf("rotate policy %q: %w", p.Name, err)
		}
	}
	if err := run.retireDue(ctx, open.RetireDue); err != nil {
		return Result{}, fmt.Errorf("rotate policy %q: finish of an earlier rotation: %w", p.Name, err)
	}

	if running := open.Running; running != nil {
		run.row = *running
		run.result = Result{Token: running.Token, Resumed: true, Principal: running.Principal}
		if err := db.MarkResumed(ctx, running.Token); err != nil {
			return run.result, err
		}
		if err := run.recordUnrecordedPending(ctx); err != nil {
			return run.result, fmt.Errorf("rotate policy %q: resume: %w", p.Name, err)
		}
		run.audit(ctx, "rotation.resumed", map[string]any{"after_step": running.Step})
		run.r.logger.Info("resuming rotation", "policy", p.Name, "token", running.Token, "after_step", running.Step)
		return run.result, nil
	}

	if err := run.reconcileStalePending(ctx); err != nil {
		var foreign *ForeignPendingError
		if errors.As(err, &foreign) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("rotate policy %q: %w", p.Name, err)
	}

	expected := ""
	current, err := p.Store.Get(ctx, p.SecretID, providers.StageCurrent)
	switch {
	case err == nil:
		expected = current.ID
	case !errors.Is(err, providers.ErrNotFound):
		return Result{}, fmt.Errorf("rotate policy %q: read current version: %w", p.Name, err)
	}

	if run.opts.BeforeStart != nil {
		if err := run.opts.BeforeStart(ctx); err != nil {
			return Result{}, err
		}
	}
	token, err := newToken()
	if err != nil {
		return Result{}, err
	}
	run.row = state.Rotation{
		Token: token, Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID,
		ExpectedCurrent: expected, Forced: run.opts.Force, Actor: run.actor(), RequestKey: run.opts.RequestKey,
	}
	started := run.auditEntry("rotation.started", map[string]any{"expected_current": expected, "forced": run.opts.Force})
	if err := db.InsertRotation(ctx, run.row, started); err != nil {
		return Result{}, err
	}
	run.result = Result{Token: token}
	run.r.logger.Info("rotation started", "policy", p.Name, "token", token, "strategy", p.Strategy, "forced", run.opts.Force)
	return run.result, nil
}

func (run *rotation) actor() string {
	if run.opts.Actor == "" {
		return "unknown"
	}
	return run.opts.Actor
}

// steps runs the steps after the recorded one.
func (run *rotation) steps(ctx context.Context) (Result, error) {
	for i := stepIndex(run.row.Step) + 1; i < len(Steps); i++ {
		step := Steps[i]
		started := run.r.now()
		note, err := run.runStep(ctx, step)
		if err == nil {
			timing := state.StepTiming{Step: string(step), Started: started, Duration: run.r.now().Sub(started)}
			switch step {
			case StepPromote:
				err = run.r.db.CompletePromote(ctx, run.row.Token, run.result.Principal, timing, run.promoted)
			case StepFinish:
				// The last step is recorded with the outcome (succeed), in
				// one statement.
				run.finished = &timing
			default:
				err = run.r.db.CompleteStep(ctx, run.row.Token, string(step), run.result.Principal, timing)
			}
		}
		if err != nil {
			var incomplete *PromoteIncompleteError
			if errors.As(err, &incomplete) && ctx.Err() == nil {
				return run.promoteIncomplete(ctx, incomplete)
			}
			if step == StepPromote && ctx.Err() == nil {
				// The store may have promoted although the step failed
				// (recording it in the state database did not): what it
				// holds decides, never the error.
				landed, res, landedErr := run.promoteLanded(ctx, started, err)
				if landedErr != nil {
					return res, landedErr
				}
				if landed {
					err = nil
				}
			}
			if err != nil {
				return run.fail(ctx, step, err)
			}
		}
		if run.opts.AfterStep != nil {
			if err := run.opts.AfterStep(step); errors.Is(err, ErrCrash) {
				run.lock.Abandon()
				return run.result, fmt.Errorf("rotate policy %q: %w after %s", run.p.Name, ErrCrash, step)
			} else if err != nil {
				// The step is recorded as complete: what failed is the
				// next one (after promote, finish: no rollback).
				return run.fail(ctx, Steps[min(i+1, len(Steps)-1)], err)
			}
		}
		run.row.Step = string(step)
		event := StepEvent{Policy: run.p.Name, Token: run.row.Token, Step: step, Duration: run.r.now().Sub(started),
			Principal: run.result.Principal, Note: note}
		run.result.Steps = append(run.result.Steps, event)
		run.r.logger.Info("step completed", "policy", run.p.Name, "token", run.row.Token, "step", step,
			"duration", event.Duration, "note", note)
		if run.opts.OnStep != nil {
			run.opts.OnStep(event)
		}
	}
	return run.succeed(ctx)
}

func (run *rotation) runStep(ctx context.Context, step Step) (string, error) {
	switch step {
	case StepCreate:
		return run.create(ctx)
	case StepSet:
		return run.set(ctx)
	case StepTest:
		return "", run.test(ctx)
	case StepPromote:
		return run.promote(ctx)
	case StepFinish:
		return run.finish(ctx)
	}
	return "", fmt.Errorf("unknown step %q", step)
}

// create generates the new credential and writes it as pending. After a
// crash between the write and its record, the pending version of this token
// is already there and is kept: nobody has seen another value.
func (run *rotation) create(ctx context.Context) (string, error) {
	p := run.p
	if pending, err := p.Store.Get(ctx, p.SecretID, providers.StagePending); err == nil {
		if pending.Token != run.row.Token {
			return "", fmt.Errorf("%w: pending version %s of another rotation (token %q) is in the way", providers.ErrConflict, pending.ID, pending.Token)
		}
		run.scrub.AddDocument(pending.Value)
		run.created = pending.Value
		run.result.Principal = principalOf(pending.Value)
		return "pending version already written", nil
	} else if !errors.Is(err, providers.ErrNotFound) {
		return "", fmt.Errorf("read pending version: %w", err)
	}

	current, err := run.current(ctx)
	if err != nil {
		return "", err
	}
	// Before Create can touch anything: a current version the target cannot
	// read is not overwritten unless the operator chose so.
	current, replacing, err := run.checkCurrent(ctx, current)
	if err != nil {
		return "", err
	}
	password, err := GeneratePassword(p.Password)
	if err != nil {
		return "", err
	}
	run.scrub.Add(password)
	resp, err := p.Target.Create(ctx, targets.CreateRequest{Token: run.row.Token, Strategy: p.Strategy, Current: current, Password: password})
	if err != nil {
		return "", err
	}
	run.scrub.AddDocument(resp.Pending)
	// From here on the target may hold something of this rotation (an
	// issued key): a rollback undoes it from memory if the write fails.
	run.created = resp.Pending
	run.result.Principal = resp.Principal
	if replacing != nil {
		if err := run.adopt(ctx, replacing); err != nil {
			return "", err
		}
	}
	if _, err := p.Store.PutPending(ctx, p.SecretID, run.row.Token, resp.Pending); err != nil {
		return "", fmt.Errorf("write pending version: %w", err)
	}
	return "", nil
}

// set applies the pending credential to the target, after BeforeSet had its
// last word. Apply is idempotent: a pending credential that already works (a
// retry after a crash) is left alone by the target.
func (run *rotation) set(ctx context.Context) (string, error) {
	if run.opts.BeforeSet != nil {
		if err := run.opts.BeforeSet(ctx); err != nil {
			return "", err
		}
	}
	pending, err := run.pending(ctx)
	if err != nil {
		return "", err
	}
	current, err := run.current(ctx)
	if err != nil {
		return "", err
	}
	// A current version the target cannot read got past create only because
	// the operator chose to replace it: the target gets none.
	if current, err = run.readable(ctx, current); err != nil {
		return "", err
	}
	// A rotation this process started has not applied pending before; a
	// resumed one may have, before its crash.
	return "", run.p.Target.Apply(ctx, targets.ApplyRequest{Token: run.row.Token, Strategy: run.p.Strategy,
		Pending: pending, Current: current, Retry: run.result.Resumed})
}

// test proves the pending credential with the canary, retrying briefly.
func (run *rotation) test(ctx context.Context) error {
	pending, err := run.pending(ctx)
	if err != nil {
		return err
	}
	return canary(ctx, run.p, pending)
}

// promote makes this rotation's version current, guarded by the current
// version the rotation started from and by the version id its PutPending
// produced (so no other version is promoted under its token), then reads
// the store back: the step completes only when the store shows exactly the
// stages it should (checkPromoted). A promote that landed but left the
// store otherwise is a *PromoteIncompleteError, which never rolls back.
func (run *rotation) promote(ctx context.Context) (string, error) {
	p := run.p
	ours, err := run.ownVersion(ctx)
	if err != nil {
		return "", err
	}
	before, err := p.Store.List(ctx, p.SecretID)
	if err != nil {
		return "", fmt.Errorf("read the versions before promote: %w", err)
	}
	if !holds(before, ours, providers.StageCurrent) {
		// What is previous now falls off at promote; finish retires it,
		// and stores like the file store forget it at once. (Once the
		// promote landed, previous is this rotation's old current: what
		// fell off is unknown then, as after a restart.)
		if previous, err := p.Store.Get(ctx, p.SecretID, providers.StagePrevious); err == nil {
			run.scrub.AddDocument(previous.Value)
			run.fellOff = previous.Value
		} else if !errors.Is(err, providers.ErrNotFound) {
			return "", fmt.Errorf("read previous version: %w", err)
		}
	}
	req := providers.PromoteRequest{Token: run.row.Token, PendingID: ours, ExpectedCurrentID: run.row.ExpectedCurrent}
	var unclear error
	if err := p.Store.Promote(ctx, p.SecretID, req); err != nil {
		if errors.Is(err, providers.ErrConflict) || errors.Is(err, providers.ErrNotFound) {
			return "", fmt.Errorf("promote: %w", err)
		}
		// A timeout, a dropped connection, or a store whose promote takes
		// two calls stopping between them leaves it open what landed: the
		// store's versions tell.
		unclear = err
	}
	if err := run.checkPromoted(ctx, req, unclear); err != nil {
		return "", err
	}
	current, err := p.Store.Get(ctx, p.SecretID, providers.StageCurrent)
	if err != nil {
		return "", fmt.Errorf("read promoted version: %w", err)
	}
	if current.ID != ours {
		return "", fmt.Errorf("%w: current version %s is not this rotation's after promote", providers.ErrConflict, current.ID)
	}
	if run.result.Principal == "" {
		run.result.Principal = principalOf(current.Value)
	}
	// Recorded with the step, in one statement (steps).
	run.promoted = state.PolicyState{
		Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID,
		CurrentVersion: current.ID, CurrentToken: run.row.Token, Principal: run.result.Principal,
	}
	return "", nil
}

// finish retires what fell off now, or, when the policy has a grace period,
// records when that is due: retireDue runs it then (the next rotation of the
// policy, `run-due`, or the daemon).
func (run *rotation) finish(ctx context.Context) (string, error) {
	now := run.r.now()
	if run.p.Grace > 0 {
		due := now.Add(run.p.Grace)
		run.retireAfter = &due
		return fmt.Sprintf("retire due at %s", due.Format(time.RFC3339)), nil
	}
	if err := run.retire(ctx); err != nil {
		return "", err
	}
	run.retireAfter, run.retired = &now, true
	return "", nil
}

// succeed records the outcome once every step has completed.
func (run *rotation) succeed(ctx context.Context) (Result, error) {
	if run.retireAfter == nil {
		// Resumed after finish was recorded: retire at once (idempotent).
		now := run.r.now()
		run.retireAfter = &now
	}
	succeeded := run.auditEntry("rotation.succeeded", map[string]any{"resumed": run.result.Resumed})
	var err error
	if run.finished != nil {
		err = run.r.db.SucceedRotation(ctx, run.row.Token, *run.finished, run.retireAfter, run.retired, succeeded)
	} else {
		err = run.r.db.FinishRotation(ctx, run.row.Token, state.OutcomeSucceeded, "", false, run.retireAfter, run.retired, succeeded)
	}
	if err != nil {
		return run.result, fmt.Errorf("rotate policy %q: %w", run.p.Name, err)
	}
	run.result.Outcome = state.OutcomeSucceeded
	run.r.logger.Info("rotation succeeded", "policy", run.p.Name, "token", run.row.Token, "principal", run.result.Principal)
	return run.result, nil
}

// retire asks the target to retire the previous credential and the store to
// retire versions no stage names. It runs only while this rotation's version
// is still current: once a later rotation promoted, what it would retire is
// that rotation's business.
func (run *rotation) retire(ctx context.Context) error {
	p := run.p
	current, err := p.Store.Get(ctx, p.SecretID, providers.StageCurrent)
	if err != nil {
		return fmt.Errorf("read current version: %w", err)
	}
	if !run.wrote(current) {
		return nil
	}
	run.scrub.AddDocument(current.Value)
	previous, err := p.Store.Get(ctx, p.SecretID, providers.StagePrevious)
	switch {
	case err == nil:
		run.scrub.AddDocument(previous.Value)
		// A replaced version the target cannot read is not its to retire.
		retired, err := run.readable(ctx, previous.Value)
		if err != nil {
			return err
		}
		fellOff, err := run.readable(ctx, run.fellOff)
		if err != nil {
			return err
		}
		if err := p.Target.Retire(ctx, targets.RetireRequest{Strategy: p.Strategy, Retired: retired,
			FellOff: fellOff, Current: current.Value}); err != nil {
			return err
		}
	case !errors.Is(err, providers.ErrNotFound):
		return fmt.Errorf("read previous version: %w", err)
	}
	if err := p.Store.RetireUnstaged(ctx, p.SecretID, providers.RetireRequest{Destroy: p.DestroyRetired}); err != nil {
		return fmt.Errorf("retire unstaged versions: %w", err)
	}
	return nil
}

// retireDue runs the finish work of this policy's earlier rotations whose
// grace has passed (due, as state.OpenRotationsOf read them).
func (run *rotation) retireDue(ctx context.Context, due []state.Rotation) error {
	for _, earlier := range due {
		prior := &rotation{r: run.r, p: run.p, opts: run.opts, row: earlier}
		if err := prior.retire(ctx); err != nil {
			return fmt.Errorf("rotation %s: %s", earlier.Token, prior.scrub.Text(err.Error()))
		}
		if err := run.r.db.MarkRetired(ctx, earlier.Token); err != nil {
			return err
		}
		prior.audit(ctx, "rotation.retired", nil)
	}
	return nil
}

// current returns the current document, checking that it is still the
// version the rotation started from.
func (run *rotation) current(ctx context.Context) (secret.Secret, error) {
	v, err := run.p.Store.Get(ctx, run.p.SecretID, providers.StageCurrent)
	if errors.Is(err, providers.ErrNotFound) && run.row.ExpectedCurrent == "" {
		return secret.Secret{}, nil
	}
	if err != nil {
		return secret.Secret{}, fmt.Errorf("read current version: %w", err)
	}
	if v.ID != run.row.ExpectedCurrent {
		return secret.Secret{}, fmt.Errorf("%w: current version moved from %q to %q while the rotation ran", providers.ErrConflict, run.row.ExpectedCurrent, v.ID)
	}
	run.scrub.AddDocument(v.Value)
	return v.Value, nil
}

// pending returns this rotation's pending document: the version its
// PutPending produced, not merely one that claims its token.
func (run *rotation) pending(ctx context.Context) (secret.Secret, error) {
	v, err := run.p.Store.Get(ctx, run.p.SecretID, providers.StagePending)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("read pending version: %w", err)
	}
	if v.Token != run.row.Token || !run.wrote(v) {
		return secret.Secret{}, fmt.Errorf("%w: pending version %s (token %q) is not the version this rotation wrote", providers.ErrConflict, v.ID, v.Token)
	}
	run.scrub.AddDocument(v.Value)
	run.created = v.Value
	return v.Value, nil
}

func principalOf(doc secret.Secret) string {
	var fields struct {
		Username string `json:"username"`
		KeyID    string `json:"key_id"`
	}
	if json.Unmarshal(doc.Reveal(), &fields) != nil {
		return ""
	}
	if fields.Username != "" {
		return fields.Username
	}
	return fields.KeyID
}

// auditEntry is this rotation's audit entry for action.
func (run *rotation) auditEntry(action string, detail map[string]any) state.AuditEntry {
	if detail == nil {
		detail = map[string]any{}
	}
	if run.result.Principal != "" {
		detail["principal"] = run.result.Principal
	}
	return state.AuditEntry{Actor: run.actor(), Policy: run.p.Name, Rotation: run.row.Token, Action: action, Detail: detail}
}

func (run *rotation) audit(ctx context.Context, action string, detail map[string]any) {
	if err := run.r.db.AppendAudit(ctx, run.auditEntry(action, detail)); err != nil {
		run.r.logger.Error("audit write failed", "policy", run.p.Name, "action", action, "error", err)
	}
}

// recordUnrecordedPending is for a resumed rotation whose process died
// between its PutPending and the record of the version id: it finds that
// version by its token (trusted while the rotation runs: nobody outside the
// state database knew the token before the write) and records it, so that
// whatever comes next (a rollback that cannot discard it, another kill)
// leaves a version that later rotations recognise as swarmkey's own once
// this rotation has ended.
func (run *rotation) recordUnrecordedPending(ctx context.Context) error {
	if run.row.PendingVersion != "" {
		return nil
	}
	versions, err := run.p.Store.List(ctx, run.p.SecretID)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	for _, v := range versions {
		if v.HasStage(providers.StagePending) && !v.HasStage(providers.StageCurrent) && v.Token == run.row.Token {
			if err := run.r.db.RecordPendingVersion(ctx, run.row.Token, v.ID); err != nil {
				return err
			}
			run.row.PendingVersion = v.ID
			return nil
		}
	}
	return nil
}
