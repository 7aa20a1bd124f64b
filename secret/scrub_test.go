package secret_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
)

func TestScrubberTextRemovesValues(t *testing.T) {
	t.Parallel()
	sc := secret.NewScrubber(secret.FromString("hunter2"), secret.Secret{})
	require.Equal(t, "failed for password [REDACTED] and [REDACTED]",
		sc.Text("failed for password hunter2 and hunter2"))

	// A value the caller names is a secret whatever its length.
	sc.Add(secret.FromString("ab"))
	require.Equal(t, "x[REDACTED]y", sc.Text("xaby"))
}

func TestScrubberTextRemovesEncodedForms(t *testing.T) {
	t.Parallel()
	v := `p@ss w/rd"+é`
	sc := secret.NewScrubber(secret.FromString(v))
	for _, form := range []string{
		url.QueryEscape(v), url.PathEscape(v), base64.StdEncoding.EncodeToString([]byte(v)), `p@ss w/rd\"+é`,
	} {
		require.Equal(t, "<"+secret.Redacted+">", sc.Text("<"+form+">"), form)
	}
}

// TestScrubberTextRemovesJSONOfOtherEncoders: a value with a quote and an
// HTML character (an ascii-printable password has both) is JSON-escaped
// one way by Go's encoder and another by most others (Python, JavaScript,
// Go's with SetEscapeHTML(false)), as an API that echoes it in an error
// body may do.
func TestScrubberTextRemovesJSONOfOtherEncoders(t *testing.T) {
	t.Parallel()
	v := `k"<e&y>\`
	sc := secret.NewScrubber(secret.FromString(v))
	for _, form := range []string{`k\"\u003ce\u0026y\u003e\\`, `k\"<e&y>\\`} {
		require.Equal(t, `{"error":"bad key `+secret.Redacted+`"}`, sc.Text(`{"error":"bad key `+form+`"}`), form)
	}
}

func TestScrubberTextOverlappingValues(t *testing.T) {
	t.Parallel()
	// Replaced one after the other, the shorter value first would leave
	// "XYZ" of the longer one; the marker itself must not be matched by a
	// short value ("RED").
	sc := secret.NewScrubber(secret.FromString("Xabcdef"), secret.FromString("abcdefXYZ"), secret.FromString("RED"))
	require.Equal(t, "<[REDACTED]>", sc.Text("<XabcdefXYZ>"))
	require.Equal(t, "a [REDACTED] b [REDACTED]", sc.Text("a RED b Xabcdef"))
}

func TestScrubberNothingReplacedKeepsText(t *testing.T) {
	t.Parallel()
	sc := secret.NewScrubber(secret.FromString("hunter2"))
	require.Equal(t, "timeout", sc.Text("timeout"))
	require.Empty(t, sc.Text(""))

	var zero secret.Scrubber
	require.Equal(t, "hunter2", zero.Text("hunter2"))
	var nilScrubber *secret.Scrubber
	require.Equal(t, "hunter2", nilScrubber.Text("hunter2"))
	require.NoError(t, nilScrubber.Err(nil))
}

func TestScrubberDocumentFields(t *testing.T) {
	t.Parallel()
	doc := secret.FromString(`{"engine":"postgres","host":"db.internal.example","port":5432,"dbname":"loadtest_db",` +
		`"username":"swarm_loadtest_a","password":"s3cret-password-value","short":"1234567",` +
		`"api_key":"sk_live_0123456789","key_id":"key_7f3a9c2e41","key_name":"swarmkey-loadtest-1",` +
		`"previous_key_id":"key_0011223344","expires_at":"2030-01-01T00:00:00Z"}`)
	var sc secret.Scrubber
	sc.AddDocument(doc, secret.Secret{})

	text := "user swarm_loadtest_a on db.internal.example:5432/loadtest_db (engine postgres) password s3cret-password-value " +
		"key key_7f3a9c2e41 (swarmkey-loadtest-1, after key_0011223344, until 2030-01-01T00:00:00Z) api_key sk_live_0123456789 short 1234567"
	require.Equal(t,
		"user swarm_loadtest_a on db.internal.example:5432/loadtest_db (engine postgres) password [REDACTED] "+
			"key key_7f3a9c2e41 (swarmkey-loadtest-1, after key_0011223344, until 2030-01-01T00:00:00Z) api_key [REDACTED] short 1234567",
		sc.Text(text), "secret fields of eight bytes and more go; public and shorter ones stay")
	require.Equal(t, "doc "+secret.Redacted, sc.Text("doc "+doc.RevealString()), "the whole document goes")

	// A document that is not a JSON object is scrubbed whole, whatever its length.
	sc.AddDocument(secret.FromString("tiny"))
	require.Equal(t, "[REDACTED]!", sc.Text("tiny!"))
}

func TestScrubberErrNoUnwrapToCause(t *testing.T) {
	t.Parallel()
	sc := secret.NewScrubber(secret.FromString("hunter2"))
	inner := errors.New("failed for password hunter2 and hunter2")
	err := sc.Err(fmt.Errorf("connect: %w", inner))
	require.Equal(t, "connect: failed for password [REDACTED] and [REDACTED]", err.Error())
	require.NotErrorIs(t, err, inner, "a scrubbed error must not unwrap to the text that held the secret")
	require.NotContains(t, fmt.Sprintf("%+v %#v", err, err), "hunter2")
	require.NoError(t, sc.Err(nil))
}

func TestScrubberErrKeepsContextErrors(t *testing.T) {
	t.Parallel()
	sc := secret.NewScrubber(secret.FromString("hunter2"))
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		err := sc.Err(fmt.Errorf("dial with hunter2: %w", ctxErr))
		require.Equal(t, "dial with [REDACTED]: "+ctxErr.Error(), err.Error())
		require.ErrorIs(t, err, ctxErr)
	}
	err := sc.Err(errors.New("refused for hunter2"))
	require.NotErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, errors.Unwrap(err))
}

type codeError struct{ code string }

func (e *codeError) Error() string { return "server said " + e.code }

func TestScrubberErrNothingReplacedKeepsChain(t *testing.T) {
	t.Parallel()
	sc := secret.NewScrubber(secret.FromString("hunter2"))
	clean := errors.New("timeout")
	err := sc.Err(clean)
	require.ErrorIs(t, err, clean)
	require.Equal(t, "timeout", err.Error())

	wrapped := fmt.Errorf("query: %w", &codeError{code: "42501"})
	require.Same(t, wrapped, sc.Err(wrapped))
	var ce *codeError
	require.ErrorAs(t, sc.Err(wrapped), &ce, "errors.As reaches a chain with nothing to scrub")
}

func TestScrubberWithCopies(t *testing.T) {
	t.Parallel()
	base := secret.NewScrubber(secret.FromString("admin-token"))
	call := base.With(secret.FromString("key-value"))
	call.Add(secret.FromString("other-key"))
	require.Equal(t, "[REDACTED] [REDACTED] [REDACTED]", call.Text("admin-token key-value other-key"))
	require.Equal(t, "[REDACTED] key-value other-key", base.Text("admin-token key-value other-key"), "base is unchanged")

	var nilScrubber *secret.Scrubber
	require.Equal(t, "[REDACTED]", nilScrubber.With(secret.FromString("key-value")).Text("key-value"))
}

func TestScrubberConcurrentUse(t *testing.T) {
	t.Parallel()
	base := secret.NewScrubber(secret.FromString("admin-token"))
	got := make([][2]string, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			v := fmt.Sprintf("value-%d", i)
			base.Add(secret.FromString(v))
			got[i] = [2]string{base.With().Text("admin-token " + v), base.Text(v)}
		})
	}
	wg.Wait()
	for _, g := range got {
		require.Equal(t, [2]string{"[REDACTED] [REDACTED]", "[REDACTED]"}, g)
	}
}
