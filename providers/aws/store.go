// Package aws is the AWS Secrets Manager store behind the versioned-secret
// interface of package providers.
//
// The three stages are AWS's own staging labels: current is AWSCURRENT,
// pending is AWSPENDING and previous is AWSPREVIOUS. The rotation token is
// the ClientRequestToken of PutSecretValue and so becomes the VersionId:
// Version.ID == Version.Token. That holds for every version, whoever wrote
// it (another tool's PutSecretValue chooses its own ClientRequestToken, or
// AWS makes one up), so Version.Token is only the store's claim here: the
// rotator decides whether swarmkey wrote a version from its state database.
// Every read names its stage (or version) explicitly, never relying on
// GetSecretValue's default.
//
// AWSPENDING on the AWSCURRENT version is how AWS's own rotation functions
// leave a secret when they finish, and AWS calls it finished: Get of the
// pending stage answers ErrNotFound for it, PutPending moves the label on to
// its new version, List reports both labels.
//
// Three AWS behaviours shape the semantics and are worth knowing:
//
//   - The first version ever written to a secret gets AWSCURRENT from AWS
//     whatever labels the call asked for, and AWSCURRENT can only be moved,
//     never removed. Written as the pending version of a new secret's first
//     rotation, the credential would be current, readable by everyone,
//     before its canary ran. So on a secret without versions PutPending
//     first writes a placeholder version: the fixed document
//     {"swarmkey":"no credential yet"} under the fixed token
//     "swarmkey-placeholder-no-credential-yet" (its VersionId). AWS makes
//     the placeholder AWSCURRENT, and the real value is written after it as
//     AWSPENDING like any other. The store hides the placeholder: while it
//     is AWSCURRENT (or AWSPREVIOUS after the first promote) Get of that
//     stage is providers.ErrNotFound, List leaves it out, and Promote with
//     ExpectedCurrentID "" takes it as the current version to replace.
//     Readers of AWSCURRENT outside swarmkey see the marker document until
//     the first rotation is promoted; `swarmkey exec` reports it as "not
//     rotated yet".
//   - PutSecretValue moves AWSPENDING without a condition. PutPending checks
//     who holds AWSPENDING first, but two writers passing that check at the
//     same moment would both succeed (the later one holding the label, the
//     earlier one's Promote failing with ErrNotFound). AWS documents a
//     conditional move for UpdateSecretVersionStage (it fails when the label
//     is on another version than RemoveFromVersionId), but moto, which the
//     tests run on, applies that rule to AWSCURRENT only, so a
//     compare-and-swap on AWSPENDING could not be proven here. The rotator's
//     per-policy advisory lock keeps two rotations of one secret apart.
//   - A version that no label names is deprecated, and AWS deletes deprecated
//     versions itself; RetireUnstaged has nothing to do.
//
// A secret that AWS's native rotation (a rotation Lambda, or a managing
// service such as RDS) also rotates is refused: two rotators on one secret
// would overwrite each other's AWSPENDING.
package aws

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"
	"unicode/utf8"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// AWS staging labels for the three stages.
const (
	labelCurrent  = "AWSCURRENT"
	labelPending  = "AWSPENDING"
	labelPrevious = "AWSPREVIOUS"
)

// Retry policy for throttling, 5xx and transport errors: AWS's standard
// retryer (exponential backoff with full jitter, throttles backing off from
// 1 s), with more attempts than the SDK's default of 3 because a rotation
// step is worth waiting a few seconds for, and a cap that keeps one call
// well inside a River job's timeout.
const (
	retryMaxAttempts = 6
	retryMaxBackoff  = 10 * time.Second
)

// The placeholder version that stands in as AWSCURRENT on a secret that has
// no credential yet (see the package documentation). The token is fixed, so
// two writers that both find the secret empty write the same version (AWS
// treats a repeated token with the same value as a no-op) and every reader
// recognises it by VersionId; it is 38 characters, inside AWS's 32 to 64 for
// a ClientRequestToken, and cannot collide with a rotation token (a UUID).
const (
	placeholderToken = "swarmkey-placeholder-no-credential-yet"
	placeholderValue = `{"swarmkey":"no credential yet"}`
)

// maxSecretString is Secrets Manager's limit on a SecretString, checked here
// because emulators do not enforce it.
const maxSecretString = 65536

// ErrNativeRotation is returned when a secret is also rotated by AWS itself
// (RotationEnabled, or a managing service): swarmkey refuses to change
// anything on it. It is providers.ErrNativeRotation.
var ErrNativeRotation = providers.ErrNativeRotation

// Options configures a Store. The yaml tags are the keys of a policy file's
// stores.aws block, which package config decodes into Options; every field
// is optional.
type Options struct {
	// Region overrides the region of the SDK's default chain (AWS_REGION,
	// the profile's region, instance metadata).
	Region string `yaml:"region"`
	// EndpointURL overrides the Secrets Manager endpoint, for a VPC
	// interface endpoint or an emulator such as moto: an absolute http or
	// https URL.
	EndpointURL string `yaml:"endpoint_url"`
	// Create lets PutPending create a missing secret (CreateSecret without a
	// value, then the pending version). Without it a missing secret is
	// ErrNotFound.
	Create bool `yaml:"create"`
	// KMSKeyID, Description and Tags apply to secrets that Create makes;
	// existing secrets are never changed.
	KMSKeyID    string            `yaml:"kms_key_id"`
	Description string            `yaml:"description"`
	Tags        map[string]string `yaml:"tags"`
	// Profile selects a shared config/credentials profile instead of
	// AWS_PROFILE or "default".
	Profile string `yaml:"profile"`
}

// Validate checks the one field the SDK would only refuse on every request:
// an EndpointURL that is not an absolute http or https URL. It returns a
// *validation.Error.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "aws store"}
	if o.EndpointURL != "" {
		u, err := url.Parse(o.EndpointURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ve.Add("endpoint_url", "not an absolute URL: give one such as https://secretsmanager.eu-west-1.amazonaws.com or http://localhost:5000")
		}
	}
	return ve.Err()
}

// Store is a providers.Store on AWS Secrets Manager. It is safe for
// concurrent use.
type Store struct {
	client *secretsmanager.Client
	opts   Options

	// testHookBeforeMove and testHookBeforePut, when set, run between the
	// DescribeSecret that checked the labels and the call that changes them
	// (Promote's UpdateSecretVersionStage, PutPending's PutSecretValue), so
	// tests can put another writer into that window.
	testHookBeforeMove func()
	testHookBeforePut  func()
}

var _ providers.Store = (*Store)(nil)

// New returns a Store whose credentials and region come from the SDK's
// default chain: environment variables, the shared config and credentials
// files (opts.Profile or AWS_PROFILE), web identity (EKS IRSA), ECS task and
// EC2 instance roles. It makes no request; wrong credentials show on first
// use. It checks opts as NewFromConfig does.
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
		return nil, fmt.Errorf("aws: load SDK configuration (profile %q): %w", opts.Profile, err)
	}
	return NewFromConfig(cfg, opts)
}

// NewFromConfig checks opts (see Validate) and returns a Store that uses cfg
// as it is (tests pass static credentials and moto's endpoint here).
// opts.Region and opts.EndpointURL still override cfg; opts.Profile is
// ignored.
func NewFromConfig(cfg awsv2.Config, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Region != "" {
		cfg.Region = opts.Region
	}
	if cfg.Region == "" {
		return nil, errors.New("aws: no region: set region in the store options, AWS_REGION, or the profile's region")
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = awsv2.String(opts.EndpointURL)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = retryMaxAttempts
			so.MaxBackoff = retryMaxBackoff
		})
		// Body logging would print SecretString: never allow it, whatever
		// the shared configuration asks for.
		o.ClientLogMode &^= awsv2.LogRequestWithBody | awsv2.LogResponseWithBody
	})
	return &Store{client: client, opts: opts}, nil
}

// Name implements providers.Store.
func (*Store) Name() string { return "aws" }

// Close implements providers.Store; the SDK client holds nothing that needs
// releasing.
func (*Store) Close() error { return nil }

// Get returns the version that holds stage, with its value
// (GetSecretValue with VersionStage set). ErrNotFound when the secret does
// not exist or no version holds the stage.
func (s *Store) Get(ctx context.Context, secretID string, stage providers.Stage) (providers.Version, error) {
	label, err := labelOf(stage)
	if err != nil {
		return providers.Version{}, fmt.Errorf("aws secret %q: get: %w", secretID, err)
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     awsv2.String(secretID),
		VersionStage: awsv2.String(label),
	})
	if err != nil {
		return providers.Version{}, s.translate(secretID, "GetSecretValue", err, nil)
	}
	if awsv2.ToString(out.VersionId) == placeholderToken {
		return providers.Version{}, fmt.Errorf("aws secret %q: get %s: %w: %s holds swarmkey's placeholder: no credential has been promoted yet", secretID, stage, providers.ErrNotFound, label)
	}
	v := versionOf(awsv2.ToString(out.VersionId), out.VersionStages, out.CreatedDate)
	if stage == providers.StagePending && v.HasStage(providers.StageCurrent) {
		return providers.Version{}, fmt.Errorf("aws secret %q: get %s: %w: %s is on the %s version %s, the state a finished rotation leaves: no pending version", secretID, stage, providers.ErrNotFound, labelPending, labelCurrent, v.ID)
	}
	v.Value = valueOf(out)
	return v, nil
}

// List returns the versions that hold a stage, newest first, without values
// (DescribeSecret for existence, then ListSecretVersionIds for creation
// dates). Versions that hold only labels of other tools are left out, and
// so is the placeholder.
// Versions created in the same second are ordered pending, current,
// previous.
func (s *Store) List(ctx context.Context, secretID string) ([]providers.Version, error) {
	if _, err := s.describe(ctx, secretID); err != nil {
		return nil, err
	}
	var versions []providers.Version
	p := secretsmanager.NewListSecretVersionIdsPaginator(s.client, &secretsmanager.ListSecretVersionIdsInput{
		SecretId:          awsv2.String(secretID),
		IncludeDeprecated: awsv2.Bool(false),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.translate(secretID, "ListSecretVersionIds", err, nil)
		}
		for _, e := range page.Versions {
			v := versionOf(awsv2.ToString(e.VersionId), e.VersionStages, e.CreatedDate)
			if len(v.Stages) > 0 && v.ID != placeholderToken {
				versions = append(versions, v)
			}
		}
	}
	sort.SliceStable(versions, func(i, j int) bool {
		a, b := versions[i], versions[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return recency(a) < recency(b)
	})
	return versions, nil
}

// recency orders versions of equal creation time: pending is the newest,
// then current, then previous.
func recency(v providers.Version) int {
	switch {
	case v.HasStage(providers.StagePending):
		return 0
	case v.HasStage(providers.StageCurrent):
		return 1
	default:
		return 2
	}
}

// PutPending writes value as the version token with the label AWSPENDING
// (PutSecretValue with ClientRequestToken = token).
//
// It first reads who holds AWSPENDING (DescribeSecret): token itself means a
// retry, answered by comparing the stored value (nil when equal, ErrConflict
// when not, without writing); another version is ErrConflict naming it,
// because pending versions are never stacked, unless that version is
// AWSCURRENT (a finished rotation), from which the write moves the label. A token that AWS already holds
// with another value (as current, previous or a deprecated version) is
// ErrConflict too. A token whose version was discarded cannot be reused
// (ErrConflict). A missing secret is created first with Options.Create and
// ErrNotFound otherwise.
//
// On a secret with no versions it first writes the placeholder (a
// PutSecretValue of placeholderValue under placeholderToken), which AWS makes
// AWSCURRENT, so that the pending version is never current before it is
// promoted.
//
// PutSecretValue does not return a creation time: the returned Version's
// Created is the server time of the response (its Date header, to the
// second); List reports AWS's CreatedDate.
//
// The check and the write are two calls, and AWS has no conditional
// PutSecretValue: two writers of different tokens racing through this window
// would both succeed, the later one holding AWSPENDING and the earlier one's
// Promote failing with ErrNotFound. The rotator's per-policy advisory lock is
// what keeps two rotations of one secret from getting there.
func (s *Store) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	if err := checkToken(secretID, "put pending", token); err != nil {
		return providers.Version{}, err
	}
	if value.Len() > maxSecretString {
		return providers.Version{}, fmt.Errorf("aws secret %q: put pending: the value is %d bytes; Secrets Manager stores at most %d", secretID, value.Len(), maxSecretString)
	}
	if !utf8.Valid(value.Reveal()) {
		return providers.Version{}, fmt.Errorf("aws secret %q: put pending: the value is not valid UTF-8 and cannot be a SecretString (secret documents are JSON)", secretID)
	}
	d, err := s.describe(ctx, secretID)
	switch {
	case errors.Is(err, providers.ErrNotFound) && s.opts.Create:
		if d, err = s.create(ctx, secretID); err != nil {
			return providers.Version{}, err
		}
	case errors.Is(err, providers.ErrNotFound):
		return providers.Version{}, fmt.Errorf("%w; create it first (aws secretsmanager create-secret --name %s) or set create: true on the store", err, secretID)
	case err != nil:
		return providers.Version{}, err
	}
	if err := checkWritable(secretID, d); err != nil {
		return providers.Version{}, err
	}

	st := stagesOf(d)
	switch pending := st.holder[labelPending]; {
	case pending == token:
		return s.samePending(ctx, secretID, token, value)
	case pending != "" && pending != st.holder[labelCurrent]:
		return providers.Version{}, fmt.Errorf("aws secret %q: put pending %s: %w: a pending version %s exists: reconcile or discard it first", secretID, token, providers.ErrConflict, pending)
	}

	if st.empty() {
		if err := s.putPlaceholder(ctx, secretID); err != nil {
			return providers.Version{}, err
		}
	}

	if s.testHookBeforePut != nil {
		s.testHookBeforePut()
	}
	out, err := s.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           awsv2.String(secretID),
		ClientRequestToken: awsv2.String(token),
		SecretString:       awsv2.String(value.RevealString()),
		VersionStages:      []string{labelPending},
	})
	if err != nil {
		if isCode(err, "ResourceExistsException") {
			return providers.Version{}, fmt.Errorf("aws secret %q: put pending %s: %w: version %s already exists with another value; a token is written once: start a new rotation with a new token", secretID, token, providers.ErrConflict, token)
		}
		return providers.Version{}, s.translate(secretID, "PutSecretValue", err, &value)
	}
	if v := versionOf(token, out.VersionStages, nil); !v.HasStage(providers.StagePending) {
		// AWS ignored the write: the token and value match an existing
		// version, whose labels stay as they are.
		return s.existingVersion(ctx, secretID, token, v)
	}
	created, ok := awsmiddleware.GetServerTime(out.ResultMetadata)
	if !ok {
		created, _ = awsmiddleware.GetResponseAt(out.ResultMetadata)
	}
	return versionOf(token, out.VersionStages, &created), nil
}

// putPlaceholder writes the placeholder version of a secret that has no
// version yet. AWS attaches AWSCURRENT to it as the secret's first version.
// It asks for AWSPENDING rather than AWSCURRENT: should another writer have
// written a first version since the caller looked, the placeholder must not
// take AWSCURRENT from it, and AWSPENDING is moved on to the real pending
// version by the write that follows. A placeholder already there (a retry,
// or another writer that found the secret empty too) is left as it is: same
// token, same value.
func (s *Store) putPlaceholder(ctx context.Context, secretID string) error {
	_, err := s.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           awsv2.String(secretID),
		ClientRequestToken: awsv2.String(placeholderToken),
		SecretString:       awsv2.String(placeholderValue),
		VersionStages:      []string{labelPending},
	})
	if err != nil {
		if isCode(err, "ResourceExistsException") {
			return fmt.Errorf("aws secret %q: put pending: PutSecretValue of the placeholder: %w: version %s exists with another value, so something other than swarmkey wrote under that version id; point the policy at another secret", secretID, providers.ErrConflict, placeholderToken)
		}
		return s.translate(secretID, "PutSecretValue", err, nil)
	}
	return nil
}

// existingVersion answers a PutPending that AWS ignored because the version
// of token already existed with the same value: a retry after promote gets
// that version back (with its creation time, read by VersionId); a version
// that holds no stage was discarded and its token may not be reused.
func (s *Store) existingVersion(ctx context.Context, secretID, token string, v providers.Version) (providers.Version, error) {
	if len(v.Stages) == 0 {
		return providers.Version{}, fmt.Errorf("aws secret %q: put pending %s: %w: version %s exists without a stage (it was discarded); a token is written once: start a new rotation with a new token", secretID, token, providers.ErrConflict, token)
	}
	label, _ := labelOf(v.Stages[0])
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     awsv2.String(secretID),
		VersionId:    awsv2.String(token),
		VersionStage: awsv2.String(label),
	})
	if err != nil {
		return providers.Version{}, s.translate(secretID, "GetSecretValue", err, nil)
	}
	return versionOf(token, out.VersionStages, out.CreatedDate), nil
}

// samePending answers a repeated PutPending whose token already holds
// AWSPENDING: nil when the stored value is the same, ErrConflict otherwise.
// Comparing here, rather than relying on PutSecretValue's own idempotency
// check, matters on moto, which overwrites a pending version's value instead
// of refusing it.
func (s *Store) samePending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     awsv2.String(secretID),
		VersionId:    awsv2.String(token),
		VersionStage: awsv2.String(labelPending),
	})
	if err != nil {
		return providers.Version{}, s.translate(secretID, "GetSecretValue", err, nil)
	}
	if !valueOf(out).Equal(value) {
		return providers.Version{}, fmt.Errorf("aws secret %q: put pending %s: %w: the pending version of this token holds another value; a token is written once: discard it and start a new rotation", secretID, token, providers.ErrConflict)
	}
	return versionOf(awsv2.ToString(out.VersionId), out.VersionStages, out.CreatedDate), nil
}

// create makes a missing secret without a value (CreateSecret); PutPending
// then writes the placeholder as its first version. A secret created
// meanwhile by someone else is fine.
func (s *Store) create(ctx context.Context, secretID string) (*secretsmanager.DescribeSecretOutput, error) {
	in := &secretsmanager.CreateSecretInput{Name: awsv2.String(secretID)}
	if s.opts.KMSKeyID != "" {
		in.KmsKeyId = awsv2.String(s.opts.KMSKeyID)
	}
	if s.opts.Description != "" {
		in.Description = awsv2.String(s.opts.Description)
	}
	keys := make([]string, 0, len(s.opts.Tags))
	for k := range s.opts.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Tags = append(in.Tags, types.Tag{Key: awsv2.String(k), Value: awsv2.String(s.opts.Tags[k])})
	}
	if _, err := s.client.CreateSecret(ctx, in); err != nil {
		if !isCode(err, "ResourceExistsException") {
			return nil, s.translate(secretID, "CreateSecret", err, nil)
		}
	}
	return s.describe(ctx, secretID)
}

// Promote moves AWSCURRENT to the version of req.Token (req.PendingID when
// set: the two are one on AWS, and a PendingID with another Token is
// ErrConflict) and then removes AWSPENDING from it; AWS moves AWSPREVIOUS to
// the old current in the same call, so the version that was previous holds
// no label afterwards. Should the second call fail, the version holds both
// AWSCURRENT and AWSPENDING, which List shows, and Promote called again
// completes it.
//
// It reads the labels first (DescribeSecret). If the version is current
// already it only removes a leftover AWSPENDING and returns nil (a retry
// after a crash, or after the second call failed). If AWSCURRENT is on another version than
// req.ExpectedCurrentID — including any current at all when
// ExpectedCurrentID is "", except the placeholder, which stands for "no
// current yet" — it returns ErrConflict and changes nothing. If req.Token
// holds no AWSPENDING it returns ErrNotFound, or ErrConflict when that
// version is AWSPREVIOUS already (a later rotation promoted over it).
//
// The move names the expected current as RemoveFromVersionId (the
// placeholder's id when ExpectedCurrentID is "" and the placeholder is
// current; after the move it is AWSPREVIOUS, still hidden). Between the
// DescribeSecret and the move another writer may move AWSCURRENT; AWS then
// rejects the move because RemoveFromVersionId no longer holds the label
// (InvalidParameterException; moto behaves the same, see
// TestPromoteRaceLostBetweenDescribeAndMove), so the check-then-move is a
// real compare-and-swap and the loser gets ErrConflict.
func (s *Store) Promote(ctx context.Context, secretID string, req providers.PromoteRequest) error {
	if req.PendingID != "" {
		if req.Token != "" && req.Token != req.PendingID {
			return fmt.Errorf("aws secret %q: promote %s: %w: version %s is not this token's (on AWS a version id is the token that wrote it)", secretID, req.Token, providers.ErrConflict, req.PendingID)
		}
		req.Token = req.PendingID
	}
	if err := checkToken(secretID, "promote", req.Token); err != nil {
		return err
	}
	d, err := s.describe(ctx, secretID)
	if err != nil {
		return err
	}
	if err := checkWritable(secretID, d); err != nil {
		return err
	}
	st := stagesOf(d)
	current := st.holder[labelCurrent]
	if current == req.Token {
		if st.holder[labelPending] == req.Token && st.holder[labelPrevious] == "" &&
			req.ExpectedCurrentID != "" && req.ExpectedCurrentID != req.Token {
			// The first version of the secret, current by AWS's rule and never
			// promoted over anything (written by a swarmkey from before the
			// placeholder): the caller expected a current version that never
			// existed.
			return fmt.Errorf("aws secret %q: promote %s: %w: expected current %s, but the secret's only version is this token's (current since it was written first)", secretID, req.Token, providers.ErrConflict, req.ExpectedCurrentID)
		}
		return s.removePending(ctx, secretID, req.Token, st)
	}
	if st.holder[labelPending] != req.Token {
		if st.holder[labelPrevious] == req.Token {
			return fmt.Errorf("aws secret %q: promote %s: %w: that version is AWSPREVIOUS already: a later rotation was promoted over it", secretID, req.Token, providers.ErrConflict)
		}
		return fmt.Errorf("aws secret %q: promote %s: %w: no pending version of this token (discarded, or never written)", secretID, req.Token, providers.ErrNotFound)
	}
	if current != req.ExpectedCurrentID {
		return fmt.Errorf("aws secret %q: promote %s: %w: current is %s, expected %s: the current version moved since the rotation read it", secretID, req.Token, providers.ErrConflict, orNone(current), orNone(req.ExpectedCurrentID))
	}

	if s.testHookBeforeMove != nil {
		s.testHookBeforeMove()
	}
	in := &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:        awsv2.String(secretID),
		VersionStage:    awsv2.String(labelCurrent),
		MoveToVersionId: awsv2.String(req.Token),
	}
	if remove := st.currentVersion(); remove != "" {
		// The placeholder included: it is the current version this promote
		// replaces when ExpectedCurrentID is "".
		in.RemoveFromVersionId = awsv2.String(remove)
	}
	if _, err := s.client.UpdateSecretVersionStage(ctx, in); err != nil {
		if !isCode(err, "InvalidParameterException", "InvalidRequestException") {
			return s.translate(secretID, "UpdateSecretVersionStage", err, nil)
		}
		// Lost the compare-and-swap, or an earlier attempt of this very
		// request succeeded and the SDK retried it: read again to tell.
		d, derr := s.describe(ctx, secretID)
		if derr != nil {
			return derr
		}
		now := stagesOf(d)
		if now.holder[labelCurrent] != req.Token {
			return fmt.Errorf("aws secret %q: promote %s: %w: current moved to %s while promoting", secretID, req.Token, providers.ErrConflict, orNone(now.holder[labelCurrent]))
		}
		st = now
	}
	return s.removePending(ctx, secretID, req.Token, st)
}

// removePending removes AWSPENDING from version; a version that does not hold
// it (any more) is fine.
func (s *Store) removePending(ctx context.Context, secretID, version string, st stages) error {
	if st.holder[labelPending] != version {
		return nil
	}
	_, err := s.client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            awsv2.String(secretID),
		VersionStage:        awsv2.String(labelPending),
		RemoveFromVersionId: awsv2.String(version),
	})
	if err != nil && !isCode(err, "InvalidParameterException") {
		return s.translate(secretID, "UpdateSecretVersionStage", err, nil)
	}
	return nil
}

// DiscardPending removes AWSPENDING from the version of token; a version with
// no label left is deprecated and AWS deletes it. It returns nil when token
// holds no AWSPENDING, the secret not existing included. The first pending
// version of a new secret is discarded like any other: the placeholder stays
// AWSCURRENT. AWSPENDING on a version that is also AWSCURRENT is no pending
// version (a finished rotation): DiscardPending returns nil and leaves it,
// and the next PutPending moves the label. A secret that AWS rotates itself
// is refused with ErrNativeRotation before anything changes: the pending
// version may be its rotation Lambda's.
func (s *Store) DiscardPending(ctx context.Context, secretID, token string) error {
	if err := checkToken(secretID, "discard pending", token); err != nil {
		return err
	}
	d, err := s.describe(ctx, secretID)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkWritable(secretID, d); err != nil {
		return err
	}
	st := stagesOf(d)
	if st.holder[labelPending] != token || st.holder[labelCurrent] == token {
		return nil
	}
	return s.removePending(ctx, secretID, token, st)
}

// DiscardPendingVersion is DiscardPending of the version versionID, whoever
// wrote it: on AWS a version id is the ClientRequestToken that wrote it, so
// the two are one.
func (s *Store) DiscardPendingVersion(ctx context.Context, secretID, versionID string) error {
	return s.DiscardPending(ctx, secretID, versionID)
}

// NativeRotation implements providers.NativeRotator from DescribeSecret:
// Enabled when rotation is enabled or a managing service owns the secret;
// Rotator names the rotation Lambda (also of a rotation that is configured
// but not enabled, such as one cancelled mid-way) or the service.
func (s *Store) NativeRotation(ctx context.Context, secretID string) (providers.NativeRotation, error) {
	d, err := s.describe(ctx, secretID)
	if errors.Is(err, providers.ErrNotFound) {
		return providers.NativeRotation{}, nil
	}
	if err != nil {
		return providers.NativeRotation{}, err
	}
	var nr providers.NativeRotation
	if arn := awsv2.ToString(d.RotationLambdaARN); arn != "" {
		nr.Rotator = "rotation Lambda " + arn
	}
	if svc := awsv2.ToString(d.OwningService); svc != "" {
		nr.Enabled, nr.Rotator = true, "managing service "+svc
	}
	if awsv2.ToBool(d.RotationEnabled) {
		nr.Enabled = true
		if nr.Rotator == "" {
			nr.Rotator = "AWS rotation (no Lambda named)"
		}
	}
	return nr, nil
}

// RetireUnstaged has nothing to do on AWS: a version without labels is
// deprecated and Secrets Manager deletes it itself (it keeps about 100
// versions, and every version of the last 24 hours). It only checks that the
// secret exists.
func (s *Store) RetireUnstaged(ctx context.Context, secretID string, _ providers.RetireRequest) error {
	_, err := s.describe(ctx, secretID)
	return err
}

// describe is DescribeSecret with errors translated.
func (s *Store) describe(ctx context.Context, secretID string) (*secretsmanager.DescribeSecretOutput, error) {
	d, err := s.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(secretID)})
	if err != nil {
		return nil, s.translate(secretID, "DescribeSecret", err, nil)
	}
	return d, nil
}

// checkWritable refuses secrets that swarmkey must not write to: those that
// AWS rotates itself and those scheduled for deletion.
func checkWritable(secretID string, d *secretsmanager.DescribeSecretOutput) error {
	if awsv2.ToBool(d.RotationEnabled) {
		return fmt.Errorf("aws secret %q: %w: rotation is enabled on it (rotation Lambda %s); two rotators on one secret overwrite each other: turn AWS rotation off (aws secretsmanager cancel-rotate-secret --secret-id %s) or remove the swarmkey policy", secretID, ErrNativeRotation, orNone(awsv2.ToString(d.RotationLambdaARN)), secretID)
	}
	if svc := awsv2.ToString(d.OwningService); svc != "" {
		return fmt.Errorf("aws secret %q: %w: it is managed by %s, which rotates it; let that service rotate it or point the policy at a secret of your own", secretID, ErrNativeRotation, svc)
	}
	if d.DeletedDate != nil {
		return fmt.Errorf("aws secret %q: it is scheduled for deletion on %s: restore it (aws secretsmanager restore-secret --secret-id %s) or use another secret", secretID, d.DeletedDate.UTC().Format(time.RFC3339), secretID)
	}
	return nil
}

// stages is the label layout of a secret as DescribeSecret reports it.
type stages struct {
	// holder maps a label to the version that holds it; labels on the
	// placeholder are left out, as if no version held them.
	holder map[string]string
	// placeholderCurrent: the placeholder holds AWSCURRENT, so no credential
	// has been promoted yet.
	placeholderCurrent bool
}

func stagesOf(d *secretsmanager.DescribeSecretOutput) stages {
	st := stages{holder: map[string]string{}}
	for id, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			if id != placeholderToken {
				st.holder[l] = id
			} else if l == labelCurrent {
				st.placeholderCurrent = true
			}
		}
	}
	return st
}

// empty reports whether the secret has no current version at all, not even
// the placeholder: it has no version (AWS never leaves a secret that has
// versions without AWSCURRENT).
func (st stages) empty() bool {
	return st.holder[labelCurrent] == "" && !st.placeholderCurrent
}

// currentVersion is the version that holds AWSCURRENT, the placeholder
// included.
func (st stages) currentVersion() string {
	if st.placeholderCurrent {
		return placeholderToken
	}
	return st.holder[labelCurrent]
}

// checkToken refuses an empty token and the placeholder's.
func checkToken(secretID, op, token string) error {
	switch token {
	case "":
		return fmt.Errorf("aws secret %q: %s: empty rotation token", secretID, op)
	case placeholderToken:
		return fmt.Errorf("aws secret %q: %s: token %q is reserved for swarmkey's placeholder version; use a rotation token (a UUID)", secretID, op, token)
	}
	return nil
}

// versionOf builds the metadata of a version from its AWS labels; labels of
// other tools are dropped.
func versionOf(id string, labels []string, created *time.Time) providers.Version {
	v := providers.Version{ID: id, Token: id}
	for _, stage := range providers.Stages {
		l, _ := labelOf(stage)
		for _, have := range labels {
			if have == l {
				v.Stages = append(v.Stages, stage)
				break
			}
		}
	}
	if created != nil {
		v.Created = created.UTC()
	}
	return v
}

func valueOf(out *secretsmanager.GetSecretValueOutput) secret.Secret {
	if out.SecretString != nil {
		return secret.FromString(*out.SecretString)
	}
	return secret.New(out.SecretBinary)
}

func labelOf(stage providers.Stage) (string, error) {
	switch stage {
	case providers.StageCurrent:
		return labelCurrent, nil
	case providers.StagePending:
		return labelPending, nil
	case providers.StagePrevious:
		return labelPrevious, nil
	}
	return "", fmt.Errorf("unknown stage %q (want current, pending or previous)", stage)
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
