package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/targettest"
	"github.com/swarmkey/swarmkey/validation"
)

var strategies = []targets.Strategy{targets.Alternating, targets.Single}

func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness(plainNames))
}

// TestConformanceQuotedIdentifiers runs the whole suite with a quote, a
// space and capitals in every role name (and in the canary's table name).
func TestConformanceQuotedIdentifiers(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness(quotedNames))
}

func TestQuotedIdentifiersAreKeptExactly(t *testing.T) {
	t.Parallel()
	s := newSystem(t, quotedNames, targets.Alternating)
	r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Alternating}
	r.rotate()
	r.rotate()

	rows, err := s.db.Pool.Query(context.Background(),
		"SELECT rolname FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname", []string{s.user, s.alt})
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{s.user, s.alt}, names)
	require.Contains(t, s.user, `"`)
	require.Contains(t, s.user, ` `)
}

// TestSCRAMVerifierLogsInOverTCP proves the client-side verifier with a
// login over TCP on 127.0.0.1 (SCRAM), not the superuser's unix socket
// (trust).
func TestSCRAMVerifierLogsInOverTCP(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, plainNames, strategy)
			r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: strategy}
			doc, err := postgres.ParseDocument(r.rotate())
			require.NoError(t, err)

			stored := s.rolpassword(t, doc.Username)
			require.Regexp(t, `^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$`, stored)

			conn, err := s.loginTCP(t, doc.Username, doc.Password.RevealString())
			require.NoError(t, err)
			defer conn.Close(context.Background())
			var addr *string
			require.NoError(t, conn.QueryRow(context.Background(), "SELECT host(inet_client_addr())").Scan(&addr))
			require.NotNil(t, addr, "the login must be over TCP")
			require.Equal(t, "127.0.0.1", *addr)

			// The same login with a wrong password is refused: SCRAM is enforced.
			_, err = s.loginTCP(t, doc.Username, doc.Password.RevealString()+"x")
			require.Error(t, err)
			require.Equal(t, "28P01", sqlState(err), "invalid_password")
		})
	}
}

// TestNoPasswordInServerLog rotates with every path that sets a password
// (alternating, single as admin, single without admin, restores) on a server
// that logs every statement, then searches the whole log.
func TestNoPasswordInServerLog(t *testing.T) {
	t.Parallel()
	logPath := pgtest.ServerLog(t)
	var passwords []string
	var roles []string

	for _, strategy := range strategies {
		s := newSystem(t, plainNames, strategy)
		roles = append(roles, s.user)
		r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: strategy}
		for range 3 {
			r.rotate()
		}
		require.NoError(t, r.restore(r.createApply()))
		if strategy == targets.Single {
			// The role changes its own password, logging in with the current one.
			opts := s.options()
			opts.Admin = secret.Secret{}
			self := &rotator{t: t, tg: newTarget(t, opts), strategy: strategy, current: r.current}
			self.rotate()
			self.rotate()
			require.NoError(t, self.restore(self.createApply()))
			passwords = append(passwords, self.passwords...)
		}
		passwords = append(passwords, r.passwords...)
	}
	require.NotEmpty(t, passwords)

	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	text := string(log)
	// The log must hold our statements, or the search below proves nothing.
	for _, role := range roles {
		require.Contains(t, text, `ALTER ROLE "`+role+`"`, "log_statement = all should log the set step")
	}
	require.Contains(t, text, `PASSWORD 'SCRAM-SHA-256$4096:`)
	requireNoneIn(t, text, passwords)
}

// TestCanaryWithoutGrantFailsVerify: the canary runs as the new credential,
// so a query on a table it has no grant on fails Verify with Canary, and
// only then.
func TestCanaryWithoutGrantFailsVerify(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, plainNames, strategy)
			opts := s.options()
			opts.CanaryQuery = "SELECT * FROM " + s.hiddenSQL
			r := &rotator{t: t, tg: newTarget(t, opts), strategy: strategy}
			pending := r.createApply()
			doc, err := postgres.ParseDocument(pending)
			require.NoError(t, err)

			require.NoError(t, r.verify(pending, false), "without Canary only the login is checked")
			err = r.verify(pending, true)
			require.Error(t, err)
			require.Contains(t, err.Error(), fmt.Sprintf("postgres role %q: verify: canary query", doc.Username))
			require.Contains(t, err.Error(), "permission denied")
			require.Equal(t, "42501", sqlState(err), "insufficient_privilege, reachable with errors.As")
			requireNoneIn(t, err.Error(), r.passwords)
		})
	}
}

// TestVerifyErrorNamesRoleNotPassword checks the message of a failed login.
func TestVerifyErrorNamesRoleNotPassword(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	tg := newTarget(t, s.options())
	pw := newPassword(t)
	doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: s.user, Password: pw}.Secret()
	require.NoError(t, err)
	err = tg.Verify(context.Background(), targets.VerifyRequest{Credential: doc})
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("postgres role %q: verify: log in", s.user))
	require.Contains(t, err.Error(), "password authentication failed")
	require.NotContains(t, err.Error(), pw.RevealString())
	require.NotContains(t, fmt.Sprintf("%+v %#v", err, err), pw.RevealString())
}

// TestSingleWithoutAdmin: the role changes its own password, logging in
// with the current one; Restore logs in with the pending one.
func TestSingleWithoutAdmin(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	// The first password comes from an admin: without one there is nothing
	// to log in with.
	bootstrap := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Single}
	first := bootstrap.rotate()

	opts := s.options()
	opts.Admin = secret.Secret{}
	tg := newTarget(t, opts)
	r := &rotator{t: t, tg: tg, strategy: targets.Single, current: first}

	second := r.rotate()
	require.Error(t, r.verify(first, false), "the old password stops working")
	third := r.rotate()
	require.Error(t, r.verify(second, false))
	require.NoError(t, r.verify(third, true))

	// A retried Apply is a no-op; Restore puts the current password back.
	pending := r.createApply()
	require.NoError(t, tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: pending, Current: r.current, Retry: true}))
	require.NoError(t, r.restore(pending))
	require.NoError(t, r.restore(pending), "Restore is idempotent")
	require.NoError(t, r.verify(r.current, true))
	require.Error(t, r.verify(pending, false))

	// Without a current credential there is nothing to log in with: Create
	// says so, before anything is written, and Apply would too.
	pw := newPassword(t)
	_, err := tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Single, Password: pw})
	var fe *postgres.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Admin", fe.Field)
	require.ErrorContains(t, err, "without Admin the single strategy changes the role's password by logging in with the current credential, and there is none")
	doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: s.user, Password: pw}.Secret()
	require.NoError(t, err)
	err = tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: doc})
	require.ErrorContains(t, err, "without Admin")

	// Alternating needs the admin connection.
	_, err = tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Alternating, Password: pw})
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Admin", fe.Field)
}

// TestAlternatingObjectsBelongToGroup: a table created by one login role is
// owned by the group, so the other login role can use it after the next
// rotation.
func TestAlternatingObjectsBelongToGroup(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Alternating)
	r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Alternating}
	first, err := postgres.ParseDocument(r.rotate())
	require.NoError(t, err)

	ctx := context.Background()
	conn, err := s.loginTCP(t, first.Username, first.Password.RevealString())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE "Made By Login" (id int)`)
	require.NoError(t, err)
	var sessionUser, currentUser string
	require.NoError(t, conn.QueryRow(ctx, "SELECT session_user, current_user").Scan(&sessionUser, &currentUser))
	require.NoError(t, conn.Close(ctx))
	require.Equal(t, first.Username, sessionUser)
	require.Equal(t, s.group, currentUser)

	var owner string
	require.NoError(t, s.db.Pool.QueryRow(ctx,
		"SELECT tableowner FROM pg_tables WHERE tablename = 'Made By Login'").Scan(&owner))
	require.Equal(t, s.group, owner)

	second, err := postgres.ParseDocument(r.rotate())
	require.NoError(t, err)
	require.NotEqual(t, first.Username, second.Username)
	conn, err = s.loginTCP(t, second.Username, second.Password.RevealString())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO "Made By Login" VALUES (1)`)
	require.NoError(t, err, "the other login role uses the group's table")
}

// TestRetireNoLogin: Retire sets the retired role NOLOGIN, never the current
// one, and the next Apply on it sets LOGIN again.
func TestRetireNoLogin(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Alternating)
	opts := s.options()
	opts.RetireNoLogin = true
	r := &rotator{t: t, tg: newTarget(t, opts), strategy: targets.Alternating}
	r.rotate()
	r.rotate()
	prev, err := postgres.ParseDocument(r.previous)
	require.NoError(t, err)
	require.NoError(t, r.verify(r.previous, false))

	require.NoError(t, r.retire())
	require.NoError(t, r.retire(), "Retire is idempotent")
	require.False(t, s.roleCanLogin(t, prev.Username))
	require.Error(t, r.verify(r.previous, false), "the retired credential no longer logs in")
	require.NoError(t, r.verify(r.current, true))

	// Retired naming the current role does nothing.
	require.NoError(t, r.tg.Retire(context.Background(), targets.RetireRequest{
		Strategy: targets.Alternating, Retired: r.current, Current: r.current,
	}))
	require.NoError(t, r.verify(r.current, true))

	// The next rotation lands on the retired role and makes it log in again.
	next, err := postgres.ParseDocument(r.rotate())
	require.NoError(t, err)
	require.Equal(t, prev.Username, next.Username)
	require.True(t, s.roleCanLogin(t, next.Username))

	// Without RetireNoLogin, Retire does nothing.
	opts.RetireNoLogin = false
	plain := &rotator{t: t, tg: newTarget(t, opts), strategy: targets.Alternating, current: r.current, previous: r.previous}
	require.NoError(t, plain.retire())
	require.NoError(t, plain.verify(plain.previous, false))
}

// TestApplyTwiceDoesNotWrite: a retried Apply sees that the pending
// credential logs in and leaves the stored verifier (with its random salt)
// untouched.
func TestApplyTwiceDoesNotWrite(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, plainNames, strategy)
			r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: strategy}
			pending := r.createApply()
			doc, err := postgres.ParseDocument(pending)
			require.NoError(t, err)
			before := s.rolpassword(t, doc.Username)
			require.NoError(t, r.tg.Apply(context.Background(), targets.ApplyRequest{Strategy: strategy, Pending: pending, Retry: true}))
			require.Equal(t, before, s.rolpassword(t, doc.Username))
		})
	}
}

// TestAlternatingRestoreWithoutPreviousDisablesRole: a failed role that no
// previous credential names ends NOLOGIN with an unknown password.
func TestAlternatingRestoreWithoutPreviousDisablesRole(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Alternating)
	r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Alternating}
	r.rotate()
	pending := r.createApply()
	doc, err := postgres.ParseDocument(pending)
	require.NoError(t, err)
	require.True(t, s.roleCanLogin(t, doc.Username))
	require.NoError(t, r.restore(pending))
	require.False(t, s.roleCanLogin(t, doc.Username))
	require.NoError(t, r.verify(r.current, true))

	// A restore whose pending names the current credential's role leaves
	// current working (here it already does: nothing changes).
	before := s.rolpassword(t, mustDoc(t, r.current).Username)
	require.NoError(t, r.tg.Restore(context.Background(), targets.RestoreRequest{
		Strategy: targets.Alternating, Pending: r.current, Current: r.current,
	}))
	require.NoError(t, r.verify(r.current, true))
	require.Equal(t, before, s.rolpassword(t, mustDoc(t, r.current).Username))
}

// TestAlternatingRestoreAfterCurrentRolledBack: another writer rolls
// current back to previous (the version that names the role set just
// changed) between create and the rollback. The restore must give that role
// current's password back, not refuse and leave current broken, and must
// leave the other role alone.
func TestAlternatingRestoreAfterCurrentRolledBack(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Alternating)
	r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Alternating}
	r.rotate()
	r.rotate()
	older, newer := r.previous, r.current
	pending := r.createApply() // on older's role: older no longer logs in
	require.Equal(t, mustDoc(t, older).Username, mustDoc(t, pending).Username)
	require.Error(t, r.verify(older, false))

	// The other writer's roll-back: current is older again.
	r.current, r.previous = older, newer
	require.NoError(t, r.restore(pending))
	require.NoError(t, r.verify(older, true), "current logs in after the restore")
	require.Error(t, r.verify(pending, false), "the failed credential no longer logs in")
	require.NoError(t, r.verify(newer, true), "the other role was left alone")
}

func mustDoc(t *testing.T, s secret.Secret) postgres.Document {
	t.Helper()
	d, err := postgres.ParseDocument(s)
	require.NoError(t, err)
	return d
}

func TestAlternatingNeedsTheGroupRole(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Alternating)
	opts := s.options()
	opts.GroupRole = pgtest.RoleName(t, `Missing "Group"`)
	r := &rotator{t: t, tg: newTarget(t, opts), strategy: targets.Alternating}
	resp, err := r.tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Alternating, Password: newPassword(t)})
	require.NoError(t, err)
	err = r.tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Alternating, Pending: resp.Pending})
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("group role %q (GroupRole) does not exist", opts.GroupRole))
	var exists bool
	require.NoError(t, s.db.Pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", s.user).Scan(&exists))
	require.False(t, exists, "the failed Apply created nothing")
}

func TestApplyRefusesForeignRoles(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	tg := newTarget(t, s.options())
	doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: "postgres", Password: newPassword(t)}.Secret()
	require.NoError(t, err)
	for _, strategy := range strategies {
		err := tg.Apply(context.Background(), targets.ApplyRequest{Strategy: strategy, Pending: doc})
		require.ErrorContains(t, err, `role "postgres" is not a role of this target`)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	tg, err := postgres.New(context.Background(), postgres.Options{
		Host: "db.internal", Port: 5433, DBName: "app", Username: "checkout", GroupRole: "checkout_group",
		Admin: secret.FromString("postgres://admin:hunter2@db.internal/app"),
		// Create reads the server only for the privilege check
		// (TestPrivilegedRolesAreRefused); without it, nothing is reached.
		AllowPrivileged: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tg.Close()) })
	ctx := context.Background()
	pw := secret.FromString("s3cret-Password")

	create := func(strategy targets.Strategy, current secret.Secret) (postgres.Document, string) {
		resp, err := tg.Create(ctx, targets.CreateRequest{Strategy: strategy, Current: current, Password: pw})
		require.NoError(t, err)
		doc, err := postgres.ParseDocument(resp.Pending)
		require.NoError(t, err)
		require.Equal(t, postgres.Document{Host: "db.internal", Port: 5433, DBName: "app", Username: resp.Principal, Password: pw}, doc)
		require.True(t, doc.Password.Equal(pw))
		return doc, resp.Principal
	}
	docOf := func(user string) secret.Secret {
		s, err := postgres.Document{Host: "db.internal", Port: 5433, DBName: "app", Username: user, Password: pw}.Secret()
		require.NoError(t, err)
		return s
	}

	_, p := create(targets.Single, secret.Secret{})
	require.Equal(t, "checkout", p)
	_, p = create(targets.Single, docOf("checkout"))
	require.Equal(t, "checkout", p)
	_, p = create(targets.Alternating, secret.Secret{})
	require.Equal(t, "checkout", p)
	_, p = create(targets.Alternating, docOf("checkout"))
	require.Equal(t, "checkout_b", p)
	_, p = create(targets.Alternating, docOf("checkout_b"))
	require.Equal(t, "checkout", p)

	_, err = tg.Create(ctx, targets.CreateRequest{Strategy: targets.Alternating, Current: docOf("someone"), Password: pw})
	require.ErrorContains(t, err, `role "someone" is neither Username "checkout" nor AlternateUsername "checkout_b"`)
	_, err = tg.Create(ctx, targets.CreateRequest{Strategy: targets.Single})
	require.ErrorContains(t, err, "password is empty")
	_, err = tg.Create(ctx, targets.CreateRequest{Strategy: "round-robin", Password: pw})
	require.ErrorContains(t, err, `unknown strategy "round-robin"`)
}

// TestCheck: Check accepts the documents of the policy's roles and refuses,
// with a *targets.UnreadableError naming the roles it expects, a document of
// another role (under single, the alternate role is another role) and one
// that is not a postgres document; Create refuses them alike.
func TestCheck(t *testing.T) {
	t.Parallel()
	tg, err := postgres.New(context.Background(), postgres.Options{
		Host: "db.internal", Port: 5433, DBName: "app", Username: "checkout", GroupRole: "checkout_group",
		Admin: secret.FromString("postgres://admin:hunter2@db.internal/app"),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tg.Close()) })
	ctx := context.Background()
	docOf := func(user string) secret.Secret {
		s, err := postgres.Document{Username: user, Password: secret.FromString("s3cret-Password")}.Secret()
		require.NoError(t, err)
		return s
	}
	check := func(strategy targets.Strategy, doc secret.Secret) error {
		return tg.Check(ctx, targets.CheckRequest{Strategy: strategy, Document: doc})
	}

	require.NoError(t, check(targets.Single, docOf("checkout")))
	require.NoError(t, check(targets.Alternating, docOf("checkout")))
	require.NoError(t, check(targets.Alternating, docOf("checkout_b")))
	// Engine absent and AWS's extra fields are fine.
	require.NoError(t, check(targets.Single, secret.FromString(`{"username":"checkout","password":"p","dbClusterIdentifier":"c"}`)))

	cases := []struct {
		strategy targets.Strategy
		doc      secret.Secret
		want     string
	}{
		{targets.Single, docOf("checkout_b"), `not a postgres document (role "checkout_b" is not Username "checkout"): expected a JSON object with username "checkout" and password (engine, host, port, dbname optional)`},
		{targets.Single, docOf("someone"), `role "someone" is not Username "checkout"`},
		{targets.Alternating, docOf("someone"), `(role "someone" is neither Username "checkout" nor AlternateUsername "checkout_b"): expected a JSON object with username "checkout" or "checkout_b" and password`},
		{targets.Single, secret.FromString("s3cret-Password"), "not a postgres document (postgres secret document is not valid JSON"},
		{targets.Single, secret.FromString(`{"user":"checkout","pass":"s3cret-Password"}`), "username is missing or empty"},
		{targets.Single, secret.FromString(`{"engine":"mysql","username":"checkout","password":"p"}`), `engine "mysql"`},
		{targets.Single, secret.Secret{}, "postgres secret document is empty"},
	}
	for _, c := range cases {
		var unread *targets.UnreadableError
		err := check(c.strategy, c.doc)
		require.ErrorAs(t, err, &unread, c.want)
		require.ErrorContains(t, err, c.want)
		require.NotContains(t, err.Error(), "s3cret-Password")
		if !c.doc.IsZero() {
			_, err = tg.Create(ctx, targets.CreateRequest{Strategy: c.strategy, Current: c.doc, Password: secret.FromString("new-Password")})
			require.ErrorAs(t, err, &unread, c.want)
			require.ErrorContains(t, err, "postgres target: create: current: not a postgres document (")
			require.ErrorContains(t, err, c.want)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	valid := func() postgres.Options {
		return postgres.Options{Host: "127.0.0.1", Port: 5432, DBName: "app", Username: "checkout", GroupRole: "checkout_group",
			Admin: secret.FromString("postgres://admin:hunter2@127.0.0.1/app")}
	}
	require.NoError(t, valid().Validate())
	require.NoError(t, valid().ValidateStrategy(targets.Alternating))
	require.NoError(t, valid().ValidateStrategy(targets.Single))

	cases := []struct {
		field    string
		strategy targets.Strategy
		mod      func(*postgres.Options)
	}{
		{"Host", targets.Single, func(o *postgres.Options) { o.Host = "" }},
		{"Port", targets.Single, func(o *postgres.Options) { o.Port = 0 }},
		{"Port", targets.Single, func(o *postgres.Options) { o.Port = 70000 }},
		{"DBName", targets.Single, func(o *postgres.Options) { o.DBName = "" }},
		{"SSLMode", targets.Single, func(o *postgres.Options) { o.SSLMode = "sometimes" }},
		{"ConnectTimeout", targets.Single, func(o *postgres.Options) { o.ConnectTimeout = -1 }},
		{"Username", targets.Single, func(o *postgres.Options) { o.Username = "" }},
		{"Username", targets.Single, func(o *postgres.Options) { o.Username = strings.Repeat("x", 64) }},
		{"AlternateUsername", targets.Single, func(o *postgres.Options) { o.Username = strings.Repeat("x", 63) }},
		{"AlternateUsername", targets.Single, func(o *postgres.Options) { o.AlternateUsername = o.Username }},
		{"GroupRole", targets.Single, func(o *postgres.Options) { o.GroupRole = o.Username }},
		{"GroupRole", targets.Single, func(o *postgres.Options) { o.GroupRole = "none" }},
		{"GroupRole", targets.Alternating, func(o *postgres.Options) { o.GroupRole = "" }},
		{"Admin", targets.Alternating, func(o *postgres.Options) { o.Admin = secret.Secret{} }},
	}
	for _, c := range cases {
		o := valid()
		c.mod(&o)
		err := o.ValidateStrategy(c.strategy)
		var fe *postgres.FieldError
		require.ErrorAs(t, err, &fe, "%s", c.field)
		require.Equal(t, c.field, fe.Field)
		require.Contains(t, err.Error(), c.field)

		if c.strategy == targets.Single {
			_, err := postgres.New(context.Background(), o)
			require.ErrorAs(t, err, &fe)
			require.Equal(t, c.field, fe.Field)
		}
	}

	// Single may go without an admin and a group.
	o := valid()
	o.Admin, o.GroupRole = secret.Secret{}, ""
	require.NoError(t, o.ValidateStrategy(targets.Single))

	// A broken admin URL is named, without a word of its value.
	o = valid()
	o.Admin = secret.FromString("postgres://admin:hunter2@[broken/app")
	_, err := postgres.New(context.Background(), o)
	var fe *postgres.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Admin", fe.Field)
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "broken")
}

// TestAdminErrorsDoNotLeakTheAdminPassword: an admin URL that points
// nowhere fails Apply with a message free of the admin password.
func TestAdminErrorsDoNotLeakTheAdminPassword(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	opts := s.options()
	adminPW := "Adm1n-" + newPassword(t).RevealString()[:8]
	adminPW = strings.NewReplacer("'", "", `"`, "", `\`, "", "@", "", "/", "", "%", "", "?", "", "#", "", "[", "", "]", "", ":", "").Replace(adminPW)
	opts.Admin = secret.FromString(fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", s.user, adminPW, s.host, s.port, s.db.Name))
	tg := newTarget(t, opts)
	// Create's privilege check is the first admin login.
	_, err := tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Single, Password: newPassword(t)})
	require.ErrorContains(t, err, "password authentication failed")
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), adminPW)

	doc, err := postgres.Document{Host: s.host, Port: s.port, DBName: s.db.Name, Username: s.user, Password: newPassword(t)}.Secret()
	require.NoError(t, err)
	err = tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: doc})
	require.ErrorContains(t, err, "password authentication failed")
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), adminPW)
}

// TestValidateDeclared: a policy file is held to every rule of
// ValidateStrategy and more, and hears of every problem at once, by its
// yaml key.
func TestValidateDeclared(t *testing.T) {
	t.Parallel()
	admin := secret.FromString("postgres://admin:hunter2@127.0.0.1/app")
	alt := postgres.Options{Host: "db", Port: 5432, DBName: "app", Username: "app", GroupRole: "app_rw", Admin: admin}
	require.NoError(t, alt.ValidateDeclared(targets.Alternating))
	single := postgres.Options{Host: "db", Port: 5432, DBName: "app", Username: "app"}
	require.NoError(t, single.ValidateDeclared(targets.Single))

	problems := func(o postgres.Options, s targets.Strategy) []validation.Problem {
		var ve *validation.Error
		require.ErrorAs(t, o.ValidateDeclared(s), &ve)
		require.Equal(t, "postgres target", ve.Subject)
		return ve.Problems
	}
	require.Equal(t, []validation.Problem{
		{Field: "host", Msg: "required: the server's host name, address or unix socket folder"},
		{Field: "dbname", Msg: "required: the database that logins and the canary use"},
		{Field: "username", Msg: "required: the login role"},
		{Field: "group_role", Msg: "required for strategy alternating: the role that holds the privileges and both users are members of"},
		{Field: "admin", Msg: "required: an admin connection URL"},
	}, problems(postgres.Options{Host: " ", Port: 5432}, targets.Alternating))

	o := single
	o.Port, o.SSLMode, o.GroupRole, o.AlternateUsername, o.RetireNoLogin = 70000, "strict", "g", "app_b", true
	require.Equal(t, []validation.Problem{
		{Field: "port", Msg: "must be between 1 and 65535"},
		{Field: "sslmode", Msg: `unknown sslmode "strict": use disable, allow, prefer, require, verify-ca, verify-full`},
		{Field: "alternate_username", Msg: "used only by strategy alternating; remove it or set strategy: alternating"},
		{Field: "group_role", Msg: "used only by strategy alternating; remove it or set strategy: alternating"},
		{Field: "retire_nologin", Msg: "used only by strategy alternating; remove it or set strategy: alternating"},
	}, problems(o, targets.Single))

	o = alt
	o.AlternateUsername, o.GroupRole = "app", "app"
	require.Equal(t, []validation.Problem{
		{Field: "alternate_username", Msg: "must differ from username: alternating takes turns between two roles"},
		{Field: "group_role", Msg: "must differ from username and alternate_username: it is the NOLOGIN role that holds the grants"},
	}, problems(o, targets.Alternating))

	// Quoted names work (TestQuotedIdentifiersAreKeptExactly), but a policy file keeps to plain ones.
	o = alt
	o.Username = `Check "Out" User`
	require.NoError(t, o.ValidateStrategy(targets.Alternating))
	require.Equal(t, []validation.Problem{
		{Field: "username", Msg: `"Check \"Out\" User" is not a valid role name: use 1 to 63 of A-Z a-z 0-9 _ . - starting with a letter or _`},
		{Field: "alternate_username", Msg: `the default "Check \"Out\" User_b" is not a valid role name; give alternate_username`},
	}, problems(o, targets.Alternating))

	// Single derives the alternate too (the target is strategy-blind), so a
	// 62-byte username is refused there as well.
	o = single
	o.Username = strings.Repeat("u", 62)
	require.Equal(t, []validation.Problem{
		{Field: "alternate_username", Msg: fmt.Sprintf("the default %q is not a valid role name; shorten username", o.Username+"_b")},
	}, problems(o, targets.Single))
	require.Error(t, o.ValidateStrategy(targets.Single))

	var ve *validation.Error
	require.ErrorAs(t, alt.ValidateDeclared("sometimes"), &ve)
	require.Equal(t, `postgres target: unknown strategy "sometimes": use alternating or single`, ve.Error())
}

func TestForStrategy(t *testing.T) {
	t.Parallel()
	o := postgres.Options{Username: "app"}
	require.Equal(t, postgres.Options{Username: "app", AlternateUsername: "app_b", SSLMode: "prefer",
		ConnectTimeout: postgres.DefaultConnectTimeout}, o.ForStrategy(targets.Alternating))
	require.Equal(t, postgres.Options{Username: "app", SSLMode: "prefer",
		ConnectTimeout: postgres.DefaultConnectTimeout}, o.ForStrategy(targets.Single))
}

// An alternating rotation makes each login role act as the group (ALTER
// ROLE … SET role) once: later rotations leave its pg_db_role_setting row
// as it is, since each ALTER ROLE … SET rewrites the row and makes every
// session of the server reload its caches. A setting removed by hand is
// put back by the role's next rotation.
func TestAlternatingSetsTheGroupRoleOnce(t *testing.T) {
	t.Parallel()
	for name, names := range map[string]roleNames{
		"plain":  {user: "acts_user", alt: "acts_user_b", group: "acts_group"},
		"quoted": quotedNames,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, names, targets.Alternating)
			r := &rotator{t: t, tg: newTarget(t, s.options()), strategy: targets.Alternating}
			ctx := context.Background()
			settings := func() map[string]string {
				rows, err := s.db.Pool.Query(ctx, `
					SELECT r.rolname::text, s.xmin::text || ' ' || array_to_string(s.setconfig, ',')
					FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
					WHERE s.setdatabase = 0 AND r.rolname = ANY($1)`, []string{s.user, s.alt})
				require.NoError(t, err)
				out := map[string]string{}
				for rows.Next() {
					var role, row string
					require.NoError(t, rows.Scan(&role, &row))
					out[role] = row
				}
				require.NoError(t, rows.Err())
				return out
			}
			r.rotate() // Username
			r.rotate() // AlternateUsername
			first := settings()
			require.Len(t, first, 2)
			for role, row := range first {
				require.True(t, strings.HasSuffix(row, " role="+s.group), "%s: %s", role, row)
			}
			r.rotate()
			r.rotate()
			require.Equal(t, first, settings(), "a later rotation rewrote a role's SET role")

			_, err := s.db.Pool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{s.alt}.Sanitize()+" RESET role")
			require.NoError(t, err)
			r.rotate() // Username: unchanged
			r.rotate() // AlternateUsername: set again
			again := settings()
			require.Equal(t, first[s.user], again[s.user])
			require.True(t, strings.HasSuffix(again[s.alt], " role="+s.group), "the setting is back: %s", again[s.alt])
		})
	}
}
