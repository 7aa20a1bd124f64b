package mysql_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mariadbtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

var strategies = []targets.Strategy{targets.Alternating, targets.Single}

// system is one test's database and account names: role holds SELECT on
// table orders; table hidden has no grant. With single, the account user
// exists and holds the grant itself. Accounts and the role are dropped
// when the test ends.
type system struct {
	srv             *mariadbtest.Server
	db              *mariadbtest.Database
	user, alt, role string
}

func newSystem(t *testing.T, strategy targets.Strategy) *system {
	t.Helper()
	srv := mariadbtest.Get(t)
	db := srv.NewDatabase(t)
	suffix := mariadbtest.RandomHex(t, 4)
	s := &system{srv: srv, db: db, user: "checkout_" + suffix, role: "checkout_role_" + suffix}
	s.alt = s.user + mysql.AlternateSuffix
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, stmt := range []string{
			"DROP USER IF EXISTS '" + s.user + "'@'%'",
			"DROP USER IF EXISTS '" + s.alt + "'@'%'",
			"DROP ROLE IF EXISTS " + s.role,
		} {
			if _, err := db.DB.ExecContext(ctx, stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	})
	stmts := []string{
		"CREATE TABLE orders (id int)",
		"INSERT INTO orders VALUES (1)",
		"CREATE TABLE hidden (id int)",
		"CREATE ROLE " + s.role,
		"GRANT SELECT, INSERT ON " + db.Name + ".orders TO " + s.role,
	}
	if strategy == targets.Single {
		// single rotates an existing account, which holds the grants itself
		// (its first password is one nobody knows).
		stmts = append(stmts,
			"CREATE USER '"+s.user+"'@'%' IDENTIFIED WITH mysql_native_password AS '*0000000000000000000000000000000000000000'",
			"GRANT SELECT, INSERT ON "+db.Name+".orders TO '"+s.user+"'@'%'",
		)
	}
	for _, q := range stmts {
		_, err := db.DB.ExecContext(context.Background(), q)
		require.NoError(t, err, q)
	}
	return s
}

// options for a target on s, with root as admin.
func (s *system) options(strategy targets.Strategy) mysql.Options {
	o := mysql.Options{
		Host:        "127.0.0.1",
		Port:        s.srv.Port,
		DBName:      s.db.Name,
		TLS:         "false",
		Username:    s.user,
		Admin:       secret.FromString(s.srv.RootDSN("")),
		CanaryQuery: "SELECT count(*) FROM orders",
	}
	if strategy == targets.Alternating {
		o.Role = s.role
		o.RetireLock = true
	}
	return o
}

func newTarget(t *testing.T, strategy targets.Strategy, opts mysql.Options) *mysql.Target {
	t.Helper()
	tg, err := mysql.New(strategy, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tg.Close()) })
	return tg
}

func harness(plugin string) targettest.Harness {
	return targettest.Harness{
		NewTarget: func(t *testing.T, strategy targets.Strategy) targets.Target {
			s := newSystem(t, strategy)
			opts := s.options(strategy)
			opts.AuthPlugin = plugin
			if plugin == mysql.PluginEd25519 && strategy == targets.Single {
				_, err := s.db.DB.Exec("ALTER USER '" + s.user + "'@'%' IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'")
				require.NoError(t, err)
			}
			tg, err := mysql.New(strategy, opts)
			require.NoError(t, err)
			return tg
		},
		Password: newPassword,
		SecretOf: passwordOf,
	}
}

// passwordAlphabet includes quotes, a backslash and a percent sign, so that
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
	d, err := mysql.ParseDocument(doc)
	require.NoError(t, err)
	return d.Password.RevealString()
}

// stepper drives a target the way the rotator does, recording every
// generated password.
type stepper struct {
	t         *testing.T
	tg        targets.Target
	strategy  targets.Strategy
	current   secret.Secret
	previous  secret.Secret
	passwords []string
}

func (r *stepper) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r.t.Cleanup(cancel)
	return ctx
}

func (r *stepper) createApply() secret.Secret {
	r.t.Helper()
	pw := newPassword(r.t)
	r.passwords = append(r.passwords, pw.RevealString())
	resp, err := r.tg.Create(r.ctx(), targets.CreateRequest{Token: "t", Strategy: r.strategy, Current: r.current, Password: pw})
	require.NoError(r.t, err)
	require.NoError(r.t, r.tg.Apply(r.ctx(), targets.ApplyRequest{Token: "t", Strategy: r.strategy, Pending: resp.Pending, Current: r.current}))
	return resp.Pending
}

func (r *stepper) rotate() secret.Secret {
	r.t.Helper()
	pending := r.createApply()
	require.NoError(r.t, r.verify(pending, true))
	r.previous, r.current = r.current, pending
	return pending
}

func (r *stepper) verify(doc secret.Secret, canary bool) error {
	return r.tg.Verify(r.ctx(), targets.VerifyRequest{Credential: doc, Canary: canary})
}

func (r *stepper) restore(pending secret.Secret) error {
	return r.tg.Restore(r.ctx(), targets.RestoreRequest{
		Token: "t", Strategy: r.strategy, Pending: pending, Current: r.current, Previous: r.previous,
	})
}

func requireNoneIn(t *testing.T, text string, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("generated password %d (of %d) appears in the text", i, len(secrets))
		}
	}
}
