package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEntry is one row of the append-only audit log. Detail holds public
// facts only (steps, versions, principals, reasons), never a value.
type AuditEntry struct {
	ID       int64
	At       time.Time
	Actor    string
	Policy   string
	Rotation string
	Action   string
	Detail   map[string]any
}

// AppendAudit appends one entry. The table refuses UPDATE, DELETE and
// TRUNCATE (a trigger), so entries can only be added.
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	detail, err := auditDetail(e)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
		VALUES ($1, $2, nullif($3, ''), nullif($4, '')::uuid, $5, $6)`,
		db.now(), e.Actor, e.Policy, e.Rotation, e.Action, detail)
	if err != nil {
		return fmt.Errorf("audit %s of policy %q: %w", e.Action, e.Policy, err)
	}
	return nil
}

func auditDetail(e AuditEntry) ([]byte, error) {
	if e.Detail == nil {
		return []byte("{}"), nil
	}
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return detail, nil
}

// Audit returns the entries of policy ("" for all), oldest first.
func (db *DB) Audit(ctx context.Context, policy string, limit int) ([]AuditEntry, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT id, at, actor, coalesce(policy, ''), coalesce(rotation::text, ''), action, detail
		FROM audit_log WHERE $1 = '' OR policy = $1 ORDER BY id LIMIT $2`, policy, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var detail []byte
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Policy, &e.Rotation, &e.Action, &detail); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		if err := json.Unmarshal(detail, &e.Detail); err != nil {
			return nil, fmt.Errorf("read audit log: entry %d: %w", e.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
