package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// querier is a connection (or a transaction).
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// adminSession is one connection of the admin pool.
type adminSession interface {
	querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// policyRoles are the roles a policy of strategy manages: the ones it
// changes, and alternating's group, which both login roles are members of.
func (t *Target) policyRoles(strategy targets.Strategy) []string {
	if strategy == targets.Alternating {
		return []string{t.opts.Username, t.opts.AlternateUsername, t.opts.GroupRole}
	}
	return []string{t.opts.Username}
}

// factsSQL reads, in one round trip, what a change to a role must know
// first. $1 are the policy's roles (policyRoles), $2 the role to change, $3
// the group role (” when there is none). Its one row holds:
//   - session_user: the role the connection logs in as;
//   - whether $2 exists, and whether it may log in;
//   - whether $3 exists, whether $2 is a member of it, and whether $2's
//     sessions already act as it (ALTER ROLE $2 SET role = $3, in every
//     database: PostgreSQL keeps it as "role=NAME" in rolconfig);
//   - for the roles in $1 that exist, the first role with a privileged
//     attribute among them and the roles they are members of, directly or
//     not (the policy's roles in order, each before its groups), or NULLs.
//
// Each step of the recursion looks up the memberships of the roles it
// reached, and those groups' attributes, by index (OFFSET 0 keeps the
// LATERAL subqueries from being flattened into joins the planner may hash):
// otherwise PostgreSQL read every membership of the server at every depth,
// and every role to find the privileged ones, 3 ms a call on a server with
// 4,500 roles and 3,000 memberships, twice a rotation.
const factsSQL = `WITH RECURSIVE held(role, oid, depth, holder, rolsuper, rolcreaterole, rolreplication, rolbypassrls) AS (
	SELECT rolname::text, oid, 0, rolname::text, rolsuper, rolcreaterole, rolreplication, rolbypassrls
	FROM pg_roles WHERE rolname = ANY($1::text[])
	UNION
	SELECT h.role, g.oid, h.depth + 1, g.rolname::text, g.rolsuper, g.rolcreaterole, g.rolreplication, g.rolbypassrls
	FROM held h
	CROSS JOIN LATERAL (SELECT m.roleid FROM pg_auth_members m WHERE m.member = h.oid OFFSET 0) m
	CROSS JOIN LATERAL (SELECT r.oid, r.rolname, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls
		FROM pg_roles r WHERE r.oid = m.roleid OFFSET 0) g
), first_privileged AS (
	SELECT role, holder, rolsuper, rolcreaterole, rolreplication, rolbypassrls
	FROM held
	WHERE rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls
	ORDER BY array_position($1::text[], role), depth, holder
	LIMIT 1
)
SELECT session_user::text,
	r.oid IS NOT NULL,
	coalesce(r.rolcanlogin, false),
	EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3),
	EXISTS (SELECT 1 FROM pg_auth_members m
		JOIN pg_roles g ON g.oid = m.roleid
		WHERE g.rolname = $3 AND m.member = r.oid),
	coalesce(('role=' || $3) = ANY(r.rolconfig), false),
	p.role, p.holder,
	coalesce(p.rolsuper, false), coalesce(p.rolcreaterole, false),
	coalesce(p.rolreplication, false), coalesce(p.rolbypassrls, false)
FROM (VALUES (1)) AS one(x)
LEFT JOIN pg_roles r ON r.rolname = $2
LEFT JOIN first_privileged p ON true`

// roleFacts is what factsSQL read.
type roleFacts struct {
	// sessionUser is the role the connection logs in as.
	sessionUser string
	// exists and canLogin are of the role to change.
	exists, canLogin bool
	// groupExists and member are of the group role, and of the role's
	// membership in it; actsAsGroup says the role's sessions switch to the
	// group at login (SET role). All false without a group.
	groupExists, member, actsAsGroup bool
	// privileged is the refusal the policy's roles call for; nil when
	// none of them is privileged.
	privileged *PrivilegedRoleError
}

// readFacts reads the facts of role (and of group, "" for none) for a
// policy of strategy, on the connection that then changes
// the role. One query does it: every round trip here is paid by every
// rotation.
func (t *Target) readFacts(ctx context.Context, q querier, strategy targets.Strategy, role, group string) (roleFacts, error) {
	var f roleFacts
	var privRole, holder *string
	var super, createRole, replication, bypassRLS bool
	err := q.QueryRow(ctx, factsSQL, t.policyRoles(strategy), role, group).Scan(&f.sessionUser, &f.exists, &f.canLogin,
		&f.groupExists, &f.member, &f.actsAsGroup, &privRole, &holder, &super, &createRole, &replication, &bypassRLS)
	if err != nil {
		return roleFacts{}, fmt.Errorf("read the attributes of the policy's roles: %w", err)
	}
	if privRole != nil && holder != nil {
		e := &PrivilegedRoleError{Role: *privRole, Holder: *holder}
		for _, a := range []struct {
			has  bool
			name string
		}{{super, "SUPERUSER"}, {createRole, "CREATEROLE"}, {replication, "REPLICATION"}, {bypassRLS, "BYPASSRLS"}} {
			if a.has {
				e.Attributes = append(e.Attributes, a.name)
			}
		}
		f.privileged = e
	}
	return f, nil
}

// refusal returns a *PrivilegedRoleError when a role of the policy
// (policyRoles) is privileged, or, when the facts were read on the admin
// connection (asAdmin), is the role it logs in as; nil when the change may
// go ahead, or when Options.AllowPrivileged says to go ahead anyway. The
// facts come from pg_roles and pg_auth_members, which every role may read,
// so the single strategy without an admin checks on the role's own login.
//
// Callers read the facts on the connection that then changes the role,
// right before the change. A transaction around both would hold nothing
// steadier: under PostgreSQL's default read committed isolation each
// statement sees what was committed when it began.
func (t *Target) refusal(f roleFacts, strategy targets.Strategy, asAdmin bool) error {
	if t.opts.AllowPrivileged {
		return nil
	}
	if asAdmin && slices.Contains(t.policyRoles(strategy), f.sessionUser) {
		return &PrivilegedRoleError{Role: f.sessionUser, Admin: true}
	}
	if f.privileged != nil {
		return f.privileged
	}
	return nil
}

// refusePrivileged reads the facts and returns their refusal, for callers
// that need nothing else of them.
func (t *Target) refusePrivileged(ctx context.Context, q querier, strategy targets.Strategy, asAdmin bool) error {
	if t.opts.AllowPrivileged {
		return nil
	}
	f, err := t.readFacts(ctx, q, strategy, "", "")
	if err != nil {
		return err
	}
	return t.refusal(f, strategy, asAdmin)
}

// checkPrivileges is Create's privilege check, before anything changes:
// refusePrivileged on the admin connection or, for single without one,
// logged in with the current credential cur.
func (t *Target) checkPrivileges(ctx context.Context, strategy targets.Strategy, cur Document) error {
	if t.opts.AllowPrivileged {
		return nil
	}
	if !t.opts.Admin.IsZero() {
		// One query, so no transaction: it changes nothing.
		return t.adminConn(ctx, func(conn adminSession) error {
			return t.refusePrivileged(ctx, conn, strategy, true)
		})
	}
	conn, err := t.login(ctx, cur.Username, cur.Password)
	if err != nil {
		return fmt.Errorf("log in with the current credential to read the role's attributes: %w", err)
	}
	defer closeConn(ctx, conn)
	return t.refusePrivileged(ctx, conn, strategy, false)
}
