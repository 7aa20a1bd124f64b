package main_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostile is what an API or a database can put in a key id or an error: a
// clear-screen escape, and a newline followed by what would pass for a line
// of swarmkey's own.
const hostile = "\x1b[2J\nFORGED level=INFO msg=rotated"

// escaped is hostile as swarmkey prints it.
const escaped = `\x1b[2J\nFORGED level=INFO msg=rotated`

// requireNoRaw fails when out holds a raw escape, or a line that the
// hostile text started.
func requireNoRaw(t *testing.T, what, out string) {
	t.Helper()
	require.NotContains(t, out, "\x1b", "%s: a raw escape: %q", what, out)
	for _, line := range strings.Split(out, "\n") {
		require.False(t, strings.HasPrefix(line, "FORGED"), "%s: a forged line: %q", what, out)
	}
}

// keyIssuer is an admin API that issues keys whose ids carry hostile text.
type keyIssuer struct {
	mu sync.Mutex
	n  int
}

func (k *keyIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/keys":
		k.mu.Lock()
		k.n++
		id := fmt.Sprintf("key-%d%s", k.n, hostile)
		k.mu.Unlock()
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "key": hex.EncodeToString(b)})
	case r.Method == http.MethodDelete, r.URL.Path == "/whoami":
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

// Text from outside swarmkey, an API's key id and a database's error
// message, reaches rotate's, status's and history's output and the log with
// its control characters escaped.
func TestOutsideTextIsPrintedEscaped(t *testing.T) {
	t.Parallel()
	// The database's error: the canary raises it, with the escape and the
	// newline made by the server (E'' strings), not written in the config.
	c := newCLI(t, "single", `DO $$BEGIN RAISE EXCEPTION E'canary says \x1b[2J\nFORGED level=INFO msg=rotated'; END$$`)
	api := httptest.NewServer(&keyIssuer{})
	t.Cleanup(api.Close)
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, string(cfg)+fmt.Sprintf(`  - name: keys
    strategy: single
    secret: keys/api
    schedule: "@daily"
    canary: { attempts: 1, interval: 10ms }
    target:
      http:
        allow_insecure: true
        issue: { url: %[1]s/keys, key: /key, id: /id }
        verify: { url: %[1]s/whoami, key_in: header, key_name: X-API-Key }
        revoke: { method: DELETE, url: "%[1]s/keys/{{pathescape .KeyID}}" }
`, api.URL))

	// The key id, through rotate's steps, its last line and its log.
	for _, format := range []string{"text", "json"} {
		r := c.run("rotate", "keys", "--local", "--log-level", "info", "--log-format", format)
		require.Equal(t, 0, r.code, r.stdout+r.stderr)
		requireNoRaw(t, "rotate", r.stdout+r.stderr)
		require.Regexp(t, `(?m)^  create +\S+  key-[0-9]+`+regexpQuote(escaped)+`$`, r.stdout)
		require.Regexp(t, `(?m)^rotated keys: key-[0-9]+`+regexpQuote(escaped)+` is current`, r.stdout)
		require.Contains(t, r.stderr, "rotation succeeded")
	}

	// The database's error, through rotate's error line and its log.
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	requireNoRaw(t, "failed rotate", r.stdout+r.stderr)
	require.Contains(t, r.stderr, `canary says `+escaped)
	require.Regexp(t, `(?m)^swarmkey: .*canary says `+regexpQuote(escaped), r.stderr)
	require.Regexp(t, `(?m)^time=.* level=ERROR msg="rotation failed" .*canary says `+regexpQuote(escaped), r.stderr)

	// Both, read back from the state database.
	r = c.run("status")
	require.Equal(t, 0, r.code, r.stderr)
	requireNoRaw(t, "status", r.stdout+r.stderr)
	require.Regexp(t, `(?m)^keys +single +file:keys/api +\S+ +key-2`+regexpQuote(escaped)+` +\S+ +succeeded$`, r.stdout)
	require.Regexp(t, `(?m)^checkout-db +single .* failed: .*canary says `+regexpQuote(escaped), r.stdout)
	require.Equal(t, 3, strings.Count(r.stdout, "\n"), "a header and two policies:\n%s", r.stdout)

	r = c.run("history", "keys")
	require.Equal(t, 0, r.code, r.stderr)
	requireNoRaw(t, "history", r.stdout+r.stderr)
	require.Contains(t, r.stdout, "key-1"+escaped)
	require.Contains(t, r.stdout, "key-2"+escaped)
	require.Equal(t, 3, strings.Count(r.stdout, "\n"), "a header and two rotations:\n%s", r.stdout)

	r = c.run("history", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	requireNoRaw(t, "history", r.stdout+r.stderr)
	require.Contains(t, r.stdout, "rolled back: ")
	require.Contains(t, r.stdout, "canary says "+escaped)
	require.Equal(t, 2, strings.Count(r.stdout, "\n"), "a header and one rotation:\n%s", r.stdout)
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
