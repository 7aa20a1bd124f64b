package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/azurefake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks set each store operation beside a replay of exactly the
// client calls the store makes for it, on the store's own client against
// the same fake vault, so that the ratio is the store's own overhead:
//
//	PutPending  get staging, get secret, set staging, get staging (the check)
//	Promote     get staging, get secret, set secret (tags), disable staging version
//	Get         get staging, get secret
//
// (the steady state: a secret with a current version). Every PutPending and
// Promote call gets a fresh secret. TestBenchReplaysStoreCalls checks that
// the replay still matches the store.
//
// The ratio per operation: go test -run '^$' -bench '^BenchmarkOverhead$' -benchtime 1x ./providers/azure/

const benchValue = `{"dbname":"checkout","engine":"postgres","host":"db.internal","password":"0123456789abcdef0123456789abcdef","port":5432,"username":"loadtest_a"}`

type benchSecret struct{ id, current, staged, token string }

func overheadCases(tb testing.TB, vault *azurefake.Vault) []providertest.OverheadCase {
	ctx := context.Background()
	store := newStore(tb, vault, Options{Create: true})
	client := store.client // the raw side uses the store's own client
	setup := vault.Client(tb)
	value := secret.FromString(benchValue)
	n := 0
	var mu sync.Mutex

	withCurrent := func(tb testing.TB) any {
		mu.Lock()
		n++
		id := fmt.Sprintf("bench-%d", n)
		mu.Unlock()
		resp, err := setup.SetSecret(ctx, id, azsecrets.SetSecretParameters{Value: to.Ptr(benchValue)}, nil)
		require.NoError(tb, err)
		return benchSecret{id: id, current: resp.ID.Version(), token: fmt.Sprintf("tok-%d", n)}
	}
	withPending := func(tb testing.TB) any {
		s := withCurrent(tb).(benchSecret)
		resp, err := setup.SetSecret(ctx, s.id+DefaultPendingSuffix, azsecrets.SetSecretParameters{
			Value: to.Ptr(benchValue), ContentType: to.Ptr(contentType), Tags: map[string]*string{tagToken: to.Ptr(s.token)},
		}, nil)
		require.NoError(tb, err)
		s.staged = resp.ID.Version()
		return s
	}
	shared := withCurrent(tb).(benchSecret)
	getBoth := func(id string) error {
		if _, err := client.GetSecret(ctx, id+DefaultPendingSuffix, "", nil); err != nil && !isNotFound(err) {
			return err
		}
		_, err := client.GetSecret(ctx, id, "", nil)
		return err
	}

	return []providertest.OverheadCase{
		{
			Name:    "PutPending",
			Prepare: withCurrent,
			Store: func(arg any) error {
				s := arg.(benchSecret)
				_, err := store.PutPending(ctx, s.id, s.token, value)
				return err
			},
			Raw: func(arg any) error {
				s := arg.(benchSecret)
				if err := getBoth(s.id); err != nil {
					return err
				}
				if _, err := client.SetSecret(ctx, s.id+DefaultPendingSuffix, azsecrets.SetSecretParameters{
					Value: to.Ptr(benchValue), ContentType: to.Ptr(contentType), Tags: map[string]*string{tagToken: to.Ptr(s.token)},
				}, nil); err != nil {
					return err
				}
				_, err := client.GetSecret(ctx, s.id+DefaultPendingSuffix, "", nil)
				return err
			},
		},
		{
			Name:    "Promote",
			Prepare: withPending,
			Store: func(arg any) error {
				s := arg.(benchSecret)
				return store.Promote(ctx, s.id, providers.PromoteRequest{Token: s.token, ExpectedCurrentID: "v" + s.current})
			},
			Raw: func(arg any) error {
				s := arg.(benchSecret)
				if err := getBoth(s.id); err != nil {
					return err
				}
				if _, err := client.SetSecret(ctx, s.id, azsecrets.SetSecretParameters{
					Value: to.Ptr(benchValue), ContentType: to.Ptr(contentType),
					Tags: map[string]*string{tagToken: to.Ptr(s.token), tagPendingVersion: to.Ptr(s.staged), tagPrevious: to.Ptr(s.current)},
				}, nil); err != nil {
					return err
				}
				_, err := client.UpdateSecretProperties(ctx, s.id+DefaultPendingSuffix, s.staged, azsecrets.UpdateSecretPropertiesParameters{
					SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
				}, nil)
				return err
			},
		},
		{
			Name:    "Get",
			Prepare: func(testing.TB) any { return shared },
			Store: func(arg any) error {
				v, err := store.Get(ctx, arg.(benchSecret).id, providers.StageCurrent)
				if err != nil {
					return err
				}
				return checkRead(v.Value.Len())
			},
			Raw: func(arg any) error {
				return getBoth(arg.(benchSecret).id)
			},
		},
	}
}

func checkRead(n int) error {
	if n == 0 {
		return fmt.Errorf("read nothing")
	}
	return nil
}

func BenchmarkStore(b *testing.B)  { providertest.BenchStore(b, overheadCases(b, azurefake.New())) }
func BenchmarkRawSDK(b *testing.B) { providertest.BenchRaw(b, overheadCases(b, azurefake.New())) }

// BenchmarkOverhead reports the store/raw ratio per operation; run it with
// -benchtime 1x.
func BenchmarkOverhead(b *testing.B) {
	providertest.BenchOverhead(b, overheadCases(b, azurefake.New()))
}

// TestBenchReplaysStoreCalls checks that each raw replay makes the calls the
// store makes, in the same order (names and version ids aside, which differ
// per secret), and that the store's writes carry what the replay's do.
func TestBenchReplaysStoreCalls(t *testing.T) {
	t.Parallel()
	vault := azurefake.New()
	for _, c := range overheadCases(t, vault) {
		arg := c.Prepare(t)
		vault.Calls()
		require.NoError(t, c.Store(arg))
		store := shape(vault.Calls(), arg.(benchSecret))
		storeTags := lastTags(t, vault, arg.(benchSecret))
		arg = c.Prepare(t)
		vault.Calls()
		require.NoError(t, c.Raw(arg))
		raw := shape(vault.Calls(), arg.(benchSecret))
		require.NotEmpty(t, store, c.Name)
		require.Equal(t, store, raw, "%s: the raw replay differs from the store's calls", c.Name)
		require.Equal(t, storeTags, lastTags(t, vault, arg.(benchSecret)), "%s: the replay's writes differ", c.Name)
	}
}

// shape replaces the secret's name and version ids in recorded calls.
func shape(calls []string, s benchSecret) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		c = strings.ReplaceAll(c, s.id, "ID")
		if s.staged != "" {
			c = strings.ReplaceAll(c, s.staged, "STAGED")
		}
		out[i] = c
	}
	return out
}

// lastTags is the tag names of the latest versions of s's secrets, for
// comparing what the writes carried (values of tags differ per secret).
func lastTags(t *testing.T, vault *azurefake.Vault, s benchSecret) []string {
	t.Helper()
	var names []string
	for _, name := range []string{s.id, s.id + DefaultPendingSuffix} {
		props := vault.Client(t).NewListSecretPropertiesVersionsPager(name, nil)
		for props.More() {
			page, err := props.NextPage(t.Context())
			require.NoError(t, err)
			for _, p := range page.Value {
				for k := range p.Tags {
					names = append(names, name[len(s.id):]+":"+k)
				}
				names = append(names, fmt.Sprintf("%s:enabled=%v", name[len(s.id):], *p.Attributes.Enabled))
			}
		}
	}
	slices.Sort(names)
	return names
}
