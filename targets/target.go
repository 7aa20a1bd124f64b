// Package targets defines the systems whose credential swarmkey rotates
// (a PostgreSQL role, an HTTP API-key issuer). A target is a handful of verbs
// that each take a request struct, after HashiCorp Vault's database plugin
// interface, so adding a field never breaks every target:
//
//	Check   — before the create step: can the target read a document (the
//	          current version) as one of its credentials? Touches nothing.
//	Create  — the create step: describe the new credential (which user, which
//	          password) as a secret document, without changing the system
//	          (it may read it, to refuse what it must not change before
//	          anything does: the postgres target's privileged roles).
//	Apply   — the set step: make the pending credential valid on the system.
//	Verify  — the test step: prove a credential with a canary.
//	Restore — the rollback before promote: undo what Apply did.
//	Retire  — the finish step: retire a credential that fell off previous.
//
// Credentials travel as secret documents: the JSON object stored as a secret
// version (docs/design.md, "The secret model"). Each target parses its own.
package targets

import (
	"context"
	"fmt"

	"github.com/swarmkey/swarmkey/secret"
)

// Strategy says how a target's credentials take turns.
type Strategy string

const (
	// Alternating keeps two users or keys: each rotation changes the one
	// that is not current, so the previous stays valid for a whole period.
	Alternating Strategy = "alternating"
	// Single changes one credential in place: between set and promote the
	// stored current no longer works, so clients must retry with pending.
	Single Strategy = "single"
)

// ParseStrategy accepts "alternating" and "single"; "" means alternating.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "", Alternating:
		return Alternating, nil
	case Single:
		return Single, nil
	}
	return "", fmt.Errorf("unknown strategy %q: use alternating or single", s)
}

// CheckRequest asks whether Document is a credential the target can read
// under Strategy.
type CheckRequest struct {
	Strategy Strategy
	Document secret.Secret
}

// UnreadableError says that a document is not a credential of the target
// that read it: not its shape (not JSON, not an object, a field missing or
// of the wrong type), or naming a principal the target does not manage.
// Check returns it, and so does Create for an unreadable Current, before it
// has any effect. It names fields and principals, never a value.
type UnreadableError struct {
	// Document names what the target reads: "a postgres document".
	Document string
	// Expected describes its shape: "a JSON object with username and
	// password (engine, host, port, dbname optional)".
	Expected string
	// Err says what is wrong with this one.
	Err error
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("not %s (%v): expected %s", e.Document, e.Err, e.Expected)
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// CreateRequest asks the target to describe a new credential.
type CreateRequest struct {
	// Token is the rotation token.
	Token string
	// Strategy of the policy.
	Strategy Strategy
	// Current is the current secret document, zero for the first rotation
	// (or when the rotator replaces a current version the target cannot
	// read). Create refuses a Current that Check refuses, before it has any
	// effect, with an error wrapping *UnreadableError.
	Current secret.Secret
	// Password is a freshly generated value under the policy's rules; targets
	// that issue their own values (an API that returns a key) ignore it.
	Password secret.Secret
}

// CreateResponse is the new credential.
type CreateResponse struct {
	// Pending is the secret document to write as the pending version.
	Pending secret.Secret
	// Principal names who the credential logs in as (a role name, a key id):
	// public, shown in step output and audit rows.
	Principal string
}

// ApplyRequest asks the target to make Pending valid.
type ApplyRequest struct {
	Token    string
	Strategy Strategy
	Pending  secret.Secret
	// Current is the current document, zero for the first rotation. The
	// single strategy without an admin credential logs in with it.
	Current secret.Secret
	// Retry is set when an earlier attempt may already have applied Pending
	// (a resumed or retried rotation): the target checks first and does
	// nothing if Pending already works. A first attempt skips that check,
	// which for a database costs a failed login.
	Retry bool
}

// VerifyRequest asks for the canary: log in or call with Credential.
type VerifyRequest struct {
	Credential secret.Secret
	// Canary runs the policy's own extra check too (a SQL query, an HTTP
	// request); false checks only that the credential is accepted.
	Canary bool
}

// RestoreRequest asks the target to undo an Apply of Pending before promote.
type RestoreRequest struct {
	Token    string
	Strategy Strategy
	Pending  secret.Secret
	// Current is what single restores; zero when there was none (or the
	// target cannot read it: a version being replaced).
	Current secret.Secret
	// Previous is what alternating restores on the user it changed, so the
	// previous credential stays valid after a rollback; zero when none (or
	// the target cannot read it).
	Previous secret.Secret
	// BeforeSet is true when the rotation failed before the set step began:
	// Apply never ran. Targets whose Create had an effect (an API issued a
	// key) still undo it; the others have nothing to do.
	BeforeSet bool
}

// RetireRequest asks the target to retire credentials after promote.
type RetireRequest struct {
	Strategy Strategy
	// Retired is the credential that is no longer current (the new
	// previous). single retires it; alternating keeps it valid for a period.
	Retired secret.Secret
	// FellOff is the credential that was previous before the promote and
	// holds no stage now (alternating retires it: an API key is revoked).
	// Zero when there was none, or when the rotation was resumed after its
	// promote and the value is gone with the process that read it.
	FellOff secret.Secret
	// Current is the credential that must keep working.
	Current secret.Secret
}

// Target is one system whose credential is rotated. Every verb is
// idempotent: the rotator calls it again after a crash or a retry.
//
// Check is the contract's first step: the rotator calls it on the current
// version before Create, and stops the rotation, with nothing changed, when
// it returns an *UnreadableError (unless the operator chose to replace that
// version). The rotator also hands the other verbs only documents that Check
// accepts: a version it refuses (one that was replaced, still previous) is
// passed as zero, as if there were none. Check touches nothing and refuses
// a zero Document.
type Target interface {
	Check(ctx context.Context, req CheckRequest) error
	Create(ctx context.Context, req CreateRequest) (CreateResponse, error)
	Apply(ctx context.Context, req ApplyRequest) error
	Verify(ctx context.Context, req VerifyRequest) error
	Restore(ctx context.Context, req RestoreRequest) error
	Retire(ctx context.Context, req RetireRequest) error
	Close() error
}
