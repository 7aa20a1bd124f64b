// Package azurefake is an in-process model of the secrets of one Azure Key
// Vault, served to the real azsecrets client through the SDK's own fake
// server (azsecrets/fake): the client builds its real requests, runs its
// real pipeline (retries, the Key Vault authentication challenge, which the
// fake package answers itself) and decodes real responses; only the vault
// behind it is this model.
//
// The model keeps what swarmkey's azure store relies on, as Key Vault's
// documentation describes it (quoted per handler):
//
//   - every Set Secret adds a new version, with a 32-hex-digit id, that
//     becomes the secret's latest version;
//   - Get Secret without a version returns the latest version, and refuses a
//     disabled version (latest or named) with 403 instead of its value;
//   - tags, content type and the enabled attribute belong to each version
//     and are changed by Update Secret Properties on that version, which
//     works on disabled versions too (it is how one re-enables them);
//   - the versions list returns the properties of every version, disabled
//     ones included, never a value, in pages of at most 25, in no order
//     that follows creation (the service lists by version id);
//   - times are whole seconds (the REST API's NumericDateTime), so two
//     versions made in one second cannot be ordered by their created time;
//   - no request is conditional: Key Vault's secrets API has no ETag or
//     If-Match, so the last write wins.
package azurefake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"
	"github.com/stretchr/testify/require"
)

// URL is the vault's address as the store's vault_url gives it.
const URL = "https://swarmkey-test.vault.azure.net"

// Error codes the model answers with. Key Vault answers a read of a
// disabled version with 403, top-level code "Forbidden" and inner code
// "SecretDisabled" ("Operation get is not allowed on a disabled secret.");
// the SDK's fake server can set only one code, so the model gives the inner
// one, which is the one that tells a disabled version from a missing
// permission. The store reads both places.
const (
	CodeSecretNotFound = "SecretNotFound"
	CodeSecretDisabled = "SecretDisabled"
	CodeBadParameter   = "BadParameter"
)

// Limits of Key Vault that the model enforces ("Azure Key Vault service
// limits" and "About secrets": a value is at most 25 KB, at most 15 tags a
// version, a tag's name at most 512 and its value at most 256 characters;
// "Object identifiers": names are 1 to 127 of 0-9, a-z, A-Z and -).
const (
	maxValueBytes = 25 * 1024
	maxTags       = 15
	maxTagName    = 512
	maxTagValue   = 256
	pageSize      = 25
)

var validName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

type version struct {
	id          string
	seq         int // creation order, which the service keeps and does not show
	value       string
	contentType *string
	tags        map[string]string
	enabled     bool
	created     time.Time
	updated     time.Time
}

// Vault is one fake key vault. It is safe for concurrent use by any number
// of clients.
type Vault struct {
	mu      sync.Mutex
	secrets map[string][]*version // by name, in creation order
	seq     int
	calls   []string
	// beforeCall, when set, runs before each call is served (outside the
	// lock), with the call's name: another writer between two calls.
	beforeCall func(call string)
	// refusals answer the calls whose name starts with their prefix with
	// an error instead of serving them.
	refusals []refusal
}

type refusal struct {
	prefix string
	status int
	code   string
}

// New returns an empty vault.
func New() *Vault { return &Vault{secrets: map[string][]*version{}} }

// Client returns a new client of the vault, authenticated by the SDK's fake
// credential, as a second process would have one.
func (v *Vault) Client(tb testing.TB) *azsecrets.Client {
	tb.Helper()
	c, err := azsecrets.NewClient(URL, &azfake.TokenCredential{}, v.ClientOptions())
	require.NoError(tb, err)
	return c
}

// ClientOptions connects a client to the vault.
func (v *Vault) ClientOptions() *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(v.server())}}
}

// Calls returns the calls served since the last Calls, as
// "SetSecret NAME", "GetSecret NAME VERSION" …, and forgets them.
func (v *Vault) Calls() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := v.calls
	v.calls = nil
	return out
}

// BeforeCall sets (nil: clears) a function run before each call is served.
func (v *Vault) BeforeCall(f func(call string)) {
	v.mu.Lock()
	v.beforeCall = f
	v.mu.Unlock()
}

// Refuse answers every later call whose name starts with prefix
// ("SetSecret checkout-db") with status and code, as Key Vault answers a
// caller without permission (403 Forbidden) or a throttled one (429).
func (v *Vault) Refuse(prefix string, status int, code string) {
	v.mu.Lock()
	v.refusals = append(v.refusals, refusal{prefix: prefix, status: status, code: code})
	v.mu.Unlock()
}

// lock records call, runs the before-call hook and takes the lock. It
// returns the refusal that answers call, if any.
func (v *Vault) lock(call string) (status int, code string) {
	v.mu.Lock()
	hook := v.beforeCall
	v.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	v.mu.Lock()
	v.calls = append(v.calls, call)
	for _, r := range v.refusals {
		if strings.HasPrefix(call, r.prefix) {
			return r.status, r.code
		}
	}
	return 0, ""
}

// Versions returns the ids of name's versions in creation order, for tests
// that look behind the store.
func (v *Vault) Versions(name string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ids []string
	for _, ver := range v.secrets[name] {
		ids = append(ids, ver.id)
	}
	return ids
}

func newVersionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// now is whole seconds: Key Vault's times are NumericDateTime, seconds
// since the epoch.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func (v *Vault) secretID(name, id string) *azsecrets.ID {
	return to.Ptr(azsecrets.ID(fmt.Sprintf("%s/secrets/%s/%s", URL, name, id)))
}

func (v *Vault) attributes(ver *version) *azsecrets.SecretAttributes {
	return &azsecrets.SecretAttributes{
		Enabled:         to.Ptr(ver.enabled),
		Created:         to.Ptr(ver.created),
		Updated:         to.Ptr(ver.updated),
		RecoverableDays: to.Ptr[int32](90),
		RecoveryLevel:   to.Ptr("Recoverable+Purgeable"),
	}
}

func tagPtrs(tags map[string]string) map[string]*string {
	if len(tags) == 0 {
		return nil
	}
	out := make(map[string]*string, len(tags))
	for k, val := range tags {
		out[k] = to.Ptr(val)
	}
	return out
}

func (v *Vault) bundle(name string, ver *version, withValue bool) azsecrets.Secret {
	s := azsecrets.Secret{
		ID:          v.secretID(name, ver.id),
		Attributes:  v.attributes(ver),
		ContentType: ver.contentType,
		Tags:        tagPtrs(ver.tags),
	}
	if withValue {
		s.Value = to.Ptr(ver.value)
	}
	return s
}

// find returns name's version id ("" for the latest); nil when there is
// none.
func (v *Vault) find(name, id string) *version {
	versions := v.secrets[name]
	if len(versions) == 0 {
		return nil
	}
	if id == "" {
		return versions[len(versions)-1]
	}
	for _, ver := range versions {
		if ver.id == id {
			return ver
		}
	}
	return nil
}

func checkTags(tags map[string]*string) (map[string]string, bool) {
	if len(tags) > maxTags {
		return nil, false
	}
	out := make(map[string]string, len(tags))
	for k, p := range tags {
		val := ""
		if p != nil {
			val = *p
		}
		if len(k) == 0 || len(k) > maxTagName || len([]rune(val)) > maxTagValue {
			return nil, false
		}
		out[k] = val
	}
	return out, true
}

func (v *Vault) server() *fake.Server {
	return &fake.Server{
		// "Sets a secret in a specified key vault. The SET operation adds a
		// secret to the Azure Key Vault. If the named secret already
		// exists, Azure Key Vault creates a new version of that secret."
		// (REST API, Secrets - Set Secret.) The new version is enabled
		// unless the request's attributes say otherwise.
		SetSecret: func(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (resp azfake.Responder[azsecrets.SetSecretResponse], errResp azfake.ErrorResponder) {
			status, code := v.lock("SetSecret " + name)
			defer v.mu.Unlock()
			if status != 0 {
				errResp.SetResponseError(status, code)
				return
			}
			tags, ok := checkTags(p.Tags)
			if !validName.MatchString(name) || p.Value == nil || len(*p.Value) > maxValueBytes || !ok {
				errResp.SetResponseError(http.StatusBadRequest, CodeBadParameter)
				return
			}
			v.seq++
			t := now()
			ver := &version{id: newVersionID(), seq: v.seq, value: *p.Value, contentType: p.ContentType, tags: tags, enabled: true, created: t, updated: t}
			if p.SecretAttributes != nil && p.SecretAttributes.Enabled != nil {
				ver.enabled = *p.SecretAttributes.Enabled
			}
			v.secrets[name] = append(v.secrets[name], ver)
			resp.SetResponse(http.StatusOK, azsecrets.SetSecretResponse{Secret: v.bundle(name, ver, true)}, nil)
			return
		},
		// "The GET operation is applicable to any secret stored in Azure
		// Key Vault." "version: The version of the secret. This URI
		// fragment is optional. If not specified, the latest version of
		// the secret is returned." (Secrets - Get Secret.) A disabled
		// version is refused with 403 ("Operation get is not allowed on a
		// disabled secret."), also when it is the latest: readers of the
		// secret then get that error, not an older version.
		GetSecret: func(_ context.Context, name, id string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			status, code := v.lock("GetSecret " + name + " " + id)
			defer v.mu.Unlock()
			if status != 0 {
				errResp.SetResponseError(status, code)
				return
			}
			ver := v.find(name, id)
			switch {
			case ver == nil:
				errResp.SetResponseError(http.StatusNotFound, CodeSecretNotFound)
			case !ver.enabled:
				errResp.SetResponseError(http.StatusForbidden, CodeSecretDisabled)
			default:
				resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: v.bundle(name, ver, true)}, nil)
			}
			return
		},
		// "The UPDATE operation changes specified attributes of an existing
		// stored secret. Attributes that are not specified in the request
		// are left unchanged. The value of a secret itself cannot be
		// changed." (Secrets - Update Secret.) Tags, when given, replace
		// the version's tags. It applies to disabled versions (enabling one
		// is such an update).
		UpdateSecretProperties: func(_ context.Context, name, id string, p azsecrets.UpdateSecretPropertiesParameters, _ *azsecrets.UpdateSecretPropertiesOptions) (resp azfake.Responder[azsecrets.UpdateSecretPropertiesResponse], errResp azfake.ErrorResponder) {
			status, code := v.lock("UpdateSecretProperties " + name + " " + id)
			defer v.mu.Unlock()
			if status != 0 {
				errResp.SetResponseError(status, code)
				return
			}
			ver := v.find(name, id)
			if ver == nil {
				errResp.SetResponseError(http.StatusNotFound, CodeSecretNotFound)
				return
			}
			if p.Tags != nil {
				tags, ok := checkTags(p.Tags)
				if !ok {
					errResp.SetResponseError(http.StatusBadRequest, CodeBadParameter)
					return
				}
				ver.tags = tags
			}
			if p.ContentType != nil {
				ver.contentType = p.ContentType
			}
			if p.SecretAttributes != nil && p.SecretAttributes.Enabled != nil {
				ver.enabled = *p.SecretAttributes.Enabled
			}
			ver.updated = now()
			resp.SetResponse(http.StatusOK, azsecrets.UpdateSecretPropertiesResponse{Secret: v.bundle(name, ver, false)}, nil)
			return
		},
		// "List all versions of the specified secret. The full secret
		// identifier and attributes are provided in the response. No values
		// are returned for the secrets." (Secrets - Get Secret Versions;
		// maxresults: "Maximum number of results to return in a page ...
		// the service will return up to 25 results".) Disabled versions are
		// listed with enabled=false. A name without versions lists nothing.
		NewListSecretPropertiesVersionsPager: func(name string, _ *azsecrets.ListSecretPropertiesVersionsOptions) (resp azfake.PagerResponder[azsecrets.ListSecretPropertiesVersionsResponse]) {
			status, code := v.lock("ListSecretPropertiesVersions " + name)
			defer v.mu.Unlock()
			if status != 0 {
				resp.AddResponseError(status, code)
				return
			}
			versions := append([]*version(nil), v.secrets[name]...)
			sort.Slice(versions, func(i, j int) bool { return versions[i].id < versions[j].id })
			var props []*azsecrets.SecretProperties
			for _, ver := range versions {
				b := v.bundle(name, ver, false)
				props = append(props, &azsecrets.SecretProperties{ID: b.ID, Attributes: b.Attributes, ContentType: b.ContentType, Tags: b.Tags})
			}
			for len(props) > pageSize {
				resp.AddPage(http.StatusOK, azsecrets.ListSecretPropertiesVersionsResponse{SecretPropertiesListResult: azsecrets.SecretPropertiesListResult{Value: props[:pageSize]}}, nil)
				props = props[pageSize:]
			}
			resp.AddPage(http.StatusOK, azsecrets.ListSecretPropertiesVersionsResponse{SecretPropertiesListResult: azsecrets.SecretPropertiesListResult{Value: props}}, nil)
			return
		},
	}
}
