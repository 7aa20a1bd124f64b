// Package postgres is the target for PostgreSQL login roles.
//
// Two strategies:
//
//   - single changes one role's password in place, with an admin connection
//     or, when there is none, by logging in as the role with its current
//     password and changing its own.
//   - alternating takes turns between two login roles (Username and
//     AlternateUsername) that are both members of a NOLOGIN group role that
//     holds the grants. Each rotation sets a new password on the role that is
//     not current, so the previous credential keeps working for a period.
//     Both roles switch to the group at login (ALTER ROLE … SET role), so
//     tables they create belong to the group and stay usable by the other.
//
// Passwords never reach the server in plaintext: the target computes the
// SCRAM-SHA-256 verifier itself and sends that, so a server that logs every
// statement logs only the verifier. Its logins with a password (Verify, the
// single strategy's own logins, the admin connection) authenticate only with
// SCRAM-SHA-256, so a server that asks for a cleartext or MD5 password gets
// none (unless Options.AllowInsecureAuth). Errors name roles, never
// passwords.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Target rotates the password of PostgreSQL login roles. It is safe for
// concurrent use; the rotator's per-policy lock keeps two rotations of one
// policy from running at once.
type Target struct {
	opts Options

	mu sync.Mutex
	// admin is nil when Options.Admin is zero, and after Close.
	admin *pgxpool.Pool
	// adminScrub scrubs errors of the admin connection of the whole URL
	// and of the password inside it.
	adminScrub *secret.Scrubber
	// sharedAdmin says admin belongs to Options.AdminPools: Close leaves
	// it open.
	sharedAdmin bool
	// verifiers are derived by Create for Apply (see verifierDerivations).
	verifiers verifierDerivations
}

var _ targets.Target = (*Target)(nil)

// New validates opts (see Options.Validate), fills in defaults and, when
// Admin is set, builds the admin pool. It does not connect: the first verb
// that needs the admin connection does, so a daemon starts while the
// database is down and reports the failure on the rotation.
func New(ctx context.Context, opts Options) (*Target, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	t := &Target{opts: opts}
	if opts.Admin.IsZero() {
		return t, nil
	}
	cfg, err := pgxpool.ParseConfig(opts.Admin.RevealString())
	if err != nil {
		// pgx's message quotes the URL with a best-effort redaction; say
		// nothing of the value instead.
		return nil, fieldErr("Admin", "is not a valid PostgreSQL connection URL (postgres://user:password@host:port/db?…)")
	}
	cfg.MaxConns = 2
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "swarmkey"
	}
	cfg.AfterConnect = planFactsOnceByIndex
	if !opts.AllowInsecureAuth {
		// Password is what the URL, PGPASSWORD or a passfile gave.
		cfg.ConnConfig.RequireAuth = scramOnly
		if cfg.ConnConfig.Password == "" {
			cfg.ConnConfig.RequireAuth = scramOrNone
		}
	}
	t.adminScrub = secret.NewScrubber(opts.Admin, secret.FromString(cfg.ConnConfig.Password))
	var pool *pgxpool.Pool
	if opts.AdminPools != nil {
		key := adminPoolKey{admin: opts.Admin.RevealString(), connectTimeout: opts.ConnectTimeout, allowInsecureAuth: opts.AllowInsecureAuth}
		pool, err = opts.AdminPools.pool(ctx, key, cfg)
		t.sharedAdmin = true
	} else {
		pool, err = pgxpool.NewWithConfig(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres target: admin pool: %w", t.adminScrub.Err(err))
	}
	t.admin = pool
	return t, nil
}

// planFactsOnceByIndex sets up a new admin connection for factsSQL, the
// one query it plans (the rest are ALTER and CREATE ROLE), which every
// create and set runs:
//   - enable_seqscan = off: the shared catalogs often have no statistics
//     (a server whose roles were just made, before autovacuum analyses
//     pg_authid and pg_auth_members), and a plan built without them reads
//     every membership at each step of the recursion, and every role for
//     rolname = ANY($1): 1 ms and 100 buffers a call on 3,000 roles,
//     against 0.1 ms and 30 by index;
//   - plan_cache_mode = force_generic_plan: PostgreSQL judged the generic
//     plan dearer than a custom one and planned the query again on every
//     call, 0.75 ms of the server's CPU each time. With the first setting
//     the generic plan reads by index as the custom one does (the
//     recursion's OFFSET 0 fences fix its shape), so nothing is lost. A
//     server before PostgreSQL 12 does not know the setting
//     (undefined_object): it keeps planning each call, and the connection
//     is used all the same.
func planFactsOnceByIndex(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object
		return nil
	}
	return err
}

// Close releases the admin pool (closing it unless it is shared). It is
// safe to call more than once.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil && !t.sharedAdmin {
		t.admin.Close()
	}
	t.admin = nil
	t.verifiers.clear()
	return nil
}

// Check reads req.Document as a credential of this target: a postgres
// document (ParseDocument) naming Username or, with alternating,
// AlternateUsername. Anything else is a *targets.UnreadableError. It
// touches nothing.
func (t *Target) Check(_ context.Context, req targets.CheckRequest) error {
	if err := t.opts.ValidateStrategy(req.Strategy); err != nil {
		return err
	}
	if err := t.check(req.Strategy, req.Document); err != nil {
		return fmt.Errorf("postgres target: %w", err)
	}
	return nil
}

// check is Check without the strategy's validation.
func (t *Target) check(strategy targets.Strategy, s secret.Secret) error {
	roles := fmt.Sprintf("%q", t.opts.Username)
	if strategy == targets.Alternating {
		roles += fmt.Sprintf(" or %q", t.opts.AlternateUsername)
	}
	unreadable := func(err error) error {
		return &targets.UnreadableError{Document: "a postgres document", Err: err,
			Expected: "a JSON object with username " + roles + " and password (engine, host, port, dbname optional)"}
	}
	doc, err := ParseDocument(s)
	if err != nil {
		return unreadable(err)
	}
	switch {
	case doc.Username == t.opts.Username:
	case strategy == targets.Alternating && doc.Username == t.opts.AlternateUsername:
	case strategy == targets.Alternating:
		return unreadable(fmt.Errorf("role %q is neither Username %q nor AlternateUsername %q",
			doc.Username, t.opts.Username, t.opts.AlternateUsername))
	default:
		return unreadable(fmt.Errorf("role %q is not Username %q", doc.Username, t.opts.Username))
	}
	return nil
}

// Create describes the next credential without changing the server: single
// always names Username; alternating names Username for the first rotation
// and afterwards whichever of Username and AlternateUsername the current
// document does not. The document carries Host, Port and DBName from the
// options and req.Password; Principal is the role name.
//
// A current document that Check refuses is an error wrapping
// *targets.UnreadableError. single without Admin changes the role's password
// by logging in with the current one, so it refuses a zero Current (a first
// rotation, or a replaced unreadable current): that needs Admin.
//
// Unless AllowPrivileged, Create then reads the server, on the admin
// connection or (single without Admin) logged in with the current
// credential, and refuses with a *PrivilegedRoleError a policy whose roles
// are privileged (see Options.AllowPrivileged): the create step fails, and
// the rotation with it, before anything changed. Apply, Restore and Retire
// check again on the session in which they change a role, right before.
func (t *Target) Create(ctx context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	if err := t.opts.ValidateStrategy(req.Strategy); err != nil {
		return targets.CreateResponse{}, err
	}
	if req.Password.IsZero() {
		return targets.CreateResponse{}, errors.New("postgres target: create: the generated password is empty")
	}
	var cur Document
	if !req.Current.IsZero() {
		if err := t.check(req.Strategy, req.Current); err != nil {
			return targets.CreateResponse{}, fmt.Errorf("postgres target: create: current: %w", err)
		}
		cur, _ = ParseDocument(req.Current)
	} else if req.Strategy == targets.Single && t.opts.Admin.IsZero() {
		return targets.CreateResponse{}, fieldErr("Admin",
			"is empty: without Admin the single strategy changes the role's password by logging in with the current credential, and there is none (a first rotation, or a current version being replaced)")
	}
	if err := t.checkPrivileges(ctx, req.Strategy, cur); err != nil {
		return targets.CreateResponse{}, fmt.Errorf("postgres target: create: %w", err)
	}
	role := t.opts.Username
	if req.Strategy == targets.Alternating && cur.Username == t.opts.Username {
		role = t.opts.AlternateUsername
	}
	doc, err := t.document(role, req.Password).Secret()
	if err != nil {
		return targets.CreateResponse{}, fmt.Errorf("postgres target: create: %w", err)
	}
	// Apply needs the password's SCRAM verifier: derive it while the
	// rotator writes and records the pending version.
	t.verifiers.start(req.Token, req.Password)
	return targets.CreateResponse{Pending: doc, Principal: role}, nil
}

func (t *Target) document(role string, password secret.Secret) Document {
	return Document{
		Host:     t.opts.Host,
		Port:     t.opts.Port,
		DBName:   t.opts.DBName,
		Username: role,
		Password: password,
	}
}

// Apply makes the pending credential valid. When it already logs in (a
// retry after a crash) Apply does nothing.
//
// alternating, with the admin connection, its changes in one transaction: the group
// role must exist (operators create it); the login role is created when
// missing (CREATE ROLE … LOGIN IN ROLE group) and made a member of the group
// when it is not; ALTER ROLE … SET role = group unless its sessions already
// act as the group; then ALTER ROLE … LOGIN
// PASSWORD with the verifier, which also undoes a NOLOGIN left by Retire.
// Apply refuses to change the current credential's role.
//
// single: ALTER ROLE … PASSWORD on Username, as admin or, without one,
// logged in as the role with req.Current's password.
//
// Unless AllowPrivileged, a policy whose roles are privileged is refused
// with a *PrivilegedRoleError on the session that would
// change the role, before it changes anything (as in Create).
func (t *Target) Apply(ctx context.Context, req targets.ApplyRequest) error {
	pending, err := t.parseOwn(req.Strategy, req.Pending, "pending")
	if err != nil {
		return fmt.Errorf("postgres target: apply: %w", err)
	}
	role := pending.Username
	if req.Retry && t.logsIn(ctx, role, pending.Password) {
		t.verifiers.forget(req.Token)
		return nil
	}
	verifier, err := t.verifiers.take(req.Token, pending.Password)
	if err != nil {
		return fmt.Errorf("postgres role %q: apply: %w", role, err)
	}

	if req.Strategy == targets.Single {
		if t.hasAdmin() {
			err = t.adminSetPassword(ctx, req.Strategy, role, verifier, "")
		} else {
			err = t.selfSetPassword(ctx, role, req.Current, "current", verifier)
		}
		if err != nil {
			return fmt.Errorf("postgres role %q: apply: %w", role, err)
		}
		return nil
	}

	if err := t.notCurrent(role, req.Current); err != nil {
		return fmt.Errorf("postgres role %q: apply: %w", role, err)
	}
	group := t.opts.GroupRole
	err = t.adminConn(ctx, func(conn adminSession) error {
		f, err := t.readFacts(ctx, conn, req.Strategy, role, group)
		if err != nil {
			return err
		}
		if err := t.refusal(f, req.Strategy, true); err != nil {
			return err
		}
		if !f.groupExists {
			return fmt.Errorf("group role %q (GroupRole) does not exist: create it (CREATE ROLE %s NOLOGIN) and grant it the application's privileges",
				group, ident(group))
		}
		lit, err := passwordLiteral(verifier)
		if err != nil {
			return err
		}
		var change []string
		switch {
		case !f.exists:
			change = append(change, "CREATE ROLE "+ident(role)+" LOGIN IN ROLE "+ident(group))
		case !f.member:
			change = append(change, "GRANT "+ident(group)+" TO "+ident(role))
		}
		// Sessions of the role act as the group, so objects they create are
		// owned by the group and the other login role can use them. Set
		// only when it is not: each ALTER ROLE … SET rewrites a catalog row
		// and makes every session of the server reload its caches.
		if !f.actsAsGroup {
			change = append(change, "ALTER ROLE "+ident(role)+" SET role = "+ident(group))
		}
		change = append(change, "ALTER ROLE "+ident(role)+" LOGIN PASSWORD "+lit)
		// One simple-protocol query, which PostgreSQL runs as one
		// transaction: the role is created or joined to the group, and
		// given its password, all together or not at all.
		if _, err := conn.Exec(ctx, strings.Join(change, "; "), pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("make the role a member of %q, acting as it, with the new password: %w", group, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres role %q: apply: %w", role, err)
	}
	return nil
}

// Verify logs in on a new connection to Options' Host, Port and DBName (the
// document's copies are for clients) as the credential's role with its
// password and runs SELECT 1; with req.Canary it then runs CanaryQuery when
// one is set. The error names the role and the failing part.
func (t *Target) Verify(ctx context.Context, req targets.VerifyRequest) error {
	doc, err := ParseDocument(req.Credential)
	if err != nil {
		return fmt.Errorf("postgres target: verify: %w", err)
	}
	sc := secret.NewScrubber(doc.Password)
	conn, err := t.login(ctx, doc.Username, doc.Password)
	if err != nil {
		return fmt.Errorf("postgres role %q: verify: log in: %w", doc.Username, err)
	}
	defer closeConn(ctx, conn)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres role %q: verify: SELECT 1: %w", doc.Username, sc.Err(err))
	}
	if req.Canary && t.opts.CanaryQuery != "" {
		if _, err := conn.Exec(ctx, t.opts.CanaryQuery); err != nil {
			return fmt.Errorf("postgres role %q: verify: canary query: %w", doc.Username, sc.Err(err))
		}
	}
	return nil
}

// Restore undoes an Apply of req.Pending before promote. Calling it again,
// or without an Apply before it, is harmless.
//
// single: the role gets req.Current's password back (nothing to do when that
// already logs in), as admin or, without one, logged in with the pending
// password. With no Current it gets a random password nobody knows, so the
// failed credential stops working.
//
// alternating, on the role Apply changed: when req.Previous names that role
// it gets Previous's password back, with LOGIN, so the previous credential
// keeps working; otherwise it gets a random unknown password and NOLOGIN.
// A role Apply never created is left absent.
//
// Like Apply, it refuses to change a role of a privileged policy: a role
// that became privileged during the rotation is for a person to look at.
func (t *Target) Restore(ctx context.Context, req targets.RestoreRequest) error {
	t.verifiers.forget(req.Token)
	if req.BeforeSet {
		// Create touched nothing and Apply never ran: the role is as it was.
		return nil
	}
	pending, err := t.parseOwn(req.Strategy, req.Pending, "pending")
	if err != nil {
		return fmt.Errorf("postgres target: restore: %w", err)
	}
	role := pending.Username
	if err := t.restore(ctx, req, role, pending.Password); err != nil {
		return fmt.Errorf("postgres role %q: restore: %w", role, err)
	}
	return nil
}

func (t *Target) restore(ctx context.Context, req targets.RestoreRequest, role string, pendingPassword secret.Secret) error {
	if req.Strategy == targets.Single {
		return t.restoreSingle(ctx, req, role, pendingPassword)
	}
	return t.restoreAlternating(ctx, req, role)
}

func (t *Target) restoreSingle(ctx context.Context, req targets.RestoreRequest, role string, pendingPassword secret.Secret) error {
	// back is the password to put back: the current one, or one nobody knows.
	var back secret.Secret
	if !req.Current.IsZero() {
		cur, err := t.parseOwn(req.Strategy, req.Current, "current")
		if err != nil {
			return err
		}
		if t.logsIn(ctx, role, cur.Password) {
			return nil
		}
		back = cur.Password
	} else {
		if !t.hasAdmin() && !t.logsIn(ctx, role, pendingPassword) {
			return nil // the failed credential already does not work
		}
		unknown, err := randomPassword()
		if err != nil {
			return err
		}
		back = unknown
	}
	verifier, err := SCRAMVerifier(back)
	if err != nil {
		return err
	}
	if t.hasAdmin() {
		return t.adminSetPassword(ctx, req.Strategy, role, verifier, "")
	}
	return t.selfSetPassword(ctx, role, req.Pending, "pending", verifier)
}

func (t *Target) restoreAlternating(ctx context.Context, req targets.RestoreRequest, role string) error {
	if !req.Current.IsZero() {
		// Parsed, not checked for ownership: a current document of another
		// writer naming some other role leaves this restore as it was.
		cur, err := ParseDocument(req.Current)
		if err != nil {
			return fmt.Errorf("current: %w", err)
		}
		if cur.Username == role {
			// Another writer made the changed role current after create
			// (it rolled current back to the version that names it). The
			// restore then serves current: the role must log in with
			// current's password, the one it held before set. Anything
			// else would leave current broken, or refuse and leave it so.
			if t.logsIn(ctx, role, cur.Password) {
				return nil
			}
			verifier, err := SCRAMVerifier(cur.Password)
			if err != nil {
				return err
			}
			return t.adminSetPassword(ctx, req.Strategy, role, verifier, "LOGIN")
		}
	}
	if !req.Previous.IsZero() {
		prev, err := t.parseOwn(req.Strategy, req.Previous, "previous")
		if err != nil {
			return err
		}
		if prev.Username == role {
			if t.logsIn(ctx, role, prev.Password) {
				return nil
			}
			verifier, err := SCRAMVerifier(prev.Password)
			if err != nil {
				return err
			}
			return t.adminSetPassword(ctx, req.Strategy, role, verifier, "LOGIN")
		}
	}
	unknown, err := randomPassword()
	if err != nil {
		return err
	}
	verifier, err := SCRAMVerifier(unknown)
	if err != nil {
		return err
	}
	return t.adminConn(ctx, func(conn adminSession) error {
		f, err := t.readFacts(ctx, conn, req.Strategy, role, "")
		if err != nil {
			return err
		}
		if err := t.refusal(f, req.Strategy, true); err != nil || !f.exists {
			return err
		}
		return alterPassword(ctx, conn, role, "NOLOGIN", verifier)
	})
}

// Retire, for alternating with RetireNoLogin, sets the retired credential's
// role NOLOGIN, unless it is the current credential's role or does not
// exist; the next Apply on it sets LOGIN again. Otherwise it does nothing.
// Like Apply, it refuses to change a role of a privileged policy.
func (t *Target) Retire(ctx context.Context, req targets.RetireRequest) error {
	if req.Strategy != targets.Alternating || !t.opts.RetireNoLogin || req.Retired.IsZero() {
		return nil
	}
	retired, err := t.parseOwn(req.Strategy, req.Retired, "retired")
	if err != nil {
		return fmt.Errorf("postgres target: retire: %w", err)
	}
	role := retired.Username
	if !req.Current.IsZero() {
		cur, err := ParseDocument(req.Current)
		if err != nil {
			return fmt.Errorf("postgres role %q: retire: current: %w", role, err)
		}
		if cur.Username == role {
			return nil // never lock out the credential that must keep working
		}
	}
	err = t.adminConn(ctx, func(conn adminSession) error {
		f, err := t.readFacts(ctx, conn, req.Strategy, role, "")
		if err != nil {
			return err
		}
		if err := t.refusal(f, req.Strategy, true); err != nil || !f.exists || !f.canLogin {
			return err
		}
		if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(role)+" NOLOGIN", pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("set NOLOGIN: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres role %q: retire: %w", role, err)
	}
	return nil
}

// parseOwn parses a document and checks that it names a role this target
// manages under strategy, so a stray document never changes another role.
func (t *Target) parseOwn(strategy targets.Strategy, s secret.Secret, what string) (Document, error) {
	if err := t.opts.ValidateStrategy(strategy); err != nil {
		return Document{}, err
	}
	doc, err := ParseDocument(s)
	if err != nil {
		return Document{}, fmt.Errorf("%s: %w", what, err)
	}
	ok := doc.Username == t.opts.Username ||
		(strategy == targets.Alternating && doc.Username == t.opts.AlternateUsername)
	if !ok {
		return Document{}, fmt.Errorf("%s: role %q is not a role of this target (Username %q, AlternateUsername %q)",
			what, doc.Username, t.opts.Username, t.opts.AlternateUsername)
	}
	return doc, nil
}

// notCurrent refuses to touch the current credential's role: with
// alternating that role must keep working whatever happens to the other.
func (t *Target) notCurrent(role string, current secret.Secret) error {
	if current.IsZero() {
		return nil
	}
	cur, err := ParseDocument(current)
	if err != nil {
		return fmt.Errorf("current: %w", err)
	}
	if cur.Username == role {
		return fmt.Errorf("refusing to change the current credential's role %q", role)
	}
	return nil
}

func (t *Target) hasAdmin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.admin != nil
}

// adminConn runs fn on one connection of the admin pool, so that a change
// and the facts read right before it share a session; errors are scrubbed
// of the admin URL and password.
func (t *Target) adminConn(ctx context.Context, fn func(adminSession) error) error {
	t.mu.Lock()
	pool := t.admin
	t.mu.Unlock()
	if pool == nil {
		if t.opts.Admin.IsZero() {
			return fieldErr("Admin", "is empty: this step needs an admin connection")
		}
		return errors.New("the target is closed")
	}
	return explainAuth(t.adminScrub.Err(pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error { return fn(conn) })))
}

// adminSetPassword sets role's password verifier as admin; attrs ("LOGIN",
// "NOLOGIN" or "") go into the same ALTER ROLE. The role must exist, and
// the policy's roles under strategy must not be privileged.
func (t *Target) adminSetPassword(ctx context.Context, strategy targets.Strategy, role, verifier, attrs string) error {
	return t.adminConn(ctx, func(conn adminSession) error {
		f, err := t.readFacts(ctx, conn, strategy, role, "")
		if err != nil {
			return err
		}
		if err := t.refusal(f, strategy, true); err != nil {
			return err
		}
		if !f.exists {
			return errors.New("the role does not exist")
		}
		return alterPassword(ctx, conn, role, attrs, verifier)
	})
}

// selfSetPassword logs in as role with the password inside doc and changes
// the role's own password: single without an admin connection.
func (t *Target) selfSetPassword(ctx context.Context, role string, doc secret.Secret, what, verifier string) error {
	if doc.IsZero() {
		return fmt.Errorf("without Admin the role changes its own password, logging in with the %s credential, and there is none", what)
	}
	d, err := t.parseOwn(targets.Single, doc, what)
	if err != nil {
		return err
	}
	conn, err := t.login(ctx, role, d.Password)
	if err != nil {
		return fmt.Errorf("log in with the %s credential: %w", what, err)
	}
	defer closeConn(ctx, conn)
	if err := t.refusePrivileged(ctx, conn, targets.Single, false); err != nil {
		return err
	}
	lit, err := passwordLiteral(verifier)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(role)+" PASSWORD "+lit); err != nil {
		return fmt.Errorf("alter own password: %w", secret.NewScrubber(d.Password).Err(err))
	}
	return nil
}

// alterPassword runs ALTER ROLE role [attrs] PASSWORD '<verifier>'.
func alterPassword(ctx context.Context, conn adminSession, role, attrs, verifier string) error {
	lit, err := passwordLiteral(verifier)
	if err != nil {
		return err
	}
	sql := "ALTER ROLE " + ident(role)
	if attrs != "" {
		sql += " " + attrs
	}
	if _, err := conn.Exec(ctx, sql+" PASSWORD "+lit, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("alter password: %w", err)
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
