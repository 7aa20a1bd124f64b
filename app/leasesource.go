package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// StoredSecret is where a policy's credential lives: a secret of an open
// store.
type StoredSecret struct {
	Store    providers.Store
	SecretID string
}

// StoreSource is the lease.Source of `swarmkey exec` without --api: it
// holds leases in the state database and reads credentials straight from
// the policies' stores, auditing every read in the database before the
// value is handed on. It lives here, not in package lease, so that lease
// (which swarmkey-exec links) does not import the state database.
type StoreSource struct {
	// DB is the state database: leases and the audit log.
	DB *state.DB
	// Secrets are the policies Read may read, by name.
	Secrets map[string]StoredSecret
	// Actor is who reads, as the audit log records it (operator:NAME).
	Actor string
	// Closer, if set, is what Close calls: it closes DB and the stores.
	Closer func()
}

var _ lease.Source = (*StoreSource)(nil)

// Close calls Closer.
func (s *StoreSource) Close() {
	if s.Closer != nil {
		s.Closer()
	}
}

// Start takes a lease in the database; a run name or TTL the database
// refuses is an InputError naming its flag.
func (s *StoreSource) Start(ctx context.Context, req lease.Request) (string, error) {
	l, err := s.DB.StartLease(ctx, state.LeaseRequest{RunName: req.Run, Uses: req.Uses, Holder: req.Holder, TTL: req.TTL})
	var inv *state.InvalidRunError
	if errors.As(err, &inv) {
		return "", lease.Inputf("--%s %q: %s", map[string]string{"name": "run", "ttl": "lease-ttl"}[inv.Field], inv.Value, inv.Reason)
	}
	if err != nil {
		return "", fmt.Errorf("take the lease in the state database: %w", err)
	}
	return l.ID, nil
}

// Heartbeat renews the lease; an expired or ended one is lease.ErrGone.
func (s *StoreSource) Heartbeat(ctx context.Context, id string) error {
	_, err := s.DB.HeartbeatLease(ctx, id)
	if errors.Is(err, state.ErrLeaseExpired) || errors.Is(err, state.ErrLeaseEnded) {
		return fmt.Errorf("%w: %w", lease.ErrGone, err)
	}
	return err
}

// End ends the lease.
func (s *StoreSource) End(ctx context.Context, id string) error {
	_, err := s.DB.EndLease(ctx, id)
	return err
}

// Read reads the current version of each policy's secret, in order, and
// audits the reads (who, which version, under which lease) together, in one
// statement, before it returns: a read that cannot be audited is not
// returned. The reads before a refusal are audited too: their values were
// read, though not handed on. A policy never rotated is an InputError.
func (s *StoreSource) Read(ctx context.Context, names []string, leaseID, run string, each func(string, map[string]secret.Secret) error) error {
	var reads []state.AuditEntry
	err := func() error {
		for _, name := range names {
			fields, version, err := s.read(ctx, name)
			if err != nil {
				return err
			}
			reads = append(reads, state.AuditEntry{
				Actor: s.Actor, Policy: name, Action: "credential.read",
				Detail: map[string]any{"version": version, "via": "exec", "lease": leaseID, "run": run},
			})
			if err := each(name, fields); err != nil {
				return err
			}
		}
		return nil
	}()
	// After a refusal the refusal stays the error, whether or not its
	// reads could be audited: nothing is handed on either way.
	if len(reads) > 0 {
		if auditErr := s.DB.AppendAudits(ctx, reads); auditErr != nil && err == nil {
			names := make([]string, len(reads))
			for i, r := range reads {
				names[i] = r.Policy
			}
			err = fmt.Errorf("%s: the reads could not be audited, so the command does not start: %w", lease.PolicyList(names), auditErr)
		}
	}
	return err
}

// read reads the current version of the policy's secret and returns its
// fields and its version id.
func (s *StoreSource) read(ctx context.Context, name string) (map[string]secret.Secret, string, error) {
	sec, ok := s.Secrets[name]
	if !ok {
		return nil, "", fmt.Errorf("policy %q: not one of the policies this source was opened for", name)
	}
	v, err := api.ReadCurrent(ctx, sec.Store, sec.SecretID)
	if errors.Is(err, api.ErrNothingCurrent) {
		return nil, "", lease.Inputf("policy %q: no current credential yet in store %q (secret %q): it has not been rotated; rotate it first (`swarmkey rotate %s`)",
			name, sec.Store.Name(), sec.SecretID, name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("policy %q: %w", name, err)
	}
	fields, err := wire.Fields(v.Value)
	if err != nil {
		return nil, "", fmt.Errorf("policy %q: %w", name, err)
	}
	return fields, v.ID, nil
}
