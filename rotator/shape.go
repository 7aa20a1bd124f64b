package rotator

import (
	"context"
	"errors"
	"fmt"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// UnreadableCurrentError stops a rotation whose current version the target
// cannot read (targets.Target's Check refused it), before the target is
// touched: swarmkey does not overwrite what it cannot read unless the
// operator says so (Options.ReplaceUnreadableCurrent).
type UnreadableCurrentError struct {
	SecretID string
	// Version is the store's id of the current version.
	Version string
	Err     *targets.UnreadableError
}

func (e *UnreadableCurrentError) Error() string {
	return fmt.Sprintf("secret %q: current version %s is %v; nothing was changed", e.SecretID, e.Version, e.Err)
}

func (e *UnreadableCurrentError) Unwrap() error { return e.Err }

// checkCurrent asks the target, before Create, whether it can read the
// current version. One it cannot read stops the rotation with nothing
// changed, unless the operator chose to replace it: then checkCurrent
// returns a zero current (the rotation goes on as if nothing were current)
// and the target's reason, for adopt.
func (run *rotation) checkCurrent(ctx context.Context, current secret.Secret) (secret.Secret, *targets.UnreadableError, error) {
	if current.IsZero() {
		return current, nil, nil
	}
	err := run.p.Target.Check(ctx, targets.CheckRequest{Strategy: run.p.Strategy, Document: current})
	var unreadable *targets.UnreadableError
	switch {
	case err == nil:
		return current, nil, nil
	case !errors.As(err, &unreadable):
		return secret.Secret{}, nil, fmt.Errorf("check current version %s: %w", run.row.ExpectedCurrent, err)
	case !run.opts.ReplaceUnreadableCurrent:
		return secret.Secret{}, nil, &UnreadableCurrentError{SecretID: run.p.SecretID, Version: run.row.ExpectedCurrent, Err: unreadable}
	}
	return secret.Secret{}, unreadable, nil
}

// adopt records that this rotation replaces the current version the target
// could not read: an audit row rotation.adopted with the actor, the version
// and why. It runs once the target accepted to go on without a current
// (Create succeeded) and before anything is written; without the row the
// rotation replaces nothing.
func (run *rotation) adopt(ctx context.Context, why *targets.UnreadableError) error {
	adopted := run.auditEntry("rotation.adopted", map[string]any{
		"replaced_version": run.row.ExpectedCurrent,
		"reason":           run.scrub.Text(why.Error()),
	})
	if err := run.r.db.AppendAudit(ctx, adopted); err != nil {
		return fmt.Errorf("audit the replacing of current version %s: %w", run.row.ExpectedCurrent, err)
	}
	run.result.Replaced = run.row.ExpectedCurrent
	run.r.logger.Warn("replacing a current version the target cannot read", "policy", run.p.Name, "token", run.row.Token,
		"version", run.row.ExpectedCurrent, "actor", run.actor())
	return nil
}

// readable is doc when the target can read it, and zero when it cannot. A
// version the target refuses is one a rotation replaced (current until the
// promote, previous after it): it is none of the target's business, so the
// target's verbs get it as if there were none. Only create stops at one
// (checkCurrent); past create the current version cannot change, so an
// unreadable one there is the one the operator chose to replace.
func (run *rotation) readable(ctx context.Context, doc secret.Secret) (secret.Secret, error) {
	if doc.IsZero() {
		return doc, nil
	}
	err := run.p.Target.Check(ctx, targets.CheckRequest{Strategy: run.p.Strategy, Document: doc})
	var unreadable *targets.UnreadableError
	switch {
	case err == nil:
		return doc, nil
	case errors.As(err, &unreadable):
		return secret.Secret{}, nil
	}
	return secret.Secret{}, err
}
