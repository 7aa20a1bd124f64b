package redis_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/redistest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/redis"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Run(t, harness())
}

func sha256Hex(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:])
}

// TestPasswordsNeverCrossTheWireInACommand rotates with every path that
// sets a password (alternating, single, restores, retire) with the admin
// connection behind a proxy that records every byte it sends, and a MONITOR
// running. Neither the admin's bytes, nor MONITOR, nor the slow log, the
// users (ACL LIST), the ACL file or the server's log hold a generated
// password; the admin's bytes hold each one's SHA-256 instead, which is
// what the server stores.
func TestPasswordsNeverCrossTheWireInACommand(t *testing.T) {
	t.Parallel()
	srv := redistest.StartForTest(t, redistest.Config{})
	monitor := srv.Monitor(t)
	proxy, sent := srv.RecordingProxy(t)
	var passwords []string
	for _, strategy := range strategies {
		s := newSystem(t, srv, strategy)
		opts := s.options(strategy)
		opts.Admin = secret.FromString(srv.AdminURL(proxy))
		tg := newTarget(t, strategy, opts)
		r := &stepper{t: t, tg: tg, strategy: strategy}
		for range 3 {
			r.rotate()
		}
		require.NoError(t, r.restore(r.createApply()))
		require.NoError(t, tg.Retire(context.Background(), targets.RetireRequest{Strategy: strategy, Retired: r.previous, Current: r.current}))
		// A restore whose current needs its password back.
		if strategy == targets.Single {
			require.NoError(t, tg.Restore(context.Background(), targets.RestoreRequest{Strategy: strategy, Pending: r.createApply(), Current: r.current}))
		}
		passwords = append(passwords, r.passwords...)
	}
	require.Len(t, passwords, 2*4+1)

	admin := sent()
	// The admin's traffic must hold our commands, or the search proves
	// nothing. (A failure names what is missing; it never prints the text.)
	for _, w := range []string{"SETUSER", "RESETPASS", "SAVE", "WHOAMI"} {
		require.True(t, strings.Contains(strings.ToUpper(admin), w), "the admin's traffic should hold %q", w)
	}
	users := srv.ReadAll(t, "ACL", "LIST")
	aclFile, err := os.ReadFile(srv.ACLFile)
	require.NoError(t, err)
	mon := monitor()
	require.True(t, strings.Contains(mon, `"AUTH" "(redacted)" "(redacted)"`), "MONITOR should show the canary's logins")
	require.True(t, strings.Contains(mon, `"GET"`), "MONITOR should show the canary's command")
	serverLog, err := os.ReadFile(srv.LogFile)
	require.NoError(t, err)

	requireNoneIn(t, admin, passwords)
	requireNoneIn(t, mon, passwords)
	requireNoneIn(t, srv.ReadAll(t, "SLOWLOG", "GET", "-1"), passwords)
	requireNoneIn(t, users, passwords)
	requireNoneIn(t, string(aclFile), passwords)
	requireNoneIn(t, string(serverLog), passwords)
	for i, pw := range passwords {
		require.True(t, strings.Contains(admin, "#"+sha256Hex(pw)), "the admin's traffic should hold the hash of password %d", i)
	}
}

// TestStoredHashIsTheClients: the server stores the SHA-256 the target
// sent as the user's only password, and the credential logs in with it.
func TestStoredHashIsTheClients(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, redistest.Get(t), strategy)
			r := &stepper{t: t, tg: newTarget(t, strategy, s.options(strategy)), strategy: strategy}
			r.rotate()
			doc, err := redis.ParseDocument(r.rotate())
			require.NoError(t, err)
			require.NoError(t, r.verify(r.current, false))
			line := aclLine(t, s.srv, doc.Username)
			require.Equal(t, 1, strings.Count(line, " #"), "one password: %s", line)
			require.Contains(t, line, " #"+sha256Hex(doc.Password.RevealString()))
		})
	}
}

// aclLine is user's line of ACL LIST ("user name on #… ~… +…"), or "".
func aclLine(t *testing.T, srv *redistest.Server, user string) string {
	t.Helper()
	for _, l := range strings.Split(srv.ReadAll(t, "ACL", "LIST"), "\r\n") {
		if strings.HasPrefix(l, "user "+user+" ") {
			return l
		}
	}
	return ""
}

// TestACLSavePersists: after a rotation the ACL file holds the new hash, so
// a server that reloads its users from the file (ACL LOAD, as on a
// restart) still takes the current credential, and alternating's previous.
func TestACLSavePersists(t *testing.T) {
	t.Parallel()
	// A server of its own: ACL LOAD disconnects every client.
	srv := redistest.StartForTest(t, redistest.Config{})
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, srv, strategy)
			// newSystem's single user exists only in memory: save it, as an
			// operator would have.
			s.admin(t, "ACL", "SAVE")
			r := &stepper{t: t, tg: newTarget(t, strategy, s.options(strategy)), strategy: strategy}
			r.rotate()
			r.rotate()
			s.admin(t, "ACL", "LOAD")
			require.NoError(t, r.verify(r.current, true), "current after ACL LOAD")
			if strategy == targets.Alternating {
				require.NoError(t, r.verify(r.previous, true), "previous after ACL LOAD")
			}
			file, err := os.ReadFile(srv.ACLFile)
			require.NoError(t, err)
			doc, err := redis.ParseDocument(r.current)
			require.NoError(t, err)
			require.Contains(t, string(file), "#"+sha256Hex(doc.Password.RevealString()))
		})
	}
}

// TestWithoutACLFile: a server that keeps its users in its configuration
// answers ACL SAVE with an error; the rotation goes on.
func TestWithoutACLFile(t *testing.T) {
	t.Parallel()
	srv := redistest.StartForTest(t, redistest.Config{NoACLFile: true})
	reply, err := srv.AdminCommand("ACL", "SAVE")
	require.NoError(t, err)
	require.Contains(t, reply, "not configured to use an ACL file", "the server should refuse ACL SAVE")
	for _, strategy := range strategies {
		s := newSystem(t, srv, strategy)
		r := &stepper{t: t, tg: newTarget(t, strategy, s.options(strategy)), strategy: strategy}
		r.rotate()
		r.rotate()
		require.NoError(t, r.restore(r.createApply()))
		require.NoError(t, r.verify(r.current, true))
	}
}

// TestCanaryWithoutPermissionFailsVerify: the canary runs as the new
// credential, so a command on a key outside its rules fails Verify with
// Canary, and only then.
func TestCanaryWithoutPermissionFailsVerify(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, redistest.Get(t), strategy)
			opts := s.options(strategy)
			opts.CanaryCommand = []string{"GET", "hidden:" + s.prefix}
			r := &stepper{t: t, tg: newTarget(t, strategy, opts), strategy: strategy}
			pending := r.createApply()
			require.NoError(t, r.verify(pending, false), "without Canary only the login is checked")
			err := r.verify(pending, true)
			require.Error(t, err)
			require.Contains(t, err.Error(), "verify: canary command GET")
			require.Contains(t, err.Error(), "NOPERM")
			requireNoneIn(t, err.Error(), r.passwords)
		})
	}
}

// TestAlternatingSameRules: each Apply resets the user it changes to
// exactly acl_rules, so both users hold the same rules, and a permission
// someone added by hand is gone after the next rotation of that user.
func TestAlternatingSameRules(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Alternating)
	r := &stepper{t: t, tg: newTarget(t, targets.Alternating, s.options(targets.Alternating)), strategy: targets.Alternating}
	r.rotate() // user
	r.rotate() // alt
	rulesOf := func(user string) string {
		line := aclLine(t, s.srv, user)
		require.NotEmpty(t, line, "user %s", user)
		var kept []string
		for _, f := range strings.Fields(line)[2:] { // drop "user <name>"
			if !strings.HasPrefix(f, "#") {
				kept = append(kept, f)
			}
		}
		return strings.Join(kept, " ")
	}
	require.Equal(t, rulesOf(s.user), rulesOf(s.alt))
	require.Contains(t, rulesOf(s.user), "~"+s.prefix+":*")

	s.admin(t, "ACL", "SETUSER", s.user, "+flushall", "~other:*")
	require.NotEqual(t, rulesOf(s.user), rulesOf(s.alt))
	r.rotate() // user again
	require.Equal(t, rulesOf(s.user), rulesOf(s.alt), "the hand-added rules are gone")
}

// TestAlternatingRestoreAndRetireOff: a restore of a never-previous user
// removes its passwords and switches it off; Retire switches the retired
// user off, never the current one; the next Apply switches it on.
func TestAlternatingRestoreAndRetireOff(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Alternating)
	tg := newTarget(t, targets.Alternating, s.options(targets.Alternating))
	r := &stepper{t: t, tg: tg, strategy: targets.Alternating}
	on := func(user string) bool { return strings.Contains(aclLine(t, s.srv, user), " on ") }
	r.rotate() // user
	pending := r.createApply()
	require.NoError(t, r.restore(pending))
	require.False(t, on(s.alt), "the failed user is off")
	require.NotContains(t, aclLine(t, s.srv, s.alt), "#", "and has no password")
	require.Error(t, r.verify(pending, false))

	r.rotate() // alt, on again
	require.True(t, on(s.alt))
	require.NoError(t, tg.Retire(context.Background(), targets.RetireRequest{Strategy: targets.Alternating, Retired: r.previous, Current: r.current}))
	require.False(t, on(s.user), "the retired user is off")
	require.Error(t, r.verify(r.previous, false))
	require.NoError(t, r.verify(r.current, true))
	require.NoError(t, tg.Retire(context.Background(), targets.RetireRequest{Strategy: targets.Alternating, Retired: r.current, Current: r.current}))
	require.True(t, on(s.alt), "Retire never switches off the current user")
	r.rotate()
	require.True(t, on(s.user), "Apply switches the user on")
}

// TestRestoreGivesAnotherWritersCurrentItsPassword: alternating applied
// pending to a user, then another writer made a credential of that same
// user current (with another password): Restore gives the user current's
// password back, so current works, instead of switching it off.
func TestRestoreGivesAnotherWritersCurrentItsPassword(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Alternating)
	tg := newTarget(t, targets.Alternating, s.options(targets.Alternating))
	r := &stepper{t: t, tg: tg, strategy: targets.Alternating}
	r.rotate() // user
	pending := r.createApply()
	// The other writer's current names alt, the user pending changed.
	theirs, err := redis.Document{Host: "127.0.0.1", Port: s.srv.Port, Username: s.alt, Password: newPassword(t)}.Secret()
	require.NoError(t, err)
	require.Error(t, r.verify(theirs, false))
	require.NoError(t, tg.Restore(context.Background(), targets.RestoreRequest{
		Strategy: targets.Alternating, Pending: pending, Current: theirs, Previous: r.current,
	}))
	require.NoError(t, r.verify(theirs, true), "current logs in after the restore")
	require.Error(t, r.verify(pending, false), "the failed pending does not")
}

// TestApplyRefusesTheCurrentUserAndTheAdmins: alternating never changes
// the current credential's user, nor the admin's own.
func TestApplyRefusesTheCurrentUserAndTheAdmins(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Alternating)
	tg := newTarget(t, targets.Alternating, s.options(targets.Alternating))
	r := &stepper{t: t, tg: tg, strategy: targets.Alternating}
	cur := r.rotate()
	err := tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Alternating, Pending: cur, Current: cur})
	require.ErrorContains(t, err, "refusing to change the current credential's user")

	for _, strategy := range strategies {
		opts := s.options(strategy)
		opts.Username = redistest.AdminUser
		admin := newTarget(t, strategy, opts)
		resp, err := admin.Create(context.Background(), targets.CreateRequest{Strategy: strategy, Password: newPassword(t)})
		require.NoError(t, err)
		err = admin.Apply(context.Background(), targets.ApplyRequest{Strategy: strategy, Pending: resp.Pending})
		require.ErrorContains(t, err, "refusing to change the user the admin credential logs in as (admin)")
		err = admin.Restore(context.Background(), targets.RestoreRequest{Strategy: strategy, Pending: resp.Pending})
		require.ErrorContains(t, err, "refusing to change the user the admin credential logs in as (admin)")
	}
	require.NotEmpty(t, aclLine(t, s.srv, redistest.AdminUser), "the admin user is unchanged")
}

// TestSingleNeedsAnExistingUser: single changes only the password of a
// user that exists, and never creates one.
func TestSingleNeedsAnExistingUser(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Alternating) // no user made
	opts := s.options(targets.Single)
	tg := newTarget(t, targets.Single, opts)
	resp, err := tg.Create(context.Background(), targets.CreateRequest{Strategy: targets.Single, Password: newPassword(t)})
	require.NoError(t, err)
	err = tg.Apply(context.Background(), targets.ApplyRequest{Strategy: targets.Single, Pending: resp.Pending})
	require.ErrorContains(t, err, "the user does not exist")
	require.Empty(t, aclLine(t, s.srv, s.user), "no user was created")
}

func TestVerifyErrorNamesTheUser(t *testing.T) {
	t.Parallel()
	s := newSystem(t, redistest.Get(t), targets.Single)
	tg := newTarget(t, targets.Single, s.options(targets.Single))
	pw := newPassword(t)
	doc, err := redis.Document{Host: "127.0.0.1", Port: s.srv.Port, Username: s.user, Password: pw}.Secret()
	require.NoError(t, err)
	err = tg.Verify(context.Background(), targets.VerifyRequest{Credential: doc})
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("redis user %s: verify: log in", s.user))
	require.Contains(t, err.Error(), "WRONGPASS")
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), pw.RevealString())
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	admin := secret.FromString("redis://admin:pw@db:6379/")
	for _, c := range []struct {
		name     string
		strategy targets.Strategy
		opts     redis.Options
		want     []string
		absent   string
	}{
		{"alternating needs rules and admin", targets.Alternating, redis.Options{Host: "db", Username: "app"},
			[]string{"acl_rules: required", "admin: required"}, ""},
		{"single refuses alternating's fields", targets.Single, redis.Options{Host: "db", Username: "app", Admin: admin, ACLRules: []string{"+get"}, RetireOff: true},
			[]string{"acl_rules: used only by strategy alternating", "retire_off: used only by strategy alternating"}, ""},
		{"rules may not set passwords", targets.Alternating, redis.Options{Host: "db", Username: "app", Admin: admin,
			ACLRules: []string{"+get", ">hunter2hunter2", "nopass", "ON", ""}},
			[]string{"acl_rules[1]: sets or removes a password", `acl_rules[2]: "nopass" is the target's`, `acl_rules[3]: "ON" is the target's`, "acl_rules[4]: is empty"}, "hunter2"},
		{"names", targets.Alternating, redis.Options{Host: "db", Username: "a b", AlternateUsername: "a b", Admin: admin, ACLRules: []string{"+get"}},
			[]string{`username: "a b" is not a valid user name`, `alternate_username: "a b" is not a valid user name`}, ""},
		{"no host", targets.Single, redis.Options{Username: "app", TLS: "maybe", DB: -1, Admin: admin},
			[]string{"host: required", `tls: unknown mode "maybe"`, "db: must not be negative"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.WithDefaults(c.strategy).Validate(c.strategy)
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			if c.absent != "" {
				require.NotContains(t, err.Error(), c.absent)
			}
		})
	}
	ok := redis.Options{Host: "db", Username: "app", ACLRules: []string{"~app:*", "+@read"}, Admin: admin}
	require.NoError(t, ok.WithDefaults(targets.Alternating).Validate(targets.Alternating))
	require.Equal(t, "app_b", ok.WithDefaults(targets.Alternating).AlternateUsername)
	require.Equal(t, redis.DefaultPort, ok.WithDefaults(targets.Alternating).Port)
	require.Empty(t, redis.Options{Host: "db", Username: "app"}.WithDefaults(targets.Single).AlternateUsername)
}

func TestAdminURLErrorQuotesNothing(t *testing.T) {
	t.Parallel()
	bad := "redis://admin:" + strings.Repeat("s3cr3t", 3) + "@db:port/"
	_, err := redis.New(targets.Single, redis.Options{Host: "db", Username: "app", Admin: secret.FromString(bad)})
	require.ErrorContains(t, err, "admin: is not a Redis URL")
	require.NotContains(t, err.Error(), "s3cr3t")
}
