package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

// system is one test's database and role names, with the group role created
// and granted SELECT, INSERT on table orders and CREATE on schema public.
// Table hidden has no grant. The roles are dropped when the test ends.
type system struct {
	db                   *pgtest.Database
	host                 string
	port                 int
	user, alt, group     string
	orders, hidden       string // table names, unquoted
	ordersSQL, hiddenSQL string // table names, quoted
	groupSQL, userSQL    string
	altSQL               string
}

// roleNames are the prefixes of a system's roles.
type roleNames struct{ user, alt, group string }

var (
	plainNames = roleNames{user: "checkout", group: "checkout_group"}
	// Quotes, spaces and capitals in every identifier.
	quotedNames = roleNames{user: `Check "Out" User`, alt: `Check "Out" Alt`, group: `Load "Test" Group`}
)

func newSystem(t *testing.T, names roleNames, strategy targets.Strategy) *system {
	t.Helper()
	db := pgtest.New(t)
	host, port := pgtest.LoginHost(t)
	s := &system{
		db:    db,
		host:  host,
		port:  port,
		user:  pgtest.RoleName(t, names.user),
		group: pgtest.RoleName(t, names.group),
	}
	if names.alt != "" {
		s.alt = pgtest.RoleName(t, names.alt)
	} else {
		s.alt = s.user + postgres.AlternateSuffix
	}
	s.orders, s.hidden = "Orders Table", "hidden"
	ident := func(n string) string { return pgx.Identifier{n}.Sanitize() }
	s.ordersSQL, s.hiddenSQL = ident(s.orders), ident(s.hidden)
	s.groupSQL, s.userSQL, s.altSQL = ident(s.group), ident(s.user), ident(s.alt)

	t.Cleanup(func() { dropRoles(t, db, s.user, s.alt, s.group) })

	stmts := []string{
		"CREATE ROLE " + s.groupSQL + " NOLOGIN",
		"CREATE TABLE " + s.ordersSQL + " (id int)",
		"INSERT INTO " + s.ordersSQL + " VALUES (1)",
		"CREATE TABLE " + s.hiddenSQL + " (id int)",
		"GRANT SELECT, INSERT ON " + s.ordersSQL + " TO " + s.groupSQL,
		"GRANT USAGE, CREATE ON SCHEMA public TO " + s.groupSQL,
	}
	if strategy == targets.Single {
		// single rotates an existing role, which holds the grants itself.
		stmts = append(stmts,
			"CREATE ROLE "+s.userSQL+" LOGIN",
			"GRANT SELECT, INSERT ON "+s.ordersSQL+" TO "+s.userSQL,
			"GRANT USAGE ON SCHEMA public TO "+s.userSQL,
		)
	}
	for _, q := range stmts {
		_, err := db.Pool.Exec(context.Background(), q)
		require.NoError(t, err, q)
	}
	return s
}

// dropRoles drops the roles that exist, after what they own or were granted
// in the test database (the only database where they hold anything).
func dropRoles(t *testing.T, db *pgtest.Database, roles ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range roles {
		var exists bool
		if err := db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", r).Scan(&exists); err != nil {
			t.Errorf("drop role %q: %v", r, err)
			continue
		}
		if !exists {
			continue
		}
		id := pgx.Identifier{r}.Sanitize()
		if _, err := db.Pool.Exec(ctx, "DROP OWNED BY "+id+" CASCADE"); err != nil {
			t.Errorf("drop owned by %q: %v", r, err)
		}
		if _, err := db.Pool.Exec(ctx, "DROP ROLE "+id); err != nil {
			t.Errorf("drop role %q: %v", r, err)
		}
	}
}

// options for a target on s, with the superuser as admin.
func (s *system) options() postgres.Options {
	return postgres.Options{
		Host:              s.host,
		Port:              s.port,
		DBName:            s.db.Name,
		SSLMode:           "disable",
		Username:          s.user,
		AlternateUsername: s.alt,
		GroupRole:         s.group,
		Admin:             secret.FromString(s.db.URL),
		CanaryQuery:       "SELECT count(*) FROM " + s.ordersSQL,
	}
}

func newTarget(t *testing.T, opts postgres.Options) *postgres.Target {
	t.Helper()
	tg, err := postgres.New(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tg.Close()) })
	return tg
}

// harness runs the conformance suite on systems with names, RetireNoLogin
// on so that Retire does something.
func harness(names roleNames) targettest.Harness {
	return targettest.Harness{
		NewTarget: func(t *testing.T, strategy targets.Strategy) targets.Target {
			s := newSystem(t, names, strategy)
			opts := s.options()
			opts.RetireNoLogin = true
			tg, err := postgres.New(context.Background(), opts)
			require.NoError(t, err)
			return tg
		},
		Password: newPassword,
		SecretOf: passwordOf,
	}
}

// passwordAlphabet includes quotes, a backslash and a dollar sign, so that
// any place that quoted a password by hand would break.
const passwordAlphabet = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()*+,-./:;<=>?@[\]^_{|}~"`

func newPassword(t *testing.T) secret.Secret {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = passwordAlphabet[int(b[i])%len(passwordAlphabet)]
	}
	return secret.New(b)
}

func passwordOf(t *testing.T, doc secret.Secret) string {
	d, err := postgres.ParseDocument(doc)
	require.NoError(t, err)
	return d.Password.RevealString()
}

// rotator drives a target the way the rotator does, recording every
// generated password.
type rotator struct {
	t         *testing.T
	tg        targets.Target
	strategy  targets.Strategy
	current   secret.Secret
	previous  secret.Secret
	passwords []string
}

func (r *rotator) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r.t.Cleanup(cancel)
	return ctx
}

// create runs Create and Apply and returns the pending document.
func (r *rotator) createApply() secret.Secret {
	r.t.Helper()
	pw := newPassword(r.t)
	r.passwords = append(r.passwords, pw.RevealString())
	resp, err := r.tg.Create(r.ctx(), targets.CreateRequest{Token: "t", Strategy: r.strategy, Current: r.current, Password: pw})
	require.NoError(r.t, err)
	require.NoError(r.t, r.tg.Apply(r.ctx(), targets.ApplyRequest{Token: "t", Strategy: r.strategy, Pending: resp.Pending, Current: r.current}))
	return resp.Pending
}

// rotate runs create, set, test (with the canary) and promote.
func (r *rotator) rotate() secret.Secret {
	r.t.Helper()
	pending := r.createApply()
	require.NoError(r.t, r.verify(pending, true))
	r.previous, r.current = r.current, pending
	return pending
}

func (r *rotator) verify(doc secret.Secret, canary bool) error {
	return r.tg.Verify(r.ctx(), targets.VerifyRequest{Credential: doc, Canary: canary})
}

func (r *rotator) restore(pending secret.Secret) error {
	return r.tg.Restore(r.ctx(), targets.RestoreRequest{
		Token: "t", Strategy: r.strategy, Pending: pending, Current: r.current, Previous: r.previous,
	})
}

func (r *rotator) retire() error {
	return r.tg.Retire(r.ctx(), targets.RetireRequest{Strategy: r.strategy, Retired: r.previous, Current: r.current})
}

// loginTCP connects over TCP to the login host as user with password,
// independently of the target's own Verify.
func (s *system) loginTCP(t *testing.T, user, password string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig("sslmode=disable")
	require.NoError(t, err)
	cfg.Host, cfg.Port, cfg.Database = s.host, uint16(s.port), s.db.Name
	cfg.User, cfg.Password = user, password
	cfg.Fallbacks = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// roleCanLogin reads pg_roles.rolcanlogin.
func (s *system) roleCanLogin(t *testing.T, role string) bool {
	t.Helper()
	var can bool
	require.NoError(t, s.db.Pool.QueryRow(context.Background(),
		"SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role).Scan(&can))
	return can
}

// rolpassword reads pg_authid.rolpassword (the stored verifier).
func (s *system) rolpassword(t *testing.T, role string) string {
	t.Helper()
	var v *string
	require.NoError(t, s.db.Pool.QueryRow(context.Background(),
		"SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v))
	if v == nil {
		return ""
	}
	return *v
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func requireNoneIn(t *testing.T, text string, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("generated password %d (of %d) appears in the text", i, len(secrets))
		}
	}
}
