package gcp

import (
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks set each store operation beside a replay of exactly the
// Secret Manager calls the store makes for it, with the same requests, on
// the store's own client against the same in-process fake (loopback gRPC:
// the absolute numbers are small, the ratio is what to read). The steady
// state of a policy that has rotated before:
//
//	PutPending  secret with current 1: GetSecret, ListSecretVersions(page
//	            size 1), UpdateSecret(annotations: reservation),
//	            AddSecretVersion(with CRC32C), UpdateSecret(version_aliases +
//	            annotations: pending 2, its token, reservation dropped)
//	Promote     secret with previous 1, current 2, pending 3: GetSecret,
//	            UpdateSecret(version_aliases + annotations: current 3,
//	            previous 2, token of 1 dropped)
//	Get         secret with current 1: GetSecret, then AccessSecretVersion
//	            (versions/current) ∥ GetSecretVersion(versions/1)
//
// Every call works on a secret of its own, seeded directly in the fake
// outside the timing. TestBenchReplaysStoreCalls checks that the replay
// still matches the store.
//
// The ratio per operation (medians over rounds that alternate store and
// raw calls): go test -run '^$' -bench '^BenchmarkOverhead$' -benchtime 1x ./providers/gcp/

var benchValue = secret.FromString(`{"engine":"postgres","host":"db","port":5432,"dbname":"shop","username":"loadtest_a","password":"0123456789abcdef0123456789abcdef"}`)

// Rotation tokens of the seeded versions.
const (
	benchToken1 = "0190f5f2-7c3e-7d2a-9b1e-000000000001"
	benchToken2 = "0190f5f2-7c3e-7d2a-9b1e-000000000002"
	benchToken3 = "0190f5f2-7c3e-7d2a-9b1e-000000000003"
)

// seedStaged creates secret id with len(tokens) versions of benchValue,
// version i+1 tagged with tokens[i] and aliased as aliases say.
func seedStaged(tb testing.TB, f *gcpfake.Server, id string, aliases map[string]int64, tokens ...string) {
	f.Seed(id)
	ann := map[string]string{}
	for i, token := range tokens {
		n := f.AddVersion(tb, id, benchValue.Reveal())
		require.Equal(tb, int64(i+1), n)
		ann[tokenKey(n)] = token
	}
	f.Mutate(tb, id, func(s *secretmanagerpb.Secret) { s.VersionAliases, s.Annotations = aliases, ann })
}

// overheadCases returns the benchmarked operations on a store of f.
func overheadCases(tb testing.TB, f *gcpfake.Server) []providertest.OverheadCase {
	store := openStore(tb, f, Options{})
	sdk := store.client // the raw side uses the store's own client
	ctx := tb.Context()
	var seq atomic.Int64
	fresh := func() (id, name string) {
		id = fmt.Sprintf("bench-%d", seq.Add(1))
		return id, "projects/" + gcpfake.Project + "/secrets/" + id
	}
	type arg struct{ id, name string }
	withCurrent := func(tb testing.TB) any {
		id, name := fresh()
		seedStaged(tb, f, id, map[string]int64{"current": 1}, benchToken1)
		return arg{id, name}
	}
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	data := benchValue.Reveal()
	sum := int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	checkRead := func(n int) error {
		if n != benchValue.Len() {
			return fmt.Errorf("read %d bytes, want %d", n, benchValue.Len())
		}
		return nil
	}

	return []providertest.OverheadCase{
		{
			Name:    "PutPending",
			Prepare: withCurrent,
			Store: func(a any) error {
				_, err := store.PutPending(ctx, a.(arg).id, benchToken2, benchValue)
				return err
			},
			Raw: func(a any) error {
				name := a.(arg).name
				sec, err := sdk.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
				if err != nil {
					return err
				}
				it := sdk.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: name, PageSize: 1})
				if _, err := it.Next(); err != nil {
					return err
				}
				sec, err = sdk.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
					Secret: &secretmanagerpb.Secret{Name: name, Etag: sec.GetEtag(), Annotations: map[string]string{
						tokenKey(1): benchToken1, annReserved: benchToken2, annReservedAfter: "1",
					}},
					UpdateMask: mask("annotations"),
				})
				if err != nil {
					return err
				}
				if _, err := sdk.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
					Parent: name, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
				}); err != nil {
					return err
				}
				_, err = sdk.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
					Secret: &secretmanagerpb.Secret{Name: name, Etag: sec.GetEtag(),
						VersionAliases: map[string]int64{"current": 1, "pending": 2},
						Annotations:    map[string]string{tokenKey(1): benchToken1, tokenKey(2): benchToken2},
					},
					UpdateMask: mask("version_aliases", "annotations"),
				})
				return err
			},
		},
		{
			Name: "Promote",
			Prepare: func(tb testing.TB) any {
				id, name := fresh()
				seedStaged(tb, f, id, map[string]int64{"previous": 1, "current": 2, "pending": 3}, benchToken1, benchToken2, benchToken3)
				return arg{id, name}
			},
			Store: func(a any) error {
				return store.Promote(ctx, a.(arg).id, providers.PromoteRequest{Token: benchToken3, ExpectedCurrentID: "2"})
			},
			Raw: func(a any) error {
				name := a.(arg).name
				sec, err := sdk.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
				if err != nil {
					return err
				}
				_, err = sdk.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
					Secret: &secretmanagerpb.Secret{Name: name, Etag: sec.GetEtag(),
						VersionAliases: map[string]int64{"current": 3, "previous": 2},
						Annotations:    map[string]string{tokenKey(2): benchToken2, tokenKey(3): benchToken3},
					},
					UpdateMask: mask("version_aliases", "annotations"),
				})
				return err
			},
		},
		{
			Name:    "Get",
			Prepare: withCurrent,
			Store: func(a any) error {
				v, err := store.Get(ctx, a.(arg).id, providers.StageCurrent)
				if err != nil {
					return err
				}
				return checkRead(v.Value.Len())
			},
			Raw: func(a any) error {
				name := a.(arg).name
				if _, err := sdk.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); err != nil {
					return err
				}
				metaErr := make(chan error, 1)
				go func() {
					_, err := sdk.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name + "/versions/1"})
					metaErr <- err
				}()
				resp, err := sdk.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name + "/versions/current"})
				if mErr := <-metaErr; err == nil {
					err = mErr
				}
				if err != nil {
					return err
				}
				return checkRead(len(resp.GetPayload().GetData()))
			},
		},
	}
}

func BenchmarkStore(b *testing.B) {
	providertest.BenchStore(b, overheadCases(b, gcpfake.Start(b)))
}

func BenchmarkRawSDK(b *testing.B) {
	providertest.BenchRaw(b, overheadCases(b, gcpfake.Start(b)))
}

// BenchmarkOverhead reports the store/raw ratio per operation; run it with
// -benchtime 1x.
func BenchmarkOverhead(b *testing.B) {
	providertest.BenchOverhead(b, overheadCases(b, gcpfake.Start(b)))
}

// TestBenchReplaysStoreCalls checks that each raw replay makes the calls the
// store makes, with the same requests (secret names aside): a benchmark
// against a replay that drifted from the store would measure nothing. Get's
// two parallel calls may arrive in either order, so calls are compared as
// sorted lists.
func TestBenchReplaysStoreCalls(t *testing.T) {
	t.Parallel()
	f := gcpfake.Start(t)
	var mu sync.Mutex
	var calls []string
	f.SetHooks(func(method string, req proto.Message) error {
		mu.Lock()
		defer mu.Unlock()
		parts := strings.Fields(fmt.Sprint(req)) // prototext spacing is randomised
		for i, part := range parts {
			switch {
			case strings.Contains(part, "bench-"): // the secret's own name
				parts[i] = "NAME"
			case strings.HasPrefix(part, "etag:"): // the secret's own etag
				parts[i] = "etag:ETAG"
			}
		}
		calls = append(calls, method+" "+strings.Join(parts, " "))
		return nil
	}, nil)
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(calls)
		calls = nil
		slices.Sort(out)
		return out
	}
	for _, c := range overheadCases(t, f) {
		take()
		require.NoError(t, c.Store(c.Prepare(t)))
		store := take()
		require.NoError(t, c.Raw(c.Prepare(t)))
		raw := take()
		require.NotEmpty(t, store, c.Name)
		require.Equal(t, store, raw, "%s: the raw replay differs from the store's calls", c.Name)
	}
}
