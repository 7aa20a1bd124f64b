package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mariadbtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness(mysql.PluginNative))
}

// TestConformanceEd25519 runs the whole suite with MariaDB's ed25519
// plugin, whose stored value the target computes too.
func TestConformanceEd25519(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness(mysql.PluginEd25519))
}

// TestPasswordHashes checks the client-side hashes against values the
// server computes: MySQL's documented PASSWORD('password') and MariaDB's
// documented ed25519 value of 'secret'.
func TestPasswordHashes(t *testing.T) {
	t.Parallel()
	native, err := mysql.NativePasswordHash(secret.FromString("password"))
	require.NoError(t, err)
	require.Equal(t, "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", native)
	ed, err := mysql.Ed25519PasswordHash(secret.FromString("secret"))
	require.NoError(t, err)
	require.Equal(t, "ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY", ed)
}

// authString reads the plugin and stored hash of user@%.
func (s *system) authString(t *testing.T, user string) (plugin, hash string) {
	t.Helper()
	require.NoError(t, s.db.DB.QueryRow(
		"SELECT JSON_VALUE(Priv, '$.plugin'), JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv WHERE User = ? AND Host = '%'",
		user).Scan(&plugin, &hash))
	return plugin, hash
}

// locked reads whether user@% is locked.
func (s *system) locked(t *testing.T, user string) bool {
	t.Helper()
	var l sql.NullString
	require.NoError(t, s.db.DB.QueryRow(
		"SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = ? AND Host = '%'", user).Scan(&l))
	return l.String == "1" || l.String == "true"
}

// TestStoredHashIsTheClientsAndLoginIsOverTCP: the server stores the hash
// the target computed, and the credential logs in over TCP with it.
func TestStoredHashIsTheClientsAndLoginIsOverTCP(t *testing.T) {
	t.Parallel()
	for _, plugin := range []string{mysql.PluginNative, mysql.PluginEd25519} {
		for _, strategy := range strategies {
			t.Run(plugin+"/"+string(strategy), func(t *testing.T) {
				t.Parallel()
				s := newSystem(t, strategy)
				opts := s.options(strategy)
				opts.AuthPlugin = plugin
				r := &stepper{t: t, tg: newTarget(t, strategy, opts), strategy: strategy}
				doc, err := mysql.ParseDocument(r.rotate())
				require.NoError(t, err)
				gotPlugin, gotHash := s.authString(t, doc.Username)
				require.Equal(t, plugin, gotPlugin)
				want, err := mysql.NativePasswordHash(doc.Password)
				if plugin == mysql.PluginEd25519 {
					want, err = mysql.Ed25519PasswordHash(doc.Password)
				}
				require.NoError(t, err)
				require.Equal(t, want, gotHash)
			})
		}
	}
}

// TestNoPasswordInServerLogs rotates with every path that sets a password
// (alternating, single as admin, single without admin, restores, both
// plugins) on a server with the general log and the binary log on, then
// searches both.
func TestNoPasswordInServerLogs(t *testing.T) {
	t.Parallel()
	srv := mariadbtest.Get(t)
	var passwords, users []string
	for _, plugin := range []string{mysql.PluginNative, mysql.PluginEd25519} {
		for _, strategy := range strategies {
			s := newSystem(t, strategy)
			users = append(users, s.user)
			opts := s.options(strategy)
			opts.AuthPlugin = plugin
			if plugin == mysql.PluginEd25519 && strategy == targets.Single {
				_, err := s.db.DB.Exec("ALTER USER '" + s.user + "'@'%' IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'")
				require.NoError(t, err)
			}
			r := &stepper{t: t, tg: newTarget(t, strategy, opts), strategy: strategy}
			for range 3 {
				r.rotate()
			}
			require.NoError(t, r.restore(r.createApply()))
			if strategy == targets.Single {
				self := opts
				self.Admin = secret.Secret{}
				sr := &stepper{t: t, tg: newTarget(t, strategy, self), strategy: strategy, current: r.current}
				sr.rotate()
				sr.rotate()
				require.NoError(t, sr.restore(sr.createApply()))
				passwords = append(passwords, sr.passwords...)
			}
			passwords = append(passwords, r.passwords...)
		}
	}
	require.NotEmpty(t, passwords)

	logs := srv.Logs(t)
	// The logs must hold our statements, or the search proves nothing. (A
	// failure names what is missing; it never prints the logs.)
	var want []string
	for _, u := range users {
		want = append(want, "ALTER USER '"+u+"'@'%' IDENTIFIED WITH")
	}
	want = append(want, "IDENTIFIED WITH mysql_native_password AS '*", "IDENTIFIED WITH ed25519 AS '", "SET PASSWORD = '")
	for _, w := range want {
		require.True(t, strings.Contains(logs, w), "the server's logs should hold %q", w)
	}
	requireNoneIn(t, logs, passwords)
}

// TestCanaryWithoutGrantFailsVerify: the canary runs as the new credential,
// so a query on a table it has no grant on fails Verify with Canary, and
// only then.
func TestCanaryWithoutGrantFailsVerify(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, strategy)
			opts := s.options(strategy)
			opts.CanaryQuery = "SELECT * FROM hidden"
			r := &stepper{t: t, tg: newTarget(t, strategy, opts), strategy: strategy}
			pending := r.createApply()
			require.NoError(t, r.verify(pending, false), "without Canary only the login is checked")
			err := r.verify(pending, true)
			require.Error(t, err)
			require.Contains(t, err.Error(), "verify: canary query")
			require.Contains(t, err.Error(), "SELECT command denied")
			requireNoneIn(t, err.Error(), r.passwords)
		})
	}
}

// TestAlternatingSharesTheRole: both accounts hold the role as their
// default, so each reaches the role's table, and neither has a grant of
// its own.
func TestAlternatingSharesTheRole(t *testing.T) {
	t.Parallel()
	s := newSystem(t, targets.Alternating)
	r := &stepper{t: t, tg: newTarget(t, targets.Alternating, s.options(targets.Alternating)), strategy: targets.Alternating}
	first := r.rotate()
	second := r.rotate()
	for _, doc := range []secret.Secret{first, second} {
		require.NoError(t, r.verify(doc, true))
	}
	var def string
	require.NoError(t, s.db.DB.QueryRow(
		"SELECT JSON_VALUE(Priv, '$.default_role') FROM mysql.global_priv WHERE User = ? AND Host = '%'", s.alt).Scan(&def))
	require.Equal(t, s.role, def)
}

// TestAlternatingRestoreAndRetireLock: a restore of a never-previous account
// locks it with a password nobody knows; Retire locks the retired account,
// and the next Apply unlocks it.
func TestAlternatingRestoreAndRetireLock(t *testing.T) {
	t.Parallel()
	s := newSystem(t, targets.Alternating)
	tg := newTarget(t, targets.Alternating, s.options(targets.Alternating))
	r := &stepper{t: t, tg: tg, strategy: targets.Alternating}
	r.rotate() // user
	pending := r.createApply()
	require.NoError(t, r.restore(pending))
	require.True(t, s.locked(t, s.alt), "the failed account is locked")
	require.Error(t, r.verify(pending, false))

	r.rotate() // alt, unlocked again
	require.False(t, s.locked(t, s.alt))
	require.NoError(t, tg.Retire(context.Background(), targets.RetireRequest{Strategy: targets.Alternating, Retired: r.previous, Current: r.current}))
	require.True(t, s.locked(t, s.user), "the retired account is locked")
	require.Error(t, r.verify(r.previous, false))
	require.NoError(t, r.verify(r.current, true))
	// Retire never locks the current account.
	require.NoError(t, tg.Retire(context.Background(), targets.RetireRequest{Strategy: targets.Alternating, Retired: r.current, Current: r.current}))
	require.False(t, s.locked(t, s.alt))
	r.rotate()
	require.False(t, s.locked(t, s.user), "Apply unlocks the account")
}

// TestApplyRefusesTheCurrentAccountAndTheAdmins: alternating never changes
// the current credential's account, nor the admin's own.
func TestApplyRefusesTheCurrentAccountAndTheAdmins(t *testing.T) {
	t.Parallel()
	s := newSystem(t, targets.Alternating)
	tg := newTarget(t, targets.Alternating, s.options(targets.Alternating))
	r := &stepper{t: t, tg: tg, strategy: targets.Alternating}
	cur := r.rotate()
	err := tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Alternating, Pending: cur, Current: cur})
	require.ErrorContains(t, err, "refusing to change the current credential's account")

	opts := s.options(targets.Alternating)
	opts.Username = "root"
	opts.AlternateUsername = "root_b"
	root := newTarget(t, targets.Alternating, opts)
	resp, err := root.Create(context.Background(), targets.CreateRequest{Strategy: targets.Alternating, Password: newPassword(t)})
	require.NoError(t, err)
	err = root.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Alternating, Pending: resp.Pending})
	require.ErrorContains(t, err, "refusing to change the account the admin credential logs in as")
}

// TestSingleWithoutAdmin: the account changes its own password (SET
// PASSWORD with the hash), logging in with the current one; Restore logs
// in with the pending one.
func TestSingleWithoutAdmin(t *testing.T) {
	t.Parallel()
	s := newSystem(t, targets.Single)
	bootstrap := &stepper{t: t, tg: newTarget(t, targets.Single, s.options(targets.Single)), strategy: targets.Single}
	first := bootstrap.rotate()

	opts := s.options(targets.Single)
	opts.Admin = secret.Secret{}
	tg := newTarget(t, targets.Single, opts)
	r := &stepper{t: t, tg: tg, strategy: targets.Single, current: first}
	second := r.rotate()
	require.Error(t, r.verify(first, false), "the old password stops working")
	third := r.rotate()
	require.Error(t, r.verify(second, false))
	require.NoError(t, r.verify(third, true))

	pending := r.createApply()
	require.NoError(t, tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: pending, Current: r.current, Retry: true}))
	require.NoError(t, r.restore(pending))
	require.NoError(t, r.restore(pending), "Restore is idempotent")
	require.NoError(t, r.verify(r.current, true))
	require.Error(t, r.verify(pending, false))

	_, err := tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Single, Password: newPassword(t)})
	require.ErrorContains(t, err, "admin: is empty")
}

// TestVerifyErrorNamesAccountNotPassword checks the message of a failed login.
func TestVerifyErrorNamesAccountNotPassword(t *testing.T) {
	t.Parallel()
	s := newSystem(t, targets.Single)
	tg := newTarget(t, targets.Single, s.options(targets.Single))
	pw := newPassword(t)
	doc, err := mysql.Document{Host: "127.0.0.1", Port: s.srv.Port, Username: s.user, Password: pw}.Secret()
	require.NoError(t, err)
	err = tg.Verify(context.Background(), targets.VerifyRequest{Credential: doc})
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("mysql account '%s'@'%%': verify: log in", s.user))
	require.Contains(t, err.Error(), "Access denied")
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), pw.RevealString())
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		strategy targets.Strategy
		opts     mysql.Options
		want     []string
	}{
		{"alternating needs role and admin", targets.Alternating, mysql.Options{Host: "db", Username: "app"},
			[]string{"role: required", "admin: required"}},
		{"single refuses alternating's fields", targets.Single, mysql.Options{Host: "db", Username: "app", Role: "r", RetireLock: true},
			[]string{"role: used only by strategy alternating", "retire_lock: used only by strategy alternating"}},
		{"names", targets.Single, mysql.Options{Host: "db", Username: "a'b", UserHost: "x'y"},
			[]string{`username: "a'b" is not a valid user name`, `user_host: "x'y" is not a host pattern`}},
		{"plugin", targets.Single, mysql.Options{Host: "db", Username: "app", AuthPlugin: "caching_sha2_password"},
			[]string{`auth_plugin: unsupported plugin "caching_sha2_password"`}},
		{"no host", targets.Single, mysql.Options{Username: "app", TLS: "maybe"},
			[]string{"host: required", `tls: unknown mode "maybe"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.WithDefaults(c.strategy).Validate(c.strategy)
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	ok := mysql.Options{Host: "db", Username: "app", Role: "app_role", Admin: secret.FromString("root@tcp(db)/")}
	require.NoError(t, ok.WithDefaults(targets.Alternating).Validate(targets.Alternating))
	require.Equal(t, "app_b", ok.WithDefaults(targets.Alternating).AlternateUsername)
	require.Empty(t, mysql.Options{Host: "db", Username: "app"}.WithDefaults(targets.Single).AlternateUsername)
}

func TestAdminDSNErrorQuotesNothing(t *testing.T) {
	t.Parallel()
	bad := "root:" + strings.Repeat("s3cr3t", 3) + "@tcp(db:3306"
	_, err := mysql.New(targets.Single, mysql.Options{Host: "db", Username: "app", Admin: secret.FromString(bad)})
	require.ErrorContains(t, err, "admin: is not a DSN")
	require.NotContains(t, err.Error(), "s3cr3t")
}
