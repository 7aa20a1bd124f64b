package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/secret"
)

// loginConfig builds the connection config of a login as user: the DSN that
// pgx parses holds no password (pgx puts the DSN in some errors), and the
// password is set on the parsed config.
func (t *Target) loginConfig(user string, password secret.Secret) (*pgx.ConnConfig, error) {
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s application_name=swarmkey",
		dsnQuote(t.opts.Host), t.opts.Port, dsnQuote(t.opts.DBName), dsnQuote(user), dsnQuote(t.opts.SSLMode))
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	// ParseConfig may have read PGPASSWORD or a passfile; the credential
	// under test is the only password a login may use.
	cfg.Password = password.RevealString()
	cfg.ConnectTimeout = t.opts.ConnectTimeout
	if !t.opts.AllowInsecureAuth {
		cfg.RequireAuth = scramOnly
	}
	return cfg, nil
}

// The require_auth of swarmkey's logins (see Options.AllowInsecureAuth).
// pgx checks each authentication request of the server against it and
// hangs up, before it sends anything derived from the password, when the
// server asks for another method.
const (
	// scramOnly is for a login with a password: SCRAM-SHA-256 proves the
	// password without sending it, where cleartext sends it as is and MD5
	// sends a hash that logs in as well as the password does (and, over
	// sslmode prefer, to whoever answers). It also refuses a server that
	// lets the login in without asking (trust): that is not the server
	// the credential is meant for.
	scramOnly = "scram-sha-256"
	// scramOrNone is for an admin URL without a password (peer, cert or
	// trust authentication): a server that asks for nothing is fine, one
	// that asks for a cleartext or MD5 password gets none.
	scramOrNone = "scram-sha-256,none"
)

// explainAuth adds what to do to a login error of a server that asked for
// an authentication method that require_auth refuses.
func explainAuth(err error) error {
	if err == nil || !strings.Contains(err.Error(), "require_auth check failed") {
		return err
	}
	return fmt.Errorf("%w; swarmkey sends a password only through SCRAM-SHA-256, which never reveals it to the server: "+
		"make the server authenticate this login with scram-sha-256 (pg_hba.conf, and the password stored as a SCRAM verifier), "+
		"or accept that the server receives the password by setting allow_insecure_auth: true in the policy", err)
}

// login opens a new connection (never a pooled one: the point is to prove
// that this credential logs in now) as user with password.
func (t *Target) login(ctx context.Context, user string, password secret.Secret) (*pgx.Conn, error) {
	cfg, err := t.loginConfig(user, password)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, explainAuth(secret.NewScrubber(password).Err(err))
	}
	return conn, nil
}

// logsIn reports whether user logs in with password. Any failure counts as
// no: the callers go on to do the work, and report that work's error.
func (t *Target) logsIn(ctx context.Context, user string, password secret.Secret) bool {
	conn, err := t.login(ctx, user, password)
	if err != nil {
		return false
	}
	closeConn(ctx, conn)
	return true
}

// dsnQuote quotes a keyword/value connection string value.
func dsnQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// closeConn closes a login connection, also when ctx is already done, but
// waits at most a second for the server.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
