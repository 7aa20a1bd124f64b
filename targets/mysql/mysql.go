// Package mysql is the target for MySQL and MariaDB accounts.
//
// Two strategies:
//
//   - single changes one account's password in place, with an admin
//     connection (ALTER USER) or, when there is none, by logging in as the
//     account with its current password and changing its own (SET
//     PASSWORD; MariaDB only: MySQL reads SET PASSWORD's string as a
//     plaintext password, not as a hash).
//   - alternating takes turns between two accounts (Username and
//     AlternateUsername) that are both granted Role, which holds the
//     grants, and have it as their default role. Each rotation sets a new
//     password on the account that is not current, so the previous
//     credential keeps working for a period.
//
// Passwords never reach the server in clear text: the target computes the
// value the server stores for the account's authentication plugin
// (mysql_native_password's SHA1(SHA1(password)), MariaDB ed25519's public
// key) and sends that (ALTER USER … IDENTIFIED WITH plugin AS '<hash>'), so
// the general log, the slow log and the binary log hold only the hash.
// Logins (Verify, single's own logins) answer the server's challenge
// without sending the password; the driver refuses a server that asks for
// it in cleartext. It cannot refuse one that asks for caching_sha2_password
// or sha256_password's full authentication, which hands the server the
// password (RSA-encrypted to the key it sends, or in clear over TLS): use
// tls: true with a verified certificate where an impostor on the path is a
// concern. Errors name accounts, never passwords.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	driver "github.com/go-sql-driver/mysql"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Target rotates the password of MySQL or MariaDB accounts. It is safe for
// concurrent use; the rotator's per-policy lock keeps two rotations of one
// policy from running at once.
type Target struct {
	opts     Options
	strategy targets.Strategy

	mu sync.Mutex
	// admin is nil when Options.Admin is zero, and after Close.
	admin *sql.DB
	// adminScrub scrubs errors of the admin connection of the DSN and of
	// the password inside it.
	adminScrub *secret.Scrubber
}

var _ targets.Target = (*Target)(nil)

// New fills in opts' defaults for strategy, validates them (see
// Options.Validate) and, when Admin is set, builds the admin pool. It does
// not connect: the first verb that needs the admin connection does, so a
// daemon starts while the database is down and reports the failure on the
// rotation.
func New(strategy targets.Strategy, opts Options) (*Target, error) {
	opts = opts.WithDefaults(strategy)
	if err := opts.Validate(strategy); err != nil {
		return nil, err
	}
	t := &Target{opts: opts, strategy: strategy}
	if opts.Admin.IsZero() {
		return t, nil
	}
	cfg, err := driver.ParseDSN(opts.Admin.RevealString())
	if err != nil {
		// The driver's message may quote part of the DSN: say nothing of it.
		return nil, fieldError("admin", "is not a DSN of the Go MySQL driver (user:password@tcp(host:port)/)")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = opts.ConnectTimeout
	}
	cfg.AllowCleartextPasswords = false
	t.adminScrub = secret.NewScrubber(opts.Admin, secret.FromString(cfg.Passwd))
	connector, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql target: admin connection: %w", t.adminScrub.Err(err))
	}
	t.admin = sql.OpenDB(connector)
	t.admin.SetMaxOpenConns(2)
	t.admin.SetMaxIdleConns(1)
	return t, nil
}

// Close releases the admin pool. It is safe to call more than once.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil {
		err := t.admin.Close()
		t.admin = nil
		return err
	}
	return nil
}

// checkStrategy refuses a request for another strategy than New's.
func (t *Target) checkStrategy(s targets.Strategy) error {
	if s != t.strategy {
		return fmt.Errorf("mysql target: built for strategy %s, asked for %q", t.strategy, s)
	}
	return nil
}

// Check reads req.Document as a credential of this target: a mysql document
// (ParseDocument) naming Username or, with alternating, AlternateUsername.
// Anything else is a *targets.UnreadableError. It touches nothing.
func (t *Target) Check(_ context.Context, req targets.CheckRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if _, err := t.parseOwn(req.Document); err != nil {
		return fmt.Errorf("mysql target: %w", err)
	}
	return nil
}

// parseOwn parses a document and checks that it names an account this
// target manages, so a stray document never changes another account. Its
// errors are *targets.UnreadableError.
func (t *Target) parseOwn(s secret.Secret) (Document, error) {
	users := fmt.Sprintf("%q", t.opts.Username)
	if t.strategy == targets.Alternating {
		users += fmt.Sprintf(" or %q", t.opts.AlternateUsername)
	}
	unreadable := func(err error) error {
		return &targets.UnreadableError{Document: "a mysql document", Err: err,
			Expected: "a JSON object with username " + users + " and password (engine, host, port, dbname optional)"}
	}
	doc, err := ParseDocument(s)
	if err != nil {
		return Document{}, unreadable(err)
	}
	if doc.Username != t.opts.Username && (t.strategy != targets.Alternating || doc.Username != t.opts.AlternateUsername) {
		return Document{}, unreadable(fmt.Errorf("user %q is not a user of this target (%s)", doc.Username, users))
	}
	return doc, nil
}

// Create describes the next credential without changing the server: single
// always names Username; alternating names Username for the first rotation
// and afterwards whichever of Username and AlternateUsername the current
// document does not. single without Admin refuses a zero Current: it
// changes the password by logging in with the current one.
func (t *Target) Create(_ context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return targets.CreateResponse{}, err
	}
	if req.Password.IsZero() {
		return targets.CreateResponse{}, errors.New("mysql target: create: the generated password is empty")
	}
	var cur Document
	if !req.Current.IsZero() {
		var err error
		if cur, err = t.parseOwn(req.Current); err != nil {
			return targets.CreateResponse{}, fmt.Errorf("mysql target: create: current: %w", err)
		}
	} else if t.strategy == targets.Single && t.opts.Admin.IsZero() {
		return targets.CreateResponse{}, fieldError("admin",
			"is empty: without admin the single strategy changes the password by logging in with the current credential, and there is none (a first rotation, or a current version being replaced)")
	}
	user := t.opts.Username
	if t.strategy == targets.Alternating && cur.Username == t.opts.Username {
		user = t.opts.AlternateUsername
	}
	doc, err := Document{Host: t.opts.Host, Port: t.opts.Port, DBName: t.opts.DBName, Username: user, Password: req.Password}.Secret()
	if err != nil {
		return targets.CreateResponse{}, fmt.Errorf("mysql target: create: %w", err)
	}
	return targets.CreateResponse{Pending: doc, Principal: user}, nil
}

// Apply makes the pending credential valid. When it already logs in (a
// retry after a crash) Apply does nothing.
//
// alternating, on the admin connection: the account is created when missing
// (CREATE USER IF NOT EXISTS), granted Role, given Role as its default role,
// then ALTER USER … IDENTIFIED WITH plugin AS '<hash>' ACCOUNT UNLOCK (which
// undoes a lock left by Retire or Restore). Apply refuses to change the
// current credential's account, and the admin's own.
//
// single: ALTER USER … IDENTIFIED WITH on Username as admin or, without
// one, SET PASSWORD = '<hash>' logged in with req.Current's password.
func (t *Target) Apply(ctx context.Context, req targets.ApplyRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	pending, err := t.parseOwn(req.Pending)
	if err != nil {
		return fmt.Errorf("mysql target: apply: pending: %w", err)
	}
	user := pending.Username
	if req.Retry && t.logsIn(ctx, user, pending.Password) {
		return nil
	}
	if err := t.apply(ctx, req, user, pending.Password); err != nil {
		return fmt.Errorf("mysql account %s: apply: %w", t.account(user), err)
	}
	return nil
}

func (t *Target) apply(ctx context.Context, req targets.ApplyRequest, user string, password secret.Secret) error {
	hash, err := passwordHash(t.opts.AuthPlugin, password)
	if err != nil {
		return err
	}
	if t.strategy == targets.Single {
		if t.hasAdmin() {
			return t.adminSetPassword(ctx, user, hash, "")
		}
		return t.selfSetPassword(ctx, user, req.Current, "current", hash)
	}
	if err := t.notCurrent(user, req.Current); err != nil {
		return err
	}
	identified, err := identifiedClause(t.opts.AuthPlugin, hash)
	if err != nil {
		return err
	}
	return t.adminConn(ctx, func(conn *sql.Conn) error {
		if err := t.refuseAdminAccount(ctx, conn, user); err != nil {
			return err
		}
		acct := t.account(user)
		if _, err := conn.ExecContext(ctx, "CREATE USER IF NOT EXISTS "+acct+" "+identified); err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		role := quoteIdent(t.opts.Role)
		if _, err := conn.ExecContext(ctx, "GRANT "+role+" TO "+acct); err != nil {
			return fmt.Errorf("grant role %q (role): %w; the role must exist (CREATE ROLE %s) and hold the application's grants", t.opts.Role, err, role)
		}
		maria, err := isMariaDB(ctx, conn)
		if err != nil {
			return err
		}
		// The two servers spell it differently.
		setDefault := "SET DEFAULT ROLE " + role + " TO " + acct
		if maria {
			setDefault = "SET DEFAULT ROLE " + role + " FOR " + acct
		}
		if _, err := conn.ExecContext(ctx, setDefault); err != nil {
			return fmt.Errorf("set the default role %q: %w", t.opts.Role, err)
		}
		if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" "+identified+" ACCOUNT UNLOCK"); err != nil {
			return fmt.Errorf("alter user: %w", err)
		}
		return nil
	})
}

// Verify logs in on a new connection to Options' Host and Port (the
// document's copies are for clients) as the credential's user with its
// password and runs SELECT 1; with req.Canary it then runs CanaryQuery when
// one is set. The error names the account and the failing part.
func (t *Target) Verify(ctx context.Context, req targets.VerifyRequest) error {
	doc, err := ParseDocument(req.Credential)
	if err != nil {
		return fmt.Errorf("mysql target: verify: %w", err)
	}
	acct := t.account(doc.Username)
	sc := secret.NewScrubber(doc.Password)
	s, err := t.login(ctx, doc.Username, doc.Password)
	if err != nil {
		return fmt.Errorf("mysql account %s: verify: log in: %w", acct, err)
	}
	defer s.close()
	var one int
	if err := s.conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("mysql account %s: verify: SELECT 1: %w", acct, sc.Err(err))
	}
	if req.Canary && t.opts.CanaryQuery != "" {
		rows, err := s.conn.QueryContext(ctx, t.opts.CanaryQuery)
		if err == nil {
			for rows.Next() {
			}
			err = errors.Join(rows.Err(), rows.Close())
		}
		if err != nil {
			return fmt.Errorf("mysql account %s: verify: canary query: %w", acct, sc.Err(err))
		}
	}
	return nil
}

// Restore undoes an Apply of req.Pending before promote. Calling it again,
// or without an Apply before it, is harmless.
//
// single: the account gets req.Current's password back (nothing to do when
// that already logs in), as admin or, without one, logged in with the
// pending password. With no Current it gets a random password nobody
// knows, so the failed credential stops working.
//
// alternating, on the account Apply changed: when req.Current names it
// (another writer made it current after create) it gets Current's password
// back, unlocked, so current works; else when req.Previous names it, it
// gets Previous's password back, unlocked, so the previous credential keeps
// working; otherwise a random unknown password and ACCOUNT LOCK. An account
// Apply never created is left absent.
func (t *Target) Restore(ctx context.Context, req targets.RestoreRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if req.BeforeSet {
		return nil // Create touched nothing and Apply never ran
	}
	pending, err := t.parseOwn(req.Pending)
	if err != nil {
		return fmt.Errorf("mysql target: restore: pending: %w", err)
	}
	user := pending.Username
	if err := t.restore(ctx, req, user, pending.Password); err != nil {
		return fmt.Errorf("mysql account %s: restore: %w", t.account(user), err)
	}
	return nil
}

func (t *Target) restore(ctx context.Context, req targets.RestoreRequest, user string, pendingPassword secret.Secret) error {
	if t.strategy == targets.Single {
		var back secret.Secret
		if !req.Current.IsZero() {
			cur, err := t.parseOwn(req.Current)
			if err != nil {
				return fmt.Errorf("current: %w", err)
			}
			if t.logsIn(ctx, user, cur.Password) {
				return nil
			}
			back = cur.Password
		} else {
			if !t.hasAdmin() && !t.logsIn(ctx, user, pendingPassword) {
				return nil // the failed credential already does not work
			}
			unknown, err := randomPassword()
			if err != nil {
				return err
			}
			back = unknown
		}
		hash, err := passwordHash(t.opts.AuthPlugin, back)
		if err != nil {
			return err
		}
		if t.hasAdmin() {
			return t.adminSetPassword(ctx, user, hash, "")
		}
		return t.selfSetPassword(ctx, user, req.Pending, "pending", hash)
	}

	for _, held := range []struct {
		doc  secret.Secret
		what string
	}{{req.Current, "current"}, {req.Previous, "previous"}} {
		if held.doc.IsZero() {
			continue
		}
		d, err := t.parseOwn(held.doc)
		if err != nil {
			return fmt.Errorf("%s: %w", held.what, err)
		}
		if d.Username != user {
			continue
		}
		if t.logsIn(ctx, user, d.Password) {
			return nil
		}
		hash, err := passwordHash(t.opts.AuthPlugin, d.Password)
		if err != nil {
			return err
		}
		return t.adminSetPassword(ctx, user, hash, "ACCOUNT UNLOCK")
	}
	unknown, err := randomPassword()
	if err != nil {
		return err
	}
	hash, err := passwordHash(t.opts.AuthPlugin, unknown)
	if err != nil {
		return err
	}
	err = t.adminSetPassword(ctx, user, hash, "ACCOUNT LOCK")
	if errors.Is(err, errNoAccount) {
		return nil
	}
	return err
}

// Retire, for alternating with RetireLock, locks the retired credential's
// account (ACCOUNT LOCK), unless it is the current credential's account or
// does not exist; the next Apply on it unlocks it. Otherwise it does
// nothing.
func (t *Target) Retire(ctx context.Context, req targets.RetireRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if t.strategy != targets.Alternating || !t.opts.RetireLock || req.Retired.IsZero() {
		return nil
	}
	retired, err := t.parseOwn(req.Retired)
	if err != nil {
		return fmt.Errorf("mysql target: retire: %w", err)
	}
	user := retired.Username
	if err := t.notCurrent(user, req.Current); err != nil {
		return nil // never lock out the credential that must keep working
	}
	err = t.adminConn(ctx, func(conn *sql.Conn) error {
		if err := t.refuseAdminAccount(ctx, conn, user); err != nil {
			return err
		}
		exists, err := t.accountExists(ctx, conn, user)
		if err != nil || !exists {
			return err
		}
		if _, err := conn.ExecContext(ctx, "ALTER USER "+t.account(user)+" ACCOUNT LOCK"); err != nil {
			return fmt.Errorf("lock the account: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mysql account %s: retire: %w", t.account(user), err)
	}
	return nil
}

// notCurrent refuses to touch the current credential's account: with
// alternating that account must keep working whatever happens to the
// other.
func (t *Target) notCurrent(user string, current secret.Secret) error {
	if current.IsZero() {
		return nil
	}
	cur, err := ParseDocument(current)
	if err != nil {
		return fmt.Errorf("current: %w", err)
	}
	if cur.Username == user {
		return fmt.Errorf("refusing to change the current credential's account %s", t.account(user))
	}
	return nil
}

func (t *Target) hasAdmin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.admin != nil
}

// adminConn runs fn on one connection of the admin pool; errors are
// scrubbed of the admin DSN and password.
func (t *Target) adminConn(ctx context.Context, fn func(*sql.Conn) error) error {
	t.mu.Lock()
	pool := t.admin
	t.mu.Unlock()
	if pool == nil {
		if t.opts.Admin.IsZero() {
			return fieldError("admin", "is empty: this step needs an admin connection")
		}
		return errors.New("the target is closed")
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("admin connection: %w", t.adminScrub.Err(err))
	}
	defer conn.Close()
	return t.adminScrub.Err(fn(conn))
}

// refuseAdminAccount refuses to change the account the admin connection
// logs in as: the rotation would lock swarmkey out of the server.
func (t *Target) refuseAdminAccount(ctx context.Context, conn *sql.Conn, user string) error {
	var current string
	if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		return fmt.Errorf("read the admin's account: %w", err)
	}
	if name, _, _ := strings.Cut(current, "@"); name == user {
		return fmt.Errorf("refusing to change the account the admin credential logs in as (%s)", current)
	}
	return nil
}

var errNoAccount = errors.New("the account does not exist")

// accountExists reads whether user@UserHost exists.
func (t *Target) accountExists(ctx context.Context, conn *sql.Conn, user string) (bool, error) {
	var n int
	err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", user, t.opts.UserHost).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read the account: %w", err)
	}
	return n > 0, nil
}

// adminSetPassword sets user's password hash as admin; attrs ("ACCOUNT
// LOCK", "ACCOUNT UNLOCK" or "") go into the same ALTER USER. The account
// must exist (errNoAccount).
func (t *Target) adminSetPassword(ctx context.Context, user, hash, attrs string) error {
	identified, err := identifiedClause(t.opts.AuthPlugin, hash)
	if err != nil {
		return err
	}
	return t.adminConn(ctx, func(conn *sql.Conn) error {
		if err := t.refuseAdminAccount(ctx, conn, user); err != nil {
			return err
		}
		exists, err := t.accountExists(ctx, conn, user)
		if err != nil {
			return err
		}
		if !exists {
			return errNoAccount
		}
		stmt := "ALTER USER " + t.account(user) + " " + identified
		if attrs != "" {
			stmt += " " + attrs
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("alter user: %w", err)
		}
		return nil
	})
}

// selfSetPassword logs in as user with the password inside doc and sets
// the account's own password hash: single without an admin connection.
func (t *Target) selfSetPassword(ctx context.Context, user string, doc secret.Secret, what, hash string) error {
	if doc.IsZero() {
		return fmt.Errorf("without admin the account changes its own password, logging in with the %s credential, and there is none", what)
	}
	d, err := t.parseOwn(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := identifiedClause(t.opts.AuthPlugin, hash); err != nil {
		return err
	}
	s, err := t.login(ctx, user, d.Password)
	if err != nil {
		return fmt.Errorf("log in with the %s credential: %w", what, err)
	}
	defer s.close()
	sc := secret.NewScrubber(d.Password)
	maria, err := isMariaDB(ctx, s.conn)
	if err != nil {
		return sc.Err(err)
	}
	if !maria {
		// MySQL's SET PASSWORD = 'x' makes x the password: the hash would
		// become a plaintext password, in every log.
		return fieldError("admin", "is empty: an account changes its own password with a hash only on MariaDB; give admin for MySQL")
	}
	if _, err := s.conn.ExecContext(ctx, "SET PASSWORD = '"+hash+"'"); err != nil {
		return fmt.Errorf("set own password: %w", sc.Err(err))
	}
	return nil
}
