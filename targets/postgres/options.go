package postgres

import (
	"fmt"
	"time"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Defaults applied by New (and by WithDefaults) to fields left zero.
const (
	DefaultSSLMode        = "prefer"
	DefaultConnectTimeout = 5 * time.Second
	// AlternateSuffix is appended to Username when AlternateUsername is empty.
	AlternateSuffix = "_b"
)

// maxIdentifierLength is PostgreSQL's NAMEDATALEN-1: longer role names are
// truncated by the server, which would make two names collide silently.
const maxIdentifierLength = 63

// Options configure one PostgreSQL target.
type Options struct {
	// Host, Port and DBName are where credentials log in: Verify connects
	// there, and they are written into every secret document.
	Host   string
	Port   int
	DBName string
	// SSLMode is libpq's sslmode for those logins; default "prefer".
	SSLMode string
	// Username is the login role. With the single strategy it is the only
	// role; with alternating it is the first of two.
	Username string
	// AlternateUsername is alternating's second login role; default
	// Username+"_b".
	AlternateUsername string
	// GroupRole is alternating's NOLOGIN role that holds the grants. Both
	// login roles are made members of it and switch to it at login
	// (ALTER ROLE … SET role), so objects they create belong to it. Operators
	// create it and grant it privileges; the target never does. Required for
	// alternating.
	GroupRole string
	// Admin is a postgres:// URL of a role allowed to CREATE/ALTER ROLE.
	// Required for alternating; with single it may be zero, and then the
	// role changes its own password, logging in with the current one.
	Admin secret.Secret
	// CanaryQuery, when set, is run by Verify with Canary as the new
	// credential, after SELECT 1.
	CanaryQuery string
	// RetireNoLogin makes alternating's Retire set the retired role NOLOGIN;
	// the next Apply on that role sets LOGIN again.
	RetireNoLogin bool
	// ConnectTimeout bounds each login; default 5s.
	ConnectTimeout time.Duration
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

var sslModes = map[string]bool{
	"disable": true, "allow": true, "prefer": true,
	"require": true, "verify-ca": true, "verify-full": true,
}

// Validate checks the fields every strategy needs, after defaults, and
// returns a *FieldError naming the first wrong field. What only one strategy
// needs (GroupRole and Admin for alternating) is checked by
// ValidateStrategy.
func (o Options) Validate() error {
	o = o.WithDefaults()
	switch {
	case o.Host == "":
		return fieldErr("Host", "is empty: name the server's host name, address or unix socket folder")
	case o.Port < 1 || o.Port > 65535:
		return fieldErr("Port", "%d is out of range 1-65535", o.Port)
	case o.DBName == "":
		return fieldErr("DBName", "is empty: name the database that logins and the canary use")
	case !sslModes[o.SSLMode]:
		return fieldErr("SSLMode", "%q is not one of disable, allow, prefer, require, verify-ca, verify-full", o.SSLMode)
	case o.ConnectTimeout < 0:
		return fieldErr("ConnectTimeout", "%s is negative", o.ConnectTimeout)
	}
	for _, f := range []struct{ field, name string }{
		{"Username", o.Username},
		{"AlternateUsername", o.AlternateUsername},
		{"GroupRole", o.GroupRole},
	} {
		if err := checkRoleName(f.field, f.name, f.field == "Username"); err != nil {
			return err
		}
	}
	switch {
	case o.AlternateUsername == o.Username:
		return fieldErr("AlternateUsername", "%q is the same role as Username: alternating needs two roles", o.AlternateUsername)
	case o.GroupRole != "" && (o.GroupRole == o.Username || o.GroupRole == o.AlternateUsername):
		return fieldErr("GroupRole", "%q is one of the login roles: it must be a separate NOLOGIN role", o.GroupRole)
	case o.GroupRole == "none":
		// ALTER ROLE … SET role = 'none' means "no role" to PostgreSQL.
		return fieldErr("GroupRole", `"none" cannot be a group role: PostgreSQL reads SET role = none as no role`)
	}
	return nil
}

// ValidateStrategy runs Validate and then checks what strategy s needs:
// alternating needs GroupRole and Admin.
func (o Options) ValidateStrategy(s targets.Strategy) error {
	if err := o.Validate(); err != nil {
		return err
	}
	switch s {
	case targets.Alternating:
		if o.GroupRole == "" {
			return fieldErr("GroupRole", "is empty: the alternating strategy needs a NOLOGIN group role that holds the grants")
		}
		if o.Admin.IsZero() {
			return fieldErr("Admin", "is empty: the alternating strategy creates and alters roles, so it needs an admin URL")
		}
	case targets.Single:
	default:
		return fmt.Errorf("postgres target: unknown strategy %q: use alternating or single", s)
	}
	return nil
}

func checkRoleName(field, name string, required bool) error {
	switch {
	case name == "" && required:
		return fieldErr(field, "is empty: name the login role")
	case len(name) > maxIdentifierLength:
		return fieldErr(field, "%q is longer than PostgreSQL's %d bytes", name, maxIdentifierLength)
	}
	for _, r := range name {
		if r == 0 {
			return fieldErr(field, "contains a NUL byte")
		}
	}
	return nil
}
