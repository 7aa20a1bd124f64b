package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CredentialRead is one read of a policy's credential by an API token.
type CredentialRead struct {
	TokenID   int64
	TokenName string
	Policy    string
	// Covers are the lease uses that cover the policy: its name and tag:T
	// for each of its tags. The read counts under the newest live lease of
	// the token whose uses hold one of them.
	Covers  []string
	Version string
	// Detail is added to the audit entry of a first read (never a value).
	Detail map[string]any
}

// ReadCount is what RecordCredentialRead counted.
type ReadCount struct {
	// Lease is the lease the read counted under; "" for none.
	Lease string
	// Count is how many reads of this token, lease, policy and version
	// there have been, this one included.
	Count int64
}

// First reports whether this was the first read of its token, lease, policy
// and version: the one that appended the credential.read audit entry.
func (c ReadCount) First() bool { return c.Count == 1 }

// recordReadSQL counts one read in credential_reads and, when it is the
// first of its (token, lease, policy, version), appends its audit entry.
// $1 token id, $2 policy, $3 covers, $4 version, $5 time, $6 actor, $7
// detail (JSON).
const recordReadSQL = `
	WITH lease AS (
		SELECT id::text AS id FROM leases
		WHERE token_id = $1 AND ended_at IS NULL AND last_heartbeat + ttl > $5 AND uses && $3::text[]
		ORDER BY started_at DESC LIMIT 1
	), counted AS (
		INSERT INTO credential_reads AS r (token_id, lease, policy, version, first_at, last_at, count)
		VALUES ($1, coalesce((SELECT id FROM lease), ''), $2, $4, $5, $5, 1)
		ON CONFLICT (token_id, lease, policy, version)
			DO UPDATE SET count = r.count + 1, last_at = greatest(r.last_at, excluded.last_at)
		RETURNING lease, count
	), audited AS (
		INSERT INTO audit_log (at, actor, policy, action, detail)
		SELECT $5, $6, $2, 'credential.read',
			CASE WHEN lease = '' THEN $7::jsonb ELSE $7::jsonb || jsonb_build_object('lease', lease) END
		FROM counted WHERE count = 1
	)
	SELECT lease, count FROM counted`

// recordReadArgs are recordReadSQL's arguments for r at now.
func recordReadArgs(r CredentialRead, now time.Time) ([]any, error) {
	detail := map[string]any{}
	for k, v := range r.Detail {
		detail[k] = v
	}
	detail["version"] = r.Version
	d, err := json.Marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("audit credential.read of policy %q: %w", r.Policy, err)
	}
	return []any{r.TokenID, r.Policy, r.Covers, r.Version, now, "token:" + r.TokenName, d}, nil
}

// RecordCredentialRead counts a read in credential_reads and, when it is the
// first of its (token, lease, policy, version), appends the audit entry
// credential.read (actor token:NAME, the version, the lease and r.Detail),
// in one statement: when it fails, neither is written, and the caller must
// not hand out the value. Later reads update only the count and last_at.
func (db *DB) RecordCredentialRead(ctx context.Context, r CredentialRead) (ReadCount, error) {
	now, err := db.auditTime(ctx)
	if err != nil {
		return ReadCount{}, err
	}
	args, err := recordReadArgs(r, now)
	if err != nil {
		return ReadCount{}, err
	}
	var c ReadCount
	if err := db.pool.QueryRow(ctx, recordReadSQL, args...).Scan(&c.Lease, &c.Count); err != nil {
		return ReadCount{}, fmt.Errorf("record read of policy %q: %w", r.Policy, err)
	}
	return c, nil
}

// RecordCredentialReads records reads as RecordCredentialRead records one,
// all in one transaction sent in one round trip: all are recorded or none
// is, and when it fails the caller must hand out none of the values. The
// counts are in the order of reads.
func (db *DB) RecordCredentialReads(ctx context.Context, reads []CredentialRead) ([]ReadCount, error) {
	now, err := db.auditTime(ctx)
	if err != nil {
		return nil, err
	}
	counts := make([]ReadCount, len(reads))
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	for i, r := range reads {
		args, err := recordReadArgs(r, now)
		if err != nil {
			return nil, err
		}
		batch.Queue(recordReadSQL, args...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&counts[i].Lease, &counts[i].Count)
		})
	}
	batch.Queue(`COMMIT`)
	// A failed batch leaves its connection in an aborted transaction, which
	// the pool closes instead of reusing; nothing of it was committed.
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("record reads of %d policies: %w", len(reads), err)
	}
	return counts, nil
}

// LeaseRead is how often one version of a policy was read under a lease.
type LeaseRead struct {
	Policy  string `json:"policy"`
	Version string `json:"version"`
	Count   int64  `json:"count"`
}

// LeaseReads returns the reads counted under lease id, by policy and
// version.
func (db *DB) LeaseReads(ctx context.Context, id string) ([]LeaseRead, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT policy, version, count FROM credential_reads WHERE lease = $1 ORDER BY policy, first_at`, id)
	if err != nil {
		return nil, fmt.Errorf("reads of lease %s: %w", id, err)
	}
	reads, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LeaseRead])
	if err != nil {
		return nil, fmt.Errorf("reads of lease %s: %w", id, err)
	}
	return reads, nil
}
