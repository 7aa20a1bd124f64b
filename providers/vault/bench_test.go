package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/vaulttest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks set each store operation beside a replay of exactly the
// client calls the store makes for it, on the store's own client against
// the same server, so that the ratio is the store's own overhead:
//
//	PutPending  read staging, read metadata, write staging (cas)
//	Promote     read staging, read metadata, write secret (cas),
//	            read metadata, patch metadata, delete staging version
//	Get         read secret (current)
//
// (the steady state: a secret with a current version). Every PutPending and
// Promote call gets a fresh secret path. TestBenchReplaysStoreCalls checks
// that the replay still matches the store.
//
// The ratio per operation: go test -run '^$' -bench '^BenchmarkOverhead$' -benchtime 1x ./providers/vault/

const benchValue = `{"dbname":"checkout","engine":"postgres","host":"db.internal","password":"0123456789abcdef0123456789abcdef","port":5432,"username":"loadtest_a"}`

// callLog records the requests a client sends: method, path and query.
type callLog struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls []string
}

func (l *callLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.calls = append(l.calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	l.mu.Unlock()
	return l.next.RoundTrip(r)
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

type benchSecret struct{ id, current, token string }

// overheadCases returns the operations on a store whose requests go
// through log (nil: no recording). Paths differ per call, so the recorded
// calls are compared with the path replaced.
func overheadCases(tb testing.TB, log *callLog) []providertest.OverheadCase {
	ctx := context.Background()
	srv := vaulttest.Start(tb)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = srv.Addr
	if log != nil {
		log.next = cfg.HttpClient.Transport
		cfg.HttpClient.Transport = log
	}
	store, err := newWithConfig(ctx, Options{Create: true, Auth: Auth{TokenFile: tokenFile(tb, srv.RootToken)}}, cfg)
	require.NoError(tb, err)
	kv := store.kv // the raw side uses the store's own client
	setup := rawKV(tb)
	value := secret.FromString(benchValue)
	data, err := decodeObject(value)
	require.NoError(tb, err)
	n := 0
	var mu sync.Mutex

	withCurrent := func(tb testing.TB) any {
		mu.Lock()
		n++
		id := fmt.Sprintf("%sbench-%d", vaulttest.Prefix(tb), n)
		mu.Unlock()
		_, err := setup.Put(ctx, id, data)
		require.NoError(tb, err)
		return benchSecret{id: id, current: "v1", token: fmt.Sprintf("tok-%d", n)}
	}
	withPending := func(tb testing.TB) any {
		s := withCurrent(tb).(benchSecret)
		_, err := setup.Put(ctx, DefaultPendingPrefix+"/"+s.id, map[string]any{fieldToken: s.token, fieldDocument: benchValue})
		require.NoError(tb, err)
		return s
	}
	shared := withCurrent(tb).(benchSecret)

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
				if _, err := kv.Get(ctx, DefaultPendingPrefix+"/"+s.id); err != nil && !isNotFound(err) {
					return err
				}
				if _, err := kv.GetMetadata(ctx, s.id); err != nil {
					return err
				}
				_, err := kv.Put(ctx, DefaultPendingPrefix+"/"+s.id, map[string]any{fieldToken: s.token, fieldDocument: benchValue}, vaultapi.WithCheckAndSet(0))
				return err
			},
		},
		{
			Name:    "Promote",
			Prepare: withPending,
			Store: func(arg any) error {
				s := arg.(benchSecret)
				return store.Promote(ctx, s.id, providers.PromoteRequest{Token: s.token, ExpectedCurrentID: s.current})
			},
			Raw: func(arg any) error {
				s := arg.(benchSecret)
				staging := DefaultPendingPrefix + "/" + s.id
				if _, err := kv.Get(ctx, staging); err != nil {
					return err
				}
				if _, err := kv.GetMetadata(ctx, s.id); err != nil {
					return err
				}
				if _, err := kv.Put(ctx, s.id, data, vaultapi.WithCheckAndSet(1)); err != nil {
					return err
				}
				if _, err := kv.GetMetadata(ctx, s.id); err != nil {
					return err
				}
				if err := kv.PatchMetadata(ctx, s.id, vaultapi.KVMetadataPatchInput{CustomMetadata: map[string]any{recordPrefix + "2": "p1 " + s.token}}); err != nil {
					return err
				}
				return kv.DeleteVersions(ctx, staging, []int{1})
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
				s, err := kv.Get(ctx, arg.(benchSecret).id)
				if err != nil {
					return err
				}
				return checkRead(len(s.Data))
			},
		},
	}
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, vaultapi.ErrSecretNotFound) }

func checkRead(n int) error {
	if n == 0 {
		return fmt.Errorf("read nothing")
	}
	return nil
}

func BenchmarkStore(b *testing.B)  { providertest.BenchStore(b, overheadCases(b, nil)) }
func BenchmarkRawSDK(b *testing.B) { providertest.BenchRaw(b, overheadCases(b, nil)) }

// BenchmarkOverhead reports the store/raw ratio per operation; run it with
// -benchtime 1x.
func BenchmarkOverhead(b *testing.B) { providertest.BenchOverhead(b, overheadCases(b, nil)) }

// TestBenchReplaysStoreCalls checks that each raw replay sends the requests
// the store sends, in the same order (paths aside, which differ per call).
func TestBenchReplaysStoreCalls(t *testing.T) {
	t.Parallel()
	log := &callLog{}
	for _, c := range overheadCases(t, log) {
		log.take()
		arg := c.Prepare(t)
		log.take()
		require.NoError(t, c.Store(arg))
		store := shape(log.take(), arg.(benchSecret).id)
		arg = c.Prepare(t)
		log.take()
		require.NoError(t, c.Raw(arg))
		raw := shape(log.take(), arg.(benchSecret).id)
		require.NotEmpty(t, store, c.Name)
		require.Equal(t, store, raw, "%s: the raw replay differs from the store's calls", c.Name)
	}
}

// shape replaces the secret's path in recorded calls.
func shape(calls []string, id string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = strings.ReplaceAll(c, id, "ID")
	}
	return out
}
