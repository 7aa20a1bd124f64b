package redis

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/validation"
)

// Defaults applied by WithDefaults to fields left zero.
const (
	DefaultPort           = 6379
	DefaultTLS            = "false"
	DefaultConnectTimeout = 5 * time.Second
	// AlternateSuffix is appended to Username when AlternateUsername is empty.
	AlternateSuffix = "_b"
)

// Options configure one Redis target.
//
// The yaml tags are the keys of a policy file's target.redis block, which
// package config decodes into Options. Admin is not among them: the file
// holds a reference to it (admin), resolved when the target is opened.
type Options struct {
	// Host and Port (default 6379) are where credentials log in: Verify
	// connects there, and they are written into every document.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// DB is the logical database logins SELECT and the canary runs in
	// (default 0).
	DB int `yaml:"db"`
	// TLS is how logins connect: false (the default: plain TCP, as Redis
	// listens by default), true (TLS, the server's certificate verified) or
	// skip-verify.
	TLS string `yaml:"tls"`
	// Username is the ACL user's name. With single it is the only user; with
	// alternating the first of two.
	Username string `yaml:"username"`
	// AlternateUsername is alternating's second user; default
	// Username+"_b".
	AlternateUsername string `yaml:"alternate_username"`
	// ACLRules are alternating's ACL rules, one rule an item ("~cache:*",
	// "+@read", "-flushall", "(~audit:* +get)"): each Apply resets the user
	// it changes and gives it exactly these, so both users have the same
	// permissions. They may not set passwords or on/off: the target does.
	// Required for alternating; single changes only the password of a user
	// the operator made.
	ACLRules []string `yaml:"acl_rules"`
	// Admin is a Redis URL (redis://user:password@host:6379/ or rediss://)
	// of a user allowed ACL SETUSER, GETUSER, WHOAMI and SAVE. Required:
	// Redis has no command by which a user changes its own password.
	Admin secret.Secret `yaml:"-"`
	// CanaryCommand, when set, is run by Verify with Canary as the new
	// credential, after PING: one argument an item (["GET", "app:ready"]).
	CanaryCommand []string `yaml:"canary_command"`
	// RetireOff makes alternating's Retire switch the retired user off (ACL
	// SETUSER … off); the next Apply on it switches it on.
	RetireOff bool `yaml:"retire_off"`
	// ConnectTimeout bounds each connection and command; default 5s.
	ConnectTimeout time.Duration `yaml:"-"`
}

// WithDefaults returns o with the defaults filled in for strategy s: Port,
// TLS, ConnectTimeout and, for alternating, AlternateUsername.
func (o Options) WithDefaults(s targets.Strategy) Options {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.TLS == "" {
		o.TLS = DefaultTLS
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if s != targets.Single && o.AlternateUsername == "" && o.Username != "" {
		o.AlternateUsername = o.Username + AlternateSuffix
	}
	return o
}

var tlsModes = map[string]bool{"false": true, "true": true, "skip-verify": true}

// nameRE is a user name the target accepts: what needs no thought in an
// ACL file line or a log.
// It is compiled on first use, not when swarmkey starts: every command
// links this package, and most never use it.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$`) })

// passwordRuleWords are the ACL rules that the target owns: they set or
// clear passwords or switch the user on and off.
var passwordRuleWords = map[string]bool{"on": true, "off": true, "nopass": true, "resetpass": true, "reset": true}

// Validate checks o, after WithDefaults(s), for strategy s and returns a
// *validation.Error with every problem, each at its yaml key.
func (o Options) Validate(s targets.Strategy) error {
	ve := &validation.Error{Subject: "redis target"}
	if s != targets.Alternating && s != targets.Single {
		ve.Add("", "unknown strategy %q: use alternating or single", s)
		return ve
	}
	if strings.TrimSpace(o.Host) == "" {
		ve.Add("host", "required: the server's host name or address")
	}
	if o.Port < 1 || o.Port > 65535 {
		ve.Add("port", "must be between 1 and 65535")
	}
	if o.DB < 0 {
		ve.Add("db", "must not be negative")
	}
	if !tlsModes[o.TLS] {
		ve.Add("tls", "unknown mode %q: use false, true or skip-verify", o.TLS)
	}
	if o.ConnectTimeout < 0 {
		ve.Add("connect_timeout", "must not be negative")
	}
	if len(o.CanaryCommand) > 0 && strings.TrimSpace(o.CanaryCommand[0]) == "" {
		ve.Add("canary_command", "the first item must be a command name")
	}
	if o.Admin.IsZero() {
		ve.Add("admin", "required: a Redis URL (redis://user:password@host:6379/) of a user that may run ACL SETUSER, ACL GETUSER, ACL WHOAMI and ACL SAVE (Redis has no command by which a user changes its own password)")
	}
	name := func(key, v string) bool {
		if !nameRE().MatchString(v) {
			ve.Add(key, "%q is not a valid user name: use 1 to 128 of A-Z a-z 0-9 _ . : - starting with a letter, digit or _", v)
			return false
		}
		return true
	}
	userOK := o.Username != "" && name("username", o.Username)
	if o.Username == "" {
		ve.Add("username", "required: the ACL user's name")
	}
	if s == targets.Single {
		for _, f := range []struct {
			key   string
			given bool
		}{{"alternate_username", o.AlternateUsername != ""}, {"acl_rules", len(o.ACLRules) > 0}, {"retire_off", o.RetireOff}} {
			if f.given {
				ve.Add(f.key, "used only by strategy alternating; remove it or set strategy: alternating")
			}
		}
		return ve.Err()
	}
	// The default (Username+"_b") of a wrong username is wrong for the same reason.
	derived := o.AlternateUsername == o.Username+AlternateSuffix
	if (userOK || !derived) && name("alternate_username", o.AlternateUsername) && userOK && o.AlternateUsername == o.Username {
		ve.Add("alternate_username", "must differ from username: alternating takes turns between two users")
	}
	if len(o.ACLRules) == 0 {
		ve.Add("acl_rules", `required for strategy alternating: the ACL rules both users get, one an item (["~cache:*", "+@read", "+@write"])`)
	}
	for i, rule := range o.ACLRules {
		key := fmt.Sprintf("acl_rules[%d]", i)
		r := strings.TrimSpace(rule)
		switch {
		case r == "":
			ve.Add(key, "is empty")
		case strings.ContainsAny(r[:1], "><#!"):
			// Never quote the rule: it may hold a password.
			ve.Add(key, "sets or removes a password: the target sets the password itself, as a SHA-256 hash; remove the rule")
		case passwordRuleWords[strings.ToLower(r)]:
			ve.Add(key, "%q is the target's to set (it sets the password and switches the user on and off); remove the rule", r)
		}
	}
	return ve.Err()
}

// fieldError is an error about one option that a verb found.
func fieldError(key, format string, args ...any) error {
	return fmt.Errorf("redis target: %s: %s", key, fmt.Sprintf(format, args...))
}
