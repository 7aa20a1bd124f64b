package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
// TRUNCATE (triggers on it and on each of its partitions), so entries can
// only be added; whole months are dropped only through
// swarmkey_drop_audit_partition (migrations/00006_audit_partitions.sql).
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	detail, now, err := db.auditRow(ctx, e)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
		VALUES ($1, $2, nullif($3, ''), nullif($4, '')::uuid, $5, $6)`,
		now, e.Actor, e.Policy, e.Rotation, e.Action, detail)
	if err != nil {
		return fmt.Errorf("audit %s of policy %q: %w", e.Action, e.Policy, err)
	}
	return nil
}

// auditTime returns the time of an audit entry about to be appended (the
// DB's clock), once a partition of audit_log holds it. audit_log is
// partitioned by month (UTC); swarmkey_ensure_audit_partition creates the
// month's partition and the next one's when they are missing. It is called
// once per month a DB sees, so the partition of a new month is normally
// there a month ahead and appending never waits for it.
func (db *DB) auditTime(ctx context.Context) (time.Time, error) {
	now := db.now()
	month := int64(now.UTC().Year())*12 + int64(now.UTC().Month())
	if db.auditMonth.Load() == month {
		return now, nil
	}
	if _, err := db.pool.Exec(ctx, `SELECT swarmkey_ensure_audit_partition($1)`, now); err != nil {
		return now, fmt.Errorf("audit log: make the partition of %s (has `swarmkey migrate` run?): %w", now.UTC().Format("2006-01"), err)
	}
	db.auditMonth.Store(month)
	return now, nil
}

// auditRow is what every statement that appends e needs: its detail as
// JSON and the time of the append, with that month's partition made sure of.
func (db *DB) auditRow(ctx context.Context, e AuditEntry) ([]byte, time.Time, error) {
	detail, err := auditDetail(e)
	if err != nil {
		return nil, time.Time{}, err
	}
	now, err := db.auditTime(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	return detail, now, nil
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

// ExportedEntry is one audit entry as `swarmkey audit export` writes it, one
// JSON object per line: Detail exactly as stored.
type ExportedEntry struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Policy   string          `json:"policy,omitempty"`
	Rotation string          `json:"rotation,omitempty"`
	Action   string          `json:"action"`
	Detail   json.RawMessage `json:"detail"`
}

// exportBatch is how many entries one statement of ExportAudit reads.
const exportBatch = 5000

// ExportAudit calls each with every entry older than before, ordered by
// time and then id, and returns how many it passed. It reads in batches of
// short statements, so an export of millions of entries never holds
// audit_log for long; each's error stops it.
func (db *DB) ExportAudit(ctx context.Context, before time.Time, each func(ExportedEntry) error) (int, error) {
	const columns = `SELECT id, at, actor, coalesce(policy, ''), coalesce(rotation::text, ''), action, detail FROM audit_log`
	n := 0
	var last ExportedEntry
	for {
		var rows pgx.Rows
		var err error
		if n == 0 {
			rows, err = db.pool.Query(ctx, columns+` WHERE at < $1 ORDER BY at, id LIMIT $2`, before, exportBatch)
		} else {
			rows, err = db.pool.Query(ctx, columns+` WHERE at < $1 AND (at, id) > ($3, $4) ORDER BY at, id LIMIT $2`,
				before, exportBatch, last.At, last.ID)
		}
		if err != nil {
			return n, fmt.Errorf("export audit log: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ExportedEntry, error) {
			var e ExportedEntry
			var detail []byte
			err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Policy, &e.Rotation, &e.Action, &detail)
			e.At = e.At.UTC()
			e.Detail = detail
			return e, err
		})
		if err != nil {
			return n, fmt.Errorf("export audit log: %w", err)
		}
		for _, e := range batch {
			if err := each(e); err != nil {
				return n, err
			}
			n++
			last = e
		}
		if len(batch) < exportBatch {
			return n, nil
		}
	}
}
