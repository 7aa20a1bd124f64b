// Package providers defines the versioned-secret interface that every secret
// store implements (the file store, AWS Secrets Manager, Google Cloud Secret
// Manager), so the rotator never knows which one it writes to.
//
// A secret has versions; three stages name at most one version each:
// StageCurrent (what readers use), StagePending (written by a rotation that has
// not been promoted yet) and StagePrevious (the current before the last
// promote). A version is identified by the store's own version id and carries
// the rotation token that wrote it.
package providers

import (
	"context"
	"errors"
	"time"

	"github.com/swarmkey/swarmkey/secret"
)

// Stage names a role a version plays. Stores map these onto their own
// mechanism (AWS: AWSCURRENT/AWSPENDING/AWSPREVIOUS labels; GCP: version
// aliases; file: a field in the state file).
type Stage string

const (
	StageCurrent  Stage = "current"
	StagePending  Stage = "pending"
	StagePrevious Stage = "previous"
)

// Stages lists the stages in the order they are shown to operators.
var Stages = []Stage{StageCurrent, StagePending, StagePrevious}

var (
	// ErrNotFound: the secret, or the version a stage should name, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-swap lost (current moved), a token was reused
	// with another value, or another token's pending version is in the way.
	ErrConflict = errors.New("conflict")
)

// Version is one stored version of a secret. Value is set only by Get; List
// returns metadata alone.
type Version struct {
	// ID is the store's version id: the token itself for the file store and
	// AWS (VersionId = ClientRequestToken), the version number for GCP.
	ID string
	// Token is the rotation token that wrote this version ("" when another
	// tool wrote it).
	Token string
	// Stages are the stages that name this version, possibly none.
	Stages []Stage
	// Created is when the store recorded the version.
	Created time.Time
	// Value is the secret document (a JSON object).
	Value secret.Secret
}

// HasStage reports whether v holds stage s.
func (v Version) HasStage(s Stage) bool {
	for _, have := range v.Stages {
		if have == s {
			return true
		}
	}
	return false
}

// PromoteRequest asks a store to make the pending version of Token current.
type PromoteRequest struct {
	// Token is the rotation token whose pending version becomes current.
	Token string
	// ExpectedCurrentID is the version id the caller read as current before it
	// started; "" means the caller saw no current version. If the current
	// version is another one now, Promote fails with ErrConflict and changes
	// nothing.
	ExpectedCurrentID string
}

// RetireRequest asks a store to retire versions that no stage names any more.
type RetireRequest struct {
	// Destroy removes the values for good where the store distinguishes
	// disabling from destroying (GCP); otherwise they are only disabled.
	Destroy bool
}

// Store is a secret store with staged versions. Every method is safe to call
// again after a crash or a timeout: writes are idempotent by token.
type Store interface {
	// Name is the provider's name as policies spell it: "file", "aws", "gcp".
	Name() string

	// Get returns the version that holds stage, with its value. It returns
	// ErrNotFound when the secret does not exist or no version holds stage.
	Get(ctx context.Context, secretID string, stage Stage) (Version, error)

	// List returns the metadata (no values) of the secret's versions that
	// hold at least one stage, newest first. ErrNotFound when the secret
	// does not exist.
	List(ctx context.Context, secretID string) ([]Version, error)

	// PutPending writes value as a new version tagged with token and makes
	// it the pending version, creating the secret when the store is allowed
	// to. Writing the same token with the same value again is a no-op that
	// returns the same version; the same token with another value fails with
	// ErrConflict, and so does a pending version of another token (reconcile
	// or discard it first: pending versions are never stacked).
	PutPending(ctx context.Context, secretID, token string, value secret.Secret) (Version, error)

	// Promote makes the pending version of req.Token current and the old
	// current previous, in one atomic step guarded by req.ExpectedCurrentID.
	// The version that was previous no longer holds a stage afterwards. If
	// the version of req.Token is already current, Promote returns nil (a
	// retry after a crash). If current moved underneath the caller, or
	// req.Token has no pending version, it fails with ErrConflict or
	// ErrNotFound and changes nothing.
	Promote(ctx context.Context, secretID string, req PromoteRequest) error

	// DiscardPending removes the pending stage from the version of token and
	// deletes or disables that version, so its value can no longer be read.
	// It returns nil when token holds no pending version (already discarded).
	DiscardPending(ctx context.Context, secretID, token string) error

	// RetireUnstaged disables (or with req.Destroy destroys) versions that no
	// stage names, where the store keeps such versions at all. It never
	// touches a version that a stage names.
	RetireUnstaged(ctx context.Context, secretID string, req RetireRequest) error

	// Close releases the store's connections.
	Close() error
}
