package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// ErrNothingCurrent: the policy's secret has no current version yet (it has
// never been rotated), or its current version is the AWS store's
// first-version marker, {"swarmkey":"no credential yet"}.
var ErrNothingCurrent = errors.New("no current credential yet: the policy has not been rotated")

// ReadCurrent returns the current version of secretID in st, or
// ErrNothingCurrent (wrapped) when there is none. Other store errors are
// returned as they are.
func ReadCurrent(ctx context.Context, st providers.Store, secretID string) (providers.Version, error) {
	v, err := st.Get(ctx, secretID, providers.StageCurrent)
	if errors.Is(err, providers.ErrNotFound) {
		return providers.Version{}, fmt.Errorf("secret %q in store %q: %w", secretID, st.Name(), ErrNothingCurrent)
	}
	if err != nil {
		return providers.Version{}, fmt.Errorf("read secret %q from store %q: %w", secretID, st.Name(), err)
	}
	if isFirstVersionMarker(v.Value) {
		return providers.Version{}, fmt.Errorf("secret %q in store %q: %w", secretID, st.Name(), ErrNothingCurrent)
	}
	return v, nil
}

// isFirstVersionMarker reports whether doc is the document the AWS store
// writes as a new secret's first version (see package providers/aws). That
// store already hides it; the check here keeps a reader from ever handing
// it out as a credential, whoever wrote it.
func isFirstVersionMarker(doc secret.Secret) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(doc.Reveal(), &m) != nil || len(m) != 1 {
		return false
	}
	return bytes.Equal(m["swarmkey"], []byte(`"no credential yet"`))
}

// errNotObject is what a secret document that is not a JSON object gives.
// It never quotes the document (json's own errors quote a character of it).
var errNotObject = errors.New("the secret's current version is not a JSON object of fields")

// rawFields splits a secret document into its fields, as JSON texts.
func rawFields(doc secret.Secret) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc.Reveal(), &m); err != nil || m == nil {
		return nil, errNotObject
	}
	return m, nil
}

// Fields splits a secret document (a JSON object) into its fields, each
// as the text a program expects in an environment variable: a string field
// as the string, null as "", a number, boolean, array or object as its
// compact JSON text. The error never quotes the document.
func Fields(doc secret.Secret) (map[string]secret.Secret, error) {
	raw, err := rawFields(doc)
	if err != nil {
		return nil, err
	}
	return fieldTexts(raw)
}

func fieldTexts(raw map[string]json.RawMessage) (map[string]secret.Secret, error) {
	out := make(map[string]secret.Secret, len(raw))
	for name, r := range raw {
		r = bytes.TrimSpace(r)
		switch {
		case len(r) > 0 && r[0] == '"':
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, fmt.Errorf("field %q: not a valid JSON string", name)
			}
			out[name] = secret.FromString(s)
		case bytes.Equal(r, []byte("null")):
			out[name] = secret.Secret{}
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, r); err != nil {
				return nil, fmt.Errorf("field %q: not valid JSON", name)
			}
			out[name] = secret.New(buf.Bytes())
		}
	}
	return out, nil
}
