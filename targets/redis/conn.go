package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/swarmkey/swarmkey/secret"
)

// plainClientOptions are what every connection of the target shares: one
// connection, no retries (the rotator retries a step, and a retried AUTH
// is a second failed login), RESP2 and no CLIENT SETINFO or maintenance
// notifications, so a connection sends only its login and our commands.
func plainClientOptions(o *goredis.Options, timeout time.Duration) {
	o.PoolSize = 1
	o.MaxIdleConns = 1
	o.MaxRetries = -1
	o.Protocol = 2
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.DialTimeout == 0 {
		o.DialTimeout = timeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = timeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = timeout
	}
}

// loginOptions are the client options of a login to Options' Host and
// Port. They hold no credential: login sends AUTH itself, on a connection
// of its own.
func (t *Target) loginOptions() *goredis.Options {
	o := &goredis.Options{Addr: net.JoinHostPort(t.opts.Host, strconv.Itoa(t.opts.Port))}
	switch t.opts.TLS {
	case "true":
		o.TLSConfig = &tls.Config{ServerName: t.opts.Host, MinVersion: tls.VersionTLS12}
	case "skip-verify":
		// skip-verify is the operator's documented choice.
		o.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	plainClientOptions(o, t.opts.ConnectTimeout)
	return o
}

// session is one login: a client of its own and its one connection (never
// a pooled one: the point of a login is to prove that this credential logs
// in now).
type session struct {
	client *goredis.Client
	conn   *goredis.Conn
}

func (s *session) close() {
	_ = s.conn.Close()
	_ = s.client.Close()
}

// login connects and sends AUTH user password — the canary's login, which
// any user may run whatever its rules — then SELECTs Options.DB when it is
// not 0 (which needs +select in the user's rules). Its errors are scrubbed
// of the password.
func (t *Target) login(ctx context.Context, user string, password secret.Secret) (*session, error) {
	c := goredis.NewClient(t.loginOptions())
	s := &session{client: c, conn: c.Conn()}
	sc := secret.NewScrubber(password)
	if err := s.conn.Do(ctx, "AUTH", user, password.RevealString()).Err(); err != nil {
		s.close()
		return nil, sc.Err(err)
	}
	if t.opts.DB != 0 {
		if err := s.conn.Do(ctx, "SELECT", t.opts.DB).Err(); err != nil {
			s.close()
			return nil, fmt.Errorf("SELECT %d: %w", t.opts.DB, sc.Err(err))
		}
	}
	return s, nil
}

// logsIn reports whether user logs in with password. Any failure counts as
// no: the callers go on to do the work, and report that work's error.
func (t *Target) logsIn(ctx context.Context, user string, password secret.Secret) bool {
	s, err := t.login(ctx, user, password)
	if err != nil {
		return false
	}
	s.close()
	return true
}

// passwordRule is the ACL rule that adds password as a valid password of a
// user: '#' and the lowercase hex SHA-256 of the password, the form the
// ACL file stores. Sent instead of '>password', the plaintext never
// crosses the wire in an ACL command, nor reaches a server-side log or
// proxy that would record one.
func passwordRule(password secret.Secret) string {
	raw := password.Reveal()
	sum := sha256.Sum256(raw)
	clear(raw)
	return "#" + hex.EncodeToString(sum[:])
}

// errNoUser says that the user does not exist.
var errNoUser = errors.New("the user does not exist")

// admin runs fn on the admin client; errors are scrubbed of the admin URL
// and password.
func (t *Target) admin(ctx context.Context, fn func(*goredis.Client) error) error {
	t.mu.Lock()
	c := t.adminClient
	t.mu.Unlock()
	if c == nil {
		return errors.New("the target is closed")
	}
	return t.adminScrub.Err(fn(c))
}

// refuseAdminUser refuses to change the user the admin connection logs in
// as: the rotation would lock swarmkey out of the server.
func refuseAdminUser(ctx context.Context, c *goredis.Client, user string) error {
	who, err := c.ACLWhoAmI(ctx).Result()
	if err != nil {
		return fmt.Errorf("admin connection: ACL WHOAMI: %w", err)
	}
	if who == user {
		return fmt.Errorf("refusing to change the user the admin credential logs in as (%s)", who)
	}
	return nil
}

// userExists reads whether user exists (ACL GETUSER answers nil when not).
func userExists(ctx context.Context, c *goredis.Client, user string) (bool, error) {
	err := c.Do(ctx, "ACL", "GETUSER", user).Err()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ACL GETUSER: %w", err)
	}
	return true, nil
}

// setUser runs ACL SETUSER user rules… as admin, never on the admin's own
// user; with mustExist it first checks that the user exists (errNoUser),
// since ACL SETUSER creates a user it does not find. It then persists the
// change (saveACL).
func (t *Target) setUser(ctx context.Context, user string, mustExist bool, rules ...string) error {
	scrub := secret.NewScrubber()
	for _, r := range rules {
		if strings.HasPrefix(r, "#") {
			scrub.Add(secret.FromString(r[1:]))
		}
	}
	return t.admin(ctx, func(c *goredis.Client) error {
		if err := refuseAdminUser(ctx, c, user); err != nil {
			return err
		}
		if mustExist {
			exists, err := userExists(ctx, c, user)
			if err != nil {
				return err
			}
			if !exists {
				return errNoUser
			}
		}
		args := append([]any{"ACL", "SETUSER", user}, anySlice(rules)...)
		if err := c.Do(ctx, args...).Err(); err != nil {
			// The server's message may quote a rule: scrub the hash too.
			return fmt.Errorf("ACL SETUSER: %w", scrub.Err(err))
		}
		return saveACL(ctx, c)
	})
}

// saveACL persists the users with ACL SAVE when the server keeps them in an
// ACL file (aclfile); a server without one answers that it has none, and
// its users live in memory (and in redis.conf, which swarmkey never
// rewrites).
func saveACL(ctx context.Context, c *goredis.Client) error {
	err := c.Do(ctx, "ACL", "SAVE").Err()
	if err != nil && strings.Contains(err.Error(), "not configured to use an ACL file") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ACL SAVE: %w", err)
	}
	return nil
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
