// Package ssm is the store on AWS Systems Manager Parameter Store
// SecureString parameters, behind the versioned-secret interface of package
// providers.
//
// A reader's GetParameter NAME returns the latest version of NAME, and every
// PutParameter makes a new latest version, so a pending version can never be
// a version of NAME without becoming what readers get. The stages map so
// that a plain GetParameter NAME never returns pending:
//
//   - current is the latest version of NAME. Promote also labels it
//     swarmkey-current, so a reader that pins a label
//     (GetParameter NAME:swarmkey-current) reads the same.
//   - previous is the version of NAME labelled swarmkey-previous, while it is
//     not the latest (GetParameter NAME:swarmkey-previous).
//   - pending is a separate parameter, PENDING_PREFIX/NAME
//     ("/swarmkey-pending" by default), outside readers' paths and IAM
//     policies. It exists only while a rotation is pending: promote and
//     discard delete it, so its value is gone with it (Parameter Store
//     cannot delete one version of a parameter, only the whole parameter).
//     Its value is swarmkey's record, {"swarmkey_token": T, "document":
//     "<the secret document>"}, so version and token are one write.
//
// A version that swarmkey promoted carries the label
// swarmkey-token.<token> on NAME; its id is the token, before and after
// promote (the rotator needs an id that survives promote). A version of NAME
// without such a label is another writer's: id "v<K>", no token. A pending
// parameter whose value is not swarmkey's record has the id "p<K>" and no
// token. Labels are a claim as any metadata is; the rotator trusts its state
// database.
//
// Parameter Store has no check-and-set on PutParameter except creation
// (Overwrite=false fails with ParameterAlreadyExists), which the store uses
// wherever it can: PutPending creates the pending parameter, so of two
// writers one fails; the first promote creates NAME. A later promote
// overwrites NAME after checking that its latest version is the expected
// current; two swarmkey promotes racing there both write, and both then
// label the latest version (the same document), so the outcome is one
// current version of the token and the expected current as previous; the
// duplicate version between them is unstaged. Another tool's PutParameter
// that lands between the check and the write is overwritten: it stays
// readable by version number, unstaged.
package ssm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// DefaultPendingPrefix is the folder of the pending parameters.
const DefaultPendingPrefix = "/swarmkey-pending"

// Labels on versions of NAME.
const (
	labelCurrent     = "swarmkey-current"
	labelPrevious    = "swarmkey-previous"
	labelTokenPrefix = "swarmkey-token."
)

// Keys of the pending parameter's record.
const (
	fieldToken    = "swarmkey_token"
	fieldDocument = "document"
)

// tokenPattern keeps a token inside what a label may hold (letters, digits,
// ".", "-", "_", at most 100 characters with the prefix).
// It is compiled on first use, not when swarmkey starts: every command
// links this package, and most never use it.
var tokenPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._-]{1,80}$`) })

const (
	retryMaxAttempts = 6
	retryMaxBackoff  = 10 * time.Second
	// completeRounds bounds the label-and-check rounds of a promote whose
	// latest version moved under it (a racing promote of the same token).
	completeRounds = 5
)

// Options configures a Store. The yaml tags are the keys of a policy file's
// stores.ssm block.
type Options struct {
	// Region overrides the region of the SDK's default chain.
	Region string `yaml:"region"`
	// EndpointURL overrides the Systems Manager endpoint (a VPC endpoint, or
	// an emulator such as moto).
	EndpointURL string `yaml:"endpoint_url"`
	// Profile selects a shared config profile.
	Profile string `yaml:"profile"`
	// KMSKeyID encrypts the SecureString values swarmkey writes; the
	// account's aws/ssm key when empty.
	KMSKeyID string `yaml:"kms_key_id"`
	// PendingPrefix is the folder of pending parameters; "/swarmkey-pending"
	// when empty. Readers' policies must not cover it.
	PendingPrefix string `yaml:"pending_prefix"`
	// Create lets the first promote create a parameter that does not exist;
	// without it a missing parameter is ErrNotFound.
	Create bool `yaml:"create"`
}

// Validate checks the options; it returns a *validation.Error.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "ssm store"}
	if o.EndpointURL != "" {
		u, err := url.Parse(o.EndpointURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ve.Add("endpoint_url", "not an absolute URL: give one such as https://ssm.eu-west-1.amazonaws.com or http://localhost:5000")
		}
	}
	if p := o.PendingPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//")) {
		ve.Add("pending_prefix", "a parameter path such as /swarmkey-pending: it starts with /, does not end with one")
	}
	return ve.Err()
}

func (o Options) pendingPrefix() string {
	if o.PendingPrefix == "" {
		return DefaultPendingPrefix
	}
	return o.PendingPrefix
}

// Store is a providers.Store on Parameter Store. It is safe for concurrent
// use.
type Store struct {
	client *ssm.Client
	opts   Options

	// testHookBeforeWrite, when set, runs between Promote's reads and its
	// PutParameter on NAME.
	testHookBeforeWrite func()
	// testHookStopAfterData, when set, makes Promote return right after
	// its PutParameter on NAME, as a crash there would.
	testHookStopAfterData bool
}

var _ providers.Store = (*Store)(nil)

// New returns a Store on the SDK's default credential and region chain.
func New(ctx context.Context, opts Options) (*Store, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("ssm: load SDK configuration (profile %q): %w", opts.Profile, err)
	}
	return NewFromConfig(cfg, opts)
}

// NewFromConfig checks opts and returns a Store that uses cfg (tests pass
// moto's endpoint and static credentials).
func NewFromConfig(cfg awsv2.Config, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Region != "" {
		cfg.Region = opts.Region
	}
	if cfg.Region == "" {
		return nil, errors.New("ssm: no region: set region in stores.ssm, AWS_REGION, or the profile's region")
	}
	client := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = awsv2.String(opts.EndpointURL)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = retryMaxAttempts
			so.MaxBackoff = retryMaxBackoff
			// Parameter Store's own throttle for writes to one parameter.
			so.Retryables = append(so.Retryables, retry.RetryableErrorCode{Codes: map[string]struct{}{"TooManyUpdates": {}}})
		})
		// Body logging would print values: never allow it.
		o.ClientLogMode &^= awsv2.LogRequestWithBody | awsv2.LogResponseWithBody
	})
	return &Store{client: client, opts: opts}, nil
}

// Name implements providers.Store.
func (*Store) Name() string { return "ssm" }

// Close implements providers.Store.
func (*Store) Close() error { return nil }

// pendingName is the pending parameter of name.
func (s *Store) pendingName(name string) string {
	return s.opts.pendingPrefix() + "/" + strings.TrimPrefix(name, "/")
}

// version is one version of NAME from its history, without its value.
type version struct {
	n       int64
	labels  []string
	created time.Time
}

func (v version) has(label string) bool {
	for _, l := range v.labels {
		if l == label {
			return true
		}
	}
	return false
}

// token is the token of swarmkey's record label, "" for another writer's
// version.
func (v version) token() string {
	for _, l := range v.labels {
		if t, ok := strings.CutPrefix(l, labelTokenPrefix); ok {
			return t
		}
	}
	return ""
}

func (v version) id() string {
	if t := v.token(); t != "" {
		return t
	}
	return "v" + strconv.FormatInt(v.n, 10)
}

// history is NAME's versions, oldest first.
type history []version

func (h history) latest() (version, bool) {
	if len(h) == 0 {
		return version{}, false
	}
	return h[len(h)-1], true
}

func (h history) previous() (version, bool) {
	for i := len(h) - 2; i >= 0; i-- {
		if h[i].has(labelPrevious) {
			return h[i], true
		}
	}
	return version{}, false
}

// ofToken is the version that carries token's record label.
func (h history) ofToken(token string) (version, bool) {
	for _, v := range h {
		if token != "" && v.token() == token {
			return v, true
		}
	}
	return version{}, false
}

func (h history) byID(id string) (version, bool) {
	for _, v := range h {
		if v.id() == id {
			return v, true
		}
	}
	return version{}, false
}

// readHistory reads NAME's versions; nil when NAME does not exist.
func (s *Store) readHistory(ctx context.Context, name string) (history, error) {
	var h history
	p := ssm.NewGetParameterHistoryPaginator(s.client, &ssm.GetParameterHistoryInput{Name: awsv2.String(name), MaxResults: awsv2.Int32(50)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if isCode(err, "ParameterNotFound") {
			return nil, nil
		}
		if err != nil {
			return nil, s.translate(name, "GetParameterHistory", err, nil)
		}
		for _, v := range out.Parameters {
			h = append(h, version{n: v.Version, labels: v.Labels, created: awsv2.ToTime(v.LastModifiedDate).UTC()})
		}
	}
	return h, nil
}

// pendingParam is what the pending parameter holds.
type pendingParam struct {
	exists  bool
	n       int64
	token   string
	doc     secret.Secret
	created time.Time
}

func (p pendingParam) id() string {
	if p.token != "" {
		return p.token
	}
	return "p" + strconv.FormatInt(p.n, 10)
}

// pending reports whether p is a pending version: it exists and its token
// was not promoted (no version of NAME carries it).
func (p pendingParam) pending(h history) bool {
	if !p.exists {
		return false
	}
	_, promoted := h.ofToken(p.token)
	return !promoted
}

// onCurrent reports whether p's token is the current version's.
func (p pendingParam) onCurrent(h history) bool {
	cur, ok := h.latest()
	return p.exists && ok && p.token != "" && cur.token() == p.token
}

func (s *Store) readPending(ctx context.Context, name string) (pendingParam, error) {
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(s.pendingName(name)), WithDecryption: awsv2.Bool(true)})
	if isCode(err, "ParameterNotFound") {
		return pendingParam{}, nil
	}
	if err != nil {
		return pendingParam{}, s.translate(name, "GetParameter (pending)", err, nil)
	}
	prm := out.Parameter
	p := pendingParam{exists: true, n: prm.Version, created: awsv2.ToTime(prm.LastModifiedDate).UTC()}
	raw := awsv2.ToString(prm.Value)
	var rec map[string]any
	if json.Unmarshal([]byte(raw), &rec) == nil {
		tok, _ := rec[fieldToken].(string)
		doc, ok := rec[fieldDocument].(string)
		if ok && tokenPattern().MatchString(tok) {
			p.token, p.doc = tok, secret.FromString(doc)
			return p, nil
		}
	}
	// Another tool wrote the document itself.
	p.doc = secret.FromString(raw)
	return p, nil
}

// read reads the pending parameter, then NAME (a promote writes NAME
// before it deletes the pending parameter, so a promote between the two
// reads shows as promoted, never as missing); ErrNotFound when neither
// exists.
func (s *Store) read(ctx context.Context, name string) (history, pendingParam, error) {
	p, err := s.readPending(ctx, name)
	if err != nil {
		return nil, pendingParam{}, err
	}
	h, err := s.readHistory(ctx, name)
	if err != nil {
		return nil, pendingParam{}, err
	}
	if h == nil && !p.exists {
		return nil, pendingParam{}, fmt.Errorf("ssm parameter %q: %w: no such parameter in region %s", name, providers.ErrNotFound, s.client.Options().Region)
	}
	return h, p, nil
}

// value reads version n of NAME.
func (s *Store) value(ctx context.Context, name string, n int64) (secret.Secret, error) {
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name + ":" + strconv.FormatInt(n, 10)), WithDecryption: awsv2.Bool(true)})
	if err != nil {
		return secret.Secret{}, s.translate(name, "GetParameter (version "+strconv.FormatInt(n, 10)+")", err, nil)
	}
	return secret.FromString(awsv2.ToString(out.Parameter.Value)), nil
}

func stagesOf(h history, p pendingParam, id string) []providers.Stage {
	for _, v := range staged(h, p) {
		if v.ID == id {
			return v.Stages
		}
	}
	return nil
}

// staged is the versions that hold a stage, newest first.
func staged(h history, p pendingParam) []providers.Version {
	var out []providers.Version
	if p.pending(h) {
		out = append(out, providers.Version{ID: p.id(), Token: p.token, Stages: []providers.Stage{providers.StagePending}, Created: p.created})
	}
	if cur, ok := h.latest(); ok {
		stages := []providers.Stage{providers.StageCurrent}
		if p.onCurrent(h) {
			// A promote that stopped before deleting the pending
			// parameter: List reports both, Get(pending) counts none.
			stages = append(stages, providers.StagePending)
		}
		out = append(out, providers.Version{ID: cur.id(), Token: cur.token(), Stages: stages, Created: cur.created})
	}
	if prev, ok := h.previous(); ok {
		out = append(out, providers.Version{ID: prev.id(), Token: prev.token(), Stages: []providers.Stage{providers.StagePrevious}, Created: prev.created})
	}
	return out
}

// Get returns the version that holds stage, with its value.
func (s *Store) Get(ctx context.Context, name string, stage providers.Stage) (providers.Version, error) {
	switch stage {
	case providers.StageCurrent, providers.StagePrevious:
		h, err := s.readHistory(ctx, name)
		if err != nil {
			return providers.Version{}, err
		}
		if h == nil {
			return providers.Version{}, fmt.Errorf("ssm parameter %q: get %s: %w: no such parameter", name, stage, providers.ErrNotFound)
		}
		v, ok := h.latest()
		if stage == providers.StagePrevious {
			v, ok = h.previous()
		}
		if !ok {
			return providers.Version{}, fmt.Errorf("ssm parameter %q: get %s: %w: no version is labelled %s", name, stage, providers.ErrNotFound, labelPrevious)
		}
		value, err := s.value(ctx, name, v.n)
		if err != nil {
			return providers.Version{}, err
		}
		return providers.Version{ID: v.id(), Token: v.token(), Stages: []providers.Stage{stage}, Created: v.created, Value: value}, nil
	case providers.StagePending:
		p, err := s.readPending(ctx, name)
		if err != nil {
			return providers.Version{}, err
		}
		if !p.exists {
			return providers.Version{}, fmt.Errorf("ssm parameter %q: get pending: %w: no pending version", name, providers.ErrNotFound)
		}
		h, err := s.readHistory(ctx, name)
		if err != nil {
			return providers.Version{}, err
		}
		if !p.pending(h) {
			return providers.Version{}, fmt.Errorf("ssm parameter %q: get pending: %w: version %s was promoted already: no pending version", name, providers.ErrNotFound, p.id())
		}
		return providers.Version{ID: p.id(), Token: p.token, Stages: []providers.Stage{providers.StagePending}, Created: p.created, Value: p.doc}, nil
	}
	return providers.Version{}, fmt.Errorf("ssm parameter %q: get: unknown stage %q (want current, pending or previous)", name, stage)
}

// List returns the versions that hold a stage: pending, current, previous.
func (s *Store) List(ctx context.Context, name string) ([]providers.Version, error) {
	h, p, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	return staged(h, p), nil
}

// PutPending creates the pending parameter with swarmkey's record of token
// and value (Overwrite=false: of two writers one fails).
func (s *Store) PutPending(ctx context.Context, name, token string, value secret.Secret) (providers.Version, error) {
	if err := s.checkName(name, "put pending"); err != nil {
		return providers.Version{}, err
	}
	if err := checkToken(name, "put pending", token); err != nil {
		return providers.Version{}, err
	}
	if value.Len() == 0 {
		return providers.Version{}, fmt.Errorf("ssm parameter %q: put pending: empty value", name)
	}
	h, p, err := s.read(ctx, name)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return providers.Version{}, err
	}
	if h == nil && !s.opts.Create {
		return providers.Version{}, fmt.Errorf("ssm parameter %q: put pending: %w: no such parameter: create it (aws ssm put-parameter --type SecureString) or set create: true in stores.ssm", name, providers.ErrNotFound)
	}
	if v, done, err := s.existing(ctx, name, token, value, h, p); done || err != nil {
		return v, err
	}
	if p.exists {
		// A promoted token's leftover (a promote or another writer that
		// stopped before deleting it): not in the way.
		if err := s.deletePending(ctx, name); err != nil {
			return providers.Version{}, err
		}
	}
	rec, err := json.Marshal(map[string]string{fieldToken: token, fieldDocument: value.RevealString()})
	if err != nil {
		return providers.Version{}, fmt.Errorf("ssm parameter %q: put pending: encode record: %w", name, err)
	}
	recSecret := secret.New(rec)
	_, err = s.client.PutParameter(ctx, s.putInput(s.pendingName(name), recSecret, false))
	if isCode(err, "ParameterAlreadyExists") {
		// Another writer created it since it was read, or an earlier
		// attempt of this call did and the SDK retried it.
		h2, p2, rerr := s.read(ctx, name)
		if rerr != nil {
			return providers.Version{}, rerr
		}
		if v, done, err := s.existing(ctx, name, token, value, h2, p2); done || err != nil {
			return v, err
		}
		return providers.Version{}, fmt.Errorf("ssm parameter %q: put pending: %w: another writer created %s at the same time", name, providers.ErrConflict, s.pendingName(name))
	}
	if err != nil {
		return providers.Version{}, s.translate(name, "PutParameter (pending)", err, &value, &recSecret)
	}
	p, err = s.readPending(ctx, name)
	if err != nil {
		return providers.Version{}, err
	}
	if p.token != token {
		return providers.Version{}, fmt.Errorf("ssm parameter %q: put pending: %w: another writer replaced %s just after it was written", name, providers.ErrConflict, s.pendingName(name))
	}
	return providers.Version{ID: p.id(), Token: token, Stages: []providers.Stage{providers.StagePending}, Created: p.created}, nil
}

// existing answers PutPending from what is there already.
func (s *Store) existing(ctx context.Context, name, token string, value secret.Secret, h history, p pendingParam) (providers.Version, bool, error) {
	if p.exists && p.token == token && (p.pending(h) || p.onCurrent(h)) {
		if !value.Equal(p.doc) {
			return providers.Version{}, true, fmt.Errorf("ssm parameter %q: put pending: %w: token %s wrote its version with another value", name, providers.ErrConflict, token)
		}
		return providers.Version{ID: p.id(), Token: token, Stages: stagesOf(h, p, p.id()), Created: p.created}, true, nil
	}
	if p.pending(h) {
		return providers.Version{}, true, fmt.Errorf("ssm parameter %q: put pending: %w: version %s of another writer is pending: reconcile or discard it first (swarmkey resolve)", name, providers.ErrConflict, p.id())
	}
	if v, ok := h.ofToken(token); ok {
		have, err := s.value(ctx, name, v.n)
		if err != nil {
			return providers.Version{}, true, err
		}
		if !value.Equal(have) {
			return providers.Version{}, true, fmt.Errorf("ssm parameter %q: put pending: %w: token %s wrote version %d with another value", name, providers.ErrConflict, token, v.n)
		}
		return providers.Version{ID: v.id(), Token: token, Stages: stagesOf(h, p, v.id()), Created: v.created}, true, nil
	}
	return providers.Version{}, false, nil
}

func (s *Store) putInput(name string, value secret.Secret, overwrite bool) *ssm.PutParameterInput {
	in := &ssm.PutParameterInput{
		Name:      awsv2.String(name),
		Value:     awsv2.String(value.RevealString()),
		Type:      types.ParameterTypeSecureString,
		Overwrite: awsv2.Bool(overwrite),
	}
	if s.opts.KMSKeyID != "" {
		in.KeyId = awsv2.String(s.opts.KMSKeyID)
	}
	return in
}

// Promote writes the pending document to NAME (creating it when
// req.ExpectedCurrentID is ""), labels the old current swarmkey-previous
// and the new one swarmkey-current and swarmkey-token.<token>, and deletes
// the pending parameter.
func (s *Store) Promote(ctx context.Context, name string, req providers.PromoteRequest) error {
	what := req.Token
	if req.PendingID != "" {
		what = "version " + req.PendingID
	}
	if req.Token == "" && req.PendingID == "" {
		return fmt.Errorf("ssm parameter %q: promote: neither a token nor a pending version id given", name)
	}
	h, p, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	matches := func(id, token string) bool {
		return (req.PendingID == "" || id == req.PendingID) && (req.Token == "" || token == req.Token)
	}
	if cur, ok := h.latest(); ok && cur.token() != "" && matches(cur.id(), cur.token()) {
		// Current already: a retry. Complete a promote that stopped
		// before deleting the pending parameter.
		if p.onCurrent(h) {
			return s.deletePending(ctx, name)
		}
		return nil
	}
	if prev, ok := h.previous(); ok && prev.token() != "" && matches(prev.id(), prev.token()) {
		return fmt.Errorf("ssm parameter %q: promote %s: %w: that version is previous already: a later rotation was promoted over it", name, what, providers.ErrConflict)
	}
	if !p.pending(h) {
		return fmt.Errorf("ssm parameter %q: promote %s: %w: no pending version (discarded, or never written)", name, what, providers.ErrNotFound)
	}
	if !matches(p.id(), p.token) {
		if req.PendingID != "" {
			return fmt.Errorf("ssm parameter %q: promote %s: %w: the pending version is %s", name, what, providers.ErrConflict, p.id())
		}
		return fmt.Errorf("ssm parameter %q: promote %s: %w: no pending version of this token (the pending one is %s)", name, what, providers.ErrNotFound, p.id())
	}
	expected, landed, err := s.landed(ctx, name, req, h, p)
	if err != nil {
		return err
	}
	if !landed {
		cur, ok := h.latest()
		if curID := cur.id(); !ok && req.ExpectedCurrentID != "" || ok && curID != req.ExpectedCurrentID {
			if !ok {
				curID = ""
			}
			return fmt.Errorf("ssm parameter %q: promote %s: %w: current is %s, expected %s: the current version moved since the rotation read it", name, what, providers.ErrConflict, orNone(curID), orNone(req.ExpectedCurrentID))
		}
		if s.testHookBeforeWrite != nil {
			s.testHookBeforeWrite()
		}
		_, err := s.client.PutParameter(ctx, s.putInput(name, p.doc, ok))
		if isCode(err, "ParameterAlreadyExists") {
			// Another promote created NAME first: it is ours if it holds
			// the pending document.
			h, err = s.readHistory(ctx, name)
			if err != nil {
				return err
			}
			if _, landed, err = s.landed(ctx, name, req, h, p); err != nil || !landed {
				if err != nil {
					return err
				}
				return fmt.Errorf("ssm parameter %q: promote %s: %w: another writer created the parameter at the same time", name, what, providers.ErrConflict)
			}
		} else if err != nil {
			return s.translate(name, "PutParameter", err, &p.doc)
		}
		if s.testHookStopAfterData {
			return nil
		}
	}
	return s.complete(ctx, name, expected, p)
}

// landed reports whether the pending document is on NAME already, written
// by a promote that stopped (or is running) before its labels: every
// version after the expected current is unlabelled or the token's, and
// holds the pending document. expected is the expected current's version
// number (0 for none).
func (s *Store) landed(ctx context.Context, name string, req providers.PromoteRequest, h history, p pendingParam) (int64, bool, error) {
	var expected int64
	if req.ExpectedCurrentID != "" {
		v, ok := h.byID(req.ExpectedCurrentID)
		if !ok {
			return 0, false, nil
		}
		expected = v.n
	}
	after := 0
	for _, v := range h {
		if v.n <= expected {
			continue
		}
		after++
		if t := v.token(); t != "" && t != p.token {
			return expected, false, nil
		}
		have, err := s.value(ctx, name, v.n)
		if err != nil {
			return expected, false, err
		}
		if !have.Equal(p.doc) {
			return expected, false, nil
		}
	}
	return expected, after > 0, nil
}

// complete labels the expected current swarmkey-previous and the latest
// version (the pending document) swarmkey-current and with the token, until
// a re-read finds the labels on the latest version, then deletes the
// pending parameter.
func (s *Store) complete(ctx context.Context, name string, expected int64, p pendingParam) error {
	h, err := s.readHistory(ctx, name)
	if err != nil {
		return err
	}
	if old, ok := h.previous(); ok && old.n != expected && old.token() != "" {
		// The old previous holds no stage from now on: its record goes,
		// so that labels do not pin it against the 100-version limit.
		if err := s.unlabel(ctx, name, old.n, labelTokenPrefix+old.token()); err != nil {
			return err
		}
	}
	if expected != 0 {
		if err := s.label(ctx, name, expected, labelPrevious); err != nil {
			return err
		}
	}
	labels := []string{labelCurrent}
	if p.token != "" {
		labels = append(labels, labelTokenPrefix+p.token)
	}
	for range completeRounds {
		cur, ok := h.latest()
		if !ok {
			return fmt.Errorf("ssm parameter %q: promote: the parameter is gone", name)
		}
		if cur.has(labelCurrent) && (p.token == "" || cur.token() == p.token) {
			return s.deletePending(ctx, name)
		}
		if err := s.label(ctx, name, cur.n, labels...); err != nil {
			return err
		}
		if h, err = s.readHistory(ctx, name); err != nil {
			return err
		}
	}
	return fmt.Errorf("ssm parameter %q: promote: %w: the latest version kept moving while it was labelled", name, providers.ErrConflict)
}

func (s *Store) label(ctx context.Context, name string, n int64, labels ...string) error {
	out, err := s.client.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: awsv2.String(name), ParameterVersion: awsv2.Int64(n), Labels: labels})
	if err != nil {
		return s.translate(name, fmt.Sprintf("LabelParameterVersion (version %d)", n), err, nil)
	}
	if len(out.InvalidLabels) > 0 {
		return fmt.Errorf("ssm parameter %q: label version %d: Parameter Store refused the labels %v", name, n, out.InvalidLabels)
	}
	return nil
}

func (s *Store) unlabel(ctx context.Context, name string, n int64, labels ...string) error {
	_, err := s.client.UnlabelParameterVersion(ctx, &ssm.UnlabelParameterVersionInput{Name: awsv2.String(name), ParameterVersion: awsv2.Int64(n), Labels: labels})
	if err != nil {
		return s.translate(name, fmt.Sprintf("UnlabelParameterVersion (version %d)", n), err, nil)
	}
	return nil
}

func (s *Store) deletePending(ctx context.Context, name string) error {
	_, err := s.client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(s.pendingName(name))})
	if err != nil && !isCode(err, "ParameterNotFound") {
		return s.translate(name, "DeleteParameter (pending)", err, nil)
	}
	return nil
}

// DiscardPending deletes the pending parameter when it holds token's
// pending version.
func (s *Store) DiscardPending(ctx context.Context, name, token string) error {
	if err := checkToken(name, "discard pending", token); err != nil {
		return err
	}
	return s.discard(ctx, name, func(p pendingParam) bool { return p.token == token })
}

// DiscardPendingVersion deletes the pending parameter when it holds the
// pending version versionID, whoever wrote it.
func (s *Store) DiscardPendingVersion(ctx context.Context, name, versionID string) error {
	return s.discard(ctx, name, func(p pendingParam) bool { return p.id() == versionID })
}

func (s *Store) discard(ctx context.Context, name string, match func(pendingParam) bool) error {
	p, err := s.readPending(ctx, name)
	if err != nil || !p.exists || !match(p) {
		return err
	}
	h, err := s.readHistory(ctx, name)
	if err != nil {
		return err
	}
	if !p.pending(h) {
		return nil
	}
	return s.deletePending(ctx, name)
}

// RetireUnstaged removes swarmkey's labels from versions of NAME that no
// stage names, and deletes a pending parameter left by a finished promote.
// Parameter Store cannot delete or disable one version: such versions stay
// readable by number (to whoever may read NAME) until the 100-version limit
// drops them, which labels would prevent. Destroy changes nothing more.
func (s *Store) RetireUnstaged(ctx context.Context, name string, _ providers.RetireRequest) error {
	h, p, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	cur, _ := h.latest()
	prev, _ := h.previous()
	for _, v := range h {
		if v.n == cur.n || v.n == prev.n {
			continue
		}
		var drop []string
		for _, l := range v.labels {
			if l == labelCurrent || l == labelPrevious || strings.HasPrefix(l, labelTokenPrefix) {
				drop = append(drop, l)
			}
		}
		if len(drop) > 0 {
			if err := s.unlabel(ctx, name, v.n, drop...); err != nil {
				return err
			}
		}
	}
	if p.exists && !p.pending(h) && !p.onCurrent(h) {
		return s.deletePending(ctx, name)
	}
	return nil
}

func (s *Store) checkName(name, op string) error {
	if name == "" {
		return fmt.Errorf("ssm parameter: %s: empty name", op)
	}
	if strings.HasPrefix(name, s.opts.pendingPrefix()+"/") {
		return fmt.Errorf("ssm parameter %q: %s: the name is inside pending_prefix %q, where swarmkey keeps pending versions: choose another name", name, op, s.opts.pendingPrefix())
	}
	if strings.Contains(name, ":") {
		return fmt.Errorf("ssm parameter %q: %s: give the parameter's name, without a :version or :label selector", name, op)
	}
	return nil
}

func checkToken(name, op, token string) error {
	if !tokenPattern().MatchString(token) {
		return fmt.Errorf("ssm parameter %q: %s: the rotation token must be 1 to 80 letters, digits, '.', '-' or '_' (it becomes a parameter label)", name, op)
	}
	return nil
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
