package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	driver "github.com/go-sql-driver/mysql"

	"github.com/swarmkey/swarmkey/secret"
)

// loginConfig is the driver configuration of a login as user with
// password. The driver refuses a server that asks for the password in
// cleartext (mysql_clear_password) or for the pre-4.1 hash.
func (t *Target) loginConfig(user string, password secret.Secret) *driver.Config {
	cfg := driver.NewConfig()
	cfg.User = user
	cfg.Passwd = password.RevealString()
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(t.opts.Host, strconv.Itoa(t.opts.Port))
	cfg.DBName = t.opts.DBName
	cfg.TLSConfig = t.opts.TLS
	cfg.Timeout = t.opts.ConnectTimeout
	cfg.AllowCleartextPasswords = false
	cfg.AllowOldPasswords = false
	return cfg
}

// session is one connection of its own (never a pooled one: the point of a
// login is to prove that this credential logs in now).
type session struct {
	db   *sql.DB
	conn *sql.Conn
}

func (s *session) close() {
	_ = s.conn.Close()
	_ = s.db.Close()
}

// login opens a session as user with password; its errors are scrubbed of
// the password.
func (t *Target) login(ctx context.Context, user string, password secret.Secret) (*session, error) {
	connector, err := driver.NewConnector(t.loginConfig(user, password))
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", secret.NewScrubber(password).Err(err))
	}
	db := sql.OpenDB(connector)
	var conn *sql.Conn
	for attempt := 1; ; attempt++ {
		conn, err = db.Conn(ctx)
		// The driver drops a trailing zero byte of the server's
		// auth-switch data (meant for a NUL-terminated scramble), so one
		// ed25519 login in 256, whose 32-byte random nonce ends in zero,
		// fails with ErrMalformPkt. A new login gets a new nonce.
		if !errors.Is(err, driver.ErrMalformPkt) || t.opts.AuthPlugin != PluginEd25519 || attempt == 3 {
			break
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, secret.NewScrubber(password).Err(err)
	}
	return &session{db: db, conn: conn}, nil
}

// logsIn reports whether user logs in with password. Any failure counts as
// no: the callers go on to do the work, and report that work's error.
func (t *Target) logsIn(ctx context.Context, user string, password secret.Secret) bool {
	s, err := t.login(ctx, user, password)
	if err != nil {
		return false
	}
	defer s.close()
	return s.conn.PingContext(ctx) == nil
}

// isMariaDB reads whether the server of conn is MariaDB (VERSION() says so).
func isMariaDB(ctx context.Context, conn *sql.Conn) (bool, error) {
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return false, fmt.Errorf("read the server version: %w", err)
	}
	return strings.Contains(strings.ToLower(version), "mariadb"), nil
}

// account is 'user'@'host' for SQL. Options.Validate allows no quote or
// backslash in either part, so the quotes need no escaping.
func (t *Target) account(user string) string {
	return "'" + user + "'@'" + t.opts.UserHost + "'"
}

// quoteIdent quotes a role name with backticks.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
