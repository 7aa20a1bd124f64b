package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// exec runs statements as the test server's superuser.
func (s *system) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		_, err := s.db.Pool.Exec(context.Background(), q)
		require.NoError(t, err, q)
	}
}

// extraRole creates a role of the test (dropped when it ends) with attrs.
func (s *system) extraRole(t *testing.T, prefix, attrs string) string {
	t.Helper()
	name := pgtest.RoleName(t, prefix)
	t.Cleanup(func() { dropRoles(t, s.db, name) })
	s.exec(t, "CREATE ROLE "+ident(name)+" "+attrs)
	return name
}

// roleExists reads whether role exists.
func (s *system) roleExists(t *testing.T, role string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, s.db.Pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists))
	return exists
}

// requirePrivileged checks that err is the refusal of want, named in its
// text with its attributes and what to do.
func requirePrivileged(t *testing.T, err error, want postgres.PrivilegedRoleError) {
	t.Helper()
	var pe *postgres.PrivilegedRoleError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, want, *pe)
	require.ErrorContains(t, err, fmt.Sprintf("role %q", want.Role))
	for _, a := range want.Attributes {
		require.ErrorContains(t, err, a)
	}
	require.ErrorContains(t, err, "set allow_privileged: true in the policy")
}

// TestPrivilegedRolesAreRefused: a policy whose role has SUPERUSER,
// CREATEROLE, REPLICATION or BYPASSRLS, or is a member (through another
// role) of one that has, is refused at create, naming the role and the
// attribute, with nothing changed; Apply refuses too. With
// allow_privileged the same policy rotates.
func TestPrivilegedRolesAreRefused(t *testing.T) {
	t.Parallel()
	type refusal = postgres.PrivilegedRoleError
	cases := []struct {
		name     string
		strategy targets.Strategy
		// setup makes a role of s privileged and says what the refusal names.
		setup func(t *testing.T, s *system) refusal
	}{
		{"superuser", targets.Single, func(t *testing.T, s *system) refusal {
			s.exec(t, "ALTER ROLE "+s.userSQL+" SUPERUSER")
			return refusal{Role: s.user, Holder: s.user, Attributes: []string{"SUPERUSER"}}
		}},
		{"createrole", targets.Single, func(t *testing.T, s *system) refusal {
			s.exec(t, "ALTER ROLE "+s.userSQL+" CREATEROLE")
			return refusal{Role: s.user, Holder: s.user, Attributes: []string{"CREATEROLE"}}
		}},
		{"replication", targets.Single, func(t *testing.T, s *system) refusal {
			s.exec(t, "ALTER ROLE "+s.userSQL+" REPLICATION")
			return refusal{Role: s.user, Holder: s.user, Attributes: []string{"REPLICATION"}}
		}},
		{"bypassrls and createrole", targets.Single, func(t *testing.T, s *system) refusal {
			s.exec(t, "ALTER ROLE "+s.userSQL+" BYPASSRLS CREATEROLE")
			return refusal{Role: s.user, Holder: s.user, Attributes: []string{"CREATEROLE", "BYPASSRLS"}}
		}},
		{"member of a privileged role through another", targets.Single, func(t *testing.T, s *system) refusal {
			top := s.extraRole(t, "ops_admin", "NOLOGIN CREATEROLE")
			mid := s.extraRole(t, "ops", "NOLOGIN")
			s.exec(t, "GRANT "+ident(top)+" TO "+ident(mid), "GRANT "+ident(mid)+" TO "+s.userSQL)
			return refusal{Role: s.user, Holder: top, Attributes: []string{"CREATEROLE"}}
		}},
		{"group role", targets.Alternating, func(t *testing.T, s *system) refusal {
			s.exec(t, "ALTER ROLE "+s.groupSQL+" BYPASSRLS")
			return refusal{Role: s.group, Holder: s.group, Attributes: []string{"BYPASSRLS"}}
		}},
		{"group role member of a superuser role", targets.Alternating, func(t *testing.T, s *system) refusal {
			top := s.extraRole(t, "root_like", "NOLOGIN SUPERUSER")
			s.exec(t, "GRANT "+ident(top)+" TO "+s.groupSQL)
			return refusal{Role: s.group, Holder: top, Attributes: []string{"SUPERUSER"}}
		}},
		{"alternate role", targets.Alternating, func(t *testing.T, s *system) refusal {
			// The first rotation changes username, but the next would change
			// alternate_username: the policy is refused as a whole.
			s.exec(t, "CREATE ROLE "+s.altSQL+" LOGIN REPLICATION")
			return refusal{Role: s.alt, Holder: s.alt, Attributes: []string{"REPLICATION"}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newSystem(t, plainNames, c.strategy)
			want := c.setup(t, s)
			opts := s.options()
			tg := newTarget(t, opts)
			userExisted := s.roleExists(t, s.user)
			before := ""
			if userExisted {
				before = s.rolpassword(t, s.user)
			}

			_, err := tg.Create(ctx, targets.CreateRequest{Strategy: c.strategy, Password: newPassword(t)})
			requirePrivileged(t, err, want)
			require.ErrorContains(t, err, "postgres target: create: ")

			doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: s.user, Password: newPassword(t)}.Secret()
			require.NoError(t, err)
			err = tg.Apply(ctx, targets.ApplyRequest{Strategy: c.strategy, Pending: doc})
			requirePrivileged(t, err, want)
			require.Equal(t, userExisted, s.roleExists(t, s.user), "Apply created no role")
			if userExisted {
				require.Equal(t, before, s.rolpassword(t, s.user), "the password did not change")
			}

			opts.AllowPrivileged = true
			r := &rotator{t: t, tg: newTarget(t, opts), strategy: c.strategy}
			r.rotate()
			r.rotate()
			require.NoError(t, r.verify(r.current, true))
		})
	}
}

// TestAdminOwnRoleIsRefused: a policy whose role is the one the admin
// credential logs in as is refused, before anything changes.
func TestAdminOwnRoleIsRefused(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, plainNames, strategy)
			// The admin logs in as username (single) or alternate_username
			// (alternating), over TCP with SCRAM.
			adminRole := s.user
			if strategy == targets.Alternating {
				adminRole = s.alt
				s.exec(t, "CREATE ROLE "+s.altSQL+" LOGIN")
			}
			adminPW := randomWord(t)
			verifier, err := postgres.SCRAMVerifier(secret.FromString(adminPW))
			require.NoError(t, err)
			s.exec(t, "ALTER ROLE "+ident(adminRole)+" PASSWORD '"+verifier+"'")
			opts := s.options()
			opts.Admin = secret.FromString(fmt.Sprintf("postgres://%s:%s@%s:%d/%s", adminRole, adminPW, s.host, s.port, s.db.Name))
			tg := newTarget(t, opts)

			_, err = tg.Create(context.Background(), targets.CreateRequest{Strategy: strategy, Password: newPassword(t)})
			requirePrivileged(t, err, postgres.PrivilegedRoleError{Role: adminRole, Admin: true})
			require.ErrorContains(t, err, fmt.Sprintf("role %q is the role the admin credential logs in as", adminRole))
			require.NotContains(t, err.Error(), adminPW)
			require.Equal(t, verifier, s.rolpassword(t, adminRole), "nothing changed")
		})
	}
}

// TestSingleWithoutAdminRefusesPrivilegedRole: without an admin the role
// reads its own attributes, logged in with the current password, and
// refuses to change its password.
func TestSingleWithoutAdminRefusesPrivilegedRole(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	bootstrap := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Single}
	current := bootstrap.rotate()
	s.exec(t, "ALTER ROLE "+s.userSQL+" SUPERUSER")
	before := s.rolpassword(t, s.user)

	opts := s.options()
	opts.Admin = secret.Secret{}
	tg := newTarget(t, opts)
	want := postgres.PrivilegedRoleError{Role: s.user, Holder: s.user, Attributes: []string{"SUPERUSER"}}
	_, err := tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Single, Current: current, Password: newPassword(t)})
	requirePrivileged(t, err, want)

	doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: s.user, Password: newPassword(t)}.Secret()
	require.NoError(t, err)
	err = tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: doc, Current: current})
	requirePrivileged(t, err, want)
	require.Equal(t, before, s.rolpassword(t, s.user))
	require.NoError(t, tg.Verify(context.Background(), targets.VerifyRequest{Credential: current}))
}

// TestPrivilegeGainedDuringRotation: a role that becomes privileged after
// create is refused by every verb that would change it (Apply, Restore,
// Retire), on the transaction that would change it.
func TestPrivilegeGainedDuringRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("alternating", func(t *testing.T) {
		t.Parallel()
		s := newSystem(t, plainNames, targets.Alternating)
		opts := s.options()
		opts.RetireNoLogin = true
		r := &rotator{t: t, tg: newTarget(t, opts), strategy: targets.Alternating}
		r.rotate()
		r.rotate()
		resp, err := r.tg.Create(ctx, targets.CreateRequest{Strategy: targets.Alternating, Current: r.current, Password: newPassword(t)})
		require.NoError(t, err)
		s.exec(t, "ALTER ROLE "+s.groupSQL+" CREATEROLE")
		// The login roles exist now, members of the group: the first is named.
		want := postgres.PrivilegedRoleError{Role: s.user, Holder: s.group, Attributes: []string{"CREATEROLE"}}
		before := s.rolpassword(t, resp.Principal)

		requirePrivileged(t, r.tg.Apply(ctx, targets.ApplyRequest{Strategy: targets.Alternating, Pending: resp.Pending, Current: r.current}), want)
		require.Equal(t, before, s.rolpassword(t, resp.Principal))
		// Restore without a previous would give the role a password nobody
		// knows and NOLOGIN.
		requirePrivileged(t, r.tg.Restore(ctx, targets.RestoreRequest{Strategy: targets.Alternating, Pending: resp.Pending, Current: r.current}), want)
		require.True(t, s.roleCanLogin(t, resp.Principal))
		require.Equal(t, before, s.rolpassword(t, resp.Principal))
		// Retire would set the previous role NOLOGIN.
		requirePrivileged(t, r.retire(), want)
		require.NoError(t, r.verify(r.previous, false))
	})

	t.Run("single", func(t *testing.T) {
		t.Parallel()
		s := newSystem(t, plainNames, targets.Single)
		r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Single}
		r.rotate()
		resp, err := r.tg.Create(ctx, targets.CreateRequest{Strategy: targets.Single, Current: r.current, Password: newPassword(t)})
		require.NoError(t, err)
		s.exec(t, "ALTER ROLE "+s.userSQL+" BYPASSRLS")
		want := postgres.PrivilegedRoleError{Role: s.user, Holder: s.user, Attributes: []string{"BYPASSRLS"}}
		before := s.rolpassword(t, s.user)

		requirePrivileged(t, r.tg.Apply(ctx, targets.ApplyRequest{Strategy: targets.Single, Pending: resp.Pending, Current: r.current}), want)
		require.Equal(t, before, s.rolpassword(t, s.user))
		require.NoError(t, r.verify(r.current, true))
	})
}

// TestFactsReadByIndexOnABigCatalog: the query every create and set starts
// with (the role, its group, and the privileged roles it holds, through any
// depth of membership) looks roles and memberships up by index on a server
// with thousands of them, as an emergency rotation of a thousand policies
// makes. Before, each step of the recursion read every membership of the
// server and the privilege check every role: 3 ms a call with 4,500 roles
// and 3,000 memberships, against 0.5 ms.
func TestFactsReadByIndexOnABigCatalog(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	prefix := pgtest.RoleName(t, "facts")
	const groups = 1500
	t.Cleanup(func() {
		_, err := db.Pool.Exec(context.Background(), fmt.Sprintf(`DO $$ BEGIN
			FOR i IN 1..%d LOOP
				EXECUTE format('DROP ROLE IF EXISTS %%I, %%I, %%I', '%[2]s_r' || i, '%[2]s_r' || i || '_b', '%[2]s_g' || i);
			END LOOP;
			DROP ROLE IF EXISTS %[2]s_sup;
		END $$`, groups, prefix))
		require.NoError(t, err)
	})
	_, err := db.Pool.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 1..%d LOOP
			EXECUTE format('CREATE ROLE %%I LOGIN', '%[2]s_r' || i);
			EXECUTE format('CREATE ROLE %%I LOGIN', '%[2]s_r' || i || '_b');
			EXECUTE format('CREATE ROLE %%I', '%[2]s_g' || i);
			EXECUTE format('GRANT %%I TO %%I, %%I', '%[2]s_g' || i, '%[2]s_r' || i, '%[2]s_r' || i || '_b');
			IF i <> 77 THEN
				-- As alternating leaves its roles: acting as the group.
				EXECUTE format('ALTER ROLE %%I SET role = %%I', '%[2]s_r' || i, '%[2]s_g' || i);
				EXECUTE format('ALTER ROLE %%I SET role = %%I', '%[2]s_r' || i || '_b', '%[2]s_g' || i);
			END IF;
		END LOOP;
		CREATE ROLE %[2]s_sup SUPERUSER;
		GRANT %[2]s_sup TO %[2]s_g77;
	END $$`, groups, prefix))
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `ANALYZE pg_authid, pg_auth_members, pg_db_role_setting`)
	require.NoError(t, err)

	role, alternate, group := prefix+"_r77", prefix+"_r77_b", prefix+"_g77"
	// The names are the test's own: letters, digits and underscores.
	plan := pgtest.PreparedPlan(t, ctx, db.Pool, "auto", postgres.FactsSQL, "text[], text, text",
		fmt.Sprintf(`ARRAY['%s', '%s', '%s'], '%s', '%s'`, role, alternate, group, role, group))
	require.NotContains(t, plan, `"Seq Scan"`, "the query reads the whole catalog")
	// Admin connections plan it once, generically (planFactsOnceByIndex):
	// that plan must read by index too.
	plan = pgtest.PreparedPlan(t, ctx, db.Pool, "force_generic_plan", postgres.FactsSQL, "text[], text, text",
		fmt.Sprintf(`ARRAY['%s', '%s', '%s'], '%s', '%s'`, role, alternate, group, role, group))
	require.NotContains(t, plan, `"Seq Scan"`, "the generic plan reads the whole catalog")

	// And it still finds the superuser two memberships away, through the
	// group, after the policy's own roles.
	var (
		session                                   string
		exists, canLogin, groupExists, member     bool
		actsAsGroup                               bool
		heldBy, holder                            *string
		super, createRole, replication, bypassRLS bool
	)
	require.NoError(t, db.Pool.QueryRow(ctx, postgres.FactsSQL, []string{role, alternate, group}, role, group).
		Scan(&session, &exists, &canLogin, &groupExists, &member, &actsAsGroup, &heldBy, &holder, &super, &createRole, &replication, &bypassRLS))
	require.True(t, exists && canLogin && groupExists && member)
	require.False(t, actsAsGroup, "nobody made the role act as the group")
	require.NotNil(t, holder)
	require.Equal(t, role, *heldBy)
	require.Equal(t, prefix+"_sup", *holder)
	require.True(t, super)
}

// An admin connection plans the facts query once and reuses the plan, and
// that plan reads the catalogs by index even where PostgreSQL would rather
// scan them: on this test server's small catalog, or on one without
// statistics. PostgreSQL judged the generic plan dearer and planned every
// call anew, 0.75 ms of the server's CPU for a 0.1 ms execution, twice a
// rotation; and without statistics it read every membership at each step.
func TestAdminConnectionsPlanTheFactsOnceByIndex(t *testing.T) {
	t.Parallel()
	s := newSystem(t, roleNames{user: "facts_plan", alt: "facts_plan_b", group: "facts_plan_g"}, targets.Alternating)
	tg := newTarget(t, s.options())
	generic, custom, plan, err := postgres.FactsPlans(context.Background(), tg, targets.Alternating, 8)
	require.NoError(t, err)
	require.Zero(t, custom, "the admin session planned the facts query for a call's values")
	require.Positive(t, generic)
	require.NotContains(t, plan, `"Seq Scan"`, "the admin session's plan scans a catalog")
	require.Contains(t, plan, `"Index Scan"`)
}
