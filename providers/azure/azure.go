// Package azure is the store on Azure Key Vault secrets behind the
// versioned-secret interface of package providers.
//
// Readers of Key Vault read a secret by its name alone (Get Secret without
// a version, `az keyvault secret show --name NAME`, an App Service Key
// Vault reference without a version), and Key Vault answers that with the
// secret's latest version, whatever its state: a disabled latest version is
// not skipped, the reader gets 403 "Operation get is not allowed on a
// disabled secret". So no version of the reader's secret may be pending:
// an enabled one would be read, a disabled one would break every reader
// until the promote. The stages map onto two secrets instead:
//
//   - The secret NAME is what readers read. Current is its latest version,
//     exactly what Get Secret without a version returns. Previous is the
//     version that the current version's tag "swarmkey-previous" names
//     (the version that was current when it was promoted), readable by its
//     version id while it is enabled. Swarmkey writes this secret only at
//     promote.
//   - The staging secret NAME + pending_suffix ("-swarmkey-pending" by
//     default) holds pending versions, outside the readers' secret (grant
//     readers "Key Vault Secrets User" on their secrets only, not on the
//     vault). Pending is its latest version while that is enabled and not
//     yet promoted. The version carries the rotation token in its tag
//     "swarmkey-token", so the version and its token are one write.
//
// Promote writes the pending value as a new version of NAME with the tags
// swarmkey-token, swarmkey-pending-version (the staging version it came
// from) and swarmkey-previous (the version it replaces) in the same Set
// Secret call, then disables the staging version. A version's id is
// "p<staging version id>" for a version swarmkey wrote, also once it has
// been promoted (its swarmkey-pending-version tag names it); a version of
// NAME without that tag, another tool's, has the id "v<version id>" and no
// token. Tags are a claim as any metadata is (whoever may set the secret
// may write them); the rotator trusts its state database, not them.
//
// Key Vault has no conditional write for secrets (no ETag, no If-Match):
// the last Set Secret wins. The store narrows the windows it can: Promote
// compares the current version with the expected one right before its
// write, and PutPending reads the staging secret again after its write and
// withdraws (disables) its version with ErrConflict when another writer's
// version came after it. Two swarmkey processes never race on one secret
// (the rotator holds a per-policy lock); another tool writing NAME between
// Promote's read and its write is not detected, and its version ends up
// between previous and current, where no stage names it.
//
// Key Vault cannot delete or destroy one version of a secret (Delete Secret
// removes every version), so DiscardPending and RetireUnstaged disable
// versions; a disabled version's value cannot be read until someone with
// permission to update the secret enables it again.
package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// DefaultPendingSuffix is appended to a secret's name to name its staging
// secret.
const DefaultPendingSuffix = "-swarmkey-pending"

// Tags swarmkey writes on versions.
const (
	tagToken          = "swarmkey-token"
	tagPendingVersion = "swarmkey-pending-version"
	tagPrevious       = "swarmkey-previous"
)

// contentType of the versions swarmkey writes: the secret document is a
// JSON object.
const contentType = "application/json"

// maxTokenLen is Key Vault's limit on a tag's value.
const maxTokenLen = 256

// validName is Key Vault's rule for a secret's name: 1 to 127 characters
// of 0-9, a-z, A-Z and -.
// It is compiled on first use, not when swarmkey starts: every command
// links this package, and most never use it.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`) })

// Options configures a Store. The yaml tags are the keys of a policy file's
// stores.azure block, which package config decodes into Options.
type Options struct {
	// VaultURL is the vault's address, https://NAME.vault.azure.net.
	VaultURL string `yaml:"vault_url"`
	// PendingSuffix is appended to a secret's name to name the staging
	// secret that holds its pending versions; "-swarmkey-pending" when
	// empty. Readers' role assignments must not cover those secrets.
	PendingSuffix string `yaml:"pending_suffix"`
	// Create lets PutPending start a secret that has no version yet;
	// without it a missing secret is ErrNotFound.
	Create bool `yaml:"create"`
	// TenantID is the Microsoft Entra tenant to authenticate in; the
	// credential's own default (AZURE_TENANT_ID, the CLI's login) when
	// empty.
	TenantID string `yaml:"tenant_id"`
}

// Validate checks the options; it returns a *validation.Error.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "azure store"}
	if o.VaultURL == "" {
		ve.Add("vault_url", "required: the vault's address, such as https://checkout-kv.vault.azure.net")
	} else if u, err := url.Parse(o.VaultURL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		ve.Add("vault_url", "%q is not a vault address: give https://NAME.vault.azure.net (https, no path)", o.VaultURL)
	}
	if o.PendingSuffix != "" && !regexp.MustCompile(`^[0-9a-zA-Z-]{1,64}$`).MatchString(o.PendingSuffix) {
		ve.Add("pending_suffix", "%q: use up to 64 letters, digits and dashes, the characters of a Key Vault secret name", o.PendingSuffix)
	}
	return ve.Err()
}

func (o Options) pendingSuffix() string {
	if o.PendingSuffix == "" {
		return DefaultPendingSuffix
	}
	return o.PendingSuffix
}

// Store is a providers.Store on Azure Key Vault. It is safe for concurrent
// use.
type Store struct {
	client *azsecrets.Client
	opts   Options

	// testHookBeforeWrite, when set, runs between the reads and the write
	// of PutPending and Promote, so tests can put another writer there.
	testHookBeforeWrite func()
	// testHookStopAfterData, when set, makes Promote return right after
	// its write of the secret, as a crash there would.
	testHookStopAfterData bool
}

var _ providers.Store = (*Store)(nil)

// New checks opts and makes a client that authenticates with
// azidentity's DefaultAzureCredential: environment variables (a service
// principal), workload identity, managed identity, then the Azure CLI's
// and Developer CLI's logins, the first that works.
func New(_ context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: opts.TenantID})
	if err != nil {
		return nil, fmt.Errorf("azure: credential: %w", err)
	}
	return NewWithCredential(opts, cred, nil)
}

// NewWithCredential is New with a credential and client options of the
// caller's (tests: the SDK's fake credential and fake server transport).
func NewWithCredential(opts Options, cred azcore.TokenCredential, clientOpts *azsecrets.ClientOptions) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	client, err := azsecrets.NewClient(strings.TrimSuffix(opts.VaultURL, "/"), cred, clientOpts)
	if err != nil {
		return nil, fmt.Errorf("azure: client for %s: %w", opts.VaultURL, err)
	}
	return &Store{client: client, opts: opts}, nil
}

// Name implements providers.Store.
func (*Store) Name() string { return "azure" }

// Close implements providers.Store; the client holds nothing to release.
func (*Store) Close() error { return nil }

// stagingName is the name of secretID's staging secret.
func (s *Store) stagingName(secretID string) string { return secretID + s.opts.pendingSuffix() }

// checkName checks secretID and its staging secret's name against Key
// Vault's rule.
func (s *Store) checkName(secretID, op string) error {
	if !validName().MatchString(secretID) {
		return fmt.Errorf("azure secret %q: %s: not a Key Vault secret name: use 1 to 127 letters, digits and dashes", secretID, op)
	}
	if len(s.stagingName(secretID)) > 127 {
		return fmt.Errorf("azure secret %q: %s: its staging secret %q would be longer than Key Vault's 127 characters: shorten the name or pending_suffix", secretID, op, s.stagingName(secretID))
	}
	if strings.HasSuffix(secretID, s.opts.pendingSuffix()) {
		return fmt.Errorf("azure secret %q: %s: the name ends in pending_suffix %q, which names swarmkey's staging secrets: choose another name", secretID, op, s.opts.pendingSuffix())
	}
	return nil
}

// version is one version as the store reads it.
type version struct {
	hex     string // Key Vault's version id
	tags    map[string]string
	value   secret.Secret
	created time.Time
}

func fromBundle(sec azsecrets.Secret) version {
	v := version{tags: map[string]string{}}
	if sec.ID != nil {
		v.hex = sec.ID.Version()
	}
	for k, p := range sec.Tags {
		if p != nil {
			v.tags[k] = *p
		}
	}
	if sec.Value != nil {
		v.value = secret.FromString(*sec.Value)
	}
	if sec.Attributes != nil && sec.Attributes.Created != nil {
		v.created = sec.Attributes.Created.UTC()
	}
	return v
}

// mainID is the id and token of a version of the reader's secret: swarmkey's
// "p<staging version>" when its tag names one, "v<version>" otherwise.
func (v version) mainID() (id, token string) {
	if pv := v.tags[tagPendingVersion]; pv != "" {
		return "p" + pv, v.tags[tagToken]
	}
	return "v" + v.hex, ""
}

// stagingID is the id of a staging version.
func (v version) stagingID() string { return "p" + v.hex }

// latest is the latest version of a secret as Get Secret without a version
// answers it.
type latest struct {
	exists bool     // the secret has versions
	v      *version // the latest version; nil when it is disabled
}

func (s *Store) readLatest(ctx context.Context, secretID, name string) (latest, error) {
	resp, err := s.client.GetSecret(ctx, name, "", nil)
	switch {
	case err == nil:
		v := fromBundle(resp.Secret)
		return latest{exists: true, v: &v}, nil
	case isNotFound(err):
		return latest{}, nil
	case isDisabled(err):
		return latest{exists: true}, nil
	}
	return latest{}, s.translate(secretID, "read latest version", name, err)
}

// layout is what both secrets hold.
type layout struct {
	main, staging latest
}

func (l layout) current() *version { return l.main.v }

// onCurrent reports whether the latest staging version is enabled and
// already current: a promote that stopped before disabling it.
func (l layout) onCurrent() bool {
	return l.staging.v != nil && l.main.v != nil && l.main.v.tags[tagPendingVersion] == l.staging.v.hex
}

// pending is the pending version: the latest staging version, enabled and
// not current.
func (l layout) pending() *version {
	if l.staging.v == nil || l.onCurrent() {
		return nil
	}
	return l.staging.v
}

// read reads the staging secret, then the reader's secret: the reverse of
// the order in which Promote writes them (the secret, then the staging
// version disabled), so that a promote that completes between the two
// reads is seen whole: a staging version read as disabled was promoted
// before the secret was read, and the secret shows its new version.
func (s *Store) read(ctx context.Context, secretID string) (layout, error) {
	staging, err := s.readLatest(ctx, secretID, s.stagingName(secretID))
	if err != nil {
		return layout{}, err
	}
	main, err := s.readLatest(ctx, secretID, secretID)
	if err != nil {
		return layout{}, err
	}
	return layout{main: main, staging: staging}, nil
}

// readPrevious reads the version the current version's tag names; nil
// when there is none, or it is disabled or gone.
func (s *Store) readPrevious(ctx context.Context, secretID string, l layout) (*version, error) {
	cur := l.current()
	if cur == nil || cur.tags[tagPrevious] == "" {
		return nil, nil
	}
	resp, err := s.client.GetSecret(ctx, secretID, cur.tags[tagPrevious], nil)
	switch {
	case err == nil:
		v := fromBundle(resp.Secret)
		return &v, nil
	case isNotFound(err), isDisabled(err):
		return nil, nil
	}
	return nil, s.translate(secretID, "read previous version "+cur.tags[tagPrevious], secretID, err)
}

func (s *Store) notFound(secretID string) error {
	return fmt.Errorf("azure secret %q: %w: no version of %s in %s", secretID, providers.ErrNotFound, secretID, s.opts.VaultURL)
}

// Get implements providers.Store.
func (s *Store) Get(ctx context.Context, secretID string, stage providers.Stage) (providers.Version, error) {
	if err := s.checkName(secretID, "get "+string(stage)); err != nil {
		return providers.Version{}, err
	}
	l, err := s.read(ctx, secretID)
	if err != nil {
		return providers.Version{}, err
	}
	if !l.main.exists && !l.staging.exists {
		return providers.Version{}, s.notFound(secretID)
	}
	var v *version
	var id, token string
	switch stage {
	case providers.StageCurrent:
		if v = l.current(); v != nil {
			id, token = v.mainID()
		}
	case providers.StagePending:
		if v = l.pending(); v != nil {
			id, token = v.stagingID(), v.tags[tagToken]
		}
	case providers.StagePrevious:
		if v, err = s.readPrevious(ctx, secretID, l); err != nil {
			return providers.Version{}, err
		}
		if v != nil {
			id, token = v.mainID()
		}
	default:
		return providers.Version{}, fmt.Errorf("azure secret %q: unknown stage %q", secretID, stage)
	}
	if v == nil {
		return providers.Version{}, fmt.Errorf("azure secret %q: %w: no version is %s", secretID, providers.ErrNotFound, stage)
	}
	stages := []providers.Stage{stage}
	if stage == providers.StageCurrent && l.onCurrent() {
		stages = append(stages, providers.StagePending)
	}
	return providers.Version{ID: id, Token: token, Stages: stages, Created: v.created, Value: v.value}, nil
}

// List implements providers.Store: pending, current, previous, the ones
// that exist.
func (s *Store) List(ctx context.Context, secretID string) ([]providers.Version, error) {
	if err := s.checkName(secretID, "list"); err != nil {
		return nil, err
	}
	l, err := s.read(ctx, secretID)
	if err != nil {
		return nil, err
	}
	if !l.main.exists && !l.staging.exists {
		return nil, s.notFound(secretID)
	}
	prev, err := s.readPrevious(ctx, secretID, l)
	if err != nil {
		return nil, err
	}
	var out []providers.Version
	if p := l.pending(); p != nil {
		out = append(out, providers.Version{ID: p.stagingID(), Token: p.tags[tagToken], Stages: []providers.Stage{providers.StagePending}, Created: p.created})
	}
	if c := l.current(); c != nil {
		id, token := c.mainID()
		stages := []providers.Stage{providers.StageCurrent}
		if l.onCurrent() {
			stages = append(stages, providers.StagePending)
		}
		out = append(out, providers.Version{ID: id, Token: token, Stages: stages, Created: c.created})
	}
	if prev != nil {
		id, token := prev.mainID()
		out = append(out, providers.Version{ID: id, Token: token, Stages: []providers.Stage{providers.StagePrevious}, Created: prev.created})
	}
	return out, nil
}

// PutPending writes value as a new version of the staging secret tagged
// with token. Before it writes it reads both secrets: a pending version of
// token is a retry (nil when its value equals value, ErrConflict when not);
// a pending version of another token is ErrConflict; token's version
// already promoted (current or previous) is a retry after the promote,
// answered the same way. After the write it reads the staging secret again:
// when another writer's version is latest by then, it disables its own and
// fails with ErrConflict, so that two writers cannot both leave an enabled
// pending version.
func (s *Store) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	if err := s.checkName(secretID, "put pending"); err != nil {
		return providers.Version{}, err
	}
	if err := checkToken(secretID, "put pending", token); err != nil {
		return providers.Version{}, err
	}
	l, err := s.read(ctx, secretID)
	if err != nil {
		return providers.Version{}, err
	}
	if !l.main.exists && !s.opts.Create {
		return providers.Version{}, fmt.Errorf("azure secret %q: put pending: %w: the secret has no version in %s: create it (az keyvault secret set) or set create: true in stores.azure", secretID, providers.ErrNotFound, s.opts.VaultURL)
	}
	if v, done, err := s.existing(ctx, secretID, token, value, l); done || err != nil {
		return v, err
	}
	if s.testHookBeforeWrite != nil {
		s.testHookBeforeWrite()
	}
	staging := s.stagingName(secretID)
	resp, err := s.client.SetSecret(ctx, staging, azsecrets.SetSecretParameters{
		Value:       to.Ptr(value.RevealString()),
		ContentType: to.Ptr(contentType),
		Tags:        map[string]*string{tagToken: to.Ptr(token)},
	}, nil)
	if err != nil {
		return providers.Version{}, s.translate(secretID, "write pending version", staging, err)
	}
	written := fromBundle(resp.Secret)
	after, err := s.readLatest(ctx, secretID, staging)
	if err != nil {
		return providers.Version{}, err
	}
	if after.v == nil || after.v.hex != written.hex {
		if err := s.disable(ctx, secretID, staging, written.hex); err != nil {
			return providers.Version{}, err
		}
		return providers.Version{}, fmt.Errorf("azure secret %q: put pending: %w: another writer wrote %s at the same time; this rotation's version %s is disabled", secretID, providers.ErrConflict, staging, written.stagingID())
	}
	return providers.Version{ID: written.stagingID(), Token: token, Stages: []providers.Stage{providers.StagePending}, Created: written.created}, nil
}

// existing answers PutPending from what is there already: done when
// token's version exists with value (or a conflict was found).
func (s *Store) existing(ctx context.Context, secretID, token string, value secret.Secret, l layout) (providers.Version, bool, error) {
	same := func(v *version, id string, stages ...providers.Stage) (providers.Version, bool, error) {
		if !value.Equal(v.value) {
			return providers.Version{}, true, fmt.Errorf("azure secret %q: put pending: %w: token %s wrote version %s with another value", secretID, providers.ErrConflict, token, id)
		}
		return providers.Version{ID: id, Token: token, Stages: stages, Created: v.created}, true, nil
	}
	if p := l.pending(); p != nil {
		if p.tags[tagToken] == token {
			return same(p, p.stagingID(), providers.StagePending)
		}
		return providers.Version{}, true, fmt.Errorf("azure secret %q: put pending: %w: version %s of another writer (token %q) is pending: reconcile or discard it first (swarmkey resolve)", secretID, providers.ErrConflict, p.stagingID(), p.tags[tagToken])
	}
	if c := l.current(); c != nil {
		if id, owner := c.mainID(); owner == token {
			stages := []providers.Stage{providers.StageCurrent}
			if l.onCurrent() {
				stages = append(stages, providers.StagePending)
			}
			return same(c, id, stages...)
		}
	}
	prev, err := s.readPrevious(ctx, secretID, l)
	if err != nil {
		return providers.Version{}, true, err
	}
	if prev != nil {
		if id, owner := prev.mainID(); owner == token {
			return same(prev, id, providers.StagePrevious)
		}
	}
	return providers.Version{}, false, nil
}

// Promote writes the pending version's value as a new version of the
// secret, tagged with its token, its staging version and the version it
// replaces, then disables the staging version.
func (s *Store) Promote(ctx context.Context, secretID string, req providers.PromoteRequest) error {
	what := req.Token
	if req.PendingID != "" {
		what = "version " + req.PendingID
	}
	if req.Token == "" && req.PendingID == "" {
		return fmt.Errorf("azure secret %q: promote: neither a token nor a pending version id given", secretID)
	}
	if err := s.checkName(secretID, "promote"); err != nil {
		return err
	}
	l, err := s.read(ctx, secretID)
	if err != nil {
		return err
	}
	matches := func(id, token string) bool {
		return (req.PendingID == "" || id == req.PendingID) && (req.Token == "" || token == req.Token)
	}
	cur := l.current()
	curID := ""
	if cur != nil {
		var token string
		curID, token = cur.mainID()
		if matches(curID, token) {
			// Current already: a retry. Complete a promote that stopped
			// before it disabled the staging version.
			if l.onCurrent() {
				return s.disable(ctx, secretID, s.stagingName(secretID), l.staging.v.hex)
			}
			return nil
		}
	}
	p := l.pending()
	if p == nil || !matches(p.stagingID(), p.tags[tagToken]) {
		prev, err := s.readPrevious(ctx, secretID, l)
		if err != nil {
			return err
		}
		if prev != nil {
			if id, token := prev.mainID(); matches(id, token) {
				return fmt.Errorf("azure secret %q: promote %s: %w: that version is previous already: a later rotation was promoted over it", secretID, what, providers.ErrConflict)
			}
		}
	}
	if p == nil {
		return fmt.Errorf("azure secret %q: promote %s: %w: no pending version (discarded, or never written)", secretID, what, providers.ErrNotFound)
	}
	if !matches(p.stagingID(), p.tags[tagToken]) {
		if req.PendingID != "" {
			return fmt.Errorf("azure secret %q: promote %s: %w: the pending version is %s (token %q)", secretID, what, providers.ErrConflict, p.stagingID(), p.tags[tagToken])
		}
		return fmt.Errorf("azure secret %q: promote %s: %w: no pending version of this token (the pending one is %s)", secretID, what, providers.ErrNotFound, p.stagingID())
	}
	if curID != req.ExpectedCurrentID {
		return fmt.Errorf("azure secret %q: promote %s: %w: current is %s, expected %s: the current version moved since the rotation read it", secretID, what, providers.ErrConflict, orNone(curID), orNone(req.ExpectedCurrentID))
	}
	tags := map[string]*string{tagPendingVersion: to.Ptr(p.hex)}
	if token := p.tags[tagToken]; token != "" {
		tags[tagToken] = to.Ptr(token)
	}
	if cur != nil {
		tags[tagPrevious] = to.Ptr(cur.hex)
	}
	if s.testHookBeforeWrite != nil {
		s.testHookBeforeWrite()
	}
	if _, err := s.client.SetSecret(ctx, secretID, azsecrets.SetSecretParameters{
		Value:       to.Ptr(p.value.RevealString()),
		ContentType: to.Ptr(contentType),
		Tags:        tags,
	}, nil); err != nil {
		return s.translate(secretID, "promote "+what, secretID, err)
	}
	if s.testHookStopAfterData {
		return nil
	}
	return s.disable(ctx, secretID, s.stagingName(secretID), p.hex)
}

// disable sets version hex of name disabled, so its value can no longer be
// read.
func (s *Store) disable(ctx context.Context, secretID, name, hex string) error {
	_, err := s.client.UpdateSecretProperties(ctx, name, hex, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
	}, nil)
	if err != nil {
		return s.translate(secretID, "disable version "+hex, name, err)
	}
	return nil
}

// DiscardPending disables the pending version of token. Nil when token
// holds no pending version.
func (s *Store) DiscardPending(ctx context.Context, secretID, token string) error {
	if err := checkToken(secretID, "discard pending", token); err != nil {
		return err
	}
	return s.discard(ctx, secretID, func(v *version) bool { return v.tags[tagToken] == token })
}

// DiscardPendingVersion disables the pending version versionID ("p<id>"),
// whoever wrote it. Nil when it is not the pending version.
func (s *Store) DiscardPendingVersion(ctx context.Context, secretID, versionID string) error {
	return s.discard(ctx, secretID, func(v *version) bool { return v.stagingID() == versionID })
}

func (s *Store) discard(ctx context.Context, secretID string, match func(*version) bool) error {
	if err := s.checkName(secretID, "discard pending"); err != nil {
		return err
	}
	staging, err := s.readLatest(ctx, secretID, s.stagingName(secretID))
	if err != nil || staging.v == nil || !match(staging.v) {
		return err
	}
	main, err := s.readLatest(ctx, secretID, secretID)
	if err != nil {
		return err
	}
	l := layout{main: main, staging: staging}
	if l.pending() == nil {
		return nil
	}
	return s.disable(ctx, secretID, s.stagingName(secretID), staging.v.hex)
}

// RetireUnstaged disables the enabled versions of both secrets that no
// stage names. Key Vault cannot destroy one version of a secret, so
// req.Destroy disables too.
func (s *Store) RetireUnstaged(ctx context.Context, secretID string, _ providers.RetireRequest) error {
	if err := s.checkName(secretID, "retire"); err != nil {
		return err
	}
	l, err := s.read(ctx, secretID)
	if err != nil {
		return err
	}
	prev, err := s.readPrevious(ctx, secretID, l)
	if err != nil {
		return err
	}
	var keep []string
	for _, v := range []*version{l.current(), prev} {
		if v != nil {
			keep = append(keep, v.hex)
		}
	}
	if err := s.disableAllBut(ctx, secretID, secretID, keep); err != nil {
		return err
	}
	var keepStaging []string
	if l.staging.v != nil && (l.pending() != nil || l.onCurrent()) {
		keepStaging = append(keepStaging, l.staging.v.hex)
	}
	return s.disableAllBut(ctx, secretID, s.stagingName(secretID), keepStaging)
}

func (s *Store) disableAllBut(ctx context.Context, secretID, name string, keep []string) error {
	pager := s.client.NewListSecretPropertiesVersionsPager(name, nil)
	var retire []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return s.translate(secretID, "list versions", name, err)
		}
		for _, p := range page.Value {
			if p == nil || p.ID == nil || p.Attributes == nil || p.Attributes.Enabled == nil || !*p.Attributes.Enabled {
				continue
			}
			if hex := p.ID.Version(); !slices.Contains(keep, hex) {
				retire = append(retire, hex)
			}
		}
	}
	for _, hex := range retire {
		if err := s.disable(ctx, secretID, name, hex); err != nil {
			return err
		}
	}
	return nil
}

func checkToken(secretID, op, token string) error {
	if token == "" {
		return fmt.Errorf("azure secret %q: %s: empty rotation token", secretID, op)
	}
	if len(token) > maxTokenLen {
		return fmt.Errorf("azure secret %q: %s: the rotation token is longer than the %d characters of a Key Vault tag value", secretID, op, maxTokenLen)
	}
	return nil
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}

// responseError is errors.As for the SDK's response error.
func responseError(err error) (*azcore.ResponseError, bool) {
	var re *azcore.ResponseError
	ok := errors.As(err, &re)
	return re, ok
}
