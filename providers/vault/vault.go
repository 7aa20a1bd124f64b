// Package vault is the store on the KV version 2 secrets engine of a
// Vault-compatible server (HashiCorp Vault, OpenBao) behind the
// versioned-secret interface of package providers.
//
// Readers of KV v2 read the latest version of a path (`vault kv get`), so
// the stages map onto two paths:
//
//   - The secret's path, MOUNT/data/ID, is what readers read. Current is its
//     latest version, exactly what a plain `vault kv get ID` returns;
//     previous is the version before it (`vault kv get -version=N-1 ID`),
//     readable as long as it is not deleted. Swarmkey writes this path only
//     at promote.
//   - The staging path, MOUNT/data/PENDING_PREFIX/ID (pending_prefix,
//     "swarmkey-pending" by default), holds pending versions, outside the
//     readers' paths and policies: pending is its latest version while that
//     is readable and not yet promoted. Its data is swarmkey's record,
//     {"swarmkey_token": TOKEN, "document": "<the secret document>"}, so the
//     version and the token that wrote it are one write.
//
// A version's id is "p<N>" for version N of the staging path, also once it
// has been promoted: promote copies the document to the secret's path as a
// new version K and records "swarmkey-version-<K>" = "p<N> <token>" in the
// secret's custom metadata, which is how a version of the secret's path is
// known to be swarmkey's. A version of the secret's path that no record
// names (another tool's `vault kv put`) has the id "v<K>" and no token.
// Records are a claim as any metadata is (anyone allowed to update the
// metadata can write one); the rotator trusts its state database, not them.
//
// Every data write is a check-and-set (options.cas) against the version
// read before it: PutPending writes the staging path with cas = its latest
// version, so of two writers racing there one fails with ErrConflict;
// promote writes the secret's path with cas = its current version, so a
// writer that changed the secret since is detected (ErrConflict) instead of
// overwritten. Promote is three calls: the data write (the step readers
// see), the record in custom metadata, and a soft delete of the staging
// version. A promote stopped after its first call shows the new version as
// "v<K>"; Promote again recognises it (its document is the pending one)
// and completes it.
//
// The secret's document is the KV data (a JSON object): readers get
// `vault kv get -field=password ID`. Vault stores the object, not its text,
// so a value read back is the same JSON object with its keys sorted.
package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// Defaults of Options.
const (
	DefaultMount         = "secret"
	DefaultPendingPrefix = "swarmkey-pending"
	// DefaultServiceAccountTokenFile is where Kubernetes mounts a pod's
	// service account token.
	DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// Keys of the staging path's data and of the secret's custom metadata.
const (
	fieldToken    = "swarmkey_token"
	fieldDocument = "document"
	recordPrefix  = "swarmkey-version-"
)

// maxTokenLen keeps a record ("p<N> <token>") inside KV v2's 512-byte limit
// on a custom metadata value.
const maxTokenLen = 256

// retries is how often the client retries a 5xx or a 412 (a standby that
// has not caught up), with its own backoff; a rotation step is worth a few
// seconds.
const retries = 4

// Options configures a Store. The yaml tags are the keys of a policy file's
// stores.vault block, which package config decodes into Options.
type Options struct {
	// Address of the server (https://vault.example:8200); VAULT_ADDR when
	// empty.
	Address string `yaml:"address"`
	// Namespace (Vault Enterprise, OpenBao namespaces); VAULT_NAMESPACE
	// when empty.
	Namespace string `yaml:"namespace"`
	// CACert is a PEM file of the CA that signed the server's certificate;
	// VAULT_CACERT, else the system roots, when empty.
	CACert string `yaml:"ca_cert"`
	// Mount is the path of the KV v2 mount; "secret" when empty.
	Mount string `yaml:"mount"`
	// PendingPrefix is the folder, inside the mount, of the staging paths
	// that hold pending versions; "swarmkey-pending" when empty. Readers'
	// policies must not cover it.
	PendingPrefix string `yaml:"pending_prefix"`
	// Create lets PutPending start a secret whose path does not exist yet;
	// without it a missing secret is ErrNotFound.
	Create bool `yaml:"create"`
	// Auth says how swarmkey logs in.
	Auth Auth `yaml:"auth"`
}

// Auth selects and configures the auth method.
type Auth struct {
	// Method is "token" (the default), "approle" or "kubernetes".
	Method string `yaml:"method"`
	// Path is the auth method's mount; the method's name when empty.
	Path string `yaml:"path"`
	// TokenFile (token) holds the token; VAULT_TOKEN when empty.
	TokenFile string `yaml:"token_file"`
	// RoleID and SecretIDFile (approle): the role id, and the file that
	// holds the secret id.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role and ServiceAccountTokenFile (kubernetes): the Vault role, and
	// the pod's service account token (the usual mount when empty).
	Role                    string `yaml:"role"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
}

// Validate checks the options; it returns a *validation.Error.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "vault store"}
	if o.Address != "" {
		u, err := url.Parse(o.Address)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ve.Add("address", "not an absolute URL: give one such as https://vault.example:8200")
		}
	}
	for field, p := range map[string]string{"mount": o.Mount, "pending_prefix": o.PendingPrefix, "auth.path": o.Auth.Path} {
		if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
			ve.Add(field, "%q: give the path without leading or trailing slashes, such as secret", p)
		}
	}
	switch o.Auth.Method {
	case "", AuthToken:
		if o.Auth.RoleID != "" || o.Auth.SecretIDFile != "" || o.Auth.Role != "" || o.Auth.ServiceAccountTokenFile != "" {
			ve.Add("auth", "role_id, secret_id_file, role and service_account_token_file belong to the approle and kubernetes methods: set auth.method")
		}
	case AuthAppRole:
		if o.Auth.RoleID == "" {
			ve.Add("auth.role_id", "required by the approle method: the role id of `vault read auth/approle/role/NAME/role-id`")
		}
		if o.Auth.SecretIDFile == "" {
			ve.Add("auth.secret_id_file", "required by the approle method: a file (mode 600) that holds a secret id of the role")
		}
	case AuthKubernetes:
		if o.Auth.Role == "" {
			ve.Add("auth.role", "required by the kubernetes method: the Vault role bound to the pod's service account")
		}
	default:
		ve.Add("auth.method", "unknown method %q: use token, approle or kubernetes", o.Auth.Method)
	}
	return ve.Err()
}

func (o Options) mount() string {
	if o.Mount == "" {
		return DefaultMount
	}
	return o.Mount
}

func (o Options) pendingPrefix() string {
	if o.PendingPrefix == "" {
		return DefaultPendingPrefix
	}
	return o.PendingPrefix
}

// Store is a providers.Store on KV v2. It is safe for concurrent use.
type Store struct {
	client *vaultapi.Client
	kv     *authedKV
	opts   Options

	// loginMu keeps concurrent calls that found the token expired from
	// logging in more than once for it.
	loginMu sync.Mutex
	// relogins counts the logins after New's, for tests.
	relogins atomic.Int64

	// testHookBeforeWrite, when set, runs between the reads and the data
	// write of PutPending and Promote, so tests can put another writer
	// into that window.
	testHookBeforeWrite func()
	// testHookStopAfterData, when set, makes Promote return right after
	// its data write, as a crash there would.
	testHookStopAfterData bool
}

var _ providers.Store = (*Store)(nil)

// New checks opts, makes a client (VAULT_* environment variables fill what
// opts leave empty) and logs in with the configured auth method.
func New(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: client configuration from VAULT_* environment variables: %w", cfg.Error)
	}
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	if opts.CACert != "" {
		if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACert: opts.CACert}); err != nil {
			return nil, fmt.Errorf("vault: ca_cert %s: %w", opts.CACert, err)
		}
	}
	cfg.MaxRetries = retries
	return newWithConfig(ctx, opts, cfg)
}

// newWithConfig is New on a client configuration made already (tests wrap
// its HTTP transport).
func newWithConfig(ctx context.Context, opts Options, cfg *vaultapi.Config) (*Store, error) {
	client, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: client for %s: %w", cfg.Address, err)
	}
	if opts.Namespace != "" {
		client.SetNamespace(opts.Namespace)
	}
	s := &Store{client: client, opts: opts}
	s.kv = &authedKV{kv: client.KVv2(opts.mount()), s: s}
	if err := s.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// login sets the client's token by the configured method.
func (s *Store) login(ctx context.Context) error {
	a := s.opts.Auth
	switch a.Method {
	case "", AuthToken:
		if a.TokenFile != "" {
			tok, err := readCredentialFile(a.TokenFile)
			if err != nil {
				return fmt.Errorf("vault: auth.token_file: %w", err)
			}
			s.client.SetToken(tok)
		}
		if s.client.Token() == "" {
			return errors.New("vault: no token: set auth.token_file or VAULT_TOKEN, or use the approle or kubernetes method")
		}
		return nil
	case AuthAppRole:
		secretID, err := readCredentialFile(a.SecretIDFile)
		if err != nil {
			return fmt.Errorf("vault: auth.secret_id_file: %w", err)
		}
		return s.loginAt(ctx, orDefault(a.Path, AuthAppRole), map[string]any{"role_id": a.RoleID, "secret_id": secretID})
	case AuthKubernetes:
		file := orDefault(a.ServiceAccountTokenFile, DefaultServiceAccountTokenFile)
		jwt, err := readCredentialFile(file)
		if err != nil {
			return fmt.Errorf("vault: auth.service_account_token_file: %w", err)
		}
		return s.loginAt(ctx, orDefault(a.Path, AuthKubernetes), map[string]any{"role": a.Role, "jwt": jwt})
	}
	return fmt.Errorf("vault: unknown auth method %q", a.Method)
}

func (s *Store) loginAt(ctx context.Context, path string, body map[string]any) error {
	// No token goes with a login request. A clone sends it, so that calls
	// running on the store meanwhile keep the token they have.
	c, err := s.client.Clone()
	if err != nil {
		return fmt.Errorf("vault: login at auth/%s: %w", path, err)
	}
	c.ClearToken()
	out, err := c.Logical().WriteWithContext(ctx, "auth/"+path+"/login", body)
	if err != nil {
		return fmt.Errorf("vault: login at auth/%s: %s", path, describe(err))
	}
	if out == nil || out.Auth == nil || out.Auth.ClientToken == "" {
		return fmt.Errorf("vault: login at auth/%s returned no token", path)
	}
	s.client.SetToken(out.Auth.ClientToken)
	return nil
}

// readCredentialFile reads a token or secret id, without its trailing
// newline.
func readCredentialFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Name implements providers.Store.
func (*Store) Name() string { return "vault" }

// Close implements providers.Store; the client holds nothing to release.
func (*Store) Close() error { return nil }

// stagingPath is the path of secretID's pending versions.
func (s *Store) stagingPath(secretID string) string { return s.opts.pendingPrefix() + "/" + secretID }

// main is what the secret's path holds, from its metadata.
type main struct {
	exists   bool
	current  int // current_version, whether or not it is readable
	versions map[int]vaultapi.KVVersionMetadata
	custom   map[string]any
}

func (m main) readable(k int) bool {
	v, ok := m.versions[k]
	return k > 0 && ok && v.DeletionTime.IsZero() && !v.Destroyed
}

// currentVersion is the latest version when it is readable, else 0.
func (m main) currentVersion() int {
	if m.readable(m.current) {
		return m.current
	}
	return 0
}

// previousVersion is the version before the latest when it is readable,
// else 0.
func (m main) previousVersion() int {
	if m.current > 1 && m.readable(m.current-1) {
		return m.current - 1
	}
	return 0
}

// record is swarmkey's record of version k: the staging version it was
// promoted from and its token.
func record(custom map[string]any, k int) (id, token string, ok bool) {
	raw, _ := custom[recordPrefix+strconv.Itoa(k)].(string)
	id, token, _ = strings.Cut(raw, " ")
	if !strings.HasPrefix(id, "p") {
		return "", "", false
	}
	return id, token, true
}

func (m main) idOf(k int) (id, token string) {
	if id, token, ok := record(m.custom, k); ok {
		return id, token
	}
	return "v" + strconv.Itoa(k), ""
}

// recorded reports whether a record names staging version id.
func (m main) recorded(id string) bool {
	for key, raw := range m.custom {
		if s, ok := raw.(string); ok && strings.HasPrefix(key, recordPrefix) && strings.HasPrefix(s, id+" ") {
			return true
		}
	}
	return false
}

func (m main) created(k int) time.Time { return m.versions[k].CreatedTime.UTC() }

func (s *Store) readMain(ctx context.Context, secretID string) (main, error) {
	md, err := s.kv.GetMetadata(ctx, secretID)
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return main{}, nil
	}
	if err != nil {
		return main{}, s.translate(secretID, "read metadata", secretID, err, nil)
	}
	m := main{exists: true, current: md.CurrentVersion, custom: md.CustomMetadata, versions: map[int]vaultapi.KVVersionMetadata{}}
	for k, v := range md.Versions {
		n, err := strconv.Atoi(k)
		if err == nil {
			m.versions[n] = v
		}
	}
	return m, nil
}

// staging is the latest version of the staging path.
type staging struct {
	exists   bool
	n        int // its number, 0 when the path has none
	readable bool
	token    string
	doc      secret.Secret
	created  time.Time
}

func (p staging) id() string { return "p" + strconv.Itoa(p.n) }

func (s *Store) readStaging(ctx context.Context, secretID string) (staging, error) {
	kvs, err := s.kv.Get(ctx, s.stagingPath(secretID))
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return staging{}, nil
	}
	if err != nil {
		return staging{}, s.translate(secretID, "read pending", s.stagingPath(secretID), err, nil)
	}
	p := staging{exists: true}
	if kvs.VersionMetadata != nil {
		p.n = kvs.VersionMetadata.Version
		p.created = kvs.VersionMetadata.CreatedTime.UTC()
	}
	if kvs.Data == nil {
		return p, nil
	}
	p.readable = true
	p.token, _ = kvs.Data[fieldToken].(string)
	if doc, ok := kvs.Data[fieldDocument].(string); ok {
		p.doc = secret.FromString(doc)
	} else {
		// Another tool wrote the document itself: its data is the value.
		p.doc, err = encodeObject(kvs.Data)
		if err != nil {
			return staging{}, fmt.Errorf("vault secret %q: pending version %s: %w", secretID, p.id(), err)
		}
	}
	return p, nil
}

// pending reports whether p is a pending version: readable and not
// promoted (no record names it).
func (p staging) pending(m main) bool { return p.readable && !m.recorded(p.id()) }

// onCurrent reports whether p is readable and is the current version (the
// state a promote that stopped before its last call leaves).
func (p staging) onCurrent(m main) bool {
	cur := m.currentVersion()
	if !p.readable || cur == 0 {
		return false
	}
	id, _ := m.idOf(cur)
	return id == p.id()
}

// Get returns the version that holds stage, with its value. The Stages of
// the returned version name the stage asked for; List reports them all.
func (s *Store) Get(ctx context.Context, secretID string, stage providers.Stage) (providers.Version, error) {
	switch stage {
	case providers.StageCurrent:
		// One read, as a reader's `vault kv get`: the latest version.
		kvs, err := s.kv.Get(ctx, secretID)
		if errors.Is(err, vaultapi.ErrSecretNotFound) {
			return providers.Version{}, fmt.Errorf("vault secret %q: get current: %w: no secret at %s/data/%s", secretID, providers.ErrNotFound, s.opts.mount(), secretID)
		}
		if err != nil {
			return providers.Version{}, s.translate(secretID, "read", secretID, err, nil)
		}
		if kvs.Data == nil || kvs.VersionMetadata == nil {
			return providers.Version{}, fmt.Errorf("vault secret %q: get current: %w: the latest version is deleted", secretID, providers.ErrNotFound)
		}
		k := kvs.VersionMetadata.Version
		id, token := main{custom: kvs.CustomMetadata}.idOf(k)
		value, err := encodeObject(kvs.Data)
		if err != nil {
			return providers.Version{}, fmt.Errorf("vault secret %q: version %d: %w", secretID, k, err)
		}
		return providers.Version{ID: id, Token: token, Stages: []providers.Stage{providers.StageCurrent},
			Created: kvs.VersionMetadata.CreatedTime.UTC(), Value: value}, nil
	case providers.StagePrevious:
		m, err := s.readMain(ctx, secretID)
		if err != nil {
			return providers.Version{}, err
		}
		k := m.previousVersion()
		if k == 0 {
			return providers.Version{}, fmt.Errorf("vault secret %q: get previous: %w: no readable version before the latest", secretID, providers.ErrNotFound)
		}
		kvs, err := s.kv.GetVersion(ctx, secretID, k)
		if err != nil && !errors.Is(err, vaultapi.ErrSecretNotFound) {
			return providers.Version{}, s.translate(secretID, "read version "+strconv.Itoa(k), secretID, err, nil)
		}
		if err != nil || kvs.Data == nil {
			return providers.Version{}, fmt.Errorf("vault secret %q: get previous: %w: version %d was deleted", secretID, providers.ErrNotFound, k)
		}
		id, token := m.idOf(k)
		value, err := encodeObject(kvs.Data)
		if err != nil {
			return providers.Version{}, fmt.Errorf("vault secret %q: version %d: %w", secretID, k, err)
		}
		return providers.Version{ID: id, Token: token, Stages: []providers.Stage{providers.StagePrevious}, Created: m.created(k), Value: value}, nil
	case providers.StagePending:
		p, err := s.readStaging(ctx, secretID)
		if err != nil {
			return providers.Version{}, err
		}
		if !p.readable {
			return providers.Version{}, fmt.Errorf("vault secret %q: get pending: %w: no pending version", secretID, providers.ErrNotFound)
		}
		m, err := s.readMain(ctx, secretID)
		if err != nil {
			return providers.Version{}, err
		}
		if !p.pending(m) {
			return providers.Version{}, fmt.Errorf("vault secret %q: get pending: %w: staging version %s was promoted already: no pending version", secretID, providers.ErrNotFound, p.id())
		}
		return providers.Version{ID: p.id(), Token: p.token, Stages: []providers.Stage{providers.StagePending}, Created: p.created, Value: p.doc}, nil
	}
	return providers.Version{}, fmt.Errorf("vault secret %q: get: unknown stage %q (want current, pending or previous)", secretID, stage)
}

// List returns the versions that hold a stage, newest first: pending, then
// current, then previous.
func (s *Store) List(ctx context.Context, secretID string) ([]providers.Version, error) {
	m, p, err := s.read(ctx, secretID)
	if err != nil {
		return nil, err
	}
	return s.staged(m, p), nil
}

// read reads both paths; ErrNotFound when neither exists. The staging
// path is read first: a promote writes the secret's path before it deletes
// the staging version, so a promote that runs between the two reads shows
// as its pending version promoted, never as a pending version gone missing.
func (s *Store) read(ctx context.Context, secretID string) (main, staging, error) {
	p, err := s.readStaging(ctx, secretID)
	if err != nil {
		return main{}, staging{}, err
	}
	m, err := s.readMain(ctx, secretID)
	if err != nil {
		return main{}, staging{}, err
	}
	if !m.exists && !p.exists {
		return main{}, staging{}, fmt.Errorf("vault secret %q: %w: no secret at %s/data/%s", secretID, providers.ErrNotFound, s.opts.mount(), secretID)
	}
	return m, p, nil
}

func (s *Store) staged(m main, p staging) []providers.Version {
	var out []providers.Version
	if p.pending(m) {
		out = append(out, providers.Version{ID: p.id(), Token: p.token, Stages: []providers.Stage{providers.StagePending}, Created: p.created})
	}
	if k := m.currentVersion(); k != 0 {
		id, token := m.idOf(k)
		v := providers.Version{ID: id, Token: token, Stages: []providers.Stage{providers.StageCurrent}, Created: m.created(k)}
		if p.onCurrent(m) {
			v.Stages = append(v.Stages, providers.StagePending)
		}
		out = append(out, v)
	}
	if k := m.previousVersion(); k != 0 {
		id, token := m.idOf(k)
		out = append(out, providers.Version{ID: id, Token: token, Stages: []providers.Stage{providers.StagePrevious}, Created: m.created(k)})
	}
	return out
}

// stagesOf is the stages of version id in the layout m, p.
func (s *Store) stagesOf(m main, p staging, id string) []providers.Stage {
	for _, v := range s.staged(m, p) {
		if v.ID == id {
			return v.Stages
		}
	}
	return nil
}

// PutPending writes {"swarmkey_token": token, "document": value} as a new
// version of the staging path, with cas = the staging path's latest
// version, so that two writers cannot both succeed.
//
// Before it writes it reads both paths: a pending version of token is a
// retry (nil when its document equals value, ErrConflict when not); a
// pending version of another token is ErrConflict; token's version already
// promoted (current or previous) is a retry after the promote, answered the
// same way. A staging version on the current version is not in the way.
func (s *Store) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	if err := checkToken(secretID, "put pending", token); err != nil {
		return providers.Version{}, err
	}
	if _, err := decodeObject(value); err != nil {
		return providers.Version{}, fmt.Errorf("vault secret %q: put pending: %w", secretID, err)
	}
	if strings.HasPrefix(secretID+"/", s.opts.pendingPrefix()+"/") {
		return providers.Version{}, fmt.Errorf("vault secret %q: put pending: the path is inside pending_prefix %q, where swarmkey keeps pending versions: choose another path", secretID, s.opts.pendingPrefix())
	}
	m, p, err := s.read(ctx, secretID)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return providers.Version{}, err
	}
	if !m.exists && !s.opts.Create {
		return providers.Version{}, fmt.Errorf("vault secret %q: put pending: %w: no secret at %s/data/%s: create it (vault kv put) or set create: true in stores.vault", secretID, providers.ErrNotFound, s.opts.mount(), secretID)
	}
	if v, done, err := s.existing(ctx, secretID, token, value, m, p); done || err != nil {
		return v, err
	}
	if s.testHookBeforeWrite != nil {
		s.testHookBeforeWrite()
	}
	out, err := s.kv.Put(ctx, s.stagingPath(secretID),
		map[string]any{fieldToken: token, fieldDocument: value.RevealString()}, vaultapi.WithCheckAndSet(p.n))
	if err != nil {
		if !isCASMismatch(err) {
			return providers.Version{}, s.translate(secretID, "write pending", s.stagingPath(secretID), err, &value)
		}
		// Another writer wrote the staging path since it was read, or an
		// earlier attempt of this very call did and the client retried it.
		m2, p2, rerr := s.read(ctx, secretID)
		if rerr != nil {
			return providers.Version{}, rerr
		}
		if v, done, err := s.existing(ctx, secretID, token, value, m2, p2); done || err != nil {
			return v, err
		}
		return providers.Version{}, fmt.Errorf("vault secret %q: put pending: %w: another writer wrote %s/data/%s at the same time (check-and-set failed)", secretID, providers.ErrConflict, s.opts.mount(), s.stagingPath(secretID))
	}
	v := providers.Version{Token: token, Stages: []providers.Stage{providers.StagePending}}
	if out.VersionMetadata != nil {
		v.ID = "p" + strconv.Itoa(out.VersionMetadata.Version)
		v.Created = out.VersionMetadata.CreatedTime.UTC()
	}
	return v, nil
}

// existing answers PutPending from what is there already: done when token's
// version exists with value (or a conflict was found).
func (s *Store) existing(ctx context.Context, secretID, token string, value secret.Secret, m main, p staging) (providers.Version, bool, error) {
	if p.readable && p.token == token && (p.pending(m) || p.onCurrent(m)) {
		if !value.Equal(p.doc) {
			return providers.Version{}, true, fmt.Errorf("vault secret %q: put pending: %w: token %s wrote version %s with another value", secretID, providers.ErrConflict, token, p.id())
		}
		return providers.Version{ID: p.id(), Token: token, Stages: s.stagesOf(m, p, p.id()), Created: p.created}, true, nil
	}
	if p.pending(m) {
		return providers.Version{}, true, fmt.Errorf("vault secret %q: put pending: %w: version %s of another writer (token %q) is pending: reconcile or discard it first (swarmkey resolve)", secretID, providers.ErrConflict, p.id(), p.token)
	}
	for _, k := range []int{m.currentVersion(), m.previousVersion()} {
		id, owner := m.idOf(k)
		if k == 0 || owner != token {
			continue
		}
		kvs, err := s.kv.GetVersion(ctx, secretID, k)
		if err != nil {
			return providers.Version{}, true, s.translate(secretID, "read version "+strconv.Itoa(k), secretID, err, nil)
		}
		if !sameObject(kvs.Data, value) {
			return providers.Version{}, true, fmt.Errorf("vault secret %q: put pending: %w: token %s wrote version %s with another value", secretID, providers.ErrConflict, token, id)
		}
		return providers.Version{ID: id, Token: token, Stages: s.stagesOf(m, p, id), Created: m.created(k)}, true, nil
	}
	return providers.Version{}, false, nil
}

// Promote copies the pending version's document to the secret's path with
// cas = its current version, records the new version as the staging
// version's in custom metadata, and soft-deletes the staging version.
func (s *Store) Promote(ctx context.Context, secretID string, req providers.PromoteRequest) error {
	what := req.Token
	if req.PendingID != "" {
		what = "version " + req.PendingID
	}
	if req.Token == "" && req.PendingID == "" {
		return fmt.Errorf("vault secret %q: promote: neither a token nor a pending version id given", secretID)
	}
	m, p, err := s.read(ctx, secretID)
	if err != nil {
		return err
	}
	matches := func(id, token string) bool {
		return (req.PendingID == "" || id == req.PendingID) && (req.Token == "" || token == req.Token)
	}
	// Current already: a retry. Complete a promote that stopped before
	// its staging version was deleted.
	if k := m.currentVersion(); k != 0 {
		if id, token := m.idOf(k); matches(id, token) {
			if p.onCurrent(m) {
				return s.deleteStaging(ctx, secretID, p.n)
			}
			return nil
		}
	}
	if k := m.previousVersion(); k != 0 {
		if id, token := m.idOf(k); matches(id, token) {
			return fmt.Errorf("vault secret %q: promote %s: %w: that version is previous already: a later rotation was promoted over it", secretID, what, providers.ErrConflict)
		}
	}
	if !p.pending(m) {
		return fmt.Errorf("vault secret %q: promote %s: %w: no pending version (discarded, or never written)", secretID, what, providers.ErrNotFound)
	}
	if !matches(p.id(), p.token) {
		if req.PendingID != "" {
			return fmt.Errorf("vault secret %q: promote %s: %w: the pending version is %s (token %q)", secretID, what, providers.ErrConflict, p.id(), p.token)
		}
		return fmt.Errorf("vault secret %q: promote %s: %w: no pending version of this token (the pending one is %s)", secretID, what, providers.ErrNotFound, p.id())
	}
	cur := m.currentVersion()
	curID := ""
	if cur != 0 {
		curID, _ = m.idOf(cur)
	}
	if landed, err := s.landedUnrecorded(ctx, secretID, req, m, p); err != nil || landed {
		if err != nil {
			return err
		}
		return s.completePromote(ctx, secretID, m.current, p)
	}
	if curID != req.ExpectedCurrentID {
		return fmt.Errorf("vault secret %q: promote %s: %w: current is %s, expected %s: the current version moved since the rotation read it", secretID, what, providers.ErrConflict, orNone(curID), orNone(req.ExpectedCurrentID))
	}
	data, err := decodeObject(p.doc)
	if err != nil {
		return fmt.Errorf("vault secret %q: promote %s: pending version %s: %w", secretID, what, p.id(), err)
	}
	if s.testHookBeforeWrite != nil {
		s.testHookBeforeWrite()
	}
	out, err := s.kv.Put(ctx, secretID, data, vaultapi.WithCheckAndSet(m.current))
	written := m.current + 1
	switch {
	case err == nil && out.VersionMetadata != nil:
		written = out.VersionMetadata.Version
	case err != nil && isCASMismatch(err):
		// Another writer changed the secret, or an earlier attempt of this
		// very write landed and the client retried it: the latest version
		// tells.
		kvs, rerr := s.kv.Get(ctx, secretID)
		if rerr != nil || kvs.VersionMetadata == nil || kvs.VersionMetadata.Version != written || !sameObject(kvs.Data, p.doc) {
			return fmt.Errorf("vault secret %q: promote %s: %w: another writer wrote %s/data/%s since it was read (check-and-set failed)", secretID, what, providers.ErrConflict, s.opts.mount(), secretID)
		}
	case err != nil:
		return s.translate(secretID, "promote "+what, secretID, err, &p.doc)
	}
	if s.testHookStopAfterData {
		return nil
	}
	return s.completePromote(ctx, secretID, written, p)
}

// landedUnrecorded reports whether the latest version of the secret's path
// is the pending version's document written by a promote that stopped
// before its record: no record names it, the version before it is the
// expected current, and its data is the pending document.
func (s *Store) landedUnrecorded(ctx context.Context, secretID string, req providers.PromoteRequest, m main, p staging) (bool, error) {
	k := m.currentVersion()
	if k == 0 {
		return false, nil
	}
	if _, _, ok := record(m.custom, k); ok {
		return false, nil
	}
	before := ""
	if m.readable(k - 1) {
		before, _ = m.idOf(k - 1)
	}
	if before != req.ExpectedCurrentID {
		return false, nil
	}
	kvs, err := s.kv.GetVersion(ctx, secretID, k)
	if err != nil {
		return false, s.translate(secretID, "read version "+strconv.Itoa(k), secretID, err, nil)
	}
	return sameObject(kvs.Data, p.doc), nil
}

// completePromote records version k as staging version p's, drops the
// records of versions that no stage names any more, and soft-deletes p.
func (s *Store) completePromote(ctx context.Context, secretID string, k int, p staging) error {
	custom := map[string]any{recordPrefix + strconv.Itoa(k): p.id() + " " + p.token}
	if m, err := s.readMain(ctx, secretID); err == nil {
		for key := range m.custom {
			if n, ok := strings.CutPrefix(key, recordPrefix); ok {
				if j, err := strconv.Atoi(n); err == nil && j < k-1 {
					custom[key] = nil
				}
			}
		}
	}
	if err := s.kv.PatchMetadata(ctx, secretID, vaultapi.KVMetadataPatchInput{CustomMetadata: custom}); err != nil {
		return s.translate(secretID, "record promoted version "+strconv.Itoa(k), secretID, err, nil)
	}
	return s.deleteStaging(ctx, secretID, p.n)
}

func (s *Store) deleteStaging(ctx context.Context, secretID string, n int) error {
	if err := s.kv.DeleteVersions(ctx, s.stagingPath(secretID), []int{n}); err != nil {
		return s.translate(secretID, "delete pending version p"+strconv.Itoa(n), s.stagingPath(secretID), err, nil)
	}
	return nil
}

// DiscardPending soft-deletes the pending version of token, so its value can
// no longer be read. Nil when token holds no pending version.
func (s *Store) DiscardPending(ctx context.Context, secretID, token string) error {
	if err := checkToken(secretID, "discard pending", token); err != nil {
		return err
	}
	return s.discard(ctx, secretID, func(p staging) bool { return p.token == token })
}

// DiscardPendingVersion soft-deletes the pending version versionID ("p<N>"),
// whoever wrote it. Nil when it is not the pending version.
func (s *Store) DiscardPendingVersion(ctx context.Context, secretID, versionID string) error {
	return s.discard(ctx, secretID, func(p staging) bool { return p.id() == versionID })
}

func (s *Store) discard(ctx context.Context, secretID string, match func(staging) bool) error {
	p, err := s.readStaging(ctx, secretID)
	if err != nil || !p.readable || !match(p) {
		return err
	}
	m, err := s.readMain(ctx, secretID)
	if err != nil {
		return err
	}
	if !p.pending(m) {
		return nil
	}
	return s.deleteStaging(ctx, secretID, p.n)
}

// RetireUnstaged soft-deletes (req.Destroy: destroys) the versions of both
// paths that no stage names: versions of the secret's path older than
// previous, and staging versions other than the pending one.
func (s *Store) RetireUnstaged(ctx context.Context, secretID string, req providers.RetireRequest) error {
	m, p, err := s.read(ctx, secretID)
	if err != nil {
		return err
	}
	keep := map[int]bool{m.currentVersion(): true, m.previousVersion(): true}
	if err := s.retire(ctx, secretID, secretID, m.versions, keep, req.Destroy); err != nil {
		return err
	}
	if !p.exists {
		return nil
	}
	staged, err := s.readMain(ctx, s.stagingPath(secretID))
	if err != nil {
		return err
	}
	keepStaging := map[int]bool{}
	if p.pending(m) || p.onCurrent(m) {
		keepStaging[p.n] = true
	}
	return s.retire(ctx, secretID, s.stagingPath(secretID), staged.versions, keepStaging, req.Destroy)
}

func (s *Store) retire(ctx context.Context, secretID, path string, versions map[int]vaultapi.KVVersionMetadata, keep map[int]bool, destroy bool) error {
	var ns []int
	for n, v := range versions {
		if keep[n] || v.Destroyed || (!destroy && !v.DeletionTime.IsZero()) {
			continue
		}
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return nil
	}
	sort.Ints(ns)
	call, op := s.kv.DeleteVersions, "delete"
	if destroy {
		call, op = s.kv.Destroy, "destroy"
	}
	if err := call(ctx, path, ns); err != nil {
		return s.translate(secretID, fmt.Sprintf("%s unstaged versions %v", op, ns), path, err, nil)
	}
	return nil
}

func checkToken(secretID, op, token string) error {
	if token == "" {
		return fmt.Errorf("vault secret %q: %s: empty rotation token", secretID, op)
	}
	if len(token) > maxTokenLen || strings.ContainsAny(token, " \n") {
		return fmt.Errorf("vault secret %q: %s: the rotation token must be at most %d bytes without spaces", secretID, op, maxTokenLen)
	}
	return nil
}

// decodeObject parses a secret document as the JSON object KV v2 stores,
// numbers kept as written.
func decodeObject(doc secret.Secret) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc.Reveal()))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, errors.New("the secret document is not a JSON object, which is what a KV v2 version holds")
	}
	return m, nil
}

// encodeObject is the document of KV data: compact JSON, keys sorted, no
// HTML escaping.
func encodeObject(data map[string]any) (secret.Secret, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return secret.Secret{}, errors.New("the version's data cannot be encoded as JSON")
	}
	return secret.New(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// sameObject reports whether KV data holds the JSON object doc.
func sameObject(data map[string]any, doc secret.Secret) bool {
	want, err := decodeObject(doc)
	if err != nil || data == nil {
		return false
	}
	return reflect.DeepEqual(normalize(data), normalize(want))
}

// normalize round-trips v through JSON so that numbers compare as written.
func normalize(v map[string]any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out)
	return out
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}
