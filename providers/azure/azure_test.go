package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/azurefake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

func doc(password string) secret.Secret {
	return secret.FromString(fmt.Sprintf(`{"password":%q,"username":"loadtest"}`, password))
}

// readerValue is what a reader's plain read of the secret by name (Get
// Secret without a version, `az keyvault secret show --name ID`) returns,
// or "" when the read fails, with the read's error.
func readerValue(t *testing.T, vault *azurefake.Vault, id, version string) (string, error) {
	t.Helper()
	resp, err := vault.Client(t).GetSecret(t.Context(), id, version, nil)
	if err != nil {
		return "", err
	}
	return *resp.Value, nil
}

func requireReads(t *testing.T, vault *azurefake.Vault, id, version string, want secret.Secret, msg string) {
	t.Helper()
	got, err := readerValue(t, vault, id, version)
	require.NoError(t, err, msg)
	// Compared as booleans so that a failure does not print a value.
	require.True(t, want.Equal(secret.FromString(got)), msg)
}

// TestReadersNeverGetPending: a reader's plain read of the secret by name
// returns the current version at every step of two rotations, never the
// pending one (nor an error: no version of the reader's secret is ever
// disabled by a rotation); previous stays readable by its version id; the
// pending value is unreadable once it has been promoted or discarded.
func TestReadersNeverGetPending(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"

	first, second, third := doc("first"), doc("second"), doc("third")
	_, err := s.PutPending(ctx, id, "tok-1", first)
	require.NoError(t, err)
	_, err = readerValue(t, vault, id, "")
	require.True(t, isNotFound(err), "a reader finds no secret before the first promote: %v", err)
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	requireReads(t, vault, id, "", first, "current after the first promote")
	cur, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)

	put, err := s.PutPending(ctx, id, "tok-2", second)
	require.NoError(t, err)
	requireReads(t, vault, id, "", first, "a reader gets current while a rotation is pending")
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: cur.ID}))
	requireReads(t, vault, id, "", second, "current is the latest version")
	versions := vault.Versions(id)
	require.Len(t, versions, 2, "the reader's secret holds the promoted versions only")
	requireReads(t, vault, id, versions[0], first, "previous stays readable by its version id")

	// The promoted staging version is disabled: its value is no longer
	// readable there.
	_, err = readerValue(t, vault, id+DefaultPendingSuffix, strings.TrimPrefix(put.ID, "p"))
	require.True(t, isDisabled(err), "the promoted staging version is disabled: %v", err)

	// A discarded pending version: readers still get current, and the
	// discarded value is unreadable.
	cur, err = s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	put, err = s.PutPending(ctx, id, "tok-3", third)
	require.NoError(t, err)
	require.NoError(t, s.DiscardPending(ctx, id, "tok-3"))
	requireReads(t, vault, id, "", second, "a reader gets current after a discard")
	_, err = readerValue(t, vault, id+DefaultPendingSuffix, strings.TrimPrefix(put.ID, "p"))
	require.True(t, isDisabled(err), "the discarded version is disabled: %v", err)
	_, err = readerValue(t, vault, id+DefaultPendingSuffix, "")
	require.True(t, isDisabled(err), "the staging secret's latest version is disabled: %v", err)
	got, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, cur.ID, got.ID)
}

// TestStagesAsTags: the version promote writes carries its token, the
// staging version it came from and the version it replaced as tags, in the
// one Set Secret call that makes it current; the value is the document
// alone, of content type application/json.
func TestStagesAsTags(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"

	v1, err := s.PutPending(ctx, id, "tok-1", doc("one"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	v2, err := s.PutPending(ctx, id, "tok-2", doc("two"))
	require.NoError(t, err)
	vault.Calls()
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: v1.ID}))
	require.Equal(t, []string{
		"GetSecret " + id + DefaultPendingSuffix + " ",
		"GetSecret " + id + " ",
		"SetSecret " + id,
		"UpdateSecretProperties " + id + DefaultPendingSuffix + " " + strings.TrimPrefix(v2.ID, "p"),
	}, vault.Calls(), "promote: two reads, one write of the secret, one update of the staging version")

	resp, err := vault.Client(t).GetSecret(ctx, id, "", nil)
	require.NoError(t, err)
	versions := vault.Versions(id)
	require.Equal(t, map[string]string{
		tagToken:          "tok-2",
		tagPendingVersion: strings.TrimPrefix(v2.ID, "p"),
		tagPrevious:       versions[0],
	}, derefTags(resp.Tags))
	require.Equal(t, "application/json", *resp.ContentType)
	require.JSONEq(t, `{"password":"two","username":"loadtest"}`, *resp.Value)
	first, err := vault.Client(t).GetSecret(ctx, id, versions[0], nil)
	require.NoError(t, err)
	require.Equal(t, map[string]string{tagToken: "tok-1", tagPendingVersion: strings.TrimPrefix(v1.ID, "p")}, derefTags(first.Tags),
		"the first version replaced nothing")
}

func derefTags(tags map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range tags {
		out[k] = *v
	}
	return out
}

// TestForeignVersionHasNoToken: another tool's Set Secret on the reader's
// secret becomes current with the id "v<version>" and no token, even when
// it copies swarmkey's token tag; a promote that expected the version
// before it fails and changes nothing.
func TestForeignVersionHasNoToken(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"
	v1, err := s.PutPending(ctx, id, "tok-1", doc("one"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))

	theirs, err := vault.Client(t).SetSecret(ctx, id, azsecrets.SetSecretParameters{
		Value: to.Ptr(`{"password":"theirs"}`),
		Tags:  map[string]*string{tagToken: to.Ptr("tok-1")},
	}, nil)
	require.NoError(t, err)
	cur, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, "v"+theirs.ID.Version(), cur.ID)
	require.Empty(t, cur.Token, "a version without swarmkey's pending-version tag has no token")
	_, err = s.Get(ctx, id, providers.StagePrevious)
	require.ErrorIs(t, err, providers.ErrNotFound, "another tool's version names no previous")

	_, err = s.PutPending(ctx, id, "tok-2", doc("two"))
	require.NoError(t, err)
	err = s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: v1.ID})
	require.ErrorIs(t, err, providers.ErrConflict)
	requireReads(t, vault, id, "", secret.FromString(`{"password":"theirs"}`), "the other tool's version stays current")
	pending, err := s.Get(ctx, id, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, "tok-2", pending.Token)

	// Promoted over the foreign version when the rotation expects it.
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: cur.ID}))
	prev, err := s.Get(ctx, id, providers.StagePrevious)
	require.NoError(t, err)
	require.Equal(t, cur.ID, prev.ID)
	require.Empty(t, prev.Token)
}

// TestConcurrentPendingWriterIsDetected: another writer adds a staging
// version after the store's write and before its check; the store
// withdraws its own version (disabled, unreadable) and fails with
// ErrConflict, and the other writer's version is the pending one.
func TestConcurrentPendingWriterIsDetected(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"
	staging := id + DefaultPendingSuffix
	raw := vault.Client(t)

	wrote := false
	vault.BeforeCall(func(call string) {
		// The store's first read after its own write is its check.
		if call == "GetSecret "+staging+" " && len(vault.Versions(staging)) == 1 && !wrote {
			wrote = true
			_, err := raw.SetSecret(context.Background(), staging, azsecrets.SetSecretParameters{
				Value: to.Ptr(`{"password":"theirs"}`), Tags: map[string]*string{tagToken: to.Ptr("their-token")},
			}, nil)
			require.NoError(t, err)
		}
	})
	_, err := s.PutPending(ctx, id, "tok-1", doc("mine"))
	vault.BeforeCall(nil)
	require.True(t, wrote, "the other writer wrote")
	require.ErrorIs(t, err, providers.ErrConflict)

	versions := vault.Versions(staging)
	require.Len(t, versions, 2)
	_, err = raw.GetSecret(ctx, staging, versions[0], nil)
	require.True(t, isDisabled(err), "the store's own version is withdrawn: %v", err)
	pending, err := s.Get(ctx, id, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, "their-token", pending.Token)
	require.Equal(t, "p"+versions[1], pending.ID)
}

// TestPromoteCutAfterWrite: a promote that stops after its Set Secret (a
// crash before it disables the staging version) shows the pending stage on
// the current version; the retry completes it.
func TestPromoteCutAfterWrite(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"
	put, err := s.PutPending(ctx, id, "tok-1", doc("one"))
	require.NoError(t, err)
	s.testHookStopAfterData = true
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	s.testHookStopAfterData = false

	list, err := s.List(ctx, id)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, put.ID, list[0].ID)
	require.ElementsMatch(t, []providers.Stage{providers.StageCurrent, providers.StagePending}, list[0].Stages)
	_, err = s.Get(ctx, id, providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound, "pending on current is no pending version")

	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1", PendingID: put.ID}))
	list, err = s.List(ctx, id)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, []providers.Stage{providers.StageCurrent}, list[0].Stages)
	_, err = vault.Client(t).GetSecret(ctx, id+DefaultPendingSuffix, strings.TrimPrefix(put.ID, "p"), nil)
	require.True(t, isDisabled(err), "the retry disabled the staging version: %v", err)
}

// TestCreateOff: without create, a secret with no version is not started.
func TestCreateOff(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{})
	_, err := s.PutPending(t.Context(), "checkout-db", "tok-1", doc("one"))
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.Contains(t, err.Error(), "create: true")
	require.Empty(t, vault.Versions("checkout-db"+DefaultPendingSuffix), "nothing written")
}

// TestNames: names Key Vault would refuse, staging names past its length
// limit and names of staging secrets are refused before any call.
func TestNames(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	for _, name := range []string{"under_score", "dots.in.name", "", strings.Repeat("a", 120), "db" + DefaultPendingSuffix} {
		_, err := s.PutPending(t.Context(), name, "tok", doc("x"))
		require.Error(t, err, "name %q", name)
		require.NotErrorIs(t, err, providers.ErrConflict)
		require.Contains(t, err.Error(), "azure secret")
	}
	require.Empty(t, vault.Calls(), "refused before any call")
}

// TestOptionsValidate names each wrong field and what to give.
func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Options{VaultURL: "https://checkout-kv.vault.azure.net"}.Validate())
	require.NoError(t, Options{VaultURL: "https://checkout-kv.vault.azure.net/", PendingSuffix: "-staging"}.Validate())
	for opts, want := range map[Options]string{
		{}:                                      "vault_url: required",
		{VaultURL: "http://kv.vault.azure.net"}: "vault_url: \"http://kv.vault.azure.net\" is not a vault address",
		{VaultURL: "https://kv.vault.azure.net/secrets/x"}:                     "is not a vault address",
		{VaultURL: "https://kv.vault.azure.net", PendingSuffix: "_pending"}:    "pending_suffix: \"_pending\"",
		{VaultURL: "https://kv.vault.azure.net", PendingSuffix: "pending/sub"}: "pending_suffix",
	} {
		err := opts.Validate()
		require.Error(t, err, "%+v", opts)
		require.Contains(t, err.Error(), want)
	}
	_, err := New(t.Context(), Options{VaultURL: "kv"})
	require.ErrorContains(t, err, "vault_url")
	// DefaultAzureCredential finds its identity at the first token request,
	// not here: New needs no network.
	s, err := New(t.Context(), Options{VaultURL: "https://checkout-kv.vault.azure.net", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"})
	require.NoError(t, err)
	require.Equal(t, "azure", s.Name())
}

// TestErrorsNameTheCall: a refusal of the service, or a credential that
// finds no identity, becomes an error that names the secret, the call and
// what to check, with no value in it.
func TestErrorsNameTheCall(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	const id = "checkout-db"
	value := doc("pw-must-not-leak-0123456789")
	put, err := s.PutPending(t.Context(), id, "tok-1", value)
	require.NoError(t, err)
	requireNoLeak := func(err error) {
		t.Helper()
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			require.False(t, strings.Contains(text, "pw-must-not-leak"), "an error holds the value")
		}
	}

	vault.Refuse("SetSecret "+id, http.StatusForbidden, "Forbidden")
	err = s.Promote(t.Context(), id, providers.PromoteRequest{Token: "tok-1", PendingID: put.ID})
	require.ErrorContains(t, err, `azure secret "checkout-db": promote version `+put.ID)
	require.ErrorContains(t, err, "permission denied")
	require.ErrorContains(t, err, "Key Vault Secrets Officer on checkout-db and its staging secret checkout-db-swarmkey-pending")
	require.ErrorContains(t, err, "HTTP 403 Forbidden")
	requireNoLeak(err)

	vault.Refuse("GetSecret "+id+DefaultPendingSuffix, http.StatusTooManyRequests, "Throttled")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = s.Get(ctx, id, providers.StagePending)
	require.Error(t, err)
	require.ErrorContains(t, err, "checkout-db-swarmkey-pending")
	requireNoLeak(err)

	cred := &azfake.TokenCredential{}
	cred.SetError(errors.New("no identity configured"))
	noIdentity, err := NewWithCredential(Options{VaultURL: azurefake.URL, Create: true}, cred, azurefake.New().ClientOptions())
	require.NoError(t, err)
	_, err = noIdentity.Get(t.Context(), id, providers.StageCurrent)
	require.ErrorContains(t, err, `azure secret "checkout-db": read latest version`)
	require.ErrorContains(t, err, "no identity configured")
	require.NotErrorIs(t, err, providers.ErrNotFound)
}

// TestRetireDisablesOrphans: versions no stage names, in both secrets (a
// promote written twice by two racing clients, a pending version another
// writer replaced), are disabled; current and previous stay readable.
func TestRetireDisablesOrphans(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	s := newStore(t, vault, Options{Create: true})
	ctx := t.Context()
	const id = "checkout-db"
	staging := id + DefaultPendingSuffix
	raw := vault.Client(t)

	_, err := s.PutPending(ctx, id, "tok-1", doc("one"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-1"}))
	cur, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	put, err := s.PutPending(ctx, id, "tok-2", doc("two"))
	require.NoError(t, err)
	// Two clients promote at once: both write the secret, the same value
	// with the same tags.
	require.NoError(t, s.Promote(ctx, id, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: cur.ID}))
	first, err := raw.GetSecret(ctx, id, "", nil)
	require.NoError(t, err)
	_, err = raw.SetSecret(ctx, id, azsecrets.SetSecretParameters{Value: first.Value, ContentType: first.ContentType, Tags: first.Tags}, nil)
	require.NoError(t, err)
	orphan := first.ID.Version()
	// A pending version that a later one replaced, still enabled.
	_, err = s.PutPending(ctx, id, "tok-3", doc("three"))
	require.NoError(t, err)
	_, err = raw.SetSecret(ctx, staging, azsecrets.SetSecretParameters{Value: to.Ptr(`{"password":"four"}`), Tags: map[string]*string{tagToken: to.Ptr("tok-4")}}, nil)
	require.NoError(t, err)
	replaced := vault.Versions(staging)[2]
	before, err := s.List(ctx, id)
	require.NoError(t, err)

	require.NoError(t, s.RetireUnstaged(ctx, id, providers.RetireRequest{Destroy: true}))
	for name, hex := range map[string]string{id: orphan, staging: replaced} {
		_, err = raw.GetSecret(ctx, name, hex, nil)
		require.True(t, isDisabled(err), "%s version %s is disabled: %v", name, hex, err)
	}
	after, err := s.List(ctx, id)
	require.NoError(t, err)
	require.Equal(t, before, after)
	requireReads(t, vault, id, "", doc("two"), "current")
	got, err := s.Get(ctx, id, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, put.ID, got.ID)
	prev, err := s.Get(ctx, id, providers.StagePrevious)
	require.NoError(t, err)
	require.Equal(t, cur.ID, prev.ID)
	pending, err := s.Get(ctx, id, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, "tok-4", pending.Token)
}
