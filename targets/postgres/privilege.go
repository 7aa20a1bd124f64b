package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/targets"
)

// PrivilegedRoleError refuses to rotate a role that is more than a load
// test's login (see Options.AllowPrivileged). It names roles and
// attributes, never a password.
type PrivilegedRoleError struct {
	// Role is the policy's role: Username, AlternateUsername or GroupRole.
	Role string
	// Holder is the role that has Attributes: Role itself, or a role that
	// Role is a member of, directly or through other roles (a member may
	// SET ROLE to it).
	Holder string
	// Attributes are those of SUPERUSER, CREATEROLE, REPLICATION and
	// BYPASSRLS that Holder has.
	Attributes []string
	// Admin is set, instead of Holder and Attributes, when Role is the role
	// the admin credential logs in as.
	Admin bool
}

func (e *PrivilegedRoleError) Error() string {
	var what string
	switch {
	case e.Admin:
		what = fmt.Sprintf("role %q is the role the admin credential logs in as", e.Role)
	case e.Holder == e.Role:
		what = fmt.Sprintf("role %q has %s", e.Role, strings.Join(e.Attributes, ", "))
	default:
		what = fmt.Sprintf("role %q is a member of %q, which has %s", e.Role, e.Holder, strings.Join(e.Attributes, ", "))
	}
	return what + ": swarmkey does not rotate a role with SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS (or a member of one), " +
		"nor the admin's own role; give the policy a role without them, or set allow_privileged: true in the policy to rotate it anyway"
}

// querier is a transaction or a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// policyRoles are the roles a policy of strategy manages: the ones it
// changes, and alternating's group, which both login roles are members of.
func (t *Target) policyRoles(strategy targets.Strategy) []string {
	if strategy == targets.Alternating {
		return []string{t.opts.Username, t.opts.AlternateUsername, t.opts.GroupRole}
	}
	return []string{t.opts.Username}
}

// privilegedSQL finds, for the roles in $1 that exist, the first role with
// a privileged attribute among them and the roles they are members of,
// directly or not: the policy's roles in order, each before its groups.
const privilegedSQL = `WITH RECURSIVE held(role, oid, depth) AS (
	SELECT rolname::text, oid, 0 FROM pg_roles WHERE rolname = ANY($1::text[])
	UNION
	SELECT h.role, m.roleid, h.depth + 1 FROM pg_auth_members m JOIN held h ON m.member = h.oid
)
SELECT h.role, r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls
FROM held h JOIN pg_roles r ON r.oid = h.oid
WHERE r.rolsuper OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls
ORDER BY array_position($1::text[], h.role), h.depth, r.rolname
LIMIT 1`

// refusePrivileged returns a *PrivilegedRoleError when a role of the policy
// (policyRoles) is privileged, or, when q is the admin connection (asAdmin),
// is the role it logs in as. It reads pg_roles and pg_auth_members, which
// every role may read, so the single strategy without an admin checks on
// the role's own login. Callers run it on the transaction or session that
// then changes a role, so nothing changes in between.
func (t *Target) refusePrivileged(ctx context.Context, q querier, strategy targets.Strategy, asAdmin bool) error {
	if t.opts.AllowPrivileged {
		return nil
	}
	roles := t.policyRoles(strategy)
	if asAdmin {
		var login string
		if err := q.QueryRow(ctx, "SELECT session_user::text").Scan(&login); err != nil {
			return fmt.Errorf("read the admin credential's role: %w", err)
		}
		if slices.Contains(roles, login) {
			return &PrivilegedRoleError{Role: login, Admin: true}
		}
	}
	var e PrivilegedRoleError
	var super, createRole, replication, bypassRLS bool
	err := q.QueryRow(ctx, privilegedSQL, roles).Scan(&e.Role, &e.Holder, &super, &createRole, &replication, &bypassRLS)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the attributes of the policy's roles: %w", err)
	}
	for _, a := range []struct {
		has  bool
		name string
	}{{super, "SUPERUSER"}, {createRole, "CREATEROLE"}, {replication, "REPLICATION"}, {bypassRLS, "BYPASSRLS"}} {
		if a.has {
			e.Attributes = append(e.Attributes, a.name)
		}
	}
	return &e
}

// checkPrivileges is Create's privilege check, before anything changes:
// refusePrivileged on the admin connection or, for single without one,
// logged in with the current credential cur.
func (t *Target) checkPrivileges(ctx context.Context, strategy targets.Strategy, cur Document) error {
	if t.opts.AllowPrivileged {
		return nil
	}
	if !t.opts.Admin.IsZero() {
		return t.adminTx(ctx, func(tx pgx.Tx) error {
			return t.refusePrivileged(ctx, tx, strategy, true)
		})
	}
	conn, err := t.login(ctx, cur.Username, cur.Password)
	if err != nil {
		return fmt.Errorf("log in with the current credential to read the role's attributes: %w", err)
	}
	defer closeConn(ctx, conn)
	return t.refusePrivileged(ctx, conn, strategy, false)
}
