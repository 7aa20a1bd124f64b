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
