// Package redis is the target for Redis (6 and later) ACL users.
//
// Two strategies:
//
//   - single changes one existing user's password in place (ACL SETUSER
//     user resetpass #<hash>), touching none of its rules.
//   - alternating takes turns between two users (Username and
//     AlternateUsername) that get the same ACL rules (Options.ACLRules).
//     Each rotation resets the user that is not current and gives it the
//     rules, the new password and on, in one ACL SETUSER, so the previous
//     credential keeps working for a period.
//
// Both need an admin connection: Redis has no command by which a user
// changes its own password.
//
// Passwords never cross the wire in a command: the target sends the
// password's SHA-256 ('#' and 64 lowercase hex digits, the form an ACL file
// stores), never '>password'. Redis keeps ACL commands out of MONITOR and
// redacts their arguments in the slow log anyway; the hash also keeps the
// plaintext from any proxy or client-side command log on the way. Logins
// (Verify) necessarily send the password: Redis's AUTH has no challenge, so
// use tls: true where the network is not trusted. After every change the
// target runs ACL SAVE, so a server that keeps its users in an ACL file
// keeps them across a restart. Errors name users, never passwords.
package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Target rotates the password of Redis ACL users. It is safe for
// concurrent use; the rotator's per-policy lock keeps two rotations of one
// policy from running at once.
type Target struct {
	opts     Options
	strategy targets.Strategy

	mu sync.Mutex
	// adminClient is nil after Close.
	adminClient *goredis.Client
	// adminScrub scrubs errors of the admin connection of the URL and of
	// the password inside it.
	adminScrub *secret.Scrubber
}

var _ targets.Target = (*Target)(nil)

// New fills in opts' defaults for strategy, validates them (see
// Options.Validate) and builds the admin client. It does not connect: the
// first verb that needs the admin connection does, so a daemon starts
// while Redis is down and reports the failure on the rotation.
func New(strategy targets.Strategy, opts Options) (*Target, error) {
	opts = opts.WithDefaults(strategy)
	if err := opts.Validate(strategy); err != nil {
		return nil, err
	}
	adminOpts, err := goredis.ParseURL(opts.Admin.RevealString())
	if err != nil {
		// The parser's message may quote part of the URL: say nothing of it.
		return nil, fieldError("admin", "is not a Redis URL (redis://user:password@host:6379/ or rediss://…)")
	}
	t := &Target{opts: opts, strategy: strategy}
	t.adminScrub = secret.NewScrubber(opts.Admin, secret.FromString(adminOpts.Password))
	plainClientOptions(adminOpts, opts.ConnectTimeout)
	t.adminClient = goredis.NewClient(adminOpts)
	return t, nil
}

// Close releases the admin client. It is safe to call more than once.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.adminClient != nil {
		err := t.adminClient.Close()
		t.adminClient = nil
		return t.adminScrub.Err(err)
	}
	return nil
}

// checkStrategy refuses a request for another strategy than New's.
func (t *Target) checkStrategy(s targets.Strategy) error {
	if s != t.strategy {
		return fmt.Errorf("redis target: built for strategy %s, asked for %q", t.strategy, s)
	}
	return nil
}

// Check reads req.Document as a credential of this target: a redis document
// (ParseDocument) naming Username or, with alternating, AlternateUsername.
// Anything else is a *targets.UnreadableError. It touches nothing.
func (t *Target) Check(_ context.Context, req targets.CheckRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if _, err := t.parseOwn(req.Document); err != nil {
		return fmt.Errorf("redis target: %w", err)
	}
	return nil
}

// parseOwn parses a document and checks that it names a user this target
// manages, so a stray document never changes another user. Its errors are
// *targets.UnreadableError.
func (t *Target) parseOwn(s secret.Secret) (Document, error) {
	users := fmt.Sprintf("%q", t.opts.Username)
	if t.strategy == targets.Alternating {
		users += fmt.Sprintf(" or %q", t.opts.AlternateUsername)
	}
	unreadable := func(err error) error {
		return &targets.UnreadableError{Document: "a redis document", Err: err,
			Expected: "a JSON object with username " + users + " and password (engine, host, port, db optional)"}
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
// document does not.
func (t *Target) Create(_ context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return targets.CreateResponse{}, err
	}
	if req.Password.IsZero() {
		return targets.CreateResponse{}, errors.New("redis target: create: the generated password is empty")
	}
	var cur Document
	if !req.Current.IsZero() {
		var err error
		if cur, err = t.parseOwn(req.Current); err != nil {
			return targets.CreateResponse{}, fmt.Errorf("redis target: create: current: %w", err)
		}
	}
	user := t.opts.Username
	if t.strategy == targets.Alternating && cur.Username == t.opts.Username {
		user = t.opts.AlternateUsername
	}
	doc, err := Document{Host: t.opts.Host, Port: t.opts.Port, DB: t.opts.DB, Username: user, Password: req.Password}.Secret()
	if err != nil {
		return targets.CreateResponse{}, fmt.Errorf("redis target: create: %w", err)
	}
	return targets.CreateResponse{Pending: doc, Principal: user}, nil
}

// Apply makes the pending credential valid. When it already logs in (a
// retry after a crash) Apply does nothing; otherwise running it again sets
// the same rules and hash, which is harmless.
//
// alternating: ACL SETUSER user reset <ACLRules…> #<hash> on — the user is
// created when missing, and whatever it held before (other passwords,
// rules, off from Retire or Restore) is replaced, atomically. Apply refuses
// to change the current credential's user, and the admin's own.
//
// single: ACL SETUSER user resetpass #<hash> on an existing user, which
// keeps its rules and its on/off.
func (t *Target) Apply(ctx context.Context, req targets.ApplyRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	pending, err := t.parseOwn(req.Pending)
	if err != nil {
		return fmt.Errorf("redis target: apply: pending: %w", err)
	}
	user := pending.Username
	if req.Retry && t.logsIn(ctx, user, pending.Password) {
		return nil
	}
	if err := t.apply(ctx, req, user, pending.Password); err != nil {
		return fmt.Errorf("redis user %s: apply: %w", user, err)
	}
	return nil
}

func (t *Target) apply(ctx context.Context, req targets.ApplyRequest, user string, password secret.Secret) error {
	if t.strategy == targets.Single {
		err := t.setUser(ctx, user, true, "resetpass", passwordRule(password))
		if errors.Is(err, errNoUser) {
			return fmt.Errorf("%w: the single strategy changes only the password of a user that exists; create it with its rules (ACL SETUSER %s on ~… +…)", err, user)
		}
		return err
	}
	if err := t.notCurrent(user, req.Current); err != nil {
		return err
	}
	rules := append([]string{"reset"}, t.opts.ACLRules...)
	return t.setUser(ctx, user, false, append(rules, passwordRule(password), "on")...)
}

// Verify logs in on a new connection to Options' Host, Port and DB (the
// document's copies are for clients): AUTH as the credential's user with
// its password, which needs no permission; with req.Canary it then runs CanaryCommand when
// one is set (a nil reply counts as success: the command was allowed). The
// error names the user and the failing part.
func (t *Target) Verify(ctx context.Context, req targets.VerifyRequest) error {
	doc, err := ParseDocument(req.Credential)
	if err != nil {
		return fmt.Errorf("redis target: verify: %w", err)
	}
	s, err := t.login(ctx, doc.Username, doc.Password)
	if err != nil {
		return fmt.Errorf("redis user %s: verify: log in: %w", doc.Username, err)
	}
	defer s.close()
	if req.Canary && len(t.opts.CanaryCommand) > 0 {
		err := s.conn.Do(ctx, anySlice(t.opts.CanaryCommand)...).Err()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("redis user %s: verify: canary command %s: %w", doc.Username, t.opts.CanaryCommand[0],
				secret.NewScrubber(doc.Password).Err(err))
		}
	}
	return nil
}

// Restore undoes an Apply of req.Pending before promote. Calling it again,
// or without an Apply before it, is harmless.
//
// single: the user gets req.Current's password back (nothing to do when
// that already logs in). With no Current its passwords are removed
// (resetpass), so the failed credential stops working and nobody logs in.
//
// alternating, on the user Apply changed: when req.Current names it
// (another writer made it current after create) it gets Current's password
// back, on, so current works; else when req.Previous names it, it gets
// Previous's password back, on, so the previous credential keeps working;
// otherwise its passwords are removed and it is switched off. A user Apply
// never created is left absent.
func (t *Target) Restore(ctx context.Context, req targets.RestoreRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if req.BeforeSet {
		return nil // Create touched nothing and Apply never ran
	}
	pending, err := t.parseOwn(req.Pending)
	if err != nil {
		return fmt.Errorf("redis target: restore: pending: %w", err)
	}
	user := pending.Username
	if err := t.restore(ctx, req, user); err != nil {
		return fmt.Errorf("redis user %s: restore: %w", user, err)
	}
	return nil
}

func (t *Target) restore(ctx context.Context, req targets.RestoreRequest, user string) error {
	held := []struct {
		doc  secret.Secret
		what string
	}{{req.Current, "current"}}
	if t.strategy == targets.Alternating {
		held = append(held, struct {
			doc  secret.Secret
			what string
		}{req.Previous, "previous"})
	}
	for _, h := range held {
		if h.doc.IsZero() {
			continue
		}
		d, err := t.parseOwn(h.doc)
		if err != nil {
			return fmt.Errorf("%s: %w", h.what, err)
		}
		if d.Username != user {
			continue
		}
		if t.logsIn(ctx, user, d.Password) {
			return nil
		}
		rules := []string{"resetpass", passwordRule(d.Password)}
		if t.strategy == targets.Alternating {
			rules = append(rules, "on")
		}
		return t.setUser(ctx, user, true, rules...)
	}
	rules := []string{"resetpass"}
	if t.strategy == targets.Alternating {
		rules = append(rules, "off")
	}
	err := t.setUser(ctx, user, true, rules...)
	if errors.Is(err, errNoUser) {
		return nil
	}
	return err
}

// Retire, for alternating with RetireOff, switches the retired credential's
// user off, unless it is the current credential's user or does not exist;
// the next Apply on it switches it on. Otherwise it does nothing.
func (t *Target) Retire(ctx context.Context, req targets.RetireRequest) error {
	if err := t.checkStrategy(req.Strategy); err != nil {
		return err
	}
	if t.strategy != targets.Alternating || !t.opts.RetireOff || req.Retired.IsZero() {
		return nil
	}
	retired, err := t.parseOwn(req.Retired)
	if err != nil {
		return fmt.Errorf("redis target: retire: %w", err)
	}
	user := retired.Username
	if err := t.notCurrent(user, req.Current); err != nil {
		return nil // never switch off the credential that must keep working
	}
	err = t.setUser(ctx, user, true, "off")
	if err != nil && !errors.Is(err, errNoUser) {
		return fmt.Errorf("redis user %s: retire: %w", user, err)
	}
	return nil
}

// notCurrent refuses to touch the current credential's user: with
// alternating that user must keep working whatever happens to the other.
func (t *Target) notCurrent(user string, current secret.Secret) error {
	if current.IsZero() {
		return nil
	}
	cur, err := ParseDocument(current)
	if err != nil {
		return fmt.Errorf("current: %w", err)
	}
	if cur.Username == user {
		return fmt.Errorf("refusing to change the current credential's user %s", user)
	}
	return nil
}
