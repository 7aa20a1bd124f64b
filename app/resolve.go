package app

import (
	"context"
	"errors"

	"github.com/swarmkey/swarmkey/rotator"
)

// Resolve carries out an operator's decision about the pending version of
// the policy called name (`swarmkey resolve`), under the policy's lock:
// see rotator.Rotator.Resolve. An unknown policy, and a secret with no
// pending version to resolve, are InputErrors; a refusal (a canary that
// fails, an unfinished rotation, a secret its store rotates itself) is a
// *rotator.ResolveRefusedError.
func (s *Session) Resolve(ctx context.Context, name string, action rotator.ResolveAction, actor string) (rotator.Resolution, error) {
	p, err := s.Credential(ctx, name)
	if err != nil {
		return rotator.Resolution{}, err
	}
	defer p.Target.Close()
	res, err := rotator.New(s.DB, rotator.Config{Logger: s.Logger}).Resolve(ctx, p, rotator.ResolveOptions{Actor: actor, Action: action})
	if errors.Is(err, rotator.ErrNothingToResolve) || errors.Is(err, rotator.ErrUnknownResolveAction) {
		return res, &InputError{Err: err}
	}
	return res, err
}
