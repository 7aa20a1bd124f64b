package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/swarmkey/swarmkey/config"
)

// LeaseSource opens what `swarmkey exec` reads policies from without the
// API: their stores and the state database, where the source takes its
// leases and audits its reads as actor. The database is connected to while
// the stores open (a new session is a new server process, which exec would
// otherwise wait for after the stores), but a store's error is reported
// first: a store that refuses (a key file others may read, missing
// permissions) is the first thing to fix. A name the configuration lacks is
// an InputError about exec's --policy that lists the known names. Closing
// the source closes the database and r's stores; on an error the caller
// closes r.
func (r *Runtime) LeaseSource(ctx context.Context, names []string, actor string) (*StoreSource, error) {
	cfg := r.Config
	var policies []*config.Policy
	for _, name := range names {
		p, ok := cfg.Policy(name)
		if !ok {
			known := make([]string, len(cfg.Policies))
			for i, p := range cfg.Policies {
				known[i] = p.Name
			}
			return nil, Inputf("--policy %q: unknown policy: the configuration (%s) has %s", name, strings.Join(cfg.Files, ", "), ListSome(known))
		}
		policies = append(policies, p)
	}
	type opened struct {
		sess *Session
		err  error
	}
	// Cancelled on return: the session, once open, does not depend on it.
	connectCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	connected := make(chan opened, 1)
	go func() {
		sess, err := Open(connectCtx, r)
		connected <- opened{sess, err}
	}()
	secrets := make(map[string]StoredSecret, len(policies))
	for _, p := range policies {
		st, err := r.Store(ctx, p.Store)
		if err != nil {
			// No wait for a database that does not answer.
			cancel()
			if db := <-connected; db.err == nil {
				db.sess.DB.Close()
			}
			return nil, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
		}
		secrets[p.Name] = StoredSecret{Store: st, SecretID: p.SecretID}
	}
	db := <-connected
	if db.err != nil {
		return nil, db.err
	}
	return &StoreSource{DB: db.sess.DB, Secrets: secrets, Actor: actor, Closer: db.sess.Close}, nil
}

// ReferencedEnv returns the variables cfg's env: references read, sorted and
// each once: the database URL's, every policy's target.postgres.admin,
// target.http.auth.secret, target.mysql.admin and target.redis.admin, and
// every notification sink's key or Slack URL. `swarmkey exec` withholds
// them from its command, which needs none of them.
func ReferencedEnv(cfg *config.Config) []string {
	var names []string
	add := func(ref config.Reference) {
		if ref.Scheme == config.SchemeEnv {
			names = append(names, ref.Name)
		}
	}
	add(cfg.Database)
	for i := range cfg.Policies {
		t := cfg.Policies[i].Target
		if t.Postgres != nil {
			add(t.Postgres.Admin)
		}
		if t.HTTP != nil {
			add(t.HTTP.AuthSecret)
		}
		if t.MySQL != nil {
			add(t.MySQL.Admin)
		}
		if t.Redis != nil {
			add(t.Redis.Admin)
		}
	}
	if cfg.Notifications != nil {
		for _, s := range cfg.Notifications.Sinks {
			add(s.Credential)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
