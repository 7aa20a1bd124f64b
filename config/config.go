// Package config loads swarmkey's policy files: strict YAML (an unknown or
// misspelt field is an error, not silently ignored), checked in full before
// anything runs, with every problem reported as FILE:LINE: FIELD: MSG.
//
// testdata/example.yaml is the annotated reference of the format; a test
// loads it. In short, a main file holds:
//
//	database  a Reference to the state database URL (required by Load)
//	stores    settings per provider (file, aws, gcp, vault, ssm, azure); a policy may only use a
//	          provider configured here
//	include   globs, relative to the file, of more files; those hold only
//	          policies: and deny:
//	deny      global deny windows (cron + duration + timezone)
//	policies  rotation policies
//	notifications  sinks (signed webhooks, Slack) and the routes of events
//	          to them (notifications.go)
//
// Each file is at most MaxFileSize (8 MiB) long; a larger one is refused
// before it is read. A file that is not YAML, or whose top level is not a
// mapping with at least one of the keys above (or a misspelling of one),
// is one error, "FILE: not a swarmkey policy file (…)", that quotes none of
// it: an include: that matches /etc/shadow must not print its lines.
//
// Several main files merge: their policies, deny windows and includes add up,
// while a setting (database, a provider's block under stores) given in two
// of them is an error naming both places. Policy names are unique across
// every file read, and so is the secret (provider and secret id) that a
// policy rotates: two policies rotating one secret would undo each other.
//
// Durations are Go durations ("90s", "2h", "1h30m") or days with a d suffix
// ("7d", "1d12h"); a day is 24 hours. Integer fields (ports, lengths,
// attempts, byte counts) take whole numbers: a decimal such as 5432.5 is an
// error, never truncated.
//
// Credential fields (database, target.postgres.admin, target.http.auth.secret)
// hold references, never values: env:NAME, file:/absolute/path or
// store:<provider>/<secret-id>[#field].
// Loading never resolves them; Reference.Resolve does, when a value is needed.
//
// Store and target blocks decode into the Options of their provider or
// target (file.Options, postgres.Options, …), and their Validate holds
// their rules; Config carries those Options, checked and with defaults
// applied, for app to open. Schedules and deny windows are built with
// package schedule.
package config

import (
	"errors"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	// Policies name IANA zones; embedding the zone database makes them
	// resolve on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/azure"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/providers/ssm"
	"github.com/swarmkey/swarmkey/providers/vault"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// Provider names as policies spell them.
const (
	ProviderFile  = "file"
	ProviderAWS   = "aws"
	ProviderGCP   = "gcp"
	ProviderVault = "vault"
	ProviderSSM   = "ssm"
	ProviderAzure = "azure"
)

// providerNames are the providers the stores section knows, in the order
// they are listed in messages.
var providerNames = []string{ProviderFile, ProviderAWS, ProviderGCP, ProviderVault, ProviderSSM, ProviderAzure}

// Config is the checked, merged content of the main files and their includes.
type Config struct {
	// Database is the reference to the state database URL; zero only from
	// ValidateFiles, where it is optional.
	Database Reference
	// Stores holds the settings of the configured providers.
	Stores Stores
	// Deny are the global deny windows, from every file.
	Deny []DenyWindow
	// Policies in file order: the main files in the order given, each
	// followed by its includes.
	Policies []Policy
	// Files lists every file read, in the same order.
	Files []string
	// Notifications is the notifications: block; nil when no file gives one.
	Notifications *Notifications

	// byName indexes Policies by name (Policy).
	byName map[string]int
}

// Policy returns the policy called name.
func (c *Config) Policy(name string) (*Policy, bool) {
	// Load indexes the names; a Config built or changed otherwise is
	// searched.
	if i, ok := c.byName[name]; ok && i < len(c.Policies) && c.Policies[i].Name == name {
		return &c.Policies[i], true
	}
	for i := range c.Policies {
		if c.Policies[i].Name == name {
			return &c.Policies[i], true
		}
	}
	return nil, false
}

// Stores holds a block per configured provider, as the provider's own
// Options; nil means not configured, and a policy that names it is an error.
// Relative paths in stores.file are resolved against the directory of the
// file that gives them.
type Stores struct {
	File  *file.Options
	AWS   *aws.Options
	GCP   *gcp.Options
	Vault *vault.Options
	SSM   *ssm.Options
	Azure *azure.Options
}

// Configured reports whether the provider called name has a block.
func (s Stores) Configured(name string) bool {
	switch name {
	case ProviderFile:
		return s.File != nil
	case ProviderAWS:
		return s.AWS != nil
	case ProviderGCP:
		return s.GCP != nil
	case ProviderVault:
		return s.Vault != nil
	case ProviderSSM:
		return s.SSM != nil
	case ProviderAzure:
		return s.Azure != nil
	}
	return false
}

// DenyWindow is a global deny window (see schedule.DenyWindow) and where
// the file gives it.
type DenyWindow struct {
	schedule.DenyWindow
	File string
	Line int
}

// Policy is one checked policy with every default applied.
type Policy struct {
	// Timing is the planning half: Name, the policy's name; Schedule, in the
	// policy's timezone (UTC by default); Window (default 1h), at least
	// MinWindow and shorter than the schedule's shortest gap between fires;
	// ExpectedDuration (default
	// 1m); GuardBefore and GuardAfter (default 0); MaxAge (0: never
	// overdue), longer than that gap; OnOverdue (schedule.OverdueAlert by
	// default); Missed (schedule.MissedNextWindow by default); and Deny, the
	// policy's own deny windows (the global ones apply too).
	schedule.Timing

	Strategy targets.Strategy
	// Store is the provider ("file" by default) and SecretID the secret in
	// it (the policy name by default).
	Store    string
	SecretID string
	Tags     []string
	Target   Target
	Password PasswordRules
	// Grace is how long finish waits after promote before retiring; default 0.
	Grace time.Duration
	// MaxAttempts is the retry limit of one rotation; default 5.
	MaxAttempts int
	// Canary is how often the canary retries a credential that may not have
	// propagated yet: Attempts at least 1, default 3; Interval default 1s.
	Canary rotator.CanaryRetry

	// File and Line locate the policy for messages.
	File string
	Line int
}

// Target is the system whose credential a policy rotates; exactly one field
// is set. Each holds its target's Options, checked by the target's rules
// and with defaults applied.
type Target struct {
	Postgres  *PostgresTarget
	HTTP      *HTTPTarget
	Generated *generated.Options
	MySQL     *MySQLTarget
	Redis     *RedisTarget
}

// PostgresTarget is a PostgreSQL role (or, alternating, two roles that are
// members of GroupRole, which holds the privileges).
type PostgresTarget struct {
	// Options are target.postgres with the defaults of the policy's
	// strategy (postgres.Options.ForStrategy) and port 5432 when the file
	// gives none. Options.Admin is zero: Admin refers to it.
	Options postgres.Options
	// Admin refers to an admin connection URL; required for alternating,
	// optional for single (which then logs in with the current credential).
	Admin Reference
}

// MySQLTarget is a MySQL or MariaDB account (or, alternating, two accounts
// that hold Role, which holds the grants), rotated by targets/mysql.
type MySQLTarget struct {
	// Options are target.mysql with the defaults of the policy's strategy
	// (mysql.Options.WithDefaults). Options.Admin is zero: Admin refers to it.
	Options mysql.Options
	// Admin refers to the admin DSN; required for alternating, optional for
	// single (which then logs in with the current credential).
	Admin Reference
}

// RedisTarget is a Redis ACL user (or, alternating, two users with the
// same ACL rules), rotated by targets/redis.
type RedisTarget struct {
	// Options are target.redis with the defaults of the policy's strategy
	// (redis.Options.WithDefaults). Options.Admin is zero: Admin refers to it.
	Options redis.Options
	// Admin refers to the admin Redis URL; required for both strategies.
	Admin Reference
}

// HTTPTarget is an HTTP API-key issuer, rotated by targets/httpkey.
// Templates and JSON pointers are checked at load, by rendering every
// template against sample data.
type HTTPTarget struct {
	// Options are target.http with defaults applied, Policy set to the
	// policy's name and TLS paths made absolute against the file's
	// directory. Options.Auth.Secret is zero: AuthSecret refers to it.
	Options httpkey.Options
	// AuthSecret refers to the admin token, header value or password;
	// zero when auth.type is not set.
	AuthSecret Reference
}

// PasswordRules say how new passwords are generated: the rotator's rules
// (Length 16..128, default 32; Characters, each once, in the order first
// given) and the named alphabet they come from.
type PasswordRules struct {
	rotator.PasswordRules
	// Alphabet is the named alphabet (alphanumeric by default,
	// ascii-printable, hex), or "" when the policy lists its own characters.
	Alphabet string
}

// Load reads the main files in paths, the files their include: globs
// match, and checks everything. Settings given twice across main files,
// duplicate policy names and every other problem it can find are returned
// together as Errors; the result is nil then. A file reached twice (given
// twice, or matched by two globs) is read once; a file larger than
// MaxFileSize is refused before it is read.
func Load(paths ...string) (*Config, error) {
	l := newLoader(false)
	return l.load(paths)
}

// ValidateFiles checks each file on its own (with its includes), as
// `swarmkey validate FILE…` does: database is optional, and a file that
// configures no stores (a policies-only file) may use any known provider.
// It returns Errors with the problems of all files.
func ValidateFiles(paths ...string) error {
	var all Errors
	for _, p := range paths {
		l := newLoader(true)
		if _, err := l.load([]string{p}); err != nil {
			var es Errors
			if !errors.As(err, &es) {
				return err
			}
			all = append(all, es...)
		}
	}
	if len(all) > 0 {
		return all
	}
	return nil
}

// loader carries one Load or one file of ValidateFiles.
type loader struct {
	validate bool
	readFile func(string) ([]byte, error)
	glob     func(string) ([]string, error)
	// whole names the files to decode as one tree, not cut at their
	// policies: entries (split.go): those whose entries did not parse on
	// their own. noCut decodes every file whole (tests compare both ways).
	whole map[string]bool
	noCut bool
	// retryWhole is set when an entry of that file did not parse on its
	// own: the load starts over with the file decoded whole.
	retryWhole string
	sources    []*source
	// schedules and locations memoize the good schedules and zones of
	// this load (check.schedule, check.location).
	schedules map[scheduleKey]memoSchedule
	locations map[string]*time.Location
	seen      map[string]bool
	errs      Errors
	// notificationsFrom is the main file that gives notifications:.
	notificationsFrom *source
	// incomplete is set when a file could not be read or parsed at all: a
	// setting missing from the rest may well be in that file.
	incomplete bool
}

// loaded, when set, sees the result of every load: the package's tests
// load each time again with every file decoded whole (loader.noCut) and
// compare.
var loaded func(l *loader, paths []string, cfg *Config, err error)

func newLoader(validate bool) *loader {
	return &loader{validate: validate, readFile: readPolicyFile, glob: filepath.Glob, seen: map[string]bool{}, whole: map[string]bool{}}
}

// load reads and checks the files in paths. A file whose policies: entries
// do not all parse on their own is then read again as a whole, from the
// start: every file read before it was checked against it.
func (l *loader) load(paths []string) (*Config, error) {
	for {
		cfg, err := l.loadOnce(paths)
		if l.retryWhole == "" || l.whole[l.retryWhole] {
			if loaded != nil && !l.noCut {
				loaded(l, paths, cfg, err)
			}
			return cfg, err
		}
		l.whole[l.retryWhole] = true
		l.retryWhole, l.sources, l.seen, l.errs = "", nil, map[string]bool{}, nil
		l.notificationsFrom, l.incomplete = nil, false
	}
}

func (l *loader) loadOnce(paths []string) (*Config, error) {
	if len(paths) == 0 {
		return nil, errors.New("no policy files given")
	}
	for _, p := range paths {
		l.read(p, false, nil, "")
	}
	// Includes come after all main files are read, each after its own file:
	// snapshot the main sources first, since reading appends.
	mains := append([]*source(nil), l.sources...)
	var ordered []*source
	for _, m := range mains {
		ordered = append(ordered, m)
		before := len(l.sources)
		l.includes(m)
		ordered = append(ordered, l.sources[before:]...)
	}
	l.sources = ordered

	cfg := &Config{}
	for _, s := range l.sources {
		cfg.Files = append(cfg.Files, s.file)
	}
	l.merge(cfg)
	l.checkAll(cfg)
	if l.retryWhole != "" {
		return nil, errors.New("starting over") // load reads again
	}
	l.notifications(cfg)

	if len(l.errs) > 0 {
		rank := map[string]int{}
		for i, s := range l.sources {
			if _, ok := rank[s.file]; !ok {
				rank[s.file] = i
			}
		}
		sort.SliceStable(l.errs, func(i, j int) bool {
			a, b := l.errs[i], l.errs[j]
			if rank[a.File] != rank[b.File] {
				return rank[a.File] < rank[b.File]
			}
			return a.Line < b.Line
		})
		return nil, l.errs
	}
	cfg.byName = make(map[string]int, len(cfg.Policies))
	for i := range cfg.Policies {
		cfg.byName[cfg.Policies[i].Name] = i
	}
	return cfg, nil
}

// read parses one file. A read error is reported at the include that
// reached the file when there is one (from, fromPath).
func (l *loader) read(file string, include bool, from *source, fromPath string) {
	key := file
	if abs, err := filepath.Abs(file); err == nil {
		key = abs
	}
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	data, err := l.readFile(file)
	var tooLarge *tooLargeError
	if errors.As(err, &tooLarge) {
		// The file itself is the problem, wherever it was reached from.
		l.incomplete = true
		l.errs = append(l.errs, Error{File: file, Msg: tooLarge.Error()})
		return
	}
	if err != nil {
		l.incomplete = true
		msg := "cannot read the file: " + pathErr(err).Error()
		if from != nil {
			e := from.errAt(fromPath, "cannot read "+file+": "+pathErr(err).Error())
			l.errs = append(l.errs, e)
		} else {
			l.errs = append(l.errs, Error{File: file, Msg: msg})
		}
		return
	}
	src, errs := parseSource(file, data, include, !l.noCut && !l.whole[file])
	l.errs = append(l.errs, errs...)
	l.incomplete = l.incomplete || src.badUnits[""]
	l.sources = append(l.sources, src)
}

func (l *loader) includes(s *source) {
	dir := filepath.Dir(s.file)
	for i, pattern := range s.raw.Include {
		path := "include[" + strconv.Itoa(i) + "]"
		if s.suppressed(path) {
			continue
		}
		if strings.TrimSpace(pattern) == "" {
			l.errs = append(l.errs, s.errAt(path, "empty include pattern"))
			continue
		}
		full := pattern
		if !filepath.IsAbs(pattern) {
			full = filepath.Join(dir, pattern)
		}
		matches, err := l.glob(full)
		if err != nil {
			l.errs = append(l.errs, s.errAt(path, "bad glob pattern: "+err.Error()))
			continue
		}
		if len(matches) == 0 && !hasMeta(pattern) {
			// A literal path is a promise that the file exists; a pattern
			// may match nothing yet (an empty policies directory).
			l.errs = append(l.errs, s.errAt(path, "no such file: "+full))
			continue
		}
		for _, m := range matches {
			l.read(m, true, s, path)
		}
	}
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// merge fills the top-level settings from the main files, rejecting
// settings given twice and top-level settings in included files.
func (l *loader) merge(cfg *Config) {
	type place struct {
		src  *source
		path string
	}
	placeOf := map[string]place{}
	claim := func(s *source, path string) bool {
		if prev, ok := placeOf[path]; ok {
			l.errs = append(l.errs, s.errAt(path, "already set at "+prev.src.file+":"+strconv.Itoa(prev.src.line(path))+"; set it in one file only"))
			return false
		}
		placeOf[path] = place{s, path}
		return true
	}

	for _, s := range l.sources {
		if s.include {
			for _, key := range []string{"database", "stores", "include", "notifications"} {
				if s.has(key) {
					l.errs = append(l.errs, s.errAt(key, "not allowed in an included file; an included file holds only policies: and deny:"))
				}
			}
			continue
		}
		if s.has("notifications") && claim(s, "notifications") {
			l.notificationsFrom = s
		}
		if s.has("database") && claim(s, "database") && !s.suppressed("database") {
			if s.raw.Database == "" {
				l.errs = append(l.errs, s.errAt("database", "empty; give a reference to the database URL: "+referenceForms))
			} else if ref, err := ParseReference(s.raw.Database); err != nil {
				l.errs = append(l.errs, s.errAt("database", err.Error()))
			} else {
				cfg.Database = ref
			}
		}
		for _, name := range providerNames {
			path := "stores." + name
			if !s.has(path) || s.suppressed(path) || !claim(s, path) {
				continue
			}
			l.storeBlock(cfg, s, name)
		}
	}
	dbSrc := placeOf["database"].src
	if !cfg.Database.IsZero() {
		l.checkRefProvider(cfg, dbSrc, "database", cfg.Database)
	}
	if dbSrc == nil && !l.validate && !l.incomplete && len(l.sources) > 0 {
		l.errs = append(l.errs, Error{File: l.sources[0].file, Field: "database",
			Msg: "required: give a reference to the state database URL: " + referenceForms})
	}
}

func (l *loader) storeBlock(cfg *Config, s *source, name string) {
	c := check{l: l, src: s, prefix: "stores." + name}
	switch name {
	case ProviderFile:
		o := valueOf(s.raw.Stores.File)
		c.report(o.Validate(), nil, nil)
		o.Dir, o.KeyFile = s.abs(o.Dir), s.abs(o.KeyFile)
		cfg.Stores.File = &o
	case ProviderAWS:
		o := valueOf(s.raw.Stores.AWS)
		c.report(o.Validate(), nil, nil)
		cfg.Stores.AWS = &o
	case ProviderGCP:
		o := valueOf(s.raw.Stores.GCP)
		c.report(o.Validate(), nil, nil)
		cfg.Stores.GCP = &o
	case ProviderVault:
		o := valueOf(s.raw.Stores.Vault)
		c.report(o.Validate(), nil, nil)
		o.CACert, o.Auth.TokenFile, o.Auth.SecretIDFile = s.abs(o.CACert), s.abs(o.Auth.TokenFile), s.abs(o.Auth.SecretIDFile)
		o.Auth.ServiceAccountTokenFile = s.abs(o.Auth.ServiceAccountTokenFile)
		cfg.Stores.Vault = &o
	case ProviderSSM:
		o := valueOf(s.raw.Stores.SSM)
		c.report(o.Validate(), nil, nil)
		cfg.Stores.SSM = &o
	case ProviderAzure:
		o := valueOf(s.raw.Stores.Azure)
		c.report(o.Validate(), nil, nil)
		cfg.Stores.Azure = &o
	}
}

// valueOf is *p, or the zero T when the file gave an empty block.
func valueOf[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// providerProblem says why a policy or a reference may not use provider, or
// "" when it may. The provider must be configured, except under ValidateFiles when the files configure no
// store at all (a policies-only file), where any known provider will do.
func (l *loader) providerProblem(cfg *Config, provider string) string {
	known := false
	for _, n := range providerNames {
		known = known || n == provider
	}
	if !known {
		return "unknown provider " + strconv.Quote(provider) + ": use " + strings.Join(providerNames, ", ")
	}
	if cfg.Stores.Configured(provider) {
		return ""
	}
	if l.validate && cfg.Stores == (Stores{}) {
		return ""
	}
	return "provider " + strconv.Quote(provider) + " is not configured under stores:"
}

func (l *loader) checkRefProvider(cfg *Config, s *source, path string, ref Reference) {
	if ref.Scheme != SchemeStore || s == nil {
		return
	}
	if msg := l.providerProblem(cfg, ref.Provider); msg != "" {
		l.errs = append(l.errs, s.errAt(path, msg))
	}
}
