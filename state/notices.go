package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimExpiredLeases returns the leases that expired without an end at or
// before now (no heartbeat within their TTL) and were not reported yet, at
// most limit, oldest first, and marks them reported in the same statement:
// each expired lease is handed out once, whichever replica asks.
func (db *DB) ClaimExpiredLeases(ctx context.Context, now time.Time, limit int) ([]Lease, error) {
	rows, err := db.pool.Query(ctx, `
		UPDATE leases SET expiry_reported_at = $1
		WHERE id IN (
			SELECT id FROM leases
			WHERE ended_at IS NULL AND expiry_reported_at IS NULL AND last_heartbeat + ttl <= $1
			ORDER BY last_heartbeat LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING `+leaseColumns, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim expired leases: %w", err)
	}
	leases, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Lease, error) { return scanLease(row) })
	if err != nil {
		return nil, fmt.Errorf("claim expired leases: %w", err)
	}
	return leases, nil
}

// ClaimOverdueReport records that policy's credential, overdue since since,
// has been reported; it returns true only to the first caller for that
// instant.
func (db *DB) ClaimOverdueReport(ctx context.Context, policy string, since time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx, `
		UPDATE policy_state SET overdue_reported = $2
		WHERE policy = $1 AND overdue_reported IS DISTINCT FROM $2`, policy, since.Truncate(time.Microsecond))
	if err != nil {
		return false, fmt.Errorf("record the overdue report of policy %q: %w", policy, err)
	}
	return tag.RowsAffected() == 1, nil
}
