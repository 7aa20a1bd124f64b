package rotator

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// Whose version is it (docs/design.md, "Whose version is it"): a version is
// swarmkey's only when the state database says so. A store's Version.Token
// is a claim that another writer can make too (an AWS version id is any
// writer's ClientRequestToken, a GCP token annotation is anyone's to
// write), so the rotator decides ownership from its own records: the
// rotation row written before anything is touched (its token), and the
// version id its PutPending produced, recorded as the store answers.

// ForeignPendingError refuses a rotation because the secret holds a pending
// version that swarmkey did not write. Nothing was changed: swarmkey
// promotes only versions it wrote and verified, and discards another
// writer's work only when an operator says so (`swarmkey resolve`).
type ForeignPendingError struct {
	Policy   string
	Store    string
	SecretID string
	// VersionID is the pending version's id in the store.
	VersionID string
	// Token is the store's claim of who wrote it ("" when it has none).
	Token string
	// Rotator names who most likely wrote it, when the store tells (an AWS
	// rotation Lambda configured on the secret).
	Rotator string
}

func (e *ForeignPendingError) Error() string {
	claim := "no token"
	if e.Token != "" {
		claim = fmt.Sprintf("token %q, which no rotation of this policy recorded", e.Token)
	}
	who := ""
	if e.Rotator != "" {
		who = fmt.Sprintf(" (%s is configured on the secret and may be mid-rotation)", e.Rotator)
	}
	return fmt.Sprintf("policy %q: %s secret %q holds pending version %s that swarmkey did not write (%s)%s; "+
		"swarmkey promotes only what it wrote and verified, so it changed nothing: check that version, then run "+
		"`swarmkey resolve %s --promote-pending` (its canary must pass) or `swarmkey resolve %s --discard-pending`",
		e.Policy, e.Store, e.SecretID, e.VersionID, claim, who, e.Policy, e.Policy)
}

// NativeRotationError refuses a rotation (or a resolve) because the store
// rotates the secret itself. Nothing was changed. It wraps
// providers.ErrNativeRotation.
type NativeRotationError struct {
	Policy   string
	Store    string
	SecretID string
	// Rotator names the store's rotator: "rotation Lambda arn:…".
	Rotator string
}

func (e *NativeRotationError) Error() string {
	return fmt.Sprintf("policy %q: %s secret %q is rotated by %s; swarmkey changes nothing on a secret another rotator owns: "+
		"turn that rotation off (AWS: aws secretsmanager cancel-rotate-secret --secret-id %s) or point the policy at a secret of its own",
		e.Policy, e.Store, e.SecretID, e.Rotator, e.SecretID)
}

func (e *NativeRotationError) Unwrap() error { return providers.ErrNativeRotation }

// nativeRotation asks a store that can rotate secrets itself about p's
// secret; the zero value for other stores.
func nativeRotation(ctx context.Context, p Credential) (providers.NativeRotation, error) {
	nr, ok := p.Store.(providers.NativeRotator)
	if !ok {
		return providers.NativeRotation{}, nil
	}
	got, err := nr.NativeRotation(ctx, p.SecretID)
	if err != nil {
		return providers.NativeRotation{}, fmt.Errorf("ask the store whether it rotates the secret itself: %w", err)
	}
	return got, nil
}

// checkNative returns a *NativeRotationError when the store rotates p's
// secret itself, and what it knows of its rotator either way.
func checkNative(ctx context.Context, p Credential) (providers.NativeRotation, error) {
	nr, err := nativeRotation(ctx, p)
	if err != nil {
		return nr, err
	}
	if nr.Enabled {
		return nr, &NativeRotationError{Policy: p.Name, Store: p.Store.Name(), SecretID: p.SecretID, Rotator: nr.Rotator}
	}
	return nr, nil
}

// ownerOf returns the rotation of p that wrote v, or nil when swarmkey did
// not write it. A version is a rotation's when the rotation's token is the
// version's token, the rotation is of this policy, store and secret, and the
// version id is the one its PutPending produced. A rotation that is still
// running may not have recorded its version yet (it crashed between the
// write and the record); its token alone is enough, since nobody outside
// the state database knew the token before the write.
func (r *Rotator) ownerOf(ctx context.Context, p Credential, v providers.Version) (*state.Rotation, error) {
	if _, err := uuid.Parse(v.Token); err != nil {
		return nil, nil // every token swarmkey makes is a UUID
	}
	row, err := r.db.Rotation(ctx, v.Token)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up the rotation of token %s: %w", v.Token, err)
	}
	if row.Policy != p.Name || row.Store != p.Store.Name() || row.SecretID != p.SecretID {
		return nil, nil
	}
	if row.PendingVersion != v.ID && (row.PendingVersion != "" || row.Outcome != state.OutcomeRunning) {
		return nil, nil
	}
	return &row, nil
}

// stalePending finds the pending version of p's secret (not one on the
// current version) and the earlier rotation of the policy that wrote it.
// None is (nil, nil, nil). One that swarmkey did not write is refused
// (*ForeignPendingError, recorded by refuse). The versions' stages are
// listed rather than the pending value read: a pending version whose value
// cannot be read (a rotation Lambda between RotateSecret and its first
// write) is in the way all the same.
func (run *rotation) stalePending(ctx context.Context) (*providers.Version, *state.Rotation, error) {
	p := run.p
	versions, err := p.Store.List(ctx, p.SecretID)
	if errors.Is(err, providers.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list versions: %w", err)
	}
	var listed *providers.Version
	for i, v := range versions {
		if v.HasStage(providers.StagePending) && !v.HasStage(providers.StageCurrent) {
			listed = &versions[i]
		}
	}
	if listed == nil {
		return nil, nil, nil
	}
	owner, err := run.r.ownerOf(ctx, p, *listed)
	if err != nil {
		return nil, nil, err
	}
	if owner == nil {
		foreign := &ForeignPendingError{Policy: p.Name, Store: p.Store.Name(), SecretID: p.SecretID,
			VersionID: listed.ID, Token: listed.Token, Rotator: run.native.Rotator}
		return nil, nil, run.refuse(ctx, foreign, map[string]any{"pending_version": listed.ID, "claimed_token": listed.Token,
			"rotator": run.native.Rotator})
	}
	return listed, owner, nil
}

// ledgerStore is the policy's store as a rotation's steps see it: the
// version every PutPending of the rotation's token produces is recorded in
// the state database before the step goes on, so that what swarmkey wrote
// is known whichever step wrote it.
type ledgerStore struct {
	providers.Store
	run *rotation
}

func (s ledgerStore) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	v, err := s.Store.PutPending(ctx, secretID, token, value)
	if err != nil || token != s.run.row.Token || secretID != s.run.p.SecretID {
		return v, err
	}
	if err := s.run.r.db.RecordPendingVersion(ctx, token, v.ID); err != nil {
		return providers.Version{}, fmt.Errorf("the store wrote pending version %s, but recording it failed: %w", v.ID, err)
	}
	s.run.row.PendingVersion = v.ID
	return v, nil
}

// wrote reports whether v is the version this rotation wrote: by the
// recorded version id, or by token while none is recorded.
func (run *rotation) wrote(v providers.Version) bool {
	if run.row.PendingVersion != "" {
		return v.ID == run.row.PendingVersion
	}
	return v.Token == run.row.Token
}

// ErrRefused is wrapped by the error of every refused rotation: one that
// changed nothing because the secret needs an operator first (a pending
// version swarmkey did not write, a secret its store rotates itself, a
// stale pending version with which nothing logs in). Trying again finds the
// same, so the daemon does not retry it.
var ErrRefused = errors.New("rotation refused")

// refusal is a refused rotation's error: err's text, errors.As reaches err,
// and errors.Is finds ErrRefused.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

func (refusal) Is(target error) bool { return target == ErrRefused }

// refuse records a refusal before anything changed (the policy's last
// outcome, and an audit entry `rotation.refused`) and returns err, wrapped
// so that it is ErrRefused too.
func (run *rotation) refuse(ctx context.Context, err error, detail map[string]any) error {
	reason := run.scrub.Text(err.Error())
	if detail == nil {
		detail = map[string]any{}
	}
	detail["reason"] = reason
	p := run.p
	entry := state.AuditEntry{Actor: run.actor(), Policy: p.Name, Action: "rotation.refused", Detail: detail}
	ps := state.PolicyState{Policy: p.Name, Strategy: string(p.Strategy), Store: p.Store.Name(), SecretID: p.SecretID}
	if rerr := run.r.db.RecordRefusal(context.WithoutCancel(ctx), ps, reason, entry); rerr != nil {
		run.r.logger.Error("recording the refusal failed", "policy", p.Name, "error", rerr)
	}
	run.r.logger.Warn("rotation refused", "policy", p.Name, "reason", reason)
	return refusal{err}
}
