package vault

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/vaulttest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

func doc(password string) secret.Secret {
	return secret.FromString(fmt.Sprintf(`{"password":%q,"username":"loadtest"}`, password))
}

// readerPassword is what a reader's plain `vault kv get -field=password ID`
// returns, or "" when the read finds no data.
func readerPassword(t *testing.T, id string, version int) string {
	t.Helper()
	kv := rawKV(t)
	var s *vaultapi.KVSecret
	var err error
	if version == 0 {
		s, err = kv.Get(t.Context(), id)
	} else {
		s, err = kv.GetVersion(t.Context(), id, version)
	}
	if err != nil || s.Data == nil {
		return ""
	}
	p, _ := s.Data["password"].(string)
	return p
}

// TestReadersNeverGetPending: a reader's plain read of the secret's path
// returns the current version at every step of two rotations, never the
// pending one; previous stays readable at its version number.
func TestReadersNeverGetPending(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	id := vaulttest.Prefix(t) + "checkout-db"
	ctx := t.Context()

	_, err := s.PutPending(ctx, id, "tok-1", doc("first"))
	require.NoError(t, err)
	require.Equal(t, "", readerPassword(t, id, 0), "a reader gets nothing before the first promote")
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	require.Equal(t, "first", readerPassword(t, id, 0))
	cur, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)

	_, err = s.PutPending(ctx, id, "tok-2", doc("second"))
	require.NoError(t, err)
	require.Equal(t, "first", readerPassword(t, id, 0), "the pending version is not what a reader gets")
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: cur.ID}))
	require.Equal(t, "second", readerPassword(t, id, 0), "current is the latest version")
	require.Equal(t, "first", readerPassword(t, id, 1), "previous stays readable")

	// The pending value is not readable on the staging path either once
	// promoted: the staging version is deleted.
	staged, err := rawKV(t).Get(ctx, DefaultPendingPrefix+"/"+id)
	require.NoError(t, err)
	require.Nil(t, staged.Data)
}

// TestRecordsInCustomMetadata: swarmkey's bookkeeping is the secret's
// custom metadata, not its data: readers' data holds the document alone.
func TestRecordsInCustomMetadata(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	id := vaulttest.Prefix(t) + "checkout-db"
	ctx := t.Context()
	var ids []string
	expected := ""
	for i := range 4 {
		tok := fmt.Sprintf("tok-%d", i)
		v, err := s.PutPending(ctx, id, tok, doc(fmt.Sprint("pw", i)))
		require.NoError(t, err)
		require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: tok, ExpectedCurrentID: expected}))
		expected = v.ID
		ids = append(ids, v.ID)
	}
	md, err := rawKV(t).GetMetadata(ctx, id)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"swarmkey-version-3": ids[2] + " tok-2",
		"swarmkey-version-4": ids[3] + " tok-3",
	}, md.CustomMetadata, "records of current and previous only")
	data, err := rawKV(t).Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"password": "pw3", "username": "loadtest"}, data.Data)
}

// TestConcurrentWriterIsDetected: another writer changes a path between
// the store's read and its write; the check-and-set refuses the write and
// the other writer's version stands.
func TestConcurrentWriterIsDetected(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("promote", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, Options{Create: true})
		id := vaulttest.Prefix(t) + "checkout-db"
		_, err := s.PutPending(ctx, id, "tok-1", doc("mine"))
		require.NoError(t, err)
		s.testHookBeforeWrite = func() {
			_, err := rawKV(t).Put(ctx, id, map[string]any{"password": "theirs"})
			require.NoError(t, err)
		}
		err = s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"})
		require.ErrorIs(t, err, providers.ErrConflict)
		require.Equal(t, "theirs", readerPassword(t, id, 0))
		got, err := s.Get(ctx, id, providers.StageCurrent)
		require.NoError(t, err)
		require.Equal(t, "v1", got.ID, "another tool's version has no record")
		require.Equal(t, "", got.Token)
		_, err = s.Get(ctx, id, providers.StagePending)
		require.NoError(t, err, "the pending version is still there, for rollback to discard")
	})
	t.Run("put pending", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, Options{Create: true})
		id := vaulttest.Prefix(t) + "checkout-db"
		s.testHookBeforeWrite = func() {
			_, err := rawKV(t).Put(ctx, DefaultPendingPrefix+"/"+id, map[string]any{fieldToken: "other", fieldDocument: `{"password":"theirs"}`})
			require.NoError(t, err)
		}
		_, err := s.PutPending(ctx, id, "tok-1", doc("mine"))
		require.ErrorIs(t, err, providers.ErrConflict)
		got, err := s.Get(ctx, id, providers.StagePending)
		require.NoError(t, err)
		require.Equal(t, "other", got.Token, "the other writer's pending version stands")
	})
}

// TestPromoteStoppedAfterItsDataWrite: a promote that stopped after the
// data write (a crash) shows the new version as unrecorded; Promote again
// recognises its document and completes it under the pending version's id.
func TestPromoteStoppedAfterItsDataWrite(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	id := vaulttest.Prefix(t) + "checkout-db"
	ctx := t.Context()
	v1, err := s.PutPending(ctx, id, "tok-1", doc("first"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	v2, err := s.PutPending(ctx, id, "tok-2", doc("second"))
	require.NoError(t, err)

	s.testHookStopAfterData = true
	req := providers.PromoteRequest{Token: "tok-2", PendingID: v2.ID, ExpectedCurrentID: v1.ID}
	require.NoError(t, s.Promote(ctx, id, req))
	cur, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, "v2", cur.ID, "unrecorded until the promote completes")

	s.testHookStopAfterData = false
	require.NoError(t, s.Promote(ctx, id, req))
	list, err := s.List(ctx, id)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, v2.ID, list[0].ID)
	require.Equal(t, []providers.Stage{providers.StageCurrent}, list[0].Stages)
	require.Equal(t, v1.ID, list[1].ID)
	require.Equal(t, []providers.Stage{providers.StagePrevious}, list[1].Stages)
}

// TestAppRoleLogin logs in with AppRole (the server's own AppRole on
// OpenBao, the fake's model of its login endpoint otherwise) and rotates.
func TestAppRoleLogin(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ctx := t.Context()
	roleID, secretID := "role-"+strings.TrimSuffix(vaulttest.Prefix(t)[len("loadtest/"):], "/"), ""
	if srv.Real {
		c := srv.Client(t)
		mount := "approle-" + roleID
		require.NoError(t, c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vaultapi.EnableAuthOptions{Type: "approle"}))
		_, err := c.Logical().WriteWithContext(ctx, "sys/policies/acl/"+mount, map[string]any{
			"policy": `path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete"] }`,
		})
		require.NoError(t, err)
		_, err = c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/rotator", map[string]any{"token_policies": mount})
		require.NoError(t, err)
		_, err = c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/rotator/role-id", map[string]any{"role_id": roleID})
		require.NoError(t, err)
		out, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/rotator/secret-id", nil)
		require.NoError(t, err)
		secretID = out.Data["secret_id"].(string)
		login(t, srv.Addr, Auth{Method: AuthAppRole, Path: mount, RoleID: roleID, SecretIDFile: tokenFile(t, secretID)})
		return
	}
	secretID = "sid-" + roleID
	srv.Fake().AddAppRole(roleID, secretID)
	login(t, srv.Addr, Auth{Method: AuthAppRole, RoleID: roleID, SecretIDFile: tokenFile(t, secretID)})
}

// TestKubernetesLogin logs in with the Kubernetes method against the fake's
// model of auth/kubernetes/login (a real server would need a Kubernetes
// API to review the token).
func TestKubernetesLogin(t *testing.T) {
	t.Parallel()
	f := vaulttest.NewFake()
	t.Cleanup(f.Close)
	f.AddKubernetesRole("swarmkey", "sa-jwt")
	s := login(t, f.URL(), Auth{Method: AuthKubernetes, Role: "swarmkey", ServiceAccountTokenFile: tokenFile(t, "sa-jwt")})
	_ = s
	_, err := New(t.Context(), Options{Address: f.URL(), Auth: Auth{Method: AuthKubernetes, Role: "swarmkey", ServiceAccountTokenFile: tokenFile(t, "wrong-jwt")}})
	require.ErrorContains(t, err, "login at auth/kubernetes: HTTP 403")
	require.NotContains(t, err.Error(), "wrong-jwt")
}

// login opens a store with auth and checks that it can rotate.
func login(t *testing.T, addr string, auth Auth) *Store {
	t.Helper()
	s, err := New(t.Context(), Options{Address: addr, Create: true, Auth: auth})
	require.NoError(t, err)
	id := vaulttest.Prefix(t) + "checkout-db"
	_, err = s.PutPending(t.Context(), id, "tok-1", doc("p1"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(t.Context(), id, providers.PromoteRequest{Token: "tok-1"}))
	return s
}

func TestValidate(t *testing.T) {
	t.Parallel()
	err := Options{Address: "vault:8200", Mount: "/secret/", Auth: Auth{Method: "ldap"}}.Validate()
	require.Error(t, err)
	for _, want := range []string{"address", "mount", "auth.method"} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, Options{Auth: Auth{Method: AuthAppRole}}.Validate(), "auth.role_id")
	require.ErrorContains(t, Options{Auth: Auth{Method: AuthKubernetes}}.Validate(), "auth.role")
	require.NoError(t, Options{Auth: Auth{Method: AuthAppRole, RoleID: "r", SecretIDFile: "f"}}.Validate())

	// A document that is not a JSON object cannot be a KV version.
	s := newStore(t, Options{Create: true})
	_, err = s.PutPending(t.Context(), vaulttest.Prefix(t)+"x", "tok", secret.FromString(`["a"]`))
	require.ErrorContains(t, err, "not a JSON object")
	b, _ := json.Marshal(err.Error())
	require.NotContains(t, string(b), `["a"]`)
}

// TestReloginAfterTokenExpiry revokes the token an AppRole and a Kubernetes
// login gave the store, as its TTL running out would: the next calls log in
// again once and succeed, where a store that logged in only at New fails
// every call with 403 from then on.
func TestReloginAfterTokenExpiry(t *testing.T) {
	t.Parallel()
	f := vaulttest.NewFake()
	t.Cleanup(f.Close)
	f.AddAppRole("rotator", "sid-1")
	f.AddKubernetesRole("swarmkey", "sa-jwt")
	root, err := vaultapi.NewClient(&vaultapi.Config{Address: f.URL()})
	require.NoError(t, err)
	root.SetToken(f.RootToken())
	for _, auth := range []Auth{
		{Method: AuthAppRole, RoleID: "rotator", SecretIDFile: tokenFile(t, "sid-1")},
		{Method: AuthKubernetes, Role: "swarmkey", ServiceAccountTokenFile: tokenFile(t, "sa-jwt")},
	} {
		s := login(t, f.URL(), auth)
		id := vaulttest.Prefix(t) + "checkout-db"
		revoke := func() {
			_, err := root.Logical().WriteWithContext(t.Context(), "auth/token/revoke", map[string]any{"token": s.client.Token()})
			require.NoError(t, err)
		}
		revoke()
		// Every kind of call: a read, a staging write, the promote's data
		// and metadata writes and its delete.
		_, err := s.PutPending(t.Context(), id, "tok-a", doc("pa"))
		require.NoError(t, err, auth.Method)
		revoke()
		require.NoError(t, s.Promote(t.Context(), id, providers.PromoteRequest{Token: "tok-a"}), auth.Method)
		revoke()
		cur, err := s.Get(t.Context(), id, providers.StageCurrent)
		require.NoError(t, err, auth.Method)
		require.Equal(t, "tok-a", cur.Token)
		require.Equal(t, int64(3), s.relogins.Load(), "%s: one login per revoked token", auth.Method)
	}

	// A 403 that a fresh token gets as well is the policy's: one login,
	// then the refusal, with the store's advice.
	s := login(t, f.URL(), Auth{Method: AuthAppRole, RoleID: "rotator", SecretIDFile: tokenFile(t, "sid-1")})
	f.AddAppRole("rotator", "sid-rotated-away")
	_, err = root.Logical().WriteWithContext(t.Context(), "auth/token/revoke", map[string]any{"token": s.client.Token()})
	require.NoError(t, err)
	_, err = s.Get(t.Context(), vaulttest.Prefix(t)+"x", providers.StageCurrent)
	require.ErrorContains(t, err, "permission denied for swarmkey's token")
	require.ErrorContains(t, err, "login at auth/approle")
	require.NotContains(t, err.Error(), "sid-1")
}
