package rotator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
)

// PromoteIncompleteError is a promote that landed (this rotation's version
// is current) while the store does not show exactly the stages a promote
// leaves: this version current and not pending, the version that was
// current previous, and no version pending. The rotation is never recorded
// as succeeded so, and never rolled back (the new credential is current and
// passed its canary).
type PromoteIncompleteError struct {
	Policy    string
	SecretID  string
	VersionID string
	// Found says what the store shows instead.
	Found string
	// Resumable: the rotation stays running, and promote runs again when it
	// resumes (the daemon's next attempt, `swarmkey rotate --local`),
	// which completes it. Otherwise another writer changed the secret
	// after the promote: the rotation ends needs_attention.
	Resumable bool
	cause     error
}

func (e *PromoteIncompleteError) Error() string {
	if e.Resumable {
		msg := fmt.Sprintf("promote of version %s of secret %q is incomplete: %s; the rotation stays unfinished and completes when it resumes "+
			"(the daemon's next attempt, or `swarmkey rotate %s --local`)", e.VersionID, e.SecretID, e.Found, e.Policy)
		if e.cause != nil {
			msg += fmt.Sprintf(" (the store said: %v)", e.cause)
		}
		return msg
	}
	return fmt.Sprintf("promote of version %s of secret %q landed, but the store shows %s: another writer changed the secret; "+
		"the new credential is current; check the secret (`swarmkey resolve %s` handles a pending version)", e.VersionID, e.SecretID, e.Found, e.Policy)
}

func (e *PromoteIncompleteError) Unwrap() error { return e.cause }

// holds reports whether the listed version id holds stage.
func holds(versions []providers.Version, id string, stage providers.Stage) bool {
	for _, v := range versions {
		if v.ID == id {
			return v.HasStage(stage)
		}
	}
	return false
}

// ownVersion returns the id of the version this rotation wrote: the one
// recorded when its PutPending answered, or, for a rotation that crashed
// before it could record it, the pending (or, once promoted, current)
// version of its token, which is recorded then.
func (run *rotation) ownVersion(ctx context.Context) (string, error) {
	if run.row.PendingVersion != "" {
		return run.row.PendingVersion, nil
	}
	p := run.p
	for _, stage := range []providers.Stage{providers.StagePending, providers.StageCurrent} {
		v, err := p.Store.Get(ctx, p.SecretID, stage)
		if errors.Is(err, providers.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s version: %w", stage, err)
		}
		if v.Token != run.row.Token {
			continue
		}
		if err := run.r.db.RecordPendingVersion(ctx, run.row.Token, v.ID); err != nil {
			return "", err
		}
		run.row.PendingVersion = v.ID
		return v.ID, nil
	}
	return "", fmt.Errorf("%w: no version of this rotation is pending or current", providers.ErrNotFound)
}

// checkPromoted reads the store back after Promote (List) and returns nil
// when it shows exactly what req should leave. unclear is Promote's error
// when it was neither a conflict nor a missing version: whether it landed is
// for the store to tell.
//
//   - This rotation's version is not current: the promote did not land.
//     The error (unclear, or a conflict) fails the step, which rolls back.
//   - It is current and still pending (AWS's second call failed): Promote
//     runs once more, which completes it; if the store still shows it, a
//     resumable *PromoteIncompleteError.
//   - Previous is not the version that was current, or another version is
//     pending: another writer changed the secret after the promote; a
//     *PromoteIncompleteError that is not resumable.
//   - The store cannot be read: whether it landed is unknown, and a
//     resumable *PromoteIncompleteError leaves it to the resumed promote,
//     which is idempotent.
func (run *rotation) checkPromoted(ctx context.Context, req providers.PromoteRequest, unclear error) error {
	p := run.p
	incomplete := func(found string, resumable bool, cause error) error {
		return &PromoteIncompleteError{Policy: p.Name, SecretID: p.SecretID, VersionID: req.PendingID, Found: found,
			Resumable: resumable, cause: cause}
	}
	for attempt := 0; ; attempt++ {
		versions, err := p.Store.List(ctx, p.SecretID)
		if err != nil {
			return incomplete("its versions could not be read back", true, errors.Join(unclear, err))
		}
		var ours *providers.Version
		var previous, others []string
		for i, v := range versions {
			if v.ID == req.PendingID {
				ours = &versions[i]
				continue
			}
			if v.HasStage(providers.StagePending) {
				others = append(others, v.ID)
			}
			if v.HasStage(providers.StagePrevious) {
				previous = append(previous, v.ID)
			}
		}
		switch {
		case ours == nil || !ours.HasStage(providers.StageCurrent):
			if unclear != nil {
				return fmt.Errorf("promote: %w", unclear)
			}
			return fmt.Errorf("%w: version %s is not current after promote", providers.ErrConflict, req.PendingID)
		case ours.HasStage(providers.StagePending) && attempt == 0:
			// Current and still pending: a promote that stopped between
			// its calls. Promoting a current version completes it.
			if err := p.Store.Promote(ctx, p.SecretID, req); err != nil {
				unclear = err
			}
			continue
		case ours.HasStage(providers.StagePending):
			return incomplete("the version holds both current and pending", true, unclear)
		}
		want := []string{}
		if req.ExpectedCurrentID != "" {
			want = []string{req.ExpectedCurrentID}
		}
		if !slices.Equal(previous, want) {
			return incomplete(fmt.Sprintf("previous is %s, not the version that was current (%s)", listOrNone(previous), listOrNone(want)), false, unclear)
		}
		if len(others) > 0 {
			return incomplete(fmt.Sprintf("version %s of another writer pending", strings.Join(others, ", ")), false, unclear)
		}
		return nil
	}
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// promoteIncomplete ends a promote step that landed but left the store
// otherwise (see PromoteIncompleteError). Resumable: the rotation stays
// running, audited `rotation.promote_incomplete`. Otherwise its version is
// recorded as the policy's current one and the rotation ends
// needs_attention, without rollback and without finish.
func (run *rotation) promoteIncomplete(ctx context.Context, e *PromoteIncompleteError) (Result, error) {
	reason := run.scrub.Text(fmt.Sprintf("%s: %v", StepPromote, e))
	stepErr := &StepError{Policy: run.p.Name, Token: run.row.Token, Step: StepPromote, Reason: reason, cause: e}
	if e.Resumable {
		run.audit(ctx, "rotation.promote_incomplete", map[string]any{"version": e.VersionID, "reason": reason})
		run.r.logger.Warn("promote incomplete; the rotation stays resumable", "policy", run.p.Name, "token", run.row.Token, "reason", reason)
		stepErr.Outcome = state.OutcomeRunning
		return run.result, stepErr
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	p := run.p
	if err := run.r.db.RecordPromoted(cctx, state.PolicyState{
		Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID,
		CurrentVersion: e.VersionID, CurrentToken: run.row.Token, Principal: run.result.Principal,
	}); err != nil {
		run.r.logger.Error("recording the promote failed", "policy", p.Name, "token", run.row.Token, "error", err)
	}
	// The promote landed: so says the row, which settles the request key
	// (no second rotation for it).
	if err := run.r.db.CompleteStep(cctx, run.row.Token, string(StepPromote), run.result.Principal,
		state.StepTiming{Step: string(StepPromote), Started: run.r.now()}); err != nil {
		run.r.logger.Error("recording the promote step failed", "policy", p.Name, "token", run.row.Token, "error", err)
	}
	run.result.Outcome = state.OutcomeNeedsAttention
	ended := run.auditEntry("rotation.needs_attention", map[string]any{"step": string(StepPromote), "reason": reason, "rolled_back": false})
	if err := run.r.db.FinishRotation(cctx, run.row.Token, state.OutcomeNeedsAttention, reason, false, nil, false, ended); err != nil {
		run.r.logger.Error("recording the outcome failed", "policy", p.Name, "token", run.row.Token, "error", err)
	}
	run.r.logger.Error("rotation needs_attention", "policy", p.Name, "token", run.row.Token, "step", StepPromote, "reason", reason)
	stepErr.Outcome = state.OutcomeNeedsAttention
	return run.result, stepErr
}

// promoteLanded decides a promote step that failed with cause from what the
// store holds. When this rotation's version is not current, the promote did
// not land: landed is false and the step fails as usual (rolled back). When
// it is current, the promote landed and nothing may be rolled back: the
// promote is recorded again (CompletePromote), and if that works
// landed is true and the rotation goes on to finish. If the state database
// still refuses, or the store cannot be read, the rotation stays running
// (err is a *StepError with Outcome running): the next attempt resumes it
// at promote, which finds the version current and completes, so the fire
// or request never rotates a second time.
func (run *rotation) promoteLanded(ctx context.Context, started time.Time, cause error) (landed bool, res Result, err error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	p := run.p
	stay := func(why string) (bool, Result, error) {
		reason := run.scrub.Text(fmt.Sprintf("%s: %v; %s", StepPromote, cause, why))
		run.audit(cctx, "rotation.promote_unrecorded", map[string]any{"reason": reason})
		run.r.logger.Error("promote not recorded; the rotation stays resumable", "policy", p.Name, "token", run.row.Token, "reason", reason)
		return false, run.result, &StepError{Policy: p.Name, Token: run.row.Token, Step: StepPromote, Outcome: state.OutcomeRunning,
			Reason: reason, cause: cause}
	}
	current, err := p.Store.Get(cctx, p.SecretID, providers.StageCurrent)
	switch {
	case errors.Is(err, providers.ErrNotFound):
		return false, run.result, nil
	case err != nil:
		return stay(fmt.Sprintf("whether the promote landed is unknown (the current version could not be read: %v); the rotation stays unfinished and completes when it resumes", err))
	case current.Token != run.row.Token || !run.wrote(current):
		return false, run.result, nil
	}
	run.scrub.AddDocument(current.Value)
	if run.result.Principal == "" {
		run.result.Principal = principalOf(current.Value)
	}
	recordErr := run.r.db.CompletePromote(cctx, run.row.Token, run.result.Principal,
		state.StepTiming{Step: string(StepPromote), Started: started, Duration: run.r.now().Sub(started)},
		state.PolicyState{Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID,
			CurrentVersion: current.ID, CurrentToken: run.row.Token, Principal: run.result.Principal})
	if recordErr != nil {
		return stay(fmt.Sprintf("the promote landed (version %s is current) but recording it failed: %v; the rotation stays unfinished and completes when it resumes "+
			"(the daemon's next attempt, or `swarmkey rotate %s --local`)", current.ID, recordErr, p.Name))
	}
	run.r.logger.Warn("the promote landed but its first record failed; recorded on the second try", "policy", p.Name, "token", run.row.Token,
		"version", current.ID, "error", run.scrub.Text(cause.Error()))
	return true, run.result, nil
}
