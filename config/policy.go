package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"

	"github.com/swarmkey/swarmkey/targets"
)

// Defaults of a policy.
const (
	DefaultStore            = ProviderFile
	DefaultWindow           = time.Hour
	DefaultExpectedDuration = time.Minute
	DefaultMaxAttempts      = 5
	DefaultPasswordLength   = 32
	MinPasswordLength       = 16
	MaxPasswordLength       = 128
	DefaultCanaryAttempts   = 3
	DefaultCanaryInterval   = time.Second
	DefaultPostgresPort     = 5432
	DefaultSSLMode          = "prefer"
	// periodSamples is how many consecutive fires the period check looks at:
	// over a year for a daily schedule, so both DST switches are seen.
	periodSamples = 400
)

// Named password alphabets.
var alphabets = map[string]string{
	"alphanumeric":    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"ascii-printable": asciiPrintable(),
	"hex":             "0123456789abcdef",
}

func asciiPrintable() string {
	var b strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// roleRE keeps role names to what needs no thought when quoted; Postgres
	// truncates identifiers at 63 bytes.
	roleRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)
	sslModes     = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
	periodOrigin = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
)

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// check is a source and a path prefix in it, to report errors under.
type check struct {
	l      *loader
	src    *source
	prefix string
}

func (c check) path(rel string) string {
	if rel == "" {
		return c.prefix
	}
	if c.prefix == "" {
		return rel
	}
	return c.prefix + "." + rel
}

func (c check) errf(rel, format string, args ...any) {
	p := c.path(rel)
	if c.src.suppressed(p) {
		return
	}
	c.l.errs = append(c.l.errs, c.src.errAt(p, fmt.Sprintf(format, args...)))
}

// duration parses an optional non-negative duration field; def when empty.
func (c check) duration(rel, v string, def time.Duration) time.Duration {
	if strings.TrimSpace(v) == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		c.errf(rel, "bad duration %q: use Go durations like 90s, 2h, 1h30m or days like 7d", v)
		return def
	}
	if d < 0 {
		c.errf(rel, "must not be negative")
		return def
	}
	return d
}

// positive is duration for fields that must be above zero when given.
func (c check) positive(rel, v string, def time.Duration) time.Duration {
	d := c.duration(rel, v, def)
	if d == 0 && strings.TrimSpace(v) != "" {
		c.errf(rel, "must be longer than 0")
		return def
	}
	return d
}

// count checks an optional integer against a lower and an upper bound.
func (c check) count(rel string, v *int, def, lo, hi int) int {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		if hi == maxInt {
			c.errf(rel, "must be at least %d", lo)
		} else {
			c.errf(rel, "must be between %d and %d", lo, hi)
		}
		return def
	}
	return *v
}

const maxInt = int(^uint(0) >> 1)

// schedule parses a cron spec and a zone, and measures the spec's period.
func (c check) schedule(specRel, spec, zoneRel, zone string) (cron.Schedule, *time.Location, time.Duration, bool) {
	loc, locOK := c.location(zoneRel, zone)
	spec = strings.TrimSpace(spec)
	if spec == "" {
		c.errf(specRel, "required: a cron spec such as \"0 3 * * *\" or @daily")
		return nil, nil, 0, false
	}
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		c.errf(specRel, "a time zone inside the cron spec is not supported; remove the CRON_TZ=/TZ= prefix and set timezone: instead")
		return nil, nil, 0, false
	}
	sched, err := parseCron(spec)
	if err != nil {
		c.errf(specRel, "bad cron spec %q: %v", spec, err)
		return nil, nil, 0, false
	}
	if !locOK {
		return nil, nil, 0, false
	}
	// Pin the zone into the schedule so that Next is right whatever the
	// zone of its argument.
	if s, ok := sched.(*cron.SpecSchedule); ok {
		s.Location = loc
	}
	period := memoizedGap(spec, sched, loc)
	if period <= 0 {
		c.errf(specRel, "the cron spec %q never fires", spec)
		return nil, nil, 0, false
	}
	return sched, loc, period, true
}

func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cannot parse it")
		}
	}()
	return cron.ParseStandard(spec)
}

// periods memoizes shortestGap by spec and zone: it is a pure function of
// them, walking periodSamples fires takes a while, and a file of thousands
// of policies usually holds a handful of distinct schedules.
var periods sync.Map // spec + "\x00" + zone → time.Duration

func memoizedGap(spec string, sched cron.Schedule, loc *time.Location) time.Duration {
	key := spec + "\x00" + loc.String()
	if v, ok := periods.Load(key); ok {
		return v.(time.Duration)
	}
	gap := shortestGap(sched, periodOrigin.In(loc))
	periods.Store(key, gap)
	return gap
}

// shortestGap is the shortest time between consecutive fires over the next
// periodSamples fires after from; 0 when the schedule does not fire twice.
func shortestGap(s cron.Schedule, from time.Time) time.Duration {
	prev := s.Next(from)
	if prev.IsZero() {
		return 0
	}
	var gap time.Duration
	for range periodSamples {
		next := s.Next(prev)
		if next.IsZero() || !next.After(prev) {
			break
		}
		if d := next.Sub(prev); gap == 0 || d < gap {
			gap = d
		}
		prev = next
	}
	return gap
}

func (c check) location(rel, zone string) (*time.Location, bool) {
	zone = strings.TrimSpace(zone)
	if zone == "" || zone == "UTC" {
		return time.UTC, true
	}
	if zone == "Local" {
		c.errf(rel, "\"Local\" depends on the host; give an IANA zone such as Europe/Berlin or UTC")
		return nil, false
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		c.errf(rel, "unknown time zone %q: give an IANA zone such as Europe/Berlin or UTC", zone)
		return nil, false
	}
	return loc, true
}

func (c check) deny(raws []rawDeny, listRel string) []DenyWindow {
	var out []DenyWindow
	for i, r := range raws {
		d := check{l: c.l, src: c.src, prefix: c.path(listRel + "[" + strconv.Itoa(i) + "]")}
		sched, loc, period, ok := d.schedule("cron", r.Cron, "timezone", r.Timezone)
		var dur time.Duration
		if strings.TrimSpace(r.Duration) == "" {
			d.errf("duration", "required: how long each deny window lasts, such as 9h")
		} else {
			dur = d.positive("duration", r.Duration, 0)
		}
		if !ok || dur == 0 {
			continue
		}
		if dur >= period {
			d.errf("duration", "duration %s is not shorter than the cron's period %s: the window would never end",
				formatDuration(dur), formatDuration(period))
			continue
		}
		out = append(out, DenyWindow{
			Name: r.Name, Spec: strings.TrimSpace(r.Cron), Schedule: sched, Location: loc,
			Duration: dur, File: c.src.file, Line: c.src.line(d.prefix),
		})
	}
	return out
}

// reference parses a credential field.
func (c check) reference(cfg *Config, rel, v string, required bool, what string) Reference {
	if v == "" {
		if required {
			c.errf(rel, "required: %s, as a reference: %s", what, referenceForms)
		}
		return Reference{}
	}
	ref, err := ParseReference(v)
	if err != nil {
		c.errf(rel, "%v", err)
		return Reference{}
	}
	if ref.Scheme == SchemeStore {
		if msg := c.l.providerProblem(cfg, ref.Provider); msg != "" {
			c.errf(rel, "%s", msg)
		}
	}
	return ref
}

// checkAll checks the deny windows and policies of every file, then the
// rules that span files.
func (l *loader) checkAll(cfg *Config) {
	type place struct {
		file string
		line int
	}
	names := map[string]place{}
	secrets := map[string]place{}
	for _, s := range l.sources {
		top := check{l: l, src: s}
		cfg.Deny = append(cfg.Deny, top.deny(s.raw.Deny, "deny")...)
		for i := range s.raw.Policies {
			c := check{l: l, src: s, prefix: "policies[" + strconv.Itoa(i) + "]"}
			p, ok := c.policy(cfg, &s.raw.Policies[i])
			if !nameRE.MatchString(p.Name) {
				continue // reported, or the policy was spoilt by a decoding error
			}
			if prev, dup := names[p.Name]; dup {
				c.errf("name", "policy %q is already defined at %s:%d; policy names are unique across all files", p.Name, prev.file, prev.line)
				continue
			}
			names[p.Name] = place{p.File, p.Line}
			key := p.Store + "/" + p.SecretID
			if prev, dup := secrets[key]; dup {
				c.errf("secret", "secret %q in store %s is already rotated by the policy at %s:%d; give each policy its own secret", p.SecretID, p.Store, prev.file, prev.line)
				continue
			}
			secrets[key] = place{p.File, p.Line}
			if ok {
				cfg.Policies = append(cfg.Policies, p)
			}
		}
	}
}

// policy checks one policy and applies its defaults; ok is false when it
// had any error (or a decoding error spoiled it).
func (c check) policy(cfg *Config, r *rawPolicy) (Policy, bool) {
	before := len(c.l.errs)
	if c.src.suppressed(c.prefix) {
		return Policy{}, false
	}
	p := Policy{File: c.src.file, Line: c.src.line(c.prefix)}

	switch {
	case r.Name == "":
		c.errf("name", "required")
	case !nameRE.MatchString(r.Name):
		c.errf("name", "%q is not a valid policy name: use 1 to 63 of a-z 0-9 . _ - starting with a letter or digit", r.Name)
	}
	p.Name = r.Name

	// An unknown strategy stays "": the checks that depend on the strategy
	// are skipped rather than guessed.
	strategy, err := targets.ParseStrategy(r.Strategy)
	if err != nil {
		c.errf("strategy", "unknown strategy %q: use alternating or single", r.Strategy)
	}
	p.Strategy = strategy

	p.Store = r.Store
	if p.Store == "" {
		p.Store = DefaultStore
	}
	if msg := c.l.providerProblem(cfg, p.Store); msg != "" {
		c.errf("store", "%s", msg)
	}
	p.SecretID = r.Secret
	if p.SecretID == "" {
		p.SecretID = r.Name
	} else if strings.ContainsFunc(p.SecretID, isSpaceOrControl) || len(p.SecretID) > 512 {
		c.errf("secret", "a secret id has no spaces or control characters and at most 512 bytes")
	}

	seenTag := map[string]bool{}
	for i, t := range r.Tags {
		rel := "tags[" + strconv.Itoa(i) + "]"
		switch {
		case strings.TrimSpace(t) == "":
			c.errf(rel, "empty tag")
		case seenTag[t]:
			c.errf(rel, "tag %q is given twice", t)
		}
		seenTag[t] = true
	}
	p.Tags = append([]string(nil), r.Tags...)

	p.Target = c.target(cfg, r, strategy)
	p.Password = c.password(&r.Password)

	sched, loc, period, schedOK := c.schedule("schedule", r.Schedule, "timezone", r.Timezone)
	p.ScheduleSpec, p.Schedule, p.Location, p.Period = strings.TrimSpace(r.Schedule), sched, loc, period

	p.Window = c.positive("window", r.Window, DefaultWindow)
	if schedOK && p.Window >= period {
		c.errf("window", "window %s is not shorter than the schedule's period %s", formatDuration(p.Window), formatDuration(period))
	}
	p.ExpectedDuration = c.positive("expected_duration", r.ExpectedDuration, DefaultExpectedDuration)
	p.GuardBefore = c.duration("guard_before", r.GuardBefore, 0)
	p.GuardAfter = c.duration("guard_after", r.GuardAfter, 0)
	p.MaxAge = c.positive("max_age", r.MaxAge, 0)
	if schedOK && p.MaxAge > 0 && p.MaxAge <= period {
		c.errf("max_age", "max_age %s is not longer than the schedule's period %s: the policy would be overdue before every rotation",
			formatDuration(p.MaxAge), formatDuration(period))
	}
	switch OverdueAction(r.OnOverdue) {
	case "", OverdueAlert:
		p.OnOverdue = OverdueAlert
	case OverdueForce:
		p.OnOverdue = OverdueForce
	default:
		c.errf("on_overdue", "unknown action %q: use alert or force", r.OnOverdue)
	}
	switch MissedAction(r.Missed) {
	case "", MissedNextWindow:
		p.Missed = MissedNextWindow
	case MissedASAP:
		p.Missed = MissedASAP
	default:
		c.errf("missed", "unknown action %q: use next_window or asap", r.Missed)
	}
	p.Grace = c.duration("grace", r.Grace, 0)
	p.MaxAttempts = c.count("max_attempts", r.MaxAttempts, DefaultMaxAttempts, 1, maxInt)
	p.Canary = CanaryRetry{
		Attempts: c.count("canary.attempts", r.Canary.Attempts, DefaultCanaryAttempts, 1, maxInt),
		Interval: c.duration("canary.interval", r.Canary.Interval, DefaultCanaryInterval),
	}
	p.Deny = c.deny(r.Deny, "deny")

	return p, len(c.l.errs) == before
}

func (c check) target(cfg *Config, r *rawPolicy, strategy targets.Strategy) Target {
	var given []string
	for _, k := range []string{"postgres", "http", "generated"} {
		if c.src.has(c.path("target." + k)) {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		c.errf("target", "required: give exactly one of postgres, http, generated")
		return Target{}
	case 1:
	default:
		c.errf("target", "give exactly one of postgres, http, generated, not %s", strings.Join(given, " and "))
		return Target{}
	}
	switch given[0] {
	case "http":
		return Target{HTTP: c.httpTarget(cfg, r)}
	case "generated":
		return Target{Generated: c.generatedTarget(r)}
	}
	pg := r.Target.Postgres
	if pg == nil {
		pg = &rawPostgres{}
	}
	const pre = "target.postgres."
	t := &PostgresTarget{
		Host: pg.Host, DBName: pg.DBName, SSLMode: pg.SSLMode, Username: pg.Username,
		CanaryQuery: pg.CanaryQuery, RetireNoLogin: pg.RetireNoLogin,
	}
	if strings.TrimSpace(t.Host) == "" {
		c.errf(pre+"host", "required")
	}
	t.Port = c.count(pre+"port", pg.Port, DefaultPostgresPort, 1, 65535)
	if strings.TrimSpace(t.DBName) == "" {
		c.errf(pre+"dbname", "required")
	}
	if t.SSLMode == "" {
		t.SSLMode = DefaultSSLMode
	} else if !slices.Contains(sslModes, t.SSLMode) {
		c.errf(pre+"sslmode", "unknown sslmode %q: use %s", t.SSLMode, strings.Join(sslModes, ", "))
	}
	c.role(pre+"username", t.Username, true)
	switch strategy {
	case targets.Alternating:
		t.AlternateUsername = pg.AlternateUsername
		if t.AlternateUsername == "" && t.Username != "" {
			t.AlternateUsername = t.Username + "_b"
			if !roleRE.MatchString(t.AlternateUsername) {
				c.errf(pre+"alternate_username", "the default %q is not a valid role name; give alternate_username", t.AlternateUsername)
			}
		} else {
			c.role(pre+"alternate_username", t.AlternateUsername, false)
		}
		if t.AlternateUsername != "" && t.AlternateUsername == t.Username {
			c.errf(pre+"alternate_username", "must differ from username")
		}
		t.GroupRole = pg.GroupRole
		if t.GroupRole == "" {
			c.errf(pre+"group_role", "required for strategy alternating: the role that holds the privileges and both users are members of")
		} else if c.role(pre+"group_role", t.GroupRole, true) && (t.GroupRole == t.Username || t.GroupRole == t.AlternateUsername) {
			c.errf(pre+"group_role", "must differ from username and alternate_username")
		}
	case targets.Single:
		for _, f := range []struct {
			rel   string
			given bool
		}{
			{"alternate_username", pg.AlternateUsername != ""},
			{"group_role", pg.GroupRole != ""},
			{"retire_nologin", pg.RetireNoLogin},
		} {
			if f.given {
				c.errf(pre+f.rel, "used only by strategy alternating; remove it or set strategy: alternating")
			}
		}
	}
	t.Admin = c.reference(cfg, pre+"admin", pg.Admin, strategy == targets.Alternating, "an admin connection URL")
	return Target{Postgres: t}
}

// role checks a role name; it reports whether the name is valid.
func (c check) role(rel, v string, required bool) bool {
	if v == "" {
		if required {
			c.errf(rel, "required")
		}
		return false
	}
	if !roleRE.MatchString(v) {
		c.errf(rel, "%q is not a valid role name: use 1 to 63 of A-Z a-z 0-9 _ . - starting with a letter or _", v)
		return false
	}
	return true
}

func (c check) password(r *rawPassword) PasswordRules {
	p := PasswordRules{
		Length: c.count("password.length", r.Length, DefaultPasswordLength, MinPasswordLength, MaxPasswordLength),
	}
	switch {
	case r.Characters != "" && r.Alphabet != "":
		c.errf("password", "give alphabet or characters, not both")
	case r.Characters != "":
		var b strings.Builder
		seen := map[rune]bool{}
		for _, ch := range r.Characters {
			if !unicode.IsGraphic(ch) || unicode.IsSpace(ch) {
				c.errf("password.characters", "only visible characters, no spaces or control characters")
				return p
			}
			if !seen[ch] {
				seen[ch] = true
				b.WriteRune(ch)
			}
		}
		if len(seen) < 10 {
			c.errf("password.characters", "needs at least 10 distinct characters, has %d", len(seen))
		}
		p.Characters = b.String()
	default:
		name := r.Alphabet
		if name == "" {
			name = "alphanumeric"
		}
		chars, ok := alphabets[name]
		if !ok {
			c.errf("password.alphabet", "unknown alphabet %q: use alphanumeric, ascii-printable or hex, or list your own under characters:", r.Alphabet)
		}
		p.Alphabet, p.Characters = name, chars
	}
	return p
}
