package postgres

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/validation"
)

// Defaults applied by New (and by WithDefaults) to fields left zero.
const (
	DefaultSSLMode        = "prefer"
	DefaultConnectTimeout = 5 * time.Second
	// AlternateSuffix is appended to Username when AlternateUsername is empty.
	AlternateSuffix = "_b"
)

// DefaultPort is the port of a policy file's target.postgres block that
// gives none. Options itself has no default port: Validate refuses 0.
const DefaultPort = 5432

// maxIdentifierLength is PostgreSQL's NAMEDATALEN-1: longer role names are
// truncated by the server, which would make two names collide silently.
const maxIdentifierLength = 63

// Options configure one PostgreSQL target.
//
// The yaml tags are the keys of a policy file's target.postgres block, which
// package config decodes into Options. Admin is not among them: the file
// holds a reference to it (admin), resolved when the target is opened.
type Options struct {
	// Host, Port and DBName are where credentials log in: Verify connects
	// there, and they are written into every secret document.
	Host   string `yaml:"host"`
	Port   int    `yaml:"port"`
	DBName string `yaml:"dbname"`
	// SSLMode is libpq's sslmode for those logins; default "prefer".
	SSLMode string `yaml:"sslmode"`
	// Username is the login role. With the single strategy it is the only
	// role; with alternating it is the first of two.
	Username string `yaml:"username"`
	// AlternateUsername is alternating's second login role; default
	// Username+"_b".
	AlternateUsername string `yaml:"alternate_username"`
	// GroupRole is alternating's NOLOGIN role that holds the grants. Both
	// login roles are made members of it and switch to it at login
	// (ALTER ROLE … SET role), so objects they create belong to it. Operators
	// create it and grant it privileges; the target never does. Required for
	// alternating.
	GroupRole string `yaml:"group_role"`
	// Admin is a postgres:// URL of a role allowed to CREATE/ALTER ROLE.
	// Required for alternating; with single it may be zero, and then the
	// role changes its own password, logging in with the current one.
	Admin secret.Secret `yaml:"-"`
	// CanaryQuery, when set, is run by Verify with Canary as the new
	// credential, after SELECT 1.
	CanaryQuery string `yaml:"canary_query"`
	// RetireNoLogin makes alternating's Retire set the retired role NOLOGIN;
	// the next Apply on that role sets LOGIN again.
	RetireNoLogin bool `yaml:"retire_nologin"`
	// AllowInsecureAuth lets the target's logins (Verify, the single
	// strategy's own logins, the admin connection) answer a server that
	// asks for the password in cleartext or as an MD5 hash. Off, every
	// login with a password requires SCRAM-SHA-256 (require_auth), so a
	// server, or anyone posing as it (sslmode prefer does not check who
	// answers), never receives a password it could reuse; a require_auth
	// in the Admin URL is replaced. On, the Admin URL's require_auth, if
	// any, applies.
	AllowInsecureAuth bool `yaml:"allow_insecure_auth"`
	// AllowPrivileged lets the target change a role that holds SUPERUSER,
	// CREATEROLE, REPLICATION or BYPASSRLS, or is a member of a role that
	// does, and the role the admin credential logs in as. Off, Create,
	// Apply, Restore and Retire refuse a policy with such a role (Username,
	// AlternateUsername or GroupRole) with a *PrivilegedRoleError before
	// they change anything: a load test's credential, which many machines
	// read, must not be a way into the whole server.
	AllowPrivileged bool `yaml:"allow_privileged"`
	// ConnectTimeout bounds each login; default 5s.
	ConnectTimeout time.Duration `yaml:"-"`
	// AdminPools, when set, lends the target an admin pool it shares with
	// the other targets of the process that use the same Admin URL (see
	// AdminPools); nil gives the target a pool of its own.
	AdminPools *AdminPools `yaml:"-"`
}

// FieldError is an Options validation error; Field is the Go field name.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("postgres target: %s: %s", e.Field, e.Problem)
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// WithDefaults returns o with the defaults filled in: SSLMode "prefer",
// ConnectTimeout 5s, AlternateUsername Username+"_b".
func (o Options) WithDefaults() Options {
	if o.SSLMode == "" {
		o.SSLMode = DefaultSSLMode
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.AlternateUsername == "" && o.Username != "" {
		o.AlternateUsername = o.Username + AlternateSuffix
	}
	return o
}

// ForStrategy is WithDefaults for a policy of strategy s: single, which has
// one role, gets no AlternateUsername.
func (o Options) ForStrategy(s targets.Strategy) Options {
	if s == targets.Single && o.AlternateUsername == "" {
		o = o.WithDefaults()
		o.AlternateUsername = ""
		return o
	}
	return o.WithDefaults()
}

var sslModes = map[string]bool{
	"disable": true, "allow": true, "prefer": true,
	"require": true, "verify-ca": true, "verify-full": true,
}

// declaredRoleRE is the role name a policy file may give: what needs no
// thought when quoted in SQL or read in a log. PostgreSQL allows more, and
// so do Validate and the target, which quote every identifier.
var declaredRoleRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`) })

// Validate checks the fields every strategy needs, after defaults, and
// returns a *FieldError naming the first wrong field. What only one strategy
// needs (GroupRole and Admin for alternating) is checked by
// ValidateStrategy.
func (o Options) Validate() error {
	return first(o.problems("", false))
}

// ValidateStrategy runs Validate and then checks what strategy s needs:
// alternating needs GroupRole and Admin.
func (o Options) ValidateStrategy(s targets.Strategy) error {
	switch s {
	case targets.Alternating, targets.Single:
	default:
		if err := o.Validate(); err != nil {
			return err
		}
		return fmt.Errorf("postgres target: unknown strategy %q: use alternating or single", s)
	}
	return first(o.problems(s, false))
}

// ValidateDeclared checks o as a policy file declares it for strategy s
// (alternating or single), before defaults, and returns a
// *validation.Error with every problem, each at its yaml key. It holds the
// file to more than ValidateStrategy: role names are plain identifiers
// (letters, digits, _ . -, starting with a letter or _), and the fields
// that single does not use (alternate_username, group_role,
// retire_nologin) may not be given with it. A zero Port is refused: the
// file's default is DefaultPort, for the caller to fill in.
func (o Options) ValidateDeclared(s targets.Strategy) error {
	ve := &validation.Error{Subject: "postgres target"}
	if s != targets.Alternating && s != targets.Single {
		ve.Add("", "unknown strategy %q: use alternating or single", s)
		return ve
	}
	for _, p := range o.problems(s, true) {
		ve.Add(yamlKey(p.field), "%s", p.msg)
	}
	return ve.Err()
}

// problem is one broken rule: the Go field and what is wrong.
type problem struct{ field, msg string }

func first(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	return fieldErr(ps[0].field, "%s", ps[0].msg)
}

// problems lists what is wrong with o, in field order: what every strategy
// needs, then, when s is set, what s needs; declared adds the rules of
// ValidateDeclared.
func (o Options) problems(s targets.Strategy, declared bool) []problem {
	var ps []problem
	add := func(field, format string, args ...any) {
		ps = append(ps, problem{field, fmt.Sprintf(format, args...)})
	}
	// unused reports a field that single does not use when a policy file
	// gives it anyway; the field's other rules are then moot.
	unused := func(field string, given bool) bool {
		if declared && s == targets.Single && given {
			add(field, "used only by strategy alternating; remove it or set strategy: alternating")
			return true
		}
		return false
	}
	role := func(field, name string) bool {
		if declared && !declaredRoleRE().MatchString(name) {
			add(field, "%q is not a valid role name: use 1 to 63 of A-Z a-z 0-9 _ . - starting with a letter or _", name)
			return false
		}
		if msg := roleNameProblem(name); msg != "" {
			add(field, "%s", msg)
			return false
		}
		return true
	}

	d := o.WithDefaults()
	if strings.TrimSpace(d.Host) == "" {
		add("Host", "required: the server's host name, address or unix socket folder")
	}
	if d.Port < 1 || d.Port > 65535 {
		add("Port", "must be between 1 and 65535")
	}
	if strings.TrimSpace(d.DBName) == "" {
		add("DBName", "required: the database that logins and the canary use")
	}
	if !sslModes[d.SSLMode] {
		add("SSLMode", "unknown sslmode %q: use disable, allow, prefer, require, verify-ca, verify-full", d.SSLMode)
	}
	if d.ConnectTimeout < 0 {
		add("ConnectTimeout", "must not be negative")
	}

	userOK := false
	if d.Username == "" {
		add("Username", "required: the login role")
	} else {
		userOK = role("Username", d.Username)
	}

	altOK := false
	switch {
	case unused("AlternateUsername", o.AlternateUsername != ""):
	case o.AlternateUsername != "":
		altOK = role("AlternateUsername", d.AlternateUsername)
	case d.AlternateUsername != "":
		// The default: whatever the strategy, the target derives it.
		if (declared && !declaredRoleRE().MatchString(d.AlternateUsername)) || roleNameProblem(d.AlternateUsername) != "" {
			hint := "give alternate_username"
			if s == targets.Single {
				hint = "shorten username"
			}
			add("AlternateUsername", "the default %q is not a valid role name; %s", d.AlternateUsername, hint)
		} else {
			altOK = true
		}
	}
	if userOK && altOK && d.AlternateUsername == d.Username {
		add("AlternateUsername", "must differ from username: alternating takes turns between two roles")
	}

	switch {
	case unused("GroupRole", o.GroupRole != ""):
	case o.GroupRole == "":
		if s == targets.Alternating {
			add("GroupRole", "required for strategy alternating: the role that holds the privileges and both users are members of")
		}
	case !role("GroupRole", o.GroupRole):
	case o.GroupRole == d.Username || o.GroupRole == d.AlternateUsername:
		add("GroupRole", "must differ from username and alternate_username: it is the NOLOGIN role that holds the grants")
	case o.GroupRole == "none":
		// ALTER ROLE … SET role = 'none' means "no role" to PostgreSQL.
		add("GroupRole", `"none" cannot be a group role: PostgreSQL reads SET role = none as no role`)
	}

	if s == targets.Alternating && o.Admin.IsZero() {
		add("Admin", "required: an admin connection URL")
	}
	unused("RetireNoLogin", o.RetireNoLogin)
	return ps
}

// roleNameProblem is what PostgreSQL itself refuses, or silently changes,
// in a role name; "" when nothing.
func roleNameProblem(name string) string {
	if len(name) > maxIdentifierLength {
		return fmt.Sprintf("%q is longer than PostgreSQL's %d bytes", name, maxIdentifierLength)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return "contains a control character"
	}
	return ""
}

// yamlKey is the policy file's key of the Go field called name.
func yamlKey(name string) string {
	f, ok := reflect.TypeFor[Options]().FieldByName(name)
	if !ok {
		return name
	}
	if key, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); key != "" && key != "-" {
		return key
	}
	return strings.ToLower(name)
}
