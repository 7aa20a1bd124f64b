package lease_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/secret"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(data), mode))
		require.NoError(t, os.Chmod(path, mode))
		return path
	}
	tok, err := lease.ReadTokenFile(write("ok", " swk_abc\n", 0o400))
	require.NoError(t, err)
	require.Equal(t, "swk_abc", tok.RevealString())

	open := write("open", "swk_abc\n", 0o640)
	empty := write("empty", "\n", 0o600)
	for path, want := range map[string]string{
		open:                       "--token-file " + open + " has mode 0640, which lets group or others read the token; run: chmod 600 " + open,
		empty:                      "--token-file " + empty + " is empty: put the token `swarmkey tokens add` printed in it",
		filepath.Join(dir, "none"): "--token-file " + filepath.Join(dir, "none") + ": no such file or directory",
	} {
		_, err := lease.ReadTokenFile(path)
		var input *lease.InputError
		require.ErrorAs(t, err, &input, path)
		require.EqualError(t, err, want)
		require.NotContains(t, err.Error(), "swk_abc")
	}
}

// TestAPISourceClassifiesAnswers checks what each answer of the API becomes:
// a 4xx an InputError, a 410 heartbeat ErrGone, a 5xx neither.
func TestAPISourceClassifiesAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/leases":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"token \"reports\" is not granted policy \"checkout-db\""}`))
		case "POST /v1/leases/l-1/heartbeat":
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"error":"lease l-1 expired"}`))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"the state database is unreachable; try again"}`))
		}
	}))
	defer srv.Close()
	src, err := lease.NewAPISource(srv.URL, secret.FromString("swk_token"))
	require.NoError(t, err)
	defer src.Close()
	ctx := context.Background()
	var input *lease.InputError

	_, err = src.Start(ctx, lease.Request{Run: "r", Uses: []string{"checkout-db"}, TTL: time.Second})
	require.ErrorAs(t, err, &input)
	require.EqualError(t, err, "API "+srv.URL+`: take the lease: token "reports" is not granted policy "checkout-db"`)

	err = src.Heartbeat(ctx, "l-1")
	require.ErrorIs(t, err, lease.ErrGone)

	err = src.Read(ctx, []string{"checkout-db", "reports"}, "l-1", "r", func(policy string, _ map[string]secret.Secret) error {
		t.Errorf("policy %q was given although its read failed", policy)
		return nil
	})
	require.NotErrorAs(t, err, &input)
	require.EqualError(t, err, "API "+srv.URL+`: read policies "checkout-db", "reports": the state database is unreachable; try again (HTTP 503)`)
	err = src.Heartbeat(ctx, "l-2")
	require.NotErrorIs(t, err, lease.ErrGone)

	_, err = lease.NewAPISource("http://192.0.2.1:8080", secret.FromString("swk_token"))
	require.ErrorAs(t, err, &input, "clear-text http beyond loopback")
	require.Contains(t, err.Error(), "--api ")
}

// A server older than POST /v1/credentials answers it 404 "no such
// endpoint"; Read then reads each policy with GET …/credential, and still
// gives them in order, or the first refusal in that order.
func TestAPISourceReadsAnOlderServerOnePolicyAtATime(t *testing.T) {
	var asked requestLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.add(r)
		w.Header().Set("Content-Type", "application/json")
		policy, underPolicies := strings.CutPrefix(r.URL.Path, "/v1/policies/")
		policy, isCredential := strings.CutSuffix(policy, "/credential")
		isRead := underPolicies && isCredential
		switch {
		case r.Method == http.MethodGet && isRead && policy == "locked":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"token \"ci\" is not granted policy \"locked\""}`))
		case r.Method == http.MethodGet && isRead:
			_, _ = fmt.Fprintf(w, `{"policy":%q,"version":"v1","fields":{"password":"pw-of-%s","port":5432}}`, policy, policy)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = fmt.Fprintf(w, `{"error":"no such endpoint: %s %s"}`, r.Method, r.URL.Path)
		}
	}))
	defer srv.Close()
	src, err := lease.NewAPISource(srv.URL, secret.FromString("swk_token"))
	require.NoError(t, err)
	defer src.Close()
	ctx := context.Background()

	names := []string{"c", "a", "b"}
	var given []string
	err = src.Read(ctx, names, "l-1", "r", func(policy string, fields map[string]secret.Secret) error {
		require.Equal(t, "pw-of-"+policy, fields["password"].RevealString())
		require.Equal(t, "5432", fields["port"].RevealString())
		given = append(given, policy)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, names, given, "in the order asked")
	first := asked.list()
	require.Equal(t, "POST /v1/credentials", first[0], "the one request first")
	require.ElementsMatch(t, []string{"GET /v1/policies/c/credential", "GET /v1/policies/a/credential", "GET /v1/policies/b/credential"}, first[1:])

	given = nil
	err = src.Read(ctx, []string{"a", "locked", "b"}, "l-1", "r", func(policy string, _ map[string]secret.Secret) error {
		given = append(given, policy)
		return nil
	})
	var input *lease.InputError
	require.ErrorAs(t, err, &input)
	require.EqualError(t, err, "API "+srv.URL+`: read policy "locked": token "ci" is not granted policy "locked"`)
	require.Equal(t, []string{"a"}, given, "nothing from the refused policy on")
}

// A newer server reads every policy in one request: no GET per policy.
func TestAPISourceReadsSeveralPoliciesInOneRequest(t *testing.T) {
	var asked requestLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.add(r)
		var req struct {
			Policies []string `json:"policies"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("request body: %v", err)
		}
		w.Header().Set("Content-Type", "application/json")
		var body []string
		for _, p := range req.Policies {
			body = append(body, fmt.Sprintf(`{"policy":%q,"version":"v1","fields":{"password":"pw-of-%s"}}`, p, p))
		}
		_, _ = fmt.Fprintf(w, `{"credentials":[%s]}`, strings.Join(body, ","))
	}))
	defer srv.Close()
	src, err := lease.NewAPISource(srv.URL, secret.FromString("swk_token"))
	require.NoError(t, err)
	defer src.Close()

	var given []string
	require.NoError(t, src.Read(context.Background(), []string{"b", "a"}, "l-1", "r", func(policy string, fields map[string]secret.Secret) error {
		require.Equal(t, "pw-of-"+policy, fields["password"].RevealString())
		given = append(given, policy)
		return nil
	}))
	require.Equal(t, []string{"b", "a"}, given)
	require.Equal(t, []string{"POST /v1/credentials"}, asked.list())
}

// requestLog records the requests a test server got, as "METHOD PATH";
// the server's handlers run on goroutines of their own.
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Method+" "+r.URL.Path)
}

func (l *requestLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}
