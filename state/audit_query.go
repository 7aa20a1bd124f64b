package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditFilter narrows the audit log for `swarmkey audit`. Empty fields do
// not narrow; the lists match any of their entries.
type AuditFilter struct {
	Policies []string
	// Actors match an entry's actor exactly ("operator:alice", "daemon"),
	// or, given without a kind (no colon), the name after any kind:
	// "alice" matches operator:alice and token:alice.
	Actors []string
	// Kinds match an action exactly ("rotation.forced") or, given without
	// a dot, every action of the kind ("rotation" matches rotation.*).
	Kinds []string
	// Since (inclusive) and Until (exclusive) bound the entry's time.
	Since, Until time.Time
}

// where returns the filter's SQL condition over audit_log's columns, its
// arguments numbered from first.
func (f AuditFilter) where(first int) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		if list, ok := v.([]string); ok {
			v = nonNil(list) // NULL would make the condition NULL, not false
		}
		args = append(args, v)
		return fmt.Sprintf("$%d", first+len(args)-1)
	}
	if len(f.Policies) > 0 {
		conds = append(conds, "policy = ANY("+arg(f.Policies)+"::text[])")
	}
	if len(f.Actors) > 0 {
		var exact, bare []string
		for _, a := range f.Actors {
			if strings.Contains(a, ":") {
				exact = append(exact, a)
			} else {
				bare = append(bare, a)
			}
		}
		conds = append(conds, "(actor = ANY("+arg(exact)+"::text[]) OR actor = ANY("+arg(bare)+
			"::text[]) OR substr(actor, strpos(actor, ':') + 1) = ANY("+arg(bare)+"::text[]))")
	}
	if len(f.Kinds) > 0 {
		var exact, prefixes []string
		for _, k := range f.Kinds {
			if strings.Contains(k, ".") {
				exact = append(exact, k)
			} else {
				prefixes = append(prefixes, k)
			}
		}
		conds = append(conds, "(action = ANY("+arg(exact)+"::text[]) OR split_part(action, '.', 1) = ANY("+arg(prefixes)+"::text[]))")
	}
	if !f.Since.IsZero() {
		conds = append(conds, "at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "at < "+arg(f.Until))
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

const auditColumns = `id, at, actor, coalesce(policy, ''), coalesce(rotation::text, ''), action, detail`

func scanExported(row pgx.CollectableRow) (ExportedEntry, error) {
	var e ExportedEntry
	var detail []byte
	err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Policy, &e.Rotation, &e.Action, &detail)
	e.At = e.At.UTC()
	e.Detail = detail
	return e, err
}

// QueryAudit returns the newest limit entries that f matches (all of them
// when limit is 0), oldest first, and whether older ones matched too.
func (db *DB) QueryAudit(ctx context.Context, f AuditFilter, limit int) ([]ExportedEntry, bool, error) {
	where, args := f.where(1)
	sql := `SELECT ` + auditColumns + ` FROM audit_log WHERE ` + where + ` ORDER BY at DESC, id DESC`
	if limit > 0 {
		// One more than asked says whether there are older ones.
		sql += fmt.Sprintf(" LIMIT %d", limit+1)
	}
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("read audit log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, scanExported)
	if err != nil {
		return nil, false, fmt.Errorf("read audit log: %w", err)
	}
	more := limit > 0 && len(entries) > limit
	if more {
		entries = entries[:limit]
	}
	slices.Reverse(entries)
	return entries, more, nil
}

// LastAuditID is the highest id in the audit log (0 when it is empty):
// where following it starts.
func (db *DB) LastAuditID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM audit_log`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read audit log: %w", err)
	}
	return id, nil
}

// AuditAfter is one entry of AuditSince: every entry is listed, with
// whether the filter matches it, so the caller can tell an id it has not
// seen yet (a transaction still to commit) from one the filter left out.
type AuditAfter struct {
	Entry   ExportedEntry
	Matches bool
}

// AuditSince returns every entry whose id is above after, in id order, at
// most limit, each marked with whether f matches it. Ids come from one
// sequence in the order appends began, so an entry whose transaction
// commits late appears below ids already returned.
func (db *DB) AuditSince(ctx context.Context, f AuditFilter, after int64, limit int) ([]AuditAfter, error) {
	where, args := f.where(3)
	rows, err := db.pool.Query(ctx, `SELECT `+auditColumns+`, coalesce(`+where+`, false) FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`,
		append([]any{after, limit}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditAfter, error) {
		var a AuditAfter
		var detail []byte
		err := row.Scan(&a.Entry.ID, &a.Entry.At, &a.Entry.Actor, &a.Entry.Policy, &a.Entry.Rotation, &a.Entry.Action, &detail, &a.Matches)
		a.Entry.At = a.Entry.At.UTC()
		a.Entry.Detail = detail
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// ReadRecord is one row of credential_reads: who (an API token) read which
// version of a policy's credential, under which lease, when first and last,
// and how often. Never a value.
type ReadRecord struct {
	Reader  string    `json:"reader"`
	Policy  string    `json:"policy"`
	Version string    `json:"version"`
	Lease   string    `json:"lease,omitempty"`
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
	Count   int64     `json:"count"`
}

// ReadFilter narrows CredentialReads. Readers are token names, with or
// without "token:". A read matches Since/Until when its span of reads
// [first, last] overlaps [Since, Until).
type ReadFilter struct {
	Policies []string
	Readers  []string
	Since    time.Time
	Until    time.Time
}

// CredentialReads returns the recorded credential reads f matches, oldest
// first read first; at most limit (0: all), the newest ones, and whether
// there were more.
func (db *DB) CredentialReads(ctx context.Context, f ReadFilter, limit int) ([]ReadRecord, bool, error) {
	readers := make([]string, len(f.Readers))
	for i, r := range f.Readers {
		readers[i] = strings.TrimPrefix(r, "token:")
	}
	sql := `SELECT 'token:' || t.name, r.policy, r.version, r.lease, r.first_at, r.last_at, r.count
		FROM credential_reads r JOIN tokens t ON t.id = r.token_id
		WHERE (cardinality($1::text[]) = 0 OR r.policy = ANY($1))
		  AND (cardinality($2::text[]) = 0 OR t.name = ANY($2))
		  AND ($3::timestamptz IS NULL OR r.last_at >= $3)
		  AND ($4::timestamptz IS NULL OR r.first_at < $4)
		ORDER BY r.first_at DESC, t.name DESC, r.policy DESC, r.version DESC`
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit+1)
	}
	rows, err := db.pool.Query(ctx, sql, nonNil(f.Policies), readers, nullTime(f.Since), nullTime(f.Until))
	if err != nil {
		return nil, false, fmt.Errorf("read credential reads: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReadRecord, error) {
		var r ReadRecord
		err := row.Scan(&r.Reader, &r.Policy, &r.Version, &r.Lease, &r.FirstAt, &r.LastAt, &r.Count)
		r.FirstAt, r.LastAt = r.FirstAt.UTC(), r.LastAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read credential reads: %w", err)
	}
	more := limit > 0 && len(out) > limit
	if more {
		out = out[:limit]
	}
	slices.Reverse(out)
	return out, more, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
