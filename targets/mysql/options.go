package mysql

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
	DefaultPort           = 3306
	DefaultUserHost       = "%"
	DefaultTLS            = "preferred"
	DefaultConnectTimeout = 5 * time.Second
	// AlternateSuffix is appended to Username when AlternateUsername is empty.
	AlternateSuffix = "_b"
)

// Options configure one MySQL or MariaDB target.
//
// The yaml tags are the keys of a policy file's target.mysql block, which
// package config decodes into Options. Admin is not among them: the file
// holds a reference to it (admin), resolved when the target is opened.
type Options struct {
	// Host and Port (default 3306) are where credentials log in: Verify
	// connects there over TCP, and they are written into every document.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// DBName is the database logins select and the canary runs in;
	// optional.
	DBName string `yaml:"dbname"`
	// TLS is the driver's tls setting for those logins: false, true,
	// skip-verify or preferred (the default: TLS when the server offers it).
	TLS string `yaml:"tls"`
	// Username is the account's user name. With single it is the only
	// account; with alternating the first of two.
	Username string `yaml:"username"`
	// AlternateUsername is alternating's second account; default
	// Username+"_b".
	AlternateUsername string `yaml:"alternate_username"`
	// UserHost is the host part of the accounts ('user'@'host'); default "%".
	UserHost string `yaml:"user_host"`
	// Role is alternating's role that holds the grants: both accounts are
	// granted it and have it as their default role, so they have the same
	// privileges. Operators create it (CREATE ROLE) and grant it the
	// application's privileges; the target never does. Required for
	// alternating; single rotates an account that holds its own grants.
	Role string `yaml:"role"`
	// AuthPlugin is the authentication plugin of the accounts:
	// mysql_native_password (the default) or ed25519 (MariaDB). See the
	// package documentation for why no other.
	AuthPlugin string `yaml:"auth_plugin"`
	// Admin is a DSN of the Go MySQL driver (user:password@tcp(host:port)/)
	// of an account allowed to CREATE and ALTER USER and GRANT the role.
	// Required for alternating; with single it may be zero, and then the
	// account changes its own password (SET PASSWORD), logging in with the
	// current one: MariaDB only.
	Admin secret.Secret `yaml:"-"`
	// CanaryQuery, when set, is run by Verify with Canary as the new
	// credential, after SELECT 1.
	CanaryQuery string `yaml:"canary_query"`
	// RetireLock makes alternating's Retire lock the retired account
	// (ACCOUNT LOCK); the next Apply on it unlocks it.
	RetireLock bool `yaml:"retire_lock"`
	// ConnectTimeout bounds each login; default 5s.
	ConnectTimeout time.Duration `yaml:"-"`
}

// WithDefaults returns o with the defaults filled in for strategy s:
// Port, UserHost, TLS, AuthPlugin, ConnectTimeout and, for alternating,
// AlternateUsername.
func (o Options) WithDefaults(s targets.Strategy) Options {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.UserHost == "" {
		o.UserHost = DefaultUserHost
	}
	if o.TLS == "" {
		o.TLS = DefaultTLS
	}
	if o.AuthPlugin == "" {
		o.AuthPlugin = PluginNative
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if s != targets.Single && o.AlternateUsername == "" && o.Username != "" {
		o.AlternateUsername = o.Username + AlternateSuffix
	}
	return o
}

var tlsModes = map[string]bool{"false": true, "true": true, "skip-verify": true, "preferred": true}

// nameRE is a user, host or role name the target accepts: what needs no
// thought when quoted in SQL or read in a log. MariaDB allows user names of
// 80 characters, MySQL of 32.
// They are compiled on first use, not when swarmkey starts: every command
// links this package, and most never use them.
var (
	nameRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,79}$`) })
	userHostRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.%:-]{1,255}$`) })
)

// Validate checks o, after WithDefaults(s), for strategy s and returns a
// *validation.Error with every problem, each at its yaml key.
func (o Options) Validate(s targets.Strategy) error {
	ve := &validation.Error{Subject: "mysql target"}
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
	if !tlsModes[o.TLS] {
		ve.Add("tls", "unknown mode %q: use false, true, skip-verify or preferred", o.TLS)
	}
	if _, ok := hashShapes()[o.AuthPlugin]; !ok {
		ve.Add("auth_plugin", "unsupported plugin %q: use %s or %s (the only ones whose stored hash swarmkey can compute, so that the password never reaches the server)",
			o.AuthPlugin, PluginNative, PluginEd25519)
	}
	if o.ConnectTimeout < 0 {
		ve.Add("connect_timeout", "must not be negative")
	}
	if !userHostRE().MatchString(o.UserHost) {
		ve.Add("user_host", "%q is not a host pattern: use letters, digits and . _ - : %%", o.UserHost)
	}
	name := func(key, v, what string) bool {
		if !nameRE().MatchString(v) {
			ve.Add(key, "%q is not a valid %s name: use 1 to 80 of A-Z a-z 0-9 _ . - starting with a letter or _", v, what)
			return false
		}
		return true
	}
	userOK := o.Username != "" && name("username", o.Username, "user")
	if o.Username == "" {
		ve.Add("username", "required: the account's user name")
	}
	if s == targets.Single {
		for _, f := range []struct {
			key   string
			given bool
		}{{"alternate_username", o.AlternateUsername != ""}, {"role", o.Role != ""}, {"retire_lock", o.RetireLock}} {
			if f.given {
				ve.Add(f.key, "used only by strategy alternating; remove it or set strategy: alternating")
			}
		}
		return ve.Err()
	}
	// The default (Username+"_b") of a wrong username is wrong for the same reason.
	derived := o.AlternateUsername == o.Username+AlternateSuffix
	if (userOK || !derived) && name("alternate_username", o.AlternateUsername, "user") && userOK && o.AlternateUsername == o.Username {
		ve.Add("alternate_username", "must differ from username: alternating takes turns between two accounts")
	}
	switch {
	case o.Role == "":
		ve.Add("role", "required for strategy alternating: the role that holds the grants, which both accounts are granted")
	case !name("role", o.Role, "role"):
	case o.Role == o.Username || o.Role == o.AlternateUsername:
		ve.Add("role", "must differ from username and alternate_username")
	}
	if o.Admin.IsZero() {
		ve.Add("admin", "required for strategy alternating: a DSN (user:password@tcp(host:port)/) of an account that may CREATE USER, ALTER USER and GRANT the role")
	}
	return ve.Err()
}

// fieldError is an error about one option that a verb found.
func fieldError(key, format string, args ...any) error {
	return fmt.Errorf("mysql target: %s: %s", key, fmt.Sprintf(format, args...))
}
