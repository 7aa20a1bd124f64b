// Package gcp stores swarmkey's versioned secrets in Google Cloud Secret
// Manager.
//
// One swarmkey secret is one Secret Manager secret,
// projects/<Options.Project>/secrets/<secret id>. Every value swarmkey writes
// is a secret version (numbered 1, 2, 3 … by the service); the three stages are
// version aliases on the secret, named exactly "current", "pending" and
// "previous", so a reader with nothing but roles/secretmanager.secretAccessor
// reads projects/p/secrets/s/versions/current. The store never reads
// versions/latest: latest is the newest version whatever its state or stage,
// which during a rotation is the pending (untested) credential, and after a
// discard a disabled version that cannot be read at all.
//
// Secret versions carry no labels or annotations of their own, so the rotation
// token that wrote a version is kept in the secret's annotations, key
// "swarmkey.token.<version>", changed in the same UpdateSecret as the alias
// that makes the version a stage. Every UpdateSecret carries the etag read
// just before, so two writers never overwrite each other's aliases (the
// service answers FAILED_PRECONDITION to a stale etag, which the store reports
// as providers.ErrConflict or re-reads, as each method documents).
//
// Which IAM permissions each method needs is listed in deploy/gcp/roles.md.
package gcp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/validation"
)

// Options configures a Store. The yaml tags are the keys of a policy file's
// stores.gcp block, which package config decodes into Options.
type Options struct {
	// Project is the Google Cloud project id (or number) that holds the
	// secrets. Required.
	Project string `yaml:"project"`
	// Endpoint overrides the API endpoint (host:port), for a regional or
	// private endpoint. Empty means the library's default.
	Endpoint string `yaml:"endpoint"`
	// Create lets PutPending create a secret that does not exist yet, with
	// automatic replication and Labels. Without it a missing secret is
	// providers.ErrNotFound, so a typo in a policy never creates a stray
	// secret.
	Create bool `yaml:"create"`
	// Labels are set on secrets that the store creates; existing secrets'
	// labels are never changed. Keys and values follow Google's label
	// rules (see Validate).
	Labels map[string]string `yaml:"labels"`
	// DestroyRetired makes RetireUnstaged destroy versions (the value is gone
	// for good) instead of disabling them, as if every RetireRequest had
	// Destroy set.
	DestroyRetired bool `yaml:"destroy_retired"`
}

// Google's rules for labels: a key starts with a lower-case letter and holds
// lower-case letters, digits, _ and -, at most 63 of them; so does a value,
// which may also be empty or start with a digit, _ or -. They are compiled
// on first use: their Unicode classes cost megabytes and milliseconds to
// compile, which every swarmkey command (exec, --help) would otherwise pay at
// start whether or not it validates a gcp block.
var (
	labelKeyRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`) })
	labelValueRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`) })
)

// maxLabels is Secret Manager's limit of labels on one secret.
const maxLabels = 64

// Validate checks what New and the secrets it creates need: a Project id
// (not a resource name) and Labels that Secret Manager accepts. It returns a
// *validation.Error.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "gcp store"}
	switch {
	case strings.TrimSpace(o.Project) == "":
		ve.Add("project", "required: the Google Cloud project id that holds the secrets")
	case strings.Contains(o.Project, "/"):
		ve.Add("project", "%q: give the project id alone, not a resource name", o.Project)
	}
	if len(o.Labels) > maxLabels {
		ve.Add("labels", "%d labels: Secret Manager allows at most %d", len(o.Labels), maxLabels)
	}
	keys := make([]string, 0, len(o.Labels))
	for k := range o.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !labelKeyRE().MatchString(k) {
			ve.Add("labels", "%q is not a label key: start with a lower-case letter, then at most 62 lower-case letters, digits, _ or -", k)
		} else if !labelValueRE().MatchString(o.Labels[k]) {
			ve.Add("labels."+k, "not a label value: at most 63 lower-case letters, digits, _ or -")
		}
	}
	return ve.Err()
}

// Store is a providers.Store backed by Secret Manager. It is safe for
// concurrent use; all coordination between writers goes through the secret's
// etag, so several daemons may share one secret.
type Store struct {
	client *secretmanager.Client
	opts   Options
}

var _ providers.Store = (*Store)(nil)

// New checks opts (see Validate) and connects to Secret Manager with
// Application Default Credentials, unless clientOpts say otherwise (a
// credentials file, option.WithGRPCConn and option.WithoutAuthentication for
// tests). The library's request logging is always switched off: it would
// print payloads (secret values) at debug level when
// GOOGLE_SDK_GO_LOGGING_LEVEL is set, so a logger passed in clientOpts is
// overridden too.
func New(ctx context.Context, opts Options, clientOpts ...option.ClientOption) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	all := make([]option.ClientOption, 0, len(clientOpts)+2)
	if opts.Endpoint != "" {
		all = append(all, option.WithEndpoint(opts.Endpoint))
	}
	all = append(all, clientOpts...)
	all = append(all, option.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	client, err := secretmanager.NewClient(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("gcp: connect to Secret Manager: %w", err)
	}
	return &Store{client: client, opts: opts}, nil
}

// Name implements providers.Store.
func (*Store) Name() string { return "gcp" }

// Close implements providers.Store.
func (s *Store) Close() error { return s.client.Close() }

// Annotation keys on the secret. Keys must start and end with an alphanumeric
// character and may hold dots, dashes and underscores in between (no slash),
// per the Secret.annotations reference.
const (
	// annTokenPrefix + version number = the rotation token that wrote it.
	annTokenPrefix = "swarmkey.token."
	// annReserved = the token of a PutPending that is between its
	// reservation and its alias update (see PutPending).
	annReserved = "swarmkey.reserved-token"
	// annReservedAfter = the newest version number when the reservation was
	// made; versions above it may be the reserving PutPending's.
	annReservedAfter = "swarmkey.reserved-after"
)

// maxAttempts bounds the read-modify-write loops that re-read the secret when
// its etag moved for a reason that does not decide the outcome.
const maxAttempts = 4

// secretIDPattern is Secret Manager's rule for a secret id. It is compiled
// on first use, not when swarmkey starts: every command links this package,
// and most never use it.
var secretIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`) })

func (s *Store) secretName(secretID string) (string, error) {
	if !secretIDPattern().MatchString(secretID) {
		return "", fmt.Errorf("gcp: secret id %q: Secret Manager ids are 1-255 letters, digits, '-' or '_' (the short name, not projects/…/secrets/…)", secretID)
	}
	return "projects/" + s.opts.Project + "/secrets/" + secretID, nil
}

func versionName(secret string, version int64) string {
	return secret + "/versions/" + strconv.FormatInt(version, 10)
}

// versionNumber parses the number at the end of a version resource name.
// Responses name the project by number, not id, so only the last segment is
// looked at.
func versionNumber(name string) (int64, error) {
	i := strings.LastIndexByte(name, '/')
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("unexpected version name %q", name)
	}
	return n, nil
}

// state is what the store reads from one Secret: the etag it was read at,
// the aliases, and swarmkey's annotations decoded.
type state struct {
	etag        string
	aliases     map[string]int64
	annotations map[string]string
	tokens      map[int64]string // version → token, from annotations
	reserved    string           // token holding the reservation, "" for none
	reservedAt  int64            // annReservedAfter
}

func readState(sec *secretmanagerpb.Secret) state {
	st := state{
		etag:        sec.GetEtag(),
		aliases:     map[string]int64{},
		annotations: map[string]string{},
		tokens:      map[int64]string{},
	}
	for k, v := range sec.GetVersionAliases() {
		st.aliases[k] = v
	}
	for k, v := range sec.GetAnnotations() {
		st.annotations[k] = v
		if rest, ok := strings.CutPrefix(k, annTokenPrefix); ok {
			if n, err := strconv.ParseInt(rest, 10, 64); err == nil {
				st.tokens[n] = v
			}
		}
	}
	st.reserved = st.annotations[annReserved]
	st.reservedAt, _ = strconv.ParseInt(st.annotations[annReservedAfter], 10, 64)
	return st
}

// stageVersion returns the version that stage names.
func (st state) stageVersion(stage providers.Stage) (int64, bool) {
	n, ok := st.aliases[string(stage)]
	return n, ok
}

// stagesOf lists the swarmkey stages naming version n, in providers.Stages
// order. Other aliases (an operator's own) are not stages.
func (st state) stagesOf(n int64) []providers.Stage {
	var out []providers.Stage
	for _, stage := range providers.Stages {
		if v, ok := st.aliases[string(stage)]; ok && v == n {
			out = append(out, stage)
		}
	}
	return out
}

// aliased reports whether any alias, swarmkey's or another, names version n.
func (st state) aliased(n int64) bool {
	for _, v := range st.aliases {
		if v == n {
			return true
		}
	}
	return false
}

// tokenVersion returns the aliased version whose token annotation is token.
func (st state) tokenVersion(token string) (int64, bool) {
	for _, stage := range providers.Stages {
		if n, ok := st.aliases[string(stage)]; ok && st.tokens[n] == token {
			return n, true
		}
	}
	return 0, false
}

func (st state) cloneAliases() map[string]int64 {
	out := make(map[string]int64, len(st.aliases)+1)
	for k, v := range st.aliases {
		out[k] = v
	}
	return out
}

func (st state) cloneAnnotations() map[string]string {
	out := make(map[string]string, len(st.annotations)+1)
	for k, v := range st.annotations {
		out[k] = v
	}
	return out
}

// writer says who wrote version n, for messages.
func (st state) writer(n int64) string {
	if t, ok := st.tokens[n]; ok {
		return fmt.Sprintf("belongs to rotation token %q", t)
	}
	return "was aliased outside swarmkey (no token annotation)"
}

func tokenKey(n int64) string { return annTokenPrefix + strconv.FormatInt(n, 10) }

// version builds the metadata of version n as st sees it.
func (st state) version(n int64, created time.Time) providers.Version {
	return providers.Version{
		ID:      strconv.FormatInt(n, 10),
		Token:   st.tokens[n],
		Stages:  st.stagesOf(n),
		Created: created,
	}
}

// List implements providers.Store: the versions that a stage names, newest
// (highest number) first, each with its stages, token and creation time; no
// values. It lists the secret's versions rather than reading each alias, so
// it costs GetSecret plus one ListSecretVersions page per 25000 versions.
func (s *Store) List(ctx context.Context, secretID string) ([]providers.Version, error) {
	name, err := s.secretName(secretID)
	if err != nil {
		return nil, err
	}
	sec, err := s.getSecret(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("gcp: secret %q: list: %w", name, err)
	}
	st := readState(sec)
	staged := map[int64]bool{}
	for _, stage := range providers.Stages {
		if n, ok := st.stageVersion(stage); ok {
			staged[n] = true
		}
	}
	if len(staged) == 0 {
		return nil, nil
	}
	var out []providers.Version
	err = s.eachVersion(ctx, name, func(v *secretmanagerpb.SecretVersion) (bool, error) {
		n, err := versionNumber(v.GetName())
		if err != nil {
			return false, err
		}
		if staged[n] {
			out = append(out, st.version(n, v.GetCreateTime().AsTime()))
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("gcp: secret %q: list: %w", name, err)
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[j].ID, out[i].ID) })
	return out, nil
}

func versionLess(a, b string) bool {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	return x < y
}
