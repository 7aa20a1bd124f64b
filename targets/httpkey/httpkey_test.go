package httpkey_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/keyservice"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

// TestConformance runs the shared target suite, both strategies, against a
// policy with enable, disable and list: the suite expects what the postgres
// target does (a created key does not work before set; set switches off the
// key that loses its place; Restore brings it back).
func TestConformance(t *testing.T) {
	t.Parallel()
	targettest.Run(t, targettest.Harness{
		NewTarget: func(t *testing.T, _ targets.Strategy) targets.Target {
			a := newAPI(t)
			return a.target(a.fullOptions("conformance"))
		},
		Password: func(t *testing.T) secret.Secret {
			return secret.FromString("unused-password-" + randomHex(t, 12))
		},
		SecretOf: apiKey,
	})
}

func create(t *testing.T, tg *httpkey.Target, strategy targets.Strategy, current secret.Secret) (targets.CreateResponse, error) {
	return tg.Create(t.Context(), targets.CreateRequest{
		Token: "tok-" + randomHex(t, 8), Strategy: strategy, Current: current, Password: secret.FromString("ignored-password"),
	})
}

// TestCheckBeforeIssue: a current document the target cannot read is
// refused by Check, naming the fields it expects (issue.fields among the
// optional ones), and by Create before the issue request is sent.
func TestCheckBeforeIssue(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	o := a.options("shapes")
	o.Issue.Fields = map[string]string{"key_label": "/name"}
	tg := a.target(o)
	const value = "s3cret-value-of-another-tool"
	for _, doc := range []string{value, `{"token": "` + value + `"}`, `{"api_key": "` + value + `"}`, `{"api_key": "` + value + `", "key_id": 7}`} {
		err := tg.Check(t.Context(), targets.CheckRequest{Strategy: targets.Single, Document: secret.FromString(doc)})
		var unread *targets.UnreadableError
		require.ErrorAs(t, err, &unread)
		require.ErrorContains(t, err, `http target of policy "shapes": check: not an http key document (`)
		require.ErrorContains(t, err, "expected a JSON object with string fields api_key and key_id (key_name, expires_at, previous_key_id, key_label optional)")
		_, err = create(t, tg, targets.Single, secret.FromString(doc))
		require.ErrorAs(t, err, &unread)
		a.record(err)
	}
	require.Zero(t, a.svc.Count(keyservice.OpIssue), "no key was issued")
	a.requireNoSecrets()
	for _, out := range a.outputs {
		require.NotContains(t, out, value)
	}
}

func TestCreateDocument(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	o := a.options("docs")
	o.Issue.Fields = map[string]string{"key_label": "/name"}
	tg := a.target(o)
	first, err := create(t, tg, targets.Alternating, secret.Secret{})
	require.NoError(t, err)
	second, err := create(t, tg, targets.Alternating, first.Pending)
	require.NoError(t, err)

	doc, err := httpkey.ParseDocument(second.Pending, []string{"key_label"})
	require.NoError(t, err)
	require.Equal(t, second.Principal, doc.KeyID)
	require.Equal(t, first.Principal, doc.PreviousKeyID, "previous_key_id names the key that was current")
	require.True(t, strings.HasPrefix(doc.KeyName, "swarmkey-docs-tok-"))
	require.Equal(t, doc.KeyName, doc.Fields["key_label"])
	require.NotEmpty(t, doc.ExpiresAt)
	require.Len(t, a.svc.Valid(), 2, "without enable, issued keys work at once")
	a.requireNoSecrets(first.Principal, second.Principal)
}

// TestIssueRetries: a 429 is retried after its Retry-After; a 500 is not
// retried for a non-idempotent issue, and is with an idempotency header,
// which also makes the retry return the same key.
func TestIssueRetries(t *testing.T) {
	t.Parallel()
	t.Run("429", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		tg := a.target(a.options("p429"))
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 429, RetryAfter: "1", Count: 1})
		start := time.Now()
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.NoError(t, a.record(err))
		require.GreaterOrEqual(t, time.Since(start), time.Second, "waited for Retry-After")
		require.Equal(t, 2, a.svc.Count(keyservice.OpIssue))
		require.Contains(t, a.logs.String(), "retrying request")
	})
	t.Run("500 not idempotent", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		tg := a.target(a.options("p500"))
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 500, Count: 1})
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.Error(t, a.record(err))
		require.Contains(t, err.Error(), `http target of policy "p500": create: issue request POST `)
		require.Contains(t, err.Error(), "HTTP 500")
		require.Contains(t, err.Error(), "not retried: issue is not idempotent")
		require.Equal(t, 1, a.svc.Count(keyservice.OpIssue))
	})
	t.Run("500 idempotency header", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		o := a.options("pidem")
		o.IdempotencyHeader = "Idempotency-Key"
		tg := a.target(o)
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 500, Count: 2})
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.NoError(t, a.record(err))
		require.Equal(t, 3, a.svc.Count(keyservice.OpIssue))
	})
	t.Run("Retry-After too long", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		o := a.options("plong")
		o.MaxRetryAfter = time.Second
		tg := a.target(o)
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 429, RetryAfter: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)})
		start := time.Now()
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.Error(t, a.record(err))
		require.Less(t, time.Since(start), 5*time.Second)
		require.Contains(t, err.Error(), "HTTP 429")
		require.Equal(t, 1, a.svc.Count(keyservice.OpIssue))
	})
	t.Run("429 bounded", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		o := a.options("pbound")
		o.MaxAttempts = 3
		tg := a.target(o)
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 429})
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.Error(t, a.record(err))
		require.Equal(t, 3, a.svc.Count(keyservice.OpIssue))
	})
}

func TestRevokeRetriesAndNotFound(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tg := a.target(a.options("revoke"))
	resp, err := create(t, tg, targets.Single, secret.Secret{})
	require.NoError(t, err)
	a.svc.Inject(keyservice.OpRevoke, keyservice.Fault{Status: 503, Count: 2})
	req := targets.RestoreRequest{Token: "t", Strategy: targets.Single, Pending: resp.Pending}
	require.NoError(t, a.record(tg.Restore(t.Context(), req)))
	require.Empty(t, a.svc.Valid())
	require.Equal(t, 3, a.svc.Count(keyservice.OpRevoke))
	// Already revoked: the 404 counts as revoked.
	require.NoError(t, a.record(tg.Restore(t.Context(), req)))

	// A revoke that keeps failing names the key.
	resp, err = create(t, tg, targets.Single, secret.Secret{})
	require.NoError(t, err)
	a.svc.Inject(keyservice.OpRevoke, keyservice.Fault{Status: 500})
	err = a.record(tg.Restore(t.Context(), targets.RestoreRequest{Token: "t", Strategy: targets.Single, Pending: resp.Pending}))
	require.Error(t, err)
	require.Contains(t, err.Error(), `the pending key "`+resp.Principal+`" could not be revoked`)
	a.requireNoSecrets()
}

func TestRunTimeFailures(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		o := a.options("hang")
		o.Timeout = 200 * time.Millisecond
		o.MaxAttempts = 2
		tg := a.target(o)
		resp, err := create(t, tg, targets.Single, secret.Secret{})
		require.NoError(t, err)
		a.svc.Inject(keyservice.OpWhoami, keyservice.Fault{Hang: 5 * time.Second})
		start := time.Now()
		err = a.record(tg.Verify(t.Context(), targets.VerifyRequest{Credential: resp.Pending, Canary: true}))
		require.Error(t, err)
		require.Contains(t, err.Error(), "timed out after 200ms")
		require.Less(t, time.Since(start), 3*time.Second)
		a.requireNoSecrets()
	})
	t.Run("malformed JSON", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		tg := a.target(a.options("malformed"))
		a.svc.Inject(keyservice.OpIssue, keyservice.Fault{Malformed: true})
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.Error(t, a.record(err))
		require.Contains(t, err.Error(), `http target of policy "malformed": create: issue response: the response is not valid JSON`)
	})
	t.Run("pointer not in the response", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		o := a.options("pointer")
		o.Issue.Key = "/data/key"
		tg := a.target(o)
		_, err := create(t, tg, targets.Single, secret.Secret{})
		require.Error(t, a.record(err))
		require.Contains(t, err.Error(), `http target of policy "pointer": create: issue response: issue.key (JSON pointer /data/key) is not in the response`)
		require.Empty(t, a.svc.Valid(), "the key that could not be read is revoked")
		a.requireNoSecrets()
	})
	t.Run("response too large", func(t *testing.T) {
		t.Parallel()
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"key_id": "` + strings.Repeat("x", 4096) + `"}`))
		}))
		t.Cleanup(big.Close)
		a := newAPI(t)
		o := a.options("big")
		o.MaxResponseBytes = 2048
		o.Verify.URL = big.URL + "/v1/whoami"
		tg := a.target(o)
		resp, err := create(t, tg, targets.Single, secret.Secret{})
		require.NoError(t, err)
		err = a.record(tg.Verify(t.Context(), targets.VerifyRequest{Credential: resp.Pending}))
		require.ErrorContains(t, err, "larger than max_response_bytes (2048)")
	})
	t.Run("redirect to another host", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("the redirect was followed to another host, with X-API-Key present: %v", r.Header.Get("X-API-Key") != "")
		}))
		t.Cleanup(other.Close)
		tg := a.target(a.options("redirect"))
		resp, err := create(t, tg, targets.Single, secret.Secret{})
		require.NoError(t, err)
		// 127.0.0.1 and localhost are different hosts to the client.
		a.svc.RedirectWhoami(strings.Replace(other.URL, "127.0.0.1", "localhost", 1) + "/steal")
		err = a.record(tg.Verify(t.Context(), targets.VerifyRequest{Credential: resp.Pending}))
		require.ErrorContains(t, err, "redirect to another host")
		a.requireNoSecrets()
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t)
		tg := a.target(a.options("cancel"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := tg.Create(ctx, targets.CreateRequest{Token: "x", Strategy: targets.Single})
		require.True(t, errors.Is(err, context.Canceled), "%v", err)
	})
}

// TestNoSecretsInOutputs: the API echoes every credential it received in
// its error bodies; no error or log line of the target may carry one, for
// bearer, header and basic admin auth and every key location.
func TestNoSecretsInOutputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ auth, keyIn string }{
		{httpkey.AuthBearer, httpkey.KeyInHeader},
		{httpkey.AuthBasic, httpkey.KeyInQuery},
		{httpkey.AuthHeader, httpkey.KeyInBasic},
	} {
		t.Run(tc.auth+"/"+tc.keyIn, func(t *testing.T) {
			t.Parallel()
			a := newAPI(t)
			o := a.fullOptions("echo")
			switch tc.auth {
			case httpkey.AuthBasic:
				o.Auth = httpkey.Auth{Type: httpkey.AuthBasic, Username: a.svc.AdminUser, Secret: secret.FromString(a.svc.AdminPassword)}
			case httpkey.AuthHeader:
				// The service takes the bearer token; a header auth with the
				// same value in Authorization proves the scrub of that form.
				o.Auth = httpkey.Auth{Type: httpkey.AuthHeader, Header: "Authorization", Prefix: "Bearer ", Secret: secret.FromString(a.token)}
			}
			o.Verify.KeyIn, o.Verify.KeyName = tc.keyIn, ""
			tg := a.target(o)
			ctx := t.Context()

			cur, err := create(t, tg, targets.Single, secret.Secret{})
			require.NoError(t, err)
			require.NoError(t, tg.Apply(ctx, targets.ApplyRequest{Token: "t", Strategy: targets.Single, Pending: cur.Pending}))
			require.NoError(t, tg.Verify(ctx, targets.VerifyRequest{Credential: cur.Pending, Canary: true}))
			a.svc.EchoCredentials(true)

			// Every admin request fails with the echo.
			for _, op := range []keyservice.Op{keyservice.OpIssue, keyservice.OpEnable, keyservice.OpRevoke, keyservice.OpList, keyservice.OpWhoami} {
				a.svc.Inject(op, keyservice.Fault{Status: 400})
			}
			_, err = create(t, tg, targets.Single, cur.Pending)
			require.Error(t, a.record(err))
			require.Error(t, a.record(tg.Verify(ctx, targets.VerifyRequest{Credential: cur.Pending, Canary: true})))
			require.Error(t, a.record(tg.Apply(ctx, targets.ApplyRequest{Token: "t", Strategy: targets.Single, Pending: cur.Pending})))
			require.Error(t, a.record(tg.Restore(ctx, targets.RestoreRequest{Token: "t", Strategy: targets.Single, Pending: cur.Pending})))
			require.Error(t, a.record(tg.Retire(ctx, targets.RetireRequest{Strategy: targets.Single, Retired: cur.Pending})))
			a.svc.ClearFaults()

			// Real rejections echo too: a revoked key on verify.
			require.NoError(t, tg.Restore(ctx, targets.RestoreRequest{Token: "t", Strategy: targets.Single, Pending: cur.Pending}))
			require.Error(t, a.record(tg.Verify(ctx, targets.VerifyRequest{Credential: cur.Pending, Canary: true})))
			// 429s with retries write log lines.
			a.svc.Inject(keyservice.OpWhoami, keyservice.Fault{Status: 429, RetryAfter: "0", Count: 2})
			require.Error(t, a.record(tg.Verify(ctx, targets.VerifyRequest{Credential: cur.Pending})))
			require.Contains(t, a.logs.String(), "retrying request")
			a.requireNoSecrets()
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tests := []struct {
		name  string
		edit  func(*httpkey.Options)
		field string
		want  string
	}{
		{"unknown template field", func(o *httpkey.Options) { o.Issue.Body = `{"name": "{{.KeyNme}}"}` },
			"issue.body", "can't evaluate field KeyNme"},
		{"unknown var", func(o *httpkey.Options) { o.Revoke.URL = a.srv.URL + "/{{.Vars.team}}/{{.KeyID}}" },
			"revoke.url", `map has no entry for key "team"`},
		{"key in issue", func(o *httpkey.Options) { o.Issue.Body = `{{key}}` },
			"issue.body", "the key function is not available"},
		{"non-https", func(o *httpkey.Options) { o.AllowInsecure = false },
			"issue.url", "use https://, or set allow_insecure: true"},
		{"unknown key location", func(o *httpkey.Options) { o.Verify.KeyIn = "cookie" },
			"verify.key_in", `unknown key location "cookie": use header, query or basic`},
		{"bad pointer", func(o *httpkey.Options) { o.Issue.ID = "id" },
			"issue.id", "is not a JSON pointer"},
		{"id is the key", func(o *httpkey.Options) { o.Issue.ID = "/key" },
			"issue.id", "must differ from issue.key"},
		{"disable without enable", func(o *httpkey.Options) { o.Disable = &httpkey.Request{URL: a.srv.URL} },
			"disable", "needs enable"},
		{"unknown auth", func(o *httpkey.Options) { o.Auth.Type = "digest" },
			"auth.type", `unknown auth type "digest"`},
		{"credentials in URL", func(o *httpkey.Options) { o.Verify.URL = strings.Replace(a.srv.URL, "//", "//u:p@", 1) },
			"verify.url", "credentials in the URL are not allowed"},
		{"huge responses", func(o *httpkey.Options) { o.MaxResponseBytes = httpkey.MaxMaxResponseBytes + 1 },
			"max_response_bytes", "must be between 1024 and 67108864 (64 MiB)"},
		{"no admin secret", func(o *httpkey.Options) { o.Auth.Secret = secret.Secret{} },
			"auth.secret", "required: the admin token, header value or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := a.options("bad")
			tt.edit(&o)
			_, err := httpkey.New(o)
			var ve *httpkey.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Contains(t, err.Error(), `http target of policy "bad"`)
			found := false
			for _, p := range ve.Problems {
				found = found || (p.Field == tt.field && strings.Contains(p.Msg, tt.want))
			}
			require.True(t, found, "want %s: %s in %v", tt.field, tt.want, err)
		})
	}
}

// TestTLS: an https API whose certificate a ca_file vouches for works
// without allow_insecure; without the CA the handshake fails.
func TestTLS(t *testing.T) {
	t.Parallel()
	svc := keyservice.New("tls-admin-token-0123456789")
	srv := httptest.NewTLSServer(svc.Handler())
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	o := httpkey.Options{
		Policy: "tls",
		Auth:   httpkey.Auth{Type: httpkey.AuthBearer, Secret: secret.FromString("tls-admin-token-0123456789")},
		Issue: httpkey.IssueRequest{Request: httpkey.Request{URL: srv.URL + "/v1/keys", Body: `{"name": {{json .KeyName}}}`},
			Key: "/key", ID: "/id"},
		Verify: httpkey.VerifyRequest{Request: httpkey.Request{URL: srv.URL + "/v1/whoami"}, KeyIn: httpkey.KeyInHeader},
		Revoke: httpkey.Request{URL: srv.URL + "/v1/keys/{{.KeyID}}"},
		TLS:    httpkey.TLSOptions{CAFile: caFile, MinVersion: "1.3"},
	}
	tg, err := httpkey.New(o)
	require.NoError(t, err)
	resp, err := create(t, tg, targets.Single, secret.Secret{})
	require.NoError(t, err)
	require.NoError(t, tg.Verify(t.Context(), targets.VerifyRequest{Credential: resp.Pending, Canary: true}))

	o.TLS.CAFile = ""
	untrusting, err := httpkey.New(o)
	require.NoError(t, err)
	_, err = create(t, untrusting, targets.Single, secret.Secret{})
	require.ErrorContains(t, err, "certificate")
}

// TestMethodsAreUpperCased: a policy file may say "post"; the wire needs
// POST, and the caller's optional requests are left as they were.
func TestMethodsAreUpperCased(t *testing.T) {
	t.Parallel()
	enable := &httpkey.Request{Method: "put", URL: "https://k.example.com/keys/{{.KeyID}}/on"}
	o := httpkey.Options{
		Policy: "p",
		Issue:  httpkey.IssueRequest{Request: httpkey.Request{Method: "post"}},
		Verify: httpkey.VerifyRequest{Request: httpkey.Request{Method: "Get"}},
		Enable: enable,
	}.WithDefaults()
	require.Equal(t, "POST", o.Issue.Method)
	require.Equal(t, "GET", o.Verify.Method)
	require.Equal(t, "DELETE", o.Revoke.Method)
	require.Equal(t, "PUT", o.Enable.Method)
	require.Equal(t, "put", enable.Method)
}
