package httpkey_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/httpkey"
)

// FuzzParseDocument feeds arbitrary bytes to ParseDocument as an API-key
// document, with issue.fields "label" and one more name the fuzzer picks
// (not a reserved one, as Options.Validate would refuse it):
// it must not panic; an error names fields, never the key the input holds;
// a document it accepts encodes (Secret) to one that parses back to the same
// document, and prints without its key.
func FuzzParseDocument(f *testing.F) {
	for _, seed := range []struct{ doc, field string }{
		{`{"api_key":"Zq9xW2vK7pL","key_id":"k1","key_name":"ci","expires_at":"2030-01-01T00:00:00Z","previous_key_id":"k0","label":"x"}`, "region"},
		{`{"api_key":"Zq9xW2vK7pL","key_id":"k1","region":7}`, "region"},
		{`{"api_key":12345678,"key_id":"k1"}`, "region"},
		{`{"api_key":"","key_id":"k1"}`, "api_key"}, {`{"api_key":"Zq9xW2vK7pL","key_id":"k1"}`, "api_key"},
		{`{"api_key":"Zq9xW2vK7pL","key_id":null}`, "key_id"},
		{`["Zq9xW2vK7pL"]`, ""}, {`"Zq9xW2vK7pL"`, ""}, {`null`, ""}, {"", ""},
		{`{"api_key":"a\u0000b","key_id":"\ud800","api_key":"again"}`, "label"},
	} {
		f.Add([]byte(seed.doc), seed.field)
	}
	f.Fuzz(func(t *testing.T, data []byte, field string) {
		fields := []string{"label"}
		reserved := []string{httpkey.FieldAPIKey, httpkey.FieldKeyID, httpkey.FieldKeyName, httpkey.FieldExpiresAt, httpkey.FieldPreviousKeyID}
		if field != "" && !slices.Contains(reserved, field) { // Options.Validate refuses those
			fields = append(fields, field)
		}
		doc, err := httpkey.ParseDocument(secret.New(data), fields)
		var given map[string]any
		_ = json.Unmarshal(data, &given)
		key, _ := given[httpkey.FieldAPIKey].(string)
		if err != nil {
			msg := err.Error()
			fixed := "the document is empty not a JSON object has no 's is not a string is empty " + strings.Join(fields, " ") +
				" " + httpkey.FieldAPIKey + " " + httpkey.FieldKeyID + " " + httpkey.FieldKeyName + " " + httpkey.FieldExpiresAt + " " + httpkey.FieldPreviousKeyID
			if len(key) >= 4 && !strings.Contains(fixed, key) && strings.Contains(msg, key) {
				t.Fatalf("the error quotes the key %q: %v", key, err)
			}
			return
		}
		if doc.APIKey.IsZero() || doc.KeyID == "" {
			t.Fatalf("accepted a document without api_key or key_id: %+v", doc)
		}
		s, err := doc.Secret()
		if err != nil {
			t.Fatalf("an accepted document does not encode: %v", err)
		}
		back, err := httpkey.ParseDocument(s, fields)
		if err != nil {
			t.Fatalf("an encoded document does not parse: %v", err)
		}
		if !back.APIKey.Equal(doc.APIKey) || back.KeyID != doc.KeyID || back.KeyName != doc.KeyName ||
			back.ExpiresAt != doc.ExpiresAt || back.PreviousKeyID != doc.PreviousKeyID || !maps.Equal(back.Fields, doc.Fields) {
			t.Fatalf("round trip changed the document: %+v became %+v", doc, back)
		}
		printed := fmt.Sprintf("%v %+v %#v", doc, doc, doc)
		k := doc.APIKey.RevealString()
		public := fmt.Sprintf("%s %s %s %s %v %s httpkey.Document{APIKey: KeyID: KeyName: ExpiresAt: PreviousKeyID: Fields:map[string]string{}",
			doc.KeyID, doc.KeyName, doc.ExpiresAt, doc.PreviousKeyID, doc.Fields, secret.Redacted)
		if len(k) >= 4 && !strings.Contains(public, k) && !strings.Contains(fmt.Sprintf("%#v", doc.Fields), k) && strings.Contains(printed, k) {
			t.Fatalf("printing the document shows its key: %s", printed)
		}
	})
}
