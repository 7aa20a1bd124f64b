package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/api/client"
	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// The values of the test secrets: none may appear in an audit row or a log.
var values = []string{"pw-Zq81-checkout", "key-Yx42-reports", "pw-Wv07-billing"}

type bundle struct {
	// handler is the API's handler, url a test server in front of it.
	handler http.Handler
	db      *state.DB
	pg      *pgtest.Database
	url     string
	tokens  map[string]secret.Secret // by token name
	logs    *syncBuffer
	// put makes doc the current version of secret id in the store.
	put func(id, doc string)
}

// syncBuffer collects the server's log; handlers write from their own
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setup serves the API with a memory store of four policies and three
// tokens (ci, perf, ops); options change the server's Options.
func setup(t *testing.T, options ...func(*api.Options)) *bundle {
	t.Helper()
	ctx := context.Background()
	pg := pgtest.New(t)
	db, err := state.Open(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	_, err = db.Migrate(ctx)
	require.NoError(t, err)

	st := memstore.New(memstore.NewBackend())
	put := func(id, doc string) {
		var current string
		if v, err := st.Get(ctx, id, providers.StageCurrent); err == nil {
			current = v.ID
		}
		token := uuid.NewString()
		_, err := st.PutPending(ctx, id, token, secret.FromString(doc))
		require.NoError(t, err)
		require.NoError(t, st.Promote(ctx, id, providers.PromoteRequest{Token: token, ExpectedCurrentID: current}))
	}
	put("checkout-db", `{"engine":"postgres","username":"loadtest","password":"`+values[0]+`","port":5432}`)
	put("reports-api", `{"api_key":"`+values[1]+`","key_id":"k1"}`)
	put("billing", `{"username":"bill","password":"`+values[2]+`"}`)
	put("aws-marker", `{"swarmkey":"no credential yet"}`)
	policy := func(name string, tags ...string) api.Entry {
		return api.Entry{Name: name, Tags: tags, Read: func(ctx context.Context) (providers.Version, error) {
			return api.ReadCurrent(ctx, st, name)
		}}
	}
	catalog := api.Catalog{
		"checkout-db": policy("checkout-db", "perf"),
		"reports-api": policy("reports-api", "perf"),
		"billing":     policy("billing"),
		"fresh":       policy("fresh"),
		"aws-marker":  policy("aws-marker"),
	}

	b := &bundle{db: db, pg: pg, tokens: map[string]secret.Secret{}, logs: &syncBuffer{}, put: put}
	reg := prometheus.NewRegistry()
	opts := api.Options{
		DB: db, Policies: func() api.Catalog { return catalog },
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range options {
		o(&opts)
	}
	srv, err := api.New(opts)
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b.url = ts.URL
	b.handler = srv

	for _, req := range []state.TokenRequest{
		{Name: "ci", Scope: state.ScopeRunner, Grants: []string{"checkout-db", "fresh", "aws-marker", "not-configured"}},
		{Name: "perf", Scope: state.ScopeRunner, Grants: []string{"tag:perf"}},
		{Name: "ops", Scope: state.ScopeAdmin},
	} {
		req.CreatedBy = "test"
		_, tok, err := db.AddToken(ctx, req)
		require.NoError(t, err)
		b.tokens[req.Name] = tok
	}
	return b
}

func (b *bundle) client(t *testing.T, name string) *client.Client {
	t.Helper()
	c, err := client.New(b.url, b.tokens[name])
	require.NoError(t, err)
	return c
}

// raw sends a request with an optional bearer token and returns the status
// and the error message.
func (b *bundle) raw(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	if e.Error == "" {
		return resp.StatusCode, string(data)
	}
	return resp.StatusCode, e.Error
}

func status(t *testing.T, err error) int {
	t.Helper()
	var e *client.Error
	require.True(t, errors.As(err, &e), "an API error, got %v", err)
	return e.Status
}

func TestRunnersReadOnlyGrantedPoliciesAndReadsAreAudited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ci, perf, ops := b.client(t, "ci"), b.client(t, "perf"), b.client(t, "ops")

	cred, err := ci.Credential(ctx, "checkout-db")
	require.NoError(t, err)
	require.Equal(t, "checkout-db", cred.Policy)
	require.NotEmpty(t, cred.Version)
	require.Equal(t, values[0], cred.Fields["password"].RevealString())
	require.Equal(t, "5432", cred.Fields["port"].RevealString(), "a number field as its JSON text")
	require.Equal(t, "loadtest", cred.Fields["username"].RevealString())

	// Through a tag grant.
	cred, err = perf.Credential(ctx, "reports-api")
	require.NoError(t, err)
	require.Equal(t, values[1], cred.Fields["api_key"].RevealString())

	for _, tc := range []struct {
		client *client.Client
		policy string
		status int
		want   string
	}{
		{ci, "billing", 403, `token "ci" is not granted policy "billing"`},
		{ci, "reports-api", 403, "not granted"},
		{perf, "billing", 403, "not granted"},
		{ci, "no-such-policy", 403, "not granted"}, // ungranted: existence is not revealed
		{ci, "not-configured", 404, "not configured"},
		{ci, "fresh", 404, "no current credential yet"},
		{ci, "aws-marker", 404, "no current credential yet"},
		{ops, "checkout-db", 403, "scope admin"},
	} {
		_, err := tc.client.Credential(ctx, tc.policy)
		require.Equal(t, tc.status, status(t, err), tc.policy)
		require.ErrorContains(t, err, tc.want, tc.policy)
	}

	// Admin endpoints are the admin's.
	code, msg := b.raw(t, "GET", "/metrics", b.tokens["perf"].RevealString(), "")
	require.Equal(t, 403, code, msg)
	code, msg = b.raw(t, "GET", "/metrics", b.tokens["ops"].RevealString(), "")
	require.Equal(t, 200, code, msg)
	require.Contains(t, msg, `swarmkey_api_credential_reads_total{policy="checkout-db"} 1`)
	code, msg = b.raw(t, "GET", "/metrics", "", "")
	require.Equal(t, 401, code)
	require.Contains(t, msg, "missing bearer token")
	code, _ = b.raw(t, "GET", "/v1/policies/checkout-db/credential", "swk_guessed", "")
	require.Equal(t, 401, code)

	// Health needs no token.
	code, _ = b.raw(t, "GET", "/healthz", "", "")
	require.Equal(t, 200, code)
	code, _ = b.raw(t, "GET", "/readyz", "", "")
	require.Equal(t, 200, code)

	entries, err := b.db.Audit(ctx, "", 100)
	require.NoError(t, err)
	var reads []state.AuditEntry
	for _, e := range entries {
		if e.Action == "credential.read" {
			reads = append(reads, e)
		}
	}
	require.Len(t, reads, 2, "one row per first read of a token, policy and version, none for refusals")
	require.Equal(t, "token:ci", reads[0].Actor)
	require.Equal(t, "checkout-db", reads[0].Policy)
	require.NotEmpty(t, reads[0].Detail["version"])
	require.Equal(t, "token:perf", reads[1].Actor)
	requireAbsent(t, b, entries)
}

// requireAbsent checks that no value and no token appears in the audit log
// or in the server's log.
func requireAbsent(t *testing.T, b *bundle, entries []state.AuditEntry) {
	t.Helper()
	dump, err := json.Marshal(entries)
	require.NoError(t, err)
	text := string(dump) + b.logs.String()
	for _, v := range values {
		require.NotContains(t, text, v)
	}
	for _, tok := range b.tokens {
		require.NotContains(t, text, tok.RevealString())
	}
}

func TestExpiredAndRevokedTokensAreRefusedSayingWhich(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	_, err := b.pg.Pool.Exec(ctx, `UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE name = 'ci'`)
	require.NoError(t, err)
	_, err = b.client(t, "ci").Credential(ctx, "checkout-db")
	require.Equal(t, 401, status(t, err))
	require.ErrorContains(t, err, `token "ci" expired at`)
	require.ErrorContains(t, err, "ask an operator for a new token")

	_, err = b.db.RevokeToken(ctx, "perf", "test")
	require.NoError(t, err)
	_, err = b.client(t, "perf").StartLease(ctx, "soak", []string{"tag:perf"}, "host:1", time.Minute)
	require.Equal(t, 401, status(t, err))
	require.ErrorContains(t, err, `token "perf" was revoked at`)

	entries, err := b.db.Audit(ctx, "", 100)
	require.NoError(t, err)
	require.Empty(t, entries, "a refused token reads and leases nothing")
}

func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, tok := range b.tokens {
		var hits int
		require.NoError(t, b.pg.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM tokens t WHERE t::text LIKE '%' || $1 || '%'`, tok.RevealString()).Scan(&hits))
		require.Zero(t, hits, name)
	}
}

func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	perf, ci := b.client(t, "perf"), b.client(t, "ci")

	l, err := perf.StartLease(ctx, "nightly-soak", []string{"tag:perf"}, "locust-1:4242", 30*time.Second)
	require.NoError(t, err)
	require.NotEmpty(t, l.ID)
	require.Equal(t, 30, l.TTLSeconds)
	require.WithinDuration(t, time.Now().Add(30*time.Second), l.ExpiresAt, 5*time.Second)

	// The daemon sees it: the calendar holds a live lease on both policies.
	busy, err := b.db.Calendar(ctx, time.Now(), func(uses []string) []string { return uses })
	require.NoError(t, err)
	require.Len(t, busy.Leases, 1)
	require.Equal(t, []string{"tag:perf"}, busy.Leases[0].Policies)

	hb, err := perf.Heartbeat(ctx, l.ID)
	require.NoError(t, err)
	require.Equal(t, l.ID, hb.ID)
	require.False(t, hb.ExpiresAt.Before(l.ExpiresAt))

	// Another runner's token cannot touch it.
	_, err = ci.Heartbeat(ctx, l.ID)
	require.Equal(t, 404, status(t, err))
	require.Equal(t, 404, status(t, ci.EndLease(ctx, l.ID)))

	require.NoError(t, perf.EndLease(ctx, l.ID))
	require.NoError(t, perf.EndLease(ctx, l.ID), "ending twice is fine")
	_, err = perf.Heartbeat(ctx, l.ID)
	require.Equal(t, 410, status(t, err))
	require.ErrorContains(t, err, "has ended")

	// A lease whose heartbeats stopped has expired for good.
	l2, err := ci.StartLease(ctx, "smoke", []string{"checkout-db"}, "locust-2:1", 5*time.Second)
	require.NoError(t, err)
	_, err = b.pg.Pool.Exec(ctx, `UPDATE leases SET last_heartbeat = last_heartbeat - interval '1 minute' WHERE id = $1`, l2.ID)
	require.NoError(t, err)
	_, err = ci.Heartbeat(ctx, l2.ID)
	require.Equal(t, 410, status(t, err))
	require.ErrorContains(t, err, "take a new lease and read the credential again")

	// Refusals.
	for _, tc := range []struct {
		client *client.Client
		uses   []string
		status int
		want   string
	}{
		{ci, []string{"checkout-db", "billing"}, 403, `not granted policy "billing"`},
		{ci, []string{"tag:perf"}, 403, `"tag:perf": token "ci" is not granted this tag, nor every policy that has it`},
		{perf, []string{"tag:nobody"}, 403, `"tag:nobody": token "perf" is not granted this tag`},
		{ci, []string{"not-configured"}, 404, "no such policy"},
		{ci, []string{}, 400, "uses: missing"},
		{ci, []string{"checkout db"}, 403, "not granted"},
	} {
		_, err := tc.client.StartLease(ctx, "r", tc.uses, "h:1", time.Minute)
		require.Equal(t, tc.status, status(t, err), "%v", tc.uses)
		require.ErrorContains(t, err, tc.want, "%v", tc.uses)
	}
	_, err = ci.StartLease(ctx, "r", []string{"checkout-db"}, "h:1", 2*time.Hour)
	require.Equal(t, 400, status(t, err))
	require.ErrorContains(t, err, "ttl_seconds 7200")
	_, err = ci.StartLease(ctx, "r", []string{"checkout-db"}, "", time.Minute)
	require.Equal(t, 400, status(t, err))
	require.ErrorContains(t, err, "holder")
	_, err = ci.StartLease(ctx, "a run", []string{"checkout-db"}, "h:1", time.Minute)
	require.Equal(t, 400, status(t, err))
	require.ErrorContains(t, err, `run "a run"`)
	code, msg := b.raw(t, "POST", "/v1/leases", b.tokens["ci"].RevealString(), `{"run":"r","uses":["checkout-db"],"holder":"h","ttl":30}`)
	require.Equal(t, 400, code)
	require.Contains(t, msg, `unknown field "ttl"`)
	code, _ = b.raw(t, "POST", "/v1/leases", b.tokens["ops"].RevealString(), `{"run":"r","uses":["checkout-db"],"holder":"h"}`)
	require.Equal(t, 403, code, "an admin token takes no lease")

	entries, err := b.db.Audit(ctx, "", 100)
	require.NoError(t, err)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	require.Equal(t, []string{"token:perf lease.started", "token:perf lease.ended", "token:perf lease.ended", "token:ci lease.started"}, actions)
}

func TestListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	_, err := api.Listen("tcp:0.0.0.0:0", "", "")
	require.ErrorContains(t, err, "needs TLS")
	_, err = api.Listen("tcp::0", "", "")
	require.ErrorContains(t, err, "needs TLS")
	_, err = api.Listen("tcp:127.0.0.1:0", "cert.pem", "")
	require.ErrorContains(t, err, "both")
	_, err = api.Listen("tcp:127.0.0.1:0", filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing.key"))
	require.ErrorContains(t, err, "missing.pem")
	_, err = api.Listen("127.0.0.1:0", "", "")
	require.ErrorContains(t, err, "use unix:/path/to.sock or tcp:HOST:PORT")
	_, err = api.Listen("unix:"+filepath.Join(dir, "nope", "s.sock"), "", "")
	require.ErrorIs(t, err, api.ErrSocketFolderMissing)

	ln, err := api.Listen("tcp:127.0.0.1:0", "", "")
	require.NoError(t, err)
	ln.Close()

	sock := filepath.Join(dir, "swarmkey.sock")
	ln, err = api.Listen("unix:"+sock, "", "")
	require.NoError(t, err)
	info, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o660), info.Mode().Perm())
	go func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}(ln)
	_, err = api.Listen("unix:"+sock, "", "")
	require.ErrorIs(t, err, api.ErrSocketInUse)
	ln.Close()

	// A socket file nobody answers on (a killed process) is replaced.
	stale, err := net.Listen("unix", sock)
	require.NoError(t, err)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err = api.Listen("unix:"+sock, "", "")
	require.NoError(t, err)
	ln.Close()
	_, err = os.Stat(sock)
	require.True(t, os.IsNotExist(err), "closing removes the socket")
}

func TestClientOverUnixSocketAndEndpointRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := api.Listen("unix:"+sock, "", "")
	require.NoError(t, err)
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Forward to the test server, to reuse its handler.
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, b.url+r.URL.Path, r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	go func() { _ = proxy.Serve(ln) }()
	t.Cleanup(func() { _ = proxy.Close() })

	c, err := client.New("unix:"+sock, b.tokens["ci"])
	require.NoError(t, err)
	cred, err := c.Credential(context.Background(), "checkout-db")
	require.NoError(t, err)
	require.Equal(t, values[0], cred.Fields["password"].RevealString())

	_, err = client.New("http://10.1.2.3:8443", b.tokens["ci"])
	require.ErrorContains(t, err, "clear text")
	_, err = client.New("ftp://x", b.tokens["ci"])
	require.Error(t, err)
	_, err = client.New("http://127.0.0.1:1", secret.Secret{})
	require.Error(t, err)

	c, err = client.New("http://127.0.0.1:1", b.tokens["ci"])
	require.NoError(t, err)
	_, err = c.Credential(context.Background(), "checkout-db")
	require.ErrorIs(t, err, client.ErrUnreachable)
	require.NotContains(t, err.Error(), b.tokens["ci"].RevealString())
}

func TestListenServesTLSOnAnyInterface(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarmkey"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))

	ln, err := api.Listen("tcp:0.0.0.0:0", certFile, keyFile)
	require.NoError(t, err, "any interface is fine with TLS")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	roots := x509.NewCertPool()
	roots.AddCert(must(x509.ParseCertificate(der)))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err == nil {
		resp.Body.Close()
		require.Equal(t, 400, resp.StatusCode, "plain HTTP is not served")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
