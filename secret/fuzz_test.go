package secret_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/swarmkey/swarmkey/secret"
)

// jsonForms are the ways a JSON encoder may escape v inside a string: Go's
// (HTML characters as \u003c…) and everyone else's.
func jsonForms(v string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			forms = append(forms, strings.TrimSuffix(b.String(), "\n")[1:b.Len()-2])
		}
	}
	return forms
}

// formsOf are the forms a message may carry v in, as the Scrubber's
// documentation lists them: as is, URL-encoded (query and path),
// JSON-escaped and base64.
func formsOf(v string) []string {
	if v == "" {
		return nil
	}
	return append([]string{v, url.QueryEscape(v), url.PathEscape(v), base64.StdEncoding.EncodeToString([]byte(v))}, jsonForms(v)...)
}

// FuzzScrubber scrubs an arbitrary text of a value given with Add and of a
// document given with AddDocument. No form of a value survives (the
// markers aside: a value such as "D]" is part of "[REDACTED]" itself), a
// text without any comes back unchanged, and Err says what Text says.
func FuzzScrubber(f *testing.F) {
	f.Add("s3cret-password-value", []byte(`{"username":"u","password":"p4ss/w0rd+&=?","api_key":"sk_live_0123456789"}`),
		"password s3cret-password-value q=p4ss%2Fw0rd%2B%26%3D%3F body {\"k\":\"sk_live_0123456789\"} auth czNjcmV0LXBhc3N3b3JkLXZhbHVl")
	f.Add("D]]", []byte("tiny"), "D]]] tiny [REDACTED]")
	f.Add("", []byte(""), "nothing to scrub")
	f.Add("aa", []byte(`{"password":"aaaaaaaa"}`), "aaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, value string, doc []byte, text string) {
		sc := secret.NewScrubber(secret.FromString(value))
		sc.AddDocument(secret.New(doc))

		secrets := []string{value, string(doc)}
		var fields map[string]any
		if json.Unmarshal(doc, &fields) == nil {
			for k, v := range fields {
				public := map[string]bool{"engine": true, "host": true, "dbname": true, "username": true,
					"key_id": true, "key_name": true, "previous_key_id": true, "expires_at": true}[k]
				if s, ok := v.(string); ok && len(s) >= 8 && !public {
					secrets = append(secrets, s)
				}
			}
		}
		var forms []string
		for _, s := range secrets {
			forms = append(forms, formsOf(s)...)
		}

		out := sc.Text(text)
		// Markers may touch text that completes a value ("[REDACTED]]"
		// holds "D]]"): look between them.
		for _, piece := range strings.Split(out, secret.Redacted) {
			for _, form := range forms {
				if form != "" && strings.Contains(piece, form) {
					t.Fatalf("%q survives in %q (from %q)", form, out, text)
				}
			}
		}
		found := false
		for _, form := range forms {
			found = found || (form != "" && strings.Contains(text, form))
		}
		if !found && out != text {
			t.Fatalf("a text without a value changed: %q became %q", text, out)
		}
		if found && !strings.Contains(out, secret.Redacted) {
			t.Fatalf("a value was found but nothing replaced: %q", out)
		}

		orig := errors.New(text)
		scrubbed := sc.Err(orig)
		if scrubbed.Error() != out {
			t.Fatalf("Err says %q, Text %q", scrubbed.Error(), out)
		}
		if found == (scrubbed == orig) {
			t.Fatalf("Err returned the error itself: %v, though a value was found: %v", scrubbed == orig, found)
		}
	})
}
