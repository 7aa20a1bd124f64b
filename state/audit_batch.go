package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AppendAudits appends entries in one statement: all of them, in order, or
// none. It is for a short-lived process that appends a few entries once, as
// `swarmkey exec` does when it audits its reads before the child starts, and
// costs it one round trip: the month's partition is made sure of only when
// the insert finds none (then swarmkey_ensure_audit_partition, and the insert
// again), where AppendAudit makes sure of it first, once per DB and month. In
// a fresh session that call is most of the work of an append (a PL/pgSQL
// function and the partitions' bounds read from the catalog), and the
// partition is nearly always there: the daemon makes each a month ahead. The
// entries share one time, the DB's clock at the call.
func (db *DB) AppendAudits(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	actors, policies, rotations, actions, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range entries {
		d, err := auditDetail(e)
		if err != nil {
			return err
		}
		actors[i], policies[i], rotations[i], actions[i], details[i] = e.Actor, e.Policy, e.Rotation, e.Action, string(d)
	}
	now := db.now()
	insert := func() error {
		// QueryExecModeExec sends the statement with its arguments in one
		// round trip (no prepare first): every argument is a text[] or a
		// timestamptz, whose types pgx knows without asking the server.
		_, err := db.pool.Exec(ctx, `
			INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
			SELECT $1, e.actor, nullif(e.policy, ''), nullif(e.rotation, '')::uuid, e.action, e.detail::jsonb
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
				WITH ORDINALITY AS e(actor, policy, rotation, action, detail, n)
			ORDER BY e.n`,
			pgx.QueryExecModeExec, now, actors, policies, rotations, actions, details)
		return err
	}
	err := insert()
	if isMissingAuditPartition(err) {
		if _, err = db.pool.Exec(ctx, `SELECT swarmkey_ensure_audit_partition($1)`, now); err != nil {
			return fmt.Errorf("audit log: make the partition of %s (has `swarmkey migrate` run?): %w", now.UTC().Format("2006-01"), err)
		}
		err = insert()
	}
	if err != nil {
		return fmt.Errorf("audit %d entries (%s of policy %q first): %w", n, entries[0].Action, entries[0].Policy, err)
	}
	return nil
}

// isMissingAuditPartition reports whether err is PostgreSQL's refusal of a
// row of audit_log that no partition holds.
func isMissingAuditPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.TableName == "audit_log"
}
