package vault

import (
	"context"
	"errors"
	"net/http"

	vaultapi "github.com/hashicorp/vault/api"
)

// authedKV is the KV v2 client with one re-login: a call that the server
// refuses with 403 (what Vault and OpenBao answer for an expired or revoked
// token as well as for a missing policy) logs in again with the configured
// method and is sent once more. AppRole and Kubernetes tokens have a
// lifetime, and a daemon outlives it; a re-login on demand needs no
// background renewer and also recovers a token that was revoked or reached
// its max TTL, which renewal cannot. A 403 that a fresh token gets too is a
// policy problem and is returned as it is.
type authedKV struct {
	kv *vaultapi.KVv2
	s  *Store
}

func (a *authedKV) Get(ctx context.Context, path string) (*vaultapi.KVSecret, error) {
	return withLogin(ctx, a.s, func() (*vaultapi.KVSecret, error) { return a.kv.Get(ctx, path) })
}

func (a *authedKV) GetVersion(ctx context.Context, path string, version int) (*vaultapi.KVSecret, error) {
	return withLogin(ctx, a.s, func() (*vaultapi.KVSecret, error) { return a.kv.GetVersion(ctx, path, version) })
}

func (a *authedKV) GetMetadata(ctx context.Context, path string) (*vaultapi.KVMetadata, error) {
	return withLogin(ctx, a.s, func() (*vaultapi.KVMetadata, error) { return a.kv.GetMetadata(ctx, path) })
}

func (a *authedKV) Put(ctx context.Context, path string, data map[string]any, opts ...vaultapi.KVOption) (*vaultapi.KVSecret, error) {
	return withLogin(ctx, a.s, func() (*vaultapi.KVSecret, error) { return a.kv.Put(ctx, path, data, opts...) })
}

func (a *authedKV) PatchMetadata(ctx context.Context, path string, md vaultapi.KVMetadataPatchInput) error {
	_, err := withLogin(ctx, a.s, func() (struct{}, error) { return struct{}{}, a.kv.PatchMetadata(ctx, path, md) })
	return err
}

func (a *authedKV) DeleteVersions(ctx context.Context, path string, versions []int) error {
	_, err := withLogin(ctx, a.s, func() (struct{}, error) { return struct{}{}, a.kv.DeleteVersions(ctx, path, versions) })
	return err
}

func (a *authedKV) Destroy(ctx context.Context, path string, versions []int) error {
	_, err := withLogin(ctx, a.s, func() (struct{}, error) { return struct{}{}, a.kv.Destroy(ctx, path, versions) })
	return err
}

// withLogin runs call; when the server refuses it with 403 and the auth
// method can get a new token, it logs in (unless a concurrent call did
// since this one started) and runs call once more.
func withLogin[T any](ctx context.Context, s *Store, call func() (T, error)) (T, error) {
	token := s.client.Token()
	out, err := call()
	if err == nil || !isPermissionDenied(err) || !s.canRelogin() {
		return out, err
	}
	s.loginMu.Lock()
	if s.client.Token() == token {
		if lerr := s.login(ctx); lerr != nil {
			s.loginMu.Unlock()
			return out, &reloginError{call: err, login: lerr}
		}
		s.relogins.Add(1)
	}
	s.loginMu.Unlock()
	return call()
}

// canRelogin reports whether a login can bring a token other than the one
// the store has: AppRole and Kubernetes log in again, the token method
// reads its token_file again (an agent may have written a new one); a token
// from VAULT_TOKEN stays what it is.
func (s *Store) canRelogin() bool {
	a := s.opts.Auth
	return a.Method == AuthAppRole || a.Method == AuthKubernetes || a.TokenFile != ""
}

func isPermissionDenied(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// reloginError is a call refused with 403 whose re-login failed too: the
// call's error says what was refused, the login's why no new token could be
// had. It unwraps to the call's error.
type reloginError struct{ call, login error }

func (e *reloginError) Error() string {
	return e.call.Error() + "; logging in again failed: " + e.login.Error()
}
func (e *reloginError) Unwrap() error { return e.call }
