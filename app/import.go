package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/scan"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// ImportRequest asks to make a hardcoded value the first current version
// of a policy's secret (`swarmkey import`).
type ImportRequest struct {
	Policy string
	Value  secret.Secret
	// Source says where the value came from, for the audit row: "finding
	// locustfile.py:42 (header)", "environment variable API_TOKEN", "standard
	// input". Never the value.
	Source string
	Actor  string
}

// ImportResult is what import wrote, and how scripts read it now.
type ImportResult struct {
	VersionID string
	// Field is the document field that holds the value; EnvVar is the
	// variable `swarmkey exec --policy NAME` sets from it.
	Field, EnvVar string
}

// CredentialField is the field of p's secret document that holds its
// credential: what a hardcoded value replaces.
func CredentialField(p *config.Policy) string {
	switch {
	case p.Target.Postgres != nil:
		return "password"
	case p.Target.HTTP != nil:
		return httpkey.FieldAPIKey
	case p.Target.Generated != nil:
		return p.Target.Generated.WithDefaults().Field
	}
	return "value"
}

// documentFields are every field of p's secret document: exec sets a
// variable for each.
func documentFields(p *config.Policy) []string {
	switch {
	case p.Target.Postgres != nil:
		return []string{"engine", "host", "port", "dbname", "username", "password"}
	case p.Target.HTTP != nil:
		return []string{httpkey.FieldAPIKey, httpkey.FieldKeyID, httpkey.FieldKeyName, httpkey.FieldExpiresAt}
	}
	return []string{CredentialField(p)}
}

// ExecVariable is the variable `swarmkey exec --policy NAME` sets from
// field (without --policy NAME=PREFIX or --env-map).
func ExecVariable(policy, field string) string {
	return lease.EnvName(policy) + "_" + lease.EnvName(field)
}

// Inventory is what each configured policy provides to load tests, for
// the inventory column of `swarmkey scan`.
func Inventory(cfg *config.Config) []scan.Provided {
	var out []scan.Provided
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		pr := scan.Provided{Policy: p.Name, Fields: []string{CredentialField(p)}}
		for _, f := range documentFields(p) {
			pr.EnvVars = append(pr.EnvVars, ExecVariable(p.Name, f))
		}
		out = append(out, pr)
	}
	return out
}

// importDocument is the secret document of p that holds value as its
// credential: the document a rotation of p reads as current.
func importDocument(p *config.Policy, value secret.Secret) (secret.Secret, error) {
	switch {
	case p.Target.Postgres != nil:
		o := p.Target.Postgres.Options
		return postgres.Document{Host: o.Host, Port: o.Port, DBName: o.DBName, Username: o.Username, Password: value}.Secret()
	case p.Target.HTTP != nil:
		return httpkey.Document{APIKey: value}.Secret()
	case p.Target.Generated != nil:
		b, err := json.Marshal(map[string]string{CredentialField(p): value.RevealString()})
		if err != nil {
			return secret.Secret{}, errors.New("cannot encode the document")
		}
		s := secret.New(b)
		clear(b)
		return s, nil
	}
	return secret.Secret{}, errors.New("target: no supported target configured")
}

// ImportRefusedError: the policy's target refused the imported value (its
// canary failed), so nothing was stored.
type ImportRefusedError struct {
	Policy string
	Err    error
}

func (e *ImportRefusedError) Error() string {
	return fmt.Sprintf("%s: the target refused the imported credential, so nothing was stored (is it the credential the target accepts now?): %v", e.Policy, e.Err)
}

func (e *ImportRefusedError) Unwrap() error { return e.Err }

// Import writes req.Value as the first current version of the policy's
// secret, through the store code rotations use (PutPending under a new
// token, then Promote with no current expected), after the target's check
// and canary accept it, under the policy's lock; and appends
// credential.imported to the audit log. A policy that has a current
// version already is an InputError: import only starts a credential's
// life, a rotation replaces it. The first rotation then replaces the
// imported value like any current one.
func (s *Session) Import(ctx context.Context, req ImportRequest) (ImportResult, error) {
	p, err := s.Policy(req.Policy)
	if err != nil {
		return ImportResult{}, err
	}
	if req.Value.IsZero() {
		return ImportResult{}, Inputf("the value to import is empty")
	}
	cred, err := s.OpenCredential(ctx, p)
	if err != nil {
		return ImportResult{}, err
	}
	defer cred.Target.Close()
	lock, err := s.DB.TryLockPolicy(ctx, p.Name)
	if errors.Is(err, state.ErrLocked) {
		return ImportResult{}, fmt.Errorf("%s is being rotated by another process now; import when it is done", p.Name)
	}
	if err != nil {
		return ImportResult{}, err
	}
	defer lock.Release()

	current, err := cred.Store.Get(ctx, cred.SecretID, providers.StageCurrent)
	switch {
	case err == nil:
		return ImportResult{}, Inputf("%s already has a current version (%s in %s/%s): import writes only a credential's first version; `swarmkey rotate %s --local` replaces it",
			p.Name, current.ID, cred.Store.Name(), cred.SecretID, p.Name)
	case !errors.Is(err, providers.ErrNotFound):
		return ImportResult{}, fmt.Errorf("%s: read the current version: %w", p.Name, err)
	}
	doc, err := importDocument(p, req.Value)
	if err != nil {
		return ImportResult{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := cred.Target.Check(ctx, targets.CheckRequest{Strategy: cred.Strategy, Document: doc}); err != nil {
		return ImportResult{}, &InputError{Err: fmt.Errorf("%s: the imported value does not make a credential its target can rotate: %w", p.Name, err)}
	}
	token, err := uuid.NewV7()
	if err != nil {
		return ImportResult{}, err
	}
	v, err := cred.Store.PutPending(ctx, cred.SecretID, token.String(), doc)
	if err != nil {
		return ImportResult{}, fmt.Errorf("%s: write the imported version: %w", p.Name, err)
	}
	if err := cred.Target.Verify(ctx, targets.VerifyRequest{Credential: doc, Canary: true}); err != nil {
		if derr := cred.Store.DiscardPending(ctx, cred.SecretID, token.String()); derr != nil {
			return ImportResult{}, fmt.Errorf("%w; and its pending version %s could not be discarded: %v", &ImportRefusedError{Policy: p.Name, Err: err}, v.ID, derr)
		}
		return ImportResult{}, &ImportRefusedError{Policy: p.Name, Err: err}
	}
	if err := cred.Store.Promote(ctx, cred.SecretID, providers.PromoteRequest{Token: token.String(), PendingID: v.ID}); err != nil {
		return ImportResult{}, fmt.Errorf("%s: promote the imported version %s: %w", p.Name, v.ID, err)
	}
	field := CredentialField(p)
	res := ImportResult{VersionID: v.ID, Field: field, EnvVar: ExecVariable(p.Name, field)}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: req.Actor, Policy: p.Name, Action: "credential.imported",
		Detail: map[string]any{"version": v.ID, "store": cred.Store.Name(), "secret": cred.SecretID, "field": field, "source": req.Source}}); err != nil {
		return res, fmt.Errorf("%s: imported as version %s, but the audit row could not be written: %w", p.Name, v.ID, err)
	}
	return res, nil
}
