package app

import (
	"context"
	"fmt"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/lease"
)

// LeaseSource opens what `swarmkey exec` reads policies from without the
// API: their stores, then the state database, where the source takes its
// leases and audits its reads as actor. The stores come first because a
// store that refuses (a key file others may read, missing permissions) is
// the first thing to report. Closing the source closes the database and
// r's stores; on an error the caller closes r.
func (r *Runtime) LeaseSource(ctx context.Context, policies []*config.Policy, actor string) (*lease.StoreSource, error) {
	secrets := make(map[string]lease.StoredSecret, len(policies))
	for _, p := range policies {
		st, err := r.Store(ctx, p.Store)
		if err != nil {
			return nil, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
		}
		secrets[p.Name] = lease.StoredSecret{Store: st, SecretID: p.SecretID}
	}
	sess, err := Open(ctx, r)
	if err != nil {
		return nil, err
	}
	return &lease.StoreSource{DB: sess.DB, Secrets: secrets, Actor: actor, Closer: sess.Close}, nil
}
