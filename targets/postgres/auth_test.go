package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// impostor is a fake PostgreSQL server on 127.0.0.1 that refuses TLS and
// answers every startup with one authentication request (cleartext or MD5
// password), then records what the client sends back.
type impostor struct {
	t        *testing.T
	ln       net.Listener
	authType uint32

	mu     sync.Mutex
	logins []impostorLogin
	wg     sync.WaitGroup
}

// impostorLogin is what one connection sent after its startup message.
type impostorLogin struct {
	user string
	// password is the PasswordMessage the client sent, if it sent one.
	password *string
	// raw is every byte the client sent on the connection.
	raw []byte
}

func newImpostor(t *testing.T, authType uint32) *impostor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	im := &impostor{t: t, ln: ln, authType: authType}
	im.wg.Go(im.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		im.wg.Wait()
	})
	return im
}

func (im *impostor) port() int { return im.ln.Addr().(*net.TCPAddr).Port }

func (im *impostor) serve() {
	for {
		conn, err := im.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		im.wg.Go(func() { im.handle(conn) })
	}
}

// recorder keeps every byte read from a connection.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (im *impostor) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	rec := &recorder{r: conn}
	be := pgproto3.NewBackend(rec, conn)
	var login impostorLogin
	defer func() {
		if login.user == "" {
			return // a TLS probe that got "no", or nothing at all
		}
		login.raw = rec.buf.Bytes()
		im.mu.Lock()
		im.logins = append(im.logins, login)
		im.mu.Unlock()
	}()
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch msg := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte("N")); err != nil {
				return
			}
			continue
		case *pgproto3.StartupMessage:
			login.user = msg.Parameters["user"]
		default:
			return
		}
		break
	}
	switch im.authType {
	case pgproto3.AuthTypeCleartextPassword:
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
	case pgproto3.AuthTypeMD5Password:
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}})
	}
	if err := be.Flush(); err != nil {
		return
	}
	if err := be.SetAuthType(im.authType); err != nil {
		im.t.Errorf("impostor: %v", err)
		return
	}
	msg, err := be.Receive()
	if err != nil {
		return // the client hung up: what we want
	}
	if pm, ok := msg.(*pgproto3.PasswordMessage); ok {
		pw := pm.Password
		login.password = &pw
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
	_ = be.Flush()
}

// received returns the logins seen so far.
func (im *impostor) received() []impostorLogin {
	im.mu.Lock()
	defer im.mu.Unlock()
	return append([]impostorLogin(nil), im.logins...)
}

// requireNoPassword waits for at least n logins as user (so that the test
// proved something: the server side records a login when its connection
// ends, a moment after the client gave up) and checks that no login sent a
// PasswordMessage or any of secrets.
func (im *impostor) requireNoPassword(t *testing.T, user string, n int, secrets ...string) {
	t.Helper()
	var logins []impostorLogin
	require.Eventually(t, func() bool {
		logins = im.received()
		as := 0
		for _, l := range logins {
			if l.user == user {
				as++
			}
		}
		return as >= n
	}, 10*time.Second, 10*time.Millisecond, "%d logins as %q expected", n, user)
	for _, l := range logins {
		require.Nil(t, l.password, "login as %q sent a password message", l.user)
		for i, s := range secrets {
			require.False(t, bytes.Contains(l.raw, []byte(s)), "login as %q sent secret %d", l.user, i)
		}
	}
}

var impostorAuths = []struct {
	name     string
	authType uint32
}{
	{"cleartext", pgproto3.AuthTypeCleartextPassword},
	{"md5", pgproto3.AuthTypeMD5Password},
}

// impostorOptions is a target on im with the default sslmode (prefer),
// which takes whatever answers without TLS.
func impostorOptions(im *impostor) postgres.Options {
	return postgres.Options{Host: "127.0.0.1", Port: im.port(), DBName: "app", Username: "checkout",
		GroupRole: "checkout_group", ConnectTimeout: 10 * time.Second}
}

func impostorDoc(t *testing.T, o postgres.Options, user string, pw secret.Secret) secret.Secret {
	t.Helper()
	doc, err := postgres.Document{Host: o.Host, Port: o.Port, DBName: o.DBName, Username: user, Password: pw}.Secret()
	require.NoError(t, err)
	return doc
}

// requireSCRAMRefusal checks that err is the refusal of a non-SCRAM
// authentication request, saying what to do.
func requireSCRAMRefusal(t *testing.T, err error, secrets ...string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorContains(t, err, "require_auth")
	require.ErrorContains(t, err, "swarmkey sends a password only through SCRAM-SHA-256")
	require.ErrorContains(t, err, "allow_insecure_auth: true")
	for i, s := range secrets {
		require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), s, "secret %d", i)
	}
}

// TestLoginsNeverSendAPasswordToAnImpostor: a server that asks for a
// cleartext or MD5 password gets none, from Verify, from the logins of a
// rotation (single without admin: Create's privilege check, Apply's retry
// check and its own login, the test step, Restore), and from the admin
// connection (Create, Apply), with or without a password in its URL. Each
// fails before any PasswordMessage.
func TestLoginsNeverSendAPasswordToAnImpostor(t *testing.T) {
	t.Parallel()
	for _, auth := range impostorAuths {
		t.Run(auth.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("verify", func(t *testing.T) {
				t.Parallel()
				im := newImpostor(t, auth.authType)
				opts := impostorOptions(im)
				tg := newTarget(t, opts)
				pw := newPassword(t)
				err := tg.Verify(ctx, targets.VerifyRequest{Credential: impostorDoc(t, opts, "checkout", pw), Canary: true})
				im.requireNoPassword(t, "checkout", 1, pw.RevealString())
				requireSCRAMRefusal(t, err, pw.RevealString())
				require.ErrorContains(t, err, `postgres role "checkout": verify: log in`)
			})

			t.Run("rotation", func(t *testing.T) {
				t.Parallel()
				im := newImpostor(t, auth.authType)
				opts := impostorOptions(im)
				opts.GroupRole = ""
				tg := newTarget(t, opts)
				curPW, newPW := newPassword(t), newPassword(t)
				current, pending := impostorDoc(t, opts, "checkout", curPW), impostorDoc(t, opts, "checkout", newPW)

				// create: the privilege check logs in with the current password.
				_, createErr := tg.Create(ctx, targets.CreateRequest{Strategy: targets.Single, Current: current, Password: newPW})
				errs := []error{
					createErr,
					// set: Retry first tries the pending password, then the
					// role logs in with its current one to change its own.
					tg.Apply(ctx, targets.ApplyRequest{Strategy: targets.Single, Pending: pending, Current: current, Retry: true}),
					// test
					tg.Verify(ctx, targets.VerifyRequest{Credential: pending, Canary: true}),
					// rollback: the current password is tried, then the pending one.
					tg.Restore(ctx, targets.RestoreRequest{Strategy: targets.Single, Pending: pending, Current: current}),
				}
				// One login at create, two at set, one at test, two at restore.
				im.requireNoPassword(t, "checkout", 6, curPW.RevealString(), newPW.RevealString())
				for _, err := range errs {
					requireSCRAMRefusal(t, err, curPW.RevealString(), newPW.RevealString())
				}
			})

			for _, withPassword := range []bool{true, false} {
				name := "admin_with_password"
				if !withPassword {
					name = "admin_without_password"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					im := newImpostor(t, auth.authType)
					opts := impostorOptions(im)
					adminPW := "adm1n-" + randomWord(t)
					url := fmt.Sprintf("postgres://swarmkey_admin:%s@127.0.0.1:%d/app", adminPW, im.port())
					if !withPassword {
						url = fmt.Sprintf("postgres://swarmkey_admin@127.0.0.1:%d/app", im.port())
					}
					opts.Admin = secret.FromString(url)
					tg := newTarget(t, opts)
					pw := newPassword(t)
					// create (the privilege check) and set log in as admin.
					_, createErr := tg.Create(ctx, targets.CreateRequest{Strategy: targets.Alternating, Password: pw})
					applyErr := tg.Apply(ctx, targets.ApplyRequest{Strategy: targets.Alternating, Pending: impostorDoc(t, opts, "checkout", pw)})
					im.requireNoPassword(t, "swarmkey_admin", 2, adminPW, pw.RevealString())
					requireSCRAMRefusal(t, createErr, adminPW, pw.RevealString())
					requireSCRAMRefusal(t, applyErr, adminPW, pw.RevealString())
				})
			}
		})
	}
}

// TestAllowInsecureAuthSendsThePassword: with allow_insecure_auth the
// impostor gets the password, as the option's documentation warns; this
// also shows that the impostor notices one.
func TestAllowInsecureAuthSendsThePassword(t *testing.T) {
	t.Parallel()
	for _, auth := range impostorAuths {
		t.Run(auth.name, func(t *testing.T) {
			t.Parallel()
			im := newImpostor(t, auth.authType)
			opts := impostorOptions(im)
			opts.AllowInsecureAuth = true
			tg := newTarget(t, opts)
			pw := newPassword(t)
			err := tg.Verify(context.Background(), targets.VerifyRequest{Credential: impostorDoc(t, opts, "checkout", pw)})
			require.Error(t, err)
			require.NotContains(t, err.Error(), pw.RevealString())
			require.NotContains(t, err.Error(), "allow_insecure_auth")

			var got []impostorLogin
			require.Eventually(t, func() bool {
				got = im.received()
				return len(got) > 0
			}, 10*time.Second, 10*time.Millisecond)
			require.NotNil(t, got[0].password, "the password went to the impostor")
			if auth.authType == pgproto3.AuthTypeCleartextPassword {
				require.Equal(t, pw.RevealString(), *got[0].password)
			} else {
				require.Regexp(t, `^md5[0-9a-f]{32}$`, *got[0].password)
			}
		})
	}
}

// randomWord is 16 random letters: a password that needs no escaping in a URL.
func randomWord(t *testing.T) string {
	t.Helper()
	b := []byte(newPassword(t).RevealString())
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b[:16])
}

// TestAdminWithPasswordLogsInWithSCRAM: an admin URL with a password, over
// TCP to the real server (pg_hba.conf: scram-sha-256) and with the default
// sslmode, rotates as before: SCRAM is what the rule requires. (The other
// tests log in as admin over the unix socket with trust, which asks for no
// password.)
func TestAdminWithPasswordLogsInWithSCRAM(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, plainNames, strategy)
			admin := pgtest.RoleName(t, "swarmkey_admin")
			adminPW := randomWord(t)
			verifier, err := postgres.SCRAMVerifier(secret.FromString(adminPW))
			require.NoError(t, err)
			t.Cleanup(func() { dropRoles(t, s.db, admin) })
			managed := s.groupSQL
			if strategy == targets.Single {
				managed = s.userSQL
			}
			for _, q := range []string{
				"CREATE ROLE " + ident(admin) + " LOGIN CREATEROLE PASSWORD '" + verifier + "'",
				// PostgreSQL 16 and later want ADMIN OPTION on a role to manage it.
				"GRANT " + managed + " TO " + ident(admin) + " WITH ADMIN OPTION",
			} {
				_, err := s.db.Pool.Exec(context.Background(), q)
				require.NoError(t, err, q)
			}

			opts := s.options()
			opts.SSLMode = ""
			opts.Admin = secret.FromString(fmt.Sprintf("postgres://%s:%s@%s:%d/%s", admin, adminPW, s.host, s.port, s.db.Name))
			r := &rotator{t: t, tg: newTarget(t, opts), strategy: strategy}
			r.rotate()
			r.rotate()
			require.NoError(t, r.verify(r.current, true))
		})
	}
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
