package httpkey_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/keyservice"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/httpkey"
)

// api is one test's key service on 127.0.0.1 and what the tests need to
// check its output: its admin secrets and a log buffer.
type api struct {
	t       *testing.T
	svc     *keyservice.Service
	srv     *httptest.Server
	token   string
	logs    *syncBuffer
	outputs []string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{t: t, token: "admin-token-" + randomHex(t, 16), logs: &syncBuffer{}}
	a.svc = keyservice.New(a.token)
	a.svc.AdminUser, a.svc.AdminPassword = "admin", "basic-pw-"+randomHex(t, 16)
	a.srv = httptest.NewServer(a.svc.Handler())
	t.Cleanup(a.srv.Close)
	return a
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// options is the plain configuration: keys work from issue on, no enable,
// disable or list.
func (a *api) options(policy string) httpkey.Options {
	return httpkey.Options{
		Policy:        policy,
		AllowInsecure: true,
		Auth:          httpkey.Auth{Type: httpkey.AuthBearer, Secret: secret.FromString(a.token)},
		Issue: httpkey.IssueRequest{
			Request: httpkey.Request{
				URL:     a.srv.URL + "/v1/keys",
				Headers: map[string]string{"Content-Type": "application/json"},
				Body:    `{"name": {{json .KeyName}}}`,
			},
			Key: "/key", ID: "/id", Expiry: "/expires_at",
		},
		Verify: httpkey.VerifyRequest{
			Request: httpkey.Request{URL: a.srv.URL + "/v1/whoami"},
			KeyIn:   httpkey.KeyInHeader, KeyName: "X-API-Key",
			JSONPointer: "/key_id", Expect: "{{.KeyID}}",
		},
		Revoke:  httpkey.Request{URL: a.srv.URL + "/v1/keys/{{pathescape .KeyID}}"},
		Timeout: 5 * time.Second, MaxBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// fullOptions adds enable, disable and list: keys are issued disabled and
// the target mirrors the postgres target's two-slot behaviour.
func (a *api) fullOptions(policy string) httpkey.Options {
	o := a.options(policy)
	o.Issue.Body = `{"name": {{json .KeyName}}, "enabled": false}`
	o.Enable = &httpkey.Request{URL: a.srv.URL + "/v1/keys/{{.KeyID}}/enable"}
	o.Disable = &httpkey.Request{URL: a.srv.URL + "/v1/keys/{{.KeyID}}/disable"}
	o.List = &httpkey.ListRequest{Request: httpkey.Request{URL: a.srv.URL + "/v1/keys"}, Items: "/keys", ID: "/id", Name: "/name"}
	return o
}

func (a *api) target(o httpkey.Options) *httpkey.Target {
	a.t.Helper()
	tg, err := httpkey.New(o)
	require.NoError(a.t, err)
	a.t.Cleanup(func() { _ = tg.Close() })
	return tg
}

// record keeps err's text in every form a log line might use.
func (a *api) record(err error) error {
	if err != nil {
		a.outputs = append(a.outputs, err.Error(), fmt.Sprintf("%v | %+v | %#v | %q", err, err, err, err))
	}
	return err
}

// secrets are every value that must not appear: the admin token, the
// basic-auth password and every key the service issued.
func (a *api) secrets() []string {
	s := []string{a.token, a.svc.AdminPassword}
	for _, k := range a.svc.Keys() {
		s = append(s, k.Value)
	}
	return s
}

// requireNoSecrets checks the recorded outputs, the target's log and extra.
func (a *api) requireNoSecrets(extra ...string) {
	a.t.Helper()
	outs := append(append([]string{a.logs.String()}, a.outputs...), extra...)
	for i, out := range outs {
		for j, s := range a.secrets() {
			if strings.Contains(out, s) {
				a.t.Errorf("output %d contains secret %d: %s", i, j, strings.ReplaceAll(out, s, secret.Redacted))
			}
		}
	}
}

func keyID(t *testing.T, doc secret.Secret) string {
	t.Helper()
	var d struct {
		KeyID string `json:"key_id"`
	}
	require.NoError(t, json.Unmarshal(doc.Reveal(), &d))
	return d.KeyID
}

func apiKey(t *testing.T, doc secret.Secret) string {
	t.Helper()
	var d struct {
		APIKey string `json:"api_key"`
	}
	if json.Unmarshal(doc.Reveal(), &d) != nil || d.APIKey == "" {
		t.Fatalf("not an API-key document")
	}
	return d.APIKey
}
