package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/validation"
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
)

// MinWindow is the shortest window a policy may give. When a fire's
// slot has already come at the planning tick that inserts its job (the
// first plan after a start or a reload, a late tick), the rotation
// starts only once River hands the job to a worker (within 100 ms with
// LISTEN/NOTIFY, within River's 1 s fetch poll without) and the worker
// has checked the calendar: most fires of a shorter window would end as
// rotation.missed. A window is also shorter than the schedule's period,
// so the shortest usable period is @every 2s.
const MinWindow = time.Second

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

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`) })

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

// sub is the check of the block at rel.
func (c check) sub(rel string) check {
	return check{l: c.l, src: c.src, prefix: c.path(rel)}
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

// window checks the policy's window against MinWindow and, when the
// schedule is usable (schedOK), against its shortest gap between fires: a
// window closes before the next fire opens one. A window the file leaves out
// is the default, and an error about it says so rather than quote a value
// the file never gave.
func (c check) window(v string, schedOK bool, gap time.Duration) time.Duration {
	given := strings.TrimSpace(v) != ""
	w := c.positive("window", v, DefaultWindow)
	if given && w > 0 && w < MinWindow {
		c.errf("window", "window %s is shorter than the minimum %s: a rotation may start up to about a second after its fire is planned, so most fires would be missed; give at least %s",
			formatDuration(w), formatDuration(MinWindow), formatDuration(MinWindow))
	}
	switch {
	case !schedOK:
	case gap <= MinWindow:
		c.errf("schedule", "fires every %s, too often for any window: a window is at least %s and shorter than the period; fire at most every %s",
			formatDuration(gap), formatDuration(MinWindow), formatDuration(MinWindow+time.Second))
	case !given && w >= gap:
		c.errf("window", "not set, so the default of %s applies, which is not shorter than the schedule's period %s; add window: shorter than the period to this policy, such as window: %s",
			formatDuration(w), formatDuration(gap), formatDuration(max(MinWindow, (gap/2).Truncate(time.Second))))
	case w >= gap:
		c.errf("window", "window %s is not shorter than the schedule's period %s", formatDuration(w), formatDuration(gap))
	}
	return w
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

// schedule builds the schedule of a cron spec in a zone, and measures its
// shortest gap between fires (schedule.Schedule.ShortestGap), which windows
// must be shorter than.
//
// A good schedule is memoized by spec and zone for the rest of the load:
// thousands of policies share a handful, and share their parsed values.
func (c check) schedule(specRel, spec, zoneRel, zone string) (schedule.Schedule, time.Duration, bool) {
	key := scheduleKey{spec: spec, zone: zone}
	if m, ok := c.l.schedules[key]; ok {
		return m.sched, m.gap, true
	}
	sched, gap, ok := c.parseSchedule(specRel, spec, zoneRel, zone)
	if ok {
		if c.l.schedules == nil {
			c.l.schedules = map[scheduleKey]memoSchedule{}
		}
		c.l.schedules[key] = memoSchedule{sched: sched, gap: gap}
	}
	return sched, gap, ok
}

// scheduleKey and memoSchedule memoize check.schedule.
type scheduleKey struct{ spec, zone string }

type memoSchedule struct {
	sched schedule.Schedule
	gap   time.Duration
}

func (c check) parseSchedule(specRel, spec, zoneRel, zone string) (schedule.Schedule, time.Duration, bool) {
	loc, locOK := c.location(zoneRel, zone)
	spec = strings.TrimSpace(spec)
	if spec == "" {
		c.errf(specRel, "required: a cron spec such as \"0 3 * * *\" or @daily")
		return schedule.Schedule{}, 0, false
	}
	if !locOK {
		loc = time.UTC // reported; the spec is still worth checking
	}
	sched, err := schedule.New(spec, loc)
	var se *schedule.SpecError
	switch {
	case errors.Is(err, schedule.ErrZoneInSpec):
		c.errf(specRel, "a time zone inside the cron spec is not supported; remove the CRON_TZ=/TZ= prefix and set timezone: instead")
	case errors.Is(err, schedule.ErrNoFires):
		c.errf(specRel, "the cron spec %q never fires", spec)
	case errors.Is(err, schedule.ErrEveryPeriod) && errors.As(err, &se):
		c.errf(specRel, "%v", se.Err) // it names the period and the rule
	case errors.As(err, &se):
		c.errf(specRel, "bad cron spec %q: %v", spec, se.Err)
	case err != nil:
		c.errf(specRel, "bad cron spec %q: %v", spec, err)
	}
	if err != nil || !locOK {
		return schedule.Schedule{}, 0, false
	}
	gap := sched.ShortestGap()
	if gap <= 0 {
		c.errf(specRel, "the cron spec %q never fires", spec)
		return schedule.Schedule{}, 0, false
	}
	return sched, gap, true
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
	if loc, ok := c.l.locations[zone]; ok {
		return loc, true
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		c.errf(rel, "unknown time zone %q: give an IANA zone such as Europe/Berlin or UTC", zone)
		return nil, false
	}
	// One *time.Location per zone: each load reads and keeps the zone's
	// transitions again.
	if c.l.locations == nil {
		c.l.locations = map[string]*time.Location{}
	}
	c.l.locations[zone] = loc
	return loc, true
}

func (c check) deny(raws []rawDeny, listRel string) []DenyWindow {
	var out []DenyWindow
	for i, r := range raws {
		d := c.sub(listRel + "[" + strconv.Itoa(i) + "]")
		sched, gap, ok := d.schedule("cron", r.Cron, "timezone", r.Timezone)
		var dur time.Duration
		if strings.TrimSpace(r.Duration) == "" {
			d.errf("duration", "required: how long each deny window lasts, such as 9h")
		} else {
			dur = d.positive("duration", r.Duration, 0)
		}
		if !ok || dur == 0 {
			continue
		}
		if dur >= gap {
			d.errf("duration", "duration %s is not shorter than the cron's period %s: the window would never end",
				formatDuration(dur), formatDuration(gap))
			continue
		}
		out = append(out, DenyWindow{
			DenyWindow: schedule.DenyWindow{Name: r.Name, Schedule: sched, Duration: dur},
			File:       c.src.file, Line: c.src.line(d.prefix),
		})
	}
	return out
}

// reference parses the reference at rel, a key that no Options field takes
// (see referenceKeys), read from the file's tree. given says whether the
// file gives anything there: a reference, or something refused as one.
func (c check) reference(cfg *Config, rel string) (ref Reference, given bool) {
	e, ok := c.src.idx.get(c.path(rel))
	if !ok {
		return Reference{}, false
	}
	v := resolve(e.value)
	switch {
	case v == nil || (v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!null" || v.Value == "")):
		return Reference{}, false
	case v.Kind != yaml.ScalarNode:
		c.errf(rel, "want a reference (a string), got %s", describeTag(v.ShortTag()))
		return Reference{}, true
	}
	ref, err := ParseReference(v.Value)
	if err != nil {
		c.errf(rel, "%v", err)
		return Reference{}, true
	}
	if ref.Scheme == SchemeStore {
		if msg := c.l.providerProblem(cfg, ref.Provider); msg != "" {
			c.errf(rel, "%s", msg)
		}
	}
	return ref, true
}

// unresolved stands in for a credential that the file gives as a
// reference, for Validate methods that want a value there: the value is
// resolved only when the target is opened.
var unresolved = secret.FromString("reference-not-resolved")

// report places the problems of an Options' Validate at their fields below
// c's prefix. A problem at a key in refs, a reference the file left out,
// also says how to give one; problems at a key in ignore are reported
// elsewhere.
func (c check) report(err error, refs, ignore []string) {
	if err == nil {
		return
	}
	var ve *validation.Error
	if !errors.As(err, &ve) {
		c.errf("", "%v", err)
		return
	}
	for _, p := range ve.Problems {
		switch {
		case slices.Contains(ignore, p.Field):
		case slices.Contains(refs, p.Field):
			c.errf(p.Field, "%s, as a reference: %s", p.Msg, referenceForms)
		default:
			c.errf(p.Field, "%s", p.Msg)
		}
	}
}

// entryChecked, when set, sees the node of each policies: entry once its
// policy is checked (the tests watch that trees do not pile up).
var entryChecked func(item *yaml.Node)

// checkAll checks the deny windows and policies of every file, then the
// rules that span files: unique names and secrets, and roles that two
// policies claim (checkRoleClaims).
func (l *loader) checkAll(cfg *Config) {
	type place struct {
		file string
		line int
	}
	names := map[string]place{}
	secrets := map[string]place{}
	claims := roleClaims{}
	n := 0
	for _, s := range l.sources {
		n += len(s.entries) + len(s.raw.Policies)
	}
	cfg.Policies = make([]Policy, 0, n)
	for _, s := range l.sources {
		top := check{l: l, src: s}
		cfg.Deny = append(cfg.Deny, top.deny(s.raw.Deny, "deny")...)
		err := l.eachPolicy(s, func(c check, r *rawPolicy) {
			p, ok := c.policy(cfg, r)
			if !nameRE().MatchString(p.Name) {
				return // reported, or the policy was spoilt by a decoding error
			}
			if prev, dup := names[p.Name]; dup {
				c.errf("name", "policy %q is already defined at %s:%d; policy names are unique across all files", p.Name, prev.file, prev.line)
				return
			}
			names[p.Name] = place{p.File, p.Line}
			key := p.Store + "/" + p.SecretID
			if prev, dup := secrets[key]; dup {
				c.errf("secret", "secret %q in store %s is already rotated by the policy at %s:%d; give each policy its own secret", p.SecretID, p.Store, prev.file, prev.line)
				return
			}
			secrets[key] = place{p.File, p.Line}
			if ok {
				cfg.Policies = append(cfg.Policies, p)
				if p.Target.Postgres != nil {
					c.checkRoleClaims(claims, &p)
				}
			}
		})
		if err != nil {
			l.retryWhole = s.file
			return
		}
		if e, ok := s.moreDecodeErrors(); ok {
			l.errs = append(l.errs, e)
		}
	}
}

// eachPolicy calls fn with each policies: entry of s, in file order: the
// entries of a whole file from its tree, those of a cut one parsed a batch
// at a time (entries.go). It returns errEntryUnparsed when entries do not
// parse on their own.
func (l *loader) eachPolicy(s *source, fn func(c check, r *rawPolicy)) error {
	if !s.cut {
		for i := range s.raw.Policies {
			prefix := "policies[" + strconv.Itoa(i) + "]"
			fn(check{l: l, src: s, prefix: prefix}, &s.raw.Policies[i])
			if e, ok := s.idx.get(prefix); ok && entryChecked != nil {
				entryChecked(e.value)
			}
		}
		return nil
	}
	err := s.parseEntries(func(b *parsedBatch) error {
		l.errs = append(l.errs, b.problems...)
		for _, e := range b.decoded {
			s.badUnits[unitOf(e.Field)] = true
			l.errs = b.src.decodeShown(l.errs, e)
		}
		for k := range b.raws {
			fn(check{l: l, src: b.src, prefix: "policies[" + strconv.Itoa(b.first+k) + "]"}, &b.raws[k])
			if entryChecked != nil {
				entryChecked(b.items[k])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The file's text is garbage now.
	s.entries, s.data = nil, nil
	return nil
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
	case !nameRE().MatchString(r.Name):
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

	sched, gap, schedOK := c.schedule("schedule", r.Schedule, "timezone", r.Timezone)
	p.Schedule = sched

	p.Window = c.window(r.Window, schedOK, gap)
	p.ExpectedDuration = c.positive("expected_duration", r.ExpectedDuration, DefaultExpectedDuration)
	p.GuardBefore = c.duration("guard_before", r.GuardBefore, 0)
	p.GuardAfter = c.duration("guard_after", r.GuardAfter, 0)
	p.MaxAge = c.positive("max_age", r.MaxAge, 0)
	if schedOK && p.MaxAge > 0 && p.MaxAge <= gap {
		c.errf("max_age", "max_age %s is not longer than the schedule's period %s: the policy would be overdue before every rotation",
			formatDuration(p.MaxAge), formatDuration(gap))
	}
	switch r.OnOverdue {
	case "", schedule.OverdueAlert:
		p.OnOverdue = schedule.OverdueAlert
	case schedule.OverdueForce:
		p.OnOverdue = schedule.OverdueForce
	default:
		c.errf("on_overdue", "unknown action %q: use alert or force", r.OnOverdue)
	}
	switch r.Missed {
	case "", schedule.MissedNextWindow:
		p.Missed = schedule.MissedNextWindow
	case schedule.MissedASAP:
		p.Missed = schedule.MissedASAP
	default:
		c.errf("missed", "unknown action %q: use next_window or asap", r.Missed)
	}
	p.Grace = c.duration("grace", r.Grace, 0)
	p.MaxAttempts = c.count("max_attempts", r.MaxAttempts, DefaultMaxAttempts, 1, maxInt)
	p.Canary = rotator.CanaryRetry{
		Attempts: c.count("canary.attempts", r.Canary.Attempts, DefaultCanaryAttempts, 1, maxInt),
		Interval: c.duration("canary.interval", r.Canary.Interval, DefaultCanaryInterval),
	}
	for _, w := range c.deny(r.Deny, "deny") {
		p.Deny = append(p.Deny, w.DenyWindow)
	}

	return p, len(c.l.errs) == before
}

func (c check) target(cfg *Config, r *rawPolicy, strategy targets.Strategy) Target {
	var given []string
	for _, k := range []string{"postgres", "http", "generated", "mysql", "redis"} {
		if c.src.has(c.path("target." + k)) {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		c.errf("target", "required: give exactly one of postgres, http, generated, mysql, redis")
		return Target{}
	case 1:
	default:
		c.errf("target", "give exactly one of postgres, http, generated, mysql, redis, not %s", strings.Join(given, " and "))
		return Target{}
	}
	switch given[0] {
	case "http":
		return Target{HTTP: c.sub("target.http").httpTarget(cfg, r.Target.HTTP, r.Name)}
	case "generated":
		return Target{Generated: c.sub("target.generated").generatedTarget(r.Target.Generated, r.Name)}
	case "mysql":
		return Target{MySQL: c.sub("target.mysql").mysqlTarget(cfg, r.Target.MySQL, strategy)}
	case "redis":
		return Target{Redis: c.sub("target.redis").redisTarget(cfg, r.Target.Redis, strategy)}
	}
	return Target{Postgres: c.sub("target.postgres").postgresTarget(cfg, r.Target.Postgres, strategy)}
}

func (c check) password(r *rawPassword) PasswordRules {
	p := PasswordRules{PasswordRules: rotator.PasswordRules{
		Length: c.count("password.length", r.Length, DefaultPasswordLength, MinPasswordLength, MaxPasswordLength),
	}}
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
