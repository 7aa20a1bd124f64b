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
	// ErrNativeRotation: the store rotates the secret itself (AWS: a rotation
	// Lambda, or a managing service such as RDS), so swarmkey must not write
	// to it. Stores refuse every write to such a secret with it.
	ErrNativeRotation = errors.New("the secret is rotated by its store's own rotation")
)

// Version is one stored version of a secret. Value is set only by Get; List
// returns metadata alone.
type Version struct {
	// ID is the store's version id: the token itself for the file store and
	// AWS (VersionId = ClientRequestToken), the version number for GCP.
	ID string
	// Token is the store's claim of the rotation token that wrote this
	// version: the file store's record, AWS's version id (which any writer
	// chooses, so a version of another tool has a token too), GCP's
	// swarmkey.token.<n> annotation (which anyone allowed to update the
	// secret can write); "" when the store has none. It is a claim: the
	// rotator decides whether swarmkey wrote a version from its state
	// database (the rotation of the token, and the version id its
	// PutPending produced), never from Token alone.
	Token string
	// Stages are the stages that name this version, possibly none. A
	// version may hold current and pending at once (see the package
	// documentation): List reports both, Get(StagePending) does not count
	// it as pending.
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
	// It may be "" when PendingID is set: the pending version of another
	// writer, which `swarmkey resolve --promote-pending` promotes.
	Token string
	// PendingID, when set, is the version id of the pending version to
	// promote. If another version is pending (another writer replaced it),
	// or Token is set and the version does not carry it, Promote fails with
	// ErrConflict and changes nothing; if the version is current already,
	// Promote returns nil as it does for Token. The
	// rotator sets it to the version its PutPending produced, so a store
	// whose token is only a claim (GCP's annotation) cannot be made to
	// promote another writer's version under swarmkey's token.
	PendingID string
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
	// ErrNotFound when the secret does not exist or no version holds stage,
	// and for StagePending when the version that holds it is current (the
	// finished state of a rotation, see the package documentation).
	Get(ctx context.Context, secretID string, stage Stage) (Version, error)

	// List returns the metadata (no values) of the secret's versions that
	// hold at least one stage, newest first, each with every stage that
	// names it (current and pending on one version included). ErrNotFound
	// when the secret does not exist.
	List(ctx context.Context, secretID string) ([]Version, error)

	// PutPending writes value as a new version tagged with token and makes
	// it the pending version, creating the secret when the store is allowed
	// to. Writing the same token with the same value again is a no-op that
	// returns the same version; the same token with another value fails with
	// ErrConflict, and so does a pending version of another token (reconcile
	// or discard it first: pending versions are never stacked). A pending
	// stage on the current version is not in the way: it moves to the new
	// version.
	PutPending(ctx context.Context, secretID, token string, value secret.Secret) (Version, error)

	// Promote makes the pending version of req.Token (or req.PendingID)
	// current and the old current previous, guarded by
	// req.ExpectedCurrentID. The version that was previous no longer holds
	// a stage afterwards. If the version is already current, Promote
	// returns nil (a retry after a crash), after removing a pending stage
	// the version still holds: a store whose promote takes two calls (AWS)
	// completes a promote that stopped between them this way. If current
	// moved underneath the caller, or the version is not pending, it fails
	// with ErrConflict or ErrNotFound and changes nothing.
	Promote(ctx context.Context, secretID string, req PromoteRequest) error

	// DiscardPending removes the pending stage from the version of token and
	// deletes or disables that version, so its value can no longer be read.
	// It returns nil when token holds no pending version (already discarded).
	DiscardPending(ctx context.Context, secretID, token string) error

	// DiscardPendingVersion is DiscardPending for the pending version whose
	// id is versionID, whoever wrote it (another tool's version may carry no
	// token): `swarmkey resolve --discard-pending`. It returns nil when
	// versionID holds no pending stage, and leaves a version that is also
	// current as it is (that is no pending version; see Get).
	DiscardPendingVersion(ctx context.Context, secretID, versionID string) error

	// RetireUnstaged disables (or with req.Destroy destroys) versions that no
	// stage names, where the store keeps such versions at all. It never
	// touches a version that a stage names.
	RetireUnstaged(ctx context.Context, secretID string, req RetireRequest) error

	// Close releases the store's connections.
	Close() error
}

// NativeRotation is what a store knows of a rotator of its own on a secret.
type NativeRotation struct {
	// Enabled: the store rotates the secret itself now (AWS: rotation is
	// enabled, or a managing service owns the secret). Swarmkey must change
	// nothing on it, and the store refuses its writes with
	// ErrNativeRotation.
	Enabled bool
	// Rotator names that rotator for messages, when the store tells:
	// "rotation Lambda arn:aws:lambda:…", "managing service rds". It may be
	// set while Enabled is false (AWS keeps the Lambda of a cancelled
	// rotation), and then names who most likely wrote a pending version
	// that swarmkey did not write.
	Rotator string
}

// NativeRotator is implemented by stores that can rotate a secret
// themselves (AWS Secrets Manager). The rotator asks before it changes
// anything, so that it leaves such a secret exactly as it found it.
type NativeRotator interface {
	// NativeRotation reports the store's own rotation of secretID; the zero
	// value when there is none or the secret does not exist.
	NativeRotation(ctx context.Context, secretID string) (NativeRotation, error)
}
