package redis_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/redistest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/redis"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

var strategies = []targets.Strategy{targets.Alternating, targets.Single}

// system is one test's user names and key prefix: the rules allow reading
// and writing keys under prefix and nothing else. With single, the user
// exists, with those rules and no password. Users are deleted when the
// test ends.
type system struct {
	srv       *redistest.Server
	user, alt string
	prefix    string
}

func newSystem(t *testing.T, srv *redistest.Server, strategy targets.Strategy) *system {
	t.Helper()
	suffix := redistest.RandomHex(t, 4)
	s := &system{srv: srv, user: "checkout_" + suffix, prefix: "app" + suffix}
	s.alt = s.user + redis.AlternateSuffix
	t.Cleanup(func() {
		reply, err := srv.AdminCommand("ACL", "DELUSER", s.user, s.alt)
		if err != nil || strings.HasPrefix(reply, "-") {
			t.Errorf("ACL DELUSER: %q %v", reply, err)
		}
	})
	if strategy == targets.Single {
		// single rotates an existing user (its first password: none).
		s.admin(t, append([]string{"ACL", "SETUSER", s.user, "on"}, s.rules()...)...)
	}
	return s
}

// rules are the users' ACL rules: the keys under prefix, read and write.
func (s *system) rules() []string {
	return []string{"~" + s.prefix + ":*", "+@read", "+@write"}
}

func (s *system) admin(t *testing.T, args ...string) string {
	t.Helper()
	reply, err := s.srv.AdminCommand(args...)
	require.NoError(t, err, args[0])
	require.False(t, strings.HasPrefix(reply, "-"), "%s: %s", strings.Join(args[:2], " "), reply)
	return reply
}

// options for a target on s, with the server's admin.
func (s *system) options(strategy targets.Strategy) redis.Options {
	o := redis.Options{
		Host:          "127.0.0.1",
		Port:          s.srv.Port,
		Username:      s.user,
		Admin:         secret.FromString(s.srv.AdminURL("")),
		CanaryCommand: []string{"GET", s.prefix + ":orders"},
	}
	if strategy == targets.Alternating {
		o.ACLRules = s.rules()
		o.RetireOff = true
	}
	return o
}

func newTarget(t *testing.T, strategy targets.Strategy, opts redis.Options) *redis.Target {
	t.Helper()
	tg, err := redis.New(strategy, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tg.Close()) })
	return tg
}

func harness() targettest.Harness {
	return targettest.Harness{
		NewTarget: func(t *testing.T, strategy targets.Strategy) targets.Target {
			s := newSystem(t, redistest.Get(t), strategy)
			tg, err := redis.New(strategy, s.options(strategy))
			require.NoError(t, err)
			return tg
		},
		Password: newPassword,
		SecretOf: passwordOf,
	}
}

// passwordAlphabet includes quotes, a backslash, a space and a hash sign,
// so that any place that quoted a password by hand, or read a leading '#'
// as a hash, would break.
const passwordAlphabet = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()*+,-./:;<=>?@[\]^_{|}~" `

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
	d, err := redis.ParseDocument(doc)
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
