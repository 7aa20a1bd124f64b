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
	return cfg, nil
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
		return nil, secret.NewScrubber(password).Err(err)
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
