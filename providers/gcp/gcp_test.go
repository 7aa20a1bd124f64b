package gcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

const testSecret = "checkout-db"

type bundle struct {
	ctx   context.Context
	fake  *gcpfake.Server
	store *Store
	raw   *secretmanager.Client // a hand-written client on the same fake
	name  string                // projects/…/secrets/checkout-db
}

func setup(t *testing.T, opts Options) *bundle {
	t.Helper()
	f := gcpfake.Start(t)
	raw, err := secretmanager.NewClient(t.Context(), f.ClientOptions(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	return &bundle{
		ctx:   t.Context(),
		fake:  f,
		store: openStore(t, f, opts),
		raw:   raw,
		name:  "projects/" + gcpfake.Project + "/secrets/" + testSecret,
	}
}

var valueSeq atomic.Int64

// value returns a distinct credential whose password is easy to search for.
func value(t *testing.T) secret.Secret {
	t.Helper()
	return secret.FromString(fmt.Sprintf(`{"username":"loadtest","password":"pw-%d-%d"}`, time.Now().UnixNano(), valueSeq.Add(1)))
}

func password(v secret.Secret) string {
	s := v.RevealString()
	return s[strings.Index(s, "pw-") : len(s)-2]
}

func (b *bundle) rotate(t *testing.T, token string, v secret.Secret, expected string) providers.Version {
	t.Helper()
	put, err := b.store.PutPending(b.ctx, testSecret, token, v)
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, testSecret, providers.PromoteRequest{Token: token, ExpectedCurrentID: expected}))
	return put
}

func (b *bundle) snapshot(t *testing.T) (*secretmanagerpb.Secret, []secretmanagerpb.SecretVersion_State) {
	t.Helper()
	return b.fake.Snapshot(t, testSecret)
}

// failOnce returns a hook that fails the n-th call (1-based) of method with
// code, once.
func failOnce(method string, n int, code codes.Code) gcpfake.Hook {
	var mu sync.Mutex
	seen := 0
	return func(m string, _ proto.Message) error {
		if m != method {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			return status.Error(code, "injected: the connection dropped")
		}
		return nil
	}
}

var (
	enabled   = secretmanagerpb.SecretVersion_ENABLED
	disabled  = secretmanagerpb.SecretVersion_DISABLED
	destroyed = secretmanagerpb.SecretVersion_DESTROYED
)

// The fake's own semantics, through the raw client: what the store relies on.
func TestFake(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.fake.Seed(testSecret)
	ctx := b.ctx

	// NotFound for a missing secret and a missing version.
	_, err := b.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: b.name + "x"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/1"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.Equal(t, codes.NotFound, status.Code(err), "latest of a secret without versions")

	// Versions are numbered from 1; adding one does not change the secret's
	// etag; names in responses carry the project number.
	sec, err := b.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: b.name})
	require.NoError(t, err)
	etag0 := sec.GetEtag()
	require.True(t, strings.HasPrefix(etag0, `"`) && strings.HasSuffix(etag0, `"`), "etags include their quotes")
	for i, data := range []string{"one", "two", "three"} {
		v, err := b.raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: b.name, Payload: &secretmanagerpb.SecretPayload{Data: []byte(data)}})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("projects/%s/secrets/%s/versions/%d", gcpfake.ProjectNumber, testSecret, i+1), v.GetName())
		require.Equal(t, enabled, v.GetState())
	}
	sec, err = b.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: b.name})
	require.NoError(t, err)
	require.Equal(t, etag0, sec.GetEtag(), "AddSecretVersion changes only the version's etag")

	// Aliases through UpdateSecret; access by alias answers with the number.
	sec.Labels = map[string]string{"team": "perf"}
	sec.VersionAliases = map[string]int64{"current": 1}
	sec, err = b.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: sec, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}}})
	require.NoError(t, err)
	require.Empty(t, sec.GetLabels(), "a field outside the update mask is not changed")
	require.NotEqual(t, etag0, sec.GetEtag(), "every update renews the etag")
	acc, err := b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/current"})
	require.NoError(t, err)
	require.Equal(t, "one", string(acc.GetPayload().GetData()))
	require.True(t, strings.HasSuffix(acc.GetName(), "/versions/1"))
	_, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/pending"})
	require.Equal(t, codes.NotFound, status.Code(err), "an alias nobody set")

	// A stale etag fails with FAILED_PRECONDITION and changes nothing.
	stale := proto.Clone(sec).(*secretmanagerpb.Secret)
	same := proto.Clone(sec).(*secretmanagerpb.Secret)
	_, err = b.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: same, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}}})
	require.NoError(t, err, "a no-op update with the right etag")
	stale.VersionAliases = map[string]int64{"current": 2}
	_, err = b.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: stale, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}}})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "the no-op update renewed the etag, so the old one is stale")
	got, _ := b.snapshot(t)
	require.Equal(t, map[string]int64{"current": 1}, got.GetVersionAliases())

	// Reserved and malformed names are refused.
	for _, bad := range []map[string]int64{{"latest": 1}, {"NEW": 1}, {"1st": 1}, {"current": 9}} {
		s := &secretmanagerpb.Secret{Name: b.name, VersionAliases: bad}
		_, err = b.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: s, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}}})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "aliases %v", bad)
	}
	s := &secretmanagerpb.Secret{Name: b.name, Annotations: map[string]string{"swarmkey.io/token-1": "x"}}
	_, err = b.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: s, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "annotation keys may not contain a slash")

	// latest is the newest version in any state: disabled, it cannot be read,
	// and nothing falls back to an older one.
	acc, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.NoError(t, err)
	require.Equal(t, "three", string(acc.GetPayload().GetData()))
	_, err = b.raw.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: b.name + "/versions/3"})
	require.NoError(t, err)
	_, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	meta, err := b.raw.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(meta.GetName(), "/versions/3"))
	require.Equal(t, disabled, meta.GetState())
	_, err = b.raw.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: b.name + "/versions/3"})
	require.NoError(t, err, "disabling a disabled version succeeds")

	// Destroyed is final and has no data.
	_, err = b.raw.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: b.name + "/versions/2"})
	require.NoError(t, err)
	_, err = b.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/2"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	_, err = b.raw.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: b.name + "/versions/2"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	// Listing is newest first, in pages.
	resp := b.raw.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: b.name, PageSize: 2})
	var names []string
	for {
		v, err := resp.Next()
		if err != nil {
			break
		}
		names = append(names, v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:]+"="+v.GetState().String())
	}
	require.Equal(t, []string{"3=DISABLED", "2=DESTROYED", "1=ENABLED"}, names)
}

// The store reads stages through aliases; latest would give the untested
// pending credential during a rotation and nothing at all after a discard.
func TestLatestIsNotAStage(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	v1, v2 := value(t), value(t)
	cur := b.rotate(t, "t1", v1, "")
	_, err := b.store.PutPending(b.ctx, testSecret, "t2", v2)
	require.NoError(t, err)

	latest, err := b.raw.AccessSecretVersion(b.ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.NoError(t, err)
	require.Equal(t, v2.RevealString(), string(latest.GetPayload().GetData()), "latest is the pending version")
	got, err := b.store.Get(b.ctx, testSecret, providers.StageCurrent)
	require.NoError(t, err)
	require.True(t, v1.Equal(got.Value))
	require.Equal(t, cur.ID, got.ID)

	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t2"))
	_, err = b.raw.AccessSecretVersion(b.ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.name + "/versions/latest"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "the discarded newest version is disabled")
	got, err = b.store.Get(b.ctx, testSecret, providers.StageCurrent)
	require.NoError(t, err)
	require.True(t, v1.Equal(got.Value))
	require.Equal(t, []providers.Stage{providers.StageCurrent}, got.Stages)
}

// The store never names versions/latest, in any call.
func TestStoreNeverReadsLatest(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	var latest atomic.Int64
	b.fake.SetHooks(func(_ string, req proto.Message) error {
		type named interface{ GetName() string }
		if n, ok := req.(named); ok && strings.HasSuffix(n.GetName(), "/latest") {
			latest.Add(1)
		}
		return nil
	}, nil)
	cur := b.rotate(t, "t1", value(t), "")
	b.rotate(t, "t2", value(t), cur.ID)
	_, err := b.store.PutPending(b.ctx, testSecret, "t3", value(t))
	require.NoError(t, err)
	_, err = b.store.PutPending(b.ctx, testSecret, "t3", value(t))
	require.ErrorIs(t, err, providers.ErrConflict)
	for _, stage := range providers.Stages {
		_, err := b.store.Get(b.ctx, testSecret, stage)
		require.NoError(t, err)
	}
	_, err = b.store.List(b.ctx, testSecret)
	require.NoError(t, err)
	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t3"))
	require.NoError(t, b.store.RetireUnstaged(b.ctx, testSecret, providers.RetireRequest{}))
	require.Zero(t, latest.Load(), "the store asked for versions/latest")
}

// A crash between AddSecretVersion and the alias update (the response is
// lost: the version exists, the caller saw an error) leaves an orphan and
// the reservation. The retry adopts the orphan when it holds the same value.
func TestPutPendingCrashAfterAddAdopts(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	cur := b.rotate(t, "t1", value(t), "")
	v := value(t)

	b.fake.SetHooks(nil, failOnce("AddSecretVersion", 1, codes.Unavailable))
	_, err := b.store.PutPending(b.ctx, testSecret, "t2", v)
	require.Error(t, err)
	sec, states := b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, enabled}, states, "the version was added")
	require.Equal(t, map[string]int64{"current": 1}, sec.GetVersionAliases(), "but not aliased")
	require.Equal(t, "t2", sec.GetAnnotations()[annReserved])
	require.Equal(t, "1", sec.GetAnnotations()[annReservedAfter])

	// Another rotation cannot slip in while the reservation stands.
	_, err = b.store.PutPending(b.ctx, testSecret, "t9", value(t))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), `"t2"`)

	adds := b.fake.Calls("AddSecretVersion")
	got, err := b.store.PutPending(b.ctx, testSecret, "t2", secret.New(v.Reveal()))
	require.NoError(t, err)
	require.Equal(t, "2", got.ID)
	require.Equal(t, []providers.Stage{providers.StagePending}, got.Stages)
	require.Equal(t, adds, b.fake.Calls("AddSecretVersion"), "the retry must not add another version")

	sec, states = b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, enabled}, states)
	require.Equal(t, map[string]int64{"current": 1, "pending": 2}, sec.GetVersionAliases())
	require.NotContains(t, sec.GetAnnotations(), annReserved)
	require.NotContains(t, sec.GetAnnotations(), annReservedAfter)
	require.Equal(t, "t2", sec.GetAnnotations()[tokenKey(2)])

	// And the rotation goes on.
	require.NoError(t, b.store.Promote(b.ctx, testSecret, providers.PromoteRequest{Token: "t2", ExpectedCurrentID: cur.ID}))
	g, err := b.store.Get(b.ctx, testSecret, providers.StageCurrent)
	require.NoError(t, err)
	require.True(t, v.Equal(g.Value))
}

// A retry with another value (the rotator regenerated the credential, which
// it never stores) disables the unseen orphan and writes a fresh version.
func TestPutPendingCrashAfterAddOtherValue(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	b.fake.SetHooks(nil, failOnce("AddSecretVersion", 1, codes.Unavailable))
	_, err := b.store.PutPending(b.ctx, testSecret, "t1", value(t))
	require.Error(t, err)

	v := value(t)
	got, err := b.store.PutPending(b.ctx, testSecret, "t1", v)
	require.NoError(t, err)
	require.Equal(t, "2", got.ID)
	sec, states := b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{disabled, enabled}, states)
	require.Equal(t, map[string]int64{"pending": 2}, sec.GetVersionAliases())
	require.NotContains(t, sec.GetAnnotations(), annReserved)
	g, err := b.store.Get(b.ctx, testSecret, providers.StagePending)
	require.NoError(t, err)
	require.True(t, v.Equal(g.Value))
}

// DiscardPending of the crashed token clears its reservation and disables
// what it may have added; then another rotation can start.
func TestDiscardAfterPutPendingCrash(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	cur := b.rotate(t, "t1", value(t), "")
	b.fake.SetHooks(nil, failOnce("AddSecretVersion", 1, codes.Unavailable))
	_, err := b.store.PutPending(b.ctx, testSecret, "t2", value(t))
	require.Error(t, err)

	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t2"))
	sec, states := b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, disabled}, states)
	require.NotContains(t, sec.GetAnnotations(), annReserved)
	require.NotContains(t, sec.GetAnnotations(), annReservedAfter)
	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t2"), "again: nothing left")

	v := value(t)
	_, err = b.store.PutPending(b.ctx, testSecret, "t3", v)
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, testSecret, providers.PromoteRequest{Token: "t3", ExpectedCurrentID: cur.ID}))
	sec, _ = b.snapshot(t)
	require.Equal(t, map[string]int64{"current": 3, "previous": 1}, sec.GetVersionAliases())
}

// Crashes at the other points of PutPending: after the reservation (no
// version yet) and after the alias update (the response is lost). Each
// retry ends with exactly one version, pending.
func TestPutPendingCrashElsewhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hook gcpfake.Hook
	}{
		{"after reservation", failOnce("UpdateSecret", 1, codes.Unavailable)},
		{"after alias update", failOnce("UpdateSecret", 2, codes.DeadlineExceeded)},
		{"reading the newest version", failOnce("ListSecretVersions", 1, codes.Unavailable)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{})
			b.fake.Seed(testSecret)
			b.fake.SetHooks(nil, tc.hook)
			v := value(t)
			_, err := b.store.PutPending(b.ctx, testSecret, "t1", v)
			require.Error(t, err)
			got, err := b.store.PutPending(b.ctx, testSecret, "t1", v)
			require.NoError(t, err)
			require.Equal(t, "1", got.ID)
			sec, states := b.snapshot(t)
			require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled}, states)
			require.Equal(t, map[string]int64{"pending": 1}, sec.GetVersionAliases())
			require.Equal(t, map[string]string{tokenKey(1): "t1"}, sec.GetAnnotations())
		})
	}
}

// Another writer changing the secret between Promote's read and its write
// makes the etag stale: ErrConflict, nothing promoted.
func TestPromoteEtagMoved(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	cur := b.rotate(t, "t1", value(t), "")
	_, err := b.store.PutPending(b.ctx, testSecret, "t2", value(t))
	require.NoError(t, err)
	before, _ := b.snapshot(t)

	var once sync.Once
	b.fake.SetHooks(func(m string, _ proto.Message) error {
		if m == "UpdateSecret" {
			once.Do(func() { b.fake.SetAliases(t, testSecret, before.GetVersionAliases()) })
		}
		return nil
	}, nil)
	err = b.store.Promote(b.ctx, testSecret, providers.PromoteRequest{Token: "t2", ExpectedCurrentID: cur.ID})
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), "etag")
	after, _ := b.snapshot(t)
	require.Equal(t, before.GetVersionAliases(), after.GetVersionAliases())
	require.Equal(t, before.GetAnnotations(), after.GetAnnotations())

	// The caller re-reads and tries again.
	require.NoError(t, b.store.Promote(b.ctx, testSecret, providers.PromoteRequest{Token: "t2", ExpectedCurrentID: cur.ID}))
}

// Two clients promote the same pending version after both have read the
// secret: the etag lets exactly one write; the other gets ErrConflict.
func TestPromoteRaceExactlyOneWins(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	other := openStore(t, b.fake, Options{Project: gcpfake.Project})
	cur := b.rotate(t, "t1", value(t), "")
	_, err := b.store.PutPending(b.ctx, testSecret, "t2", value(t))
	require.NoError(t, err)

	var reads atomic.Int64
	bothRead := make(chan struct{})
	b.fake.SetHooks(func(m string, _ proto.Message) error {
		if m == "UpdateSecret" {
			select {
			case <-bothRead:
			case <-time.After(5 * time.Second):
				return status.Error(codes.Internal, "test: the other promote never read")
			}
		}
		return nil
	}, func(m string, _ proto.Message) error {
		if m == "GetSecret" && reads.Add(1) == 2 {
			close(bothRead)
		}
		return nil
	})
	req := providers.PromoteRequest{Token: "t2", ExpectedCurrentID: cur.ID}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{b.store, other} {
		wg.Go(func() { errs[i] = s.Promote(b.ctx, testSecret, req) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, providers.ErrConflict)
		}
	}
	require.Equal(t, 1, won, "errors: %v", errs)
	sec, _ := b.snapshot(t)
	require.Equal(t, map[string]int64{"current": 2, "previous": 1}, sec.GetVersionAliases())
}

// DiscardPending crashing between the alias removal and the disable leaves
// the version unaliased but still enabled; the retry finds it by its token
// annotation and disables it.
func TestDiscardCrashBeforeDisable(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	_, err := b.store.PutPending(b.ctx, testSecret, "t1", value(t))
	require.NoError(t, err)
	b.fake.SetHooks(failOnce("DisableSecretVersion", 1, codes.Unavailable), nil)
	require.Error(t, b.store.DiscardPending(b.ctx, testSecret, "t1"))
	sec, states := b.snapshot(t)
	require.Empty(t, sec.GetVersionAliases())
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled}, states)

	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t1"))
	sec, states = b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{disabled}, states)
	require.Empty(t, sec.GetAnnotations())
}

// RetireUnstaged disables only versions no alias names: not the stages, not
// an operator's own alias, not an orphan of a live reservation.
func TestRetireUnstaged(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	cur := b.rotate(t, "t1", value(t), "")
	for i := 2; i <= 4; i++ {
		cur = b.rotate(t, fmt.Sprintf("t%d", i), value(t), cur.ID)
	}
	// Versions 1 and 2 are unstaged; an operator pins 1 with an alias.
	sec, _ := b.snapshot(t)
	aliases := sec.GetVersionAliases()
	aliases["pinned"] = 1
	b.fake.SetAliases(t, testSecret, aliases)
	// A PutPending crashed after adding version 5: it holds the reservation.
	b.fake.SetHooks(nil, failOnce("AddSecretVersion", 1, codes.Unavailable))
	_, err := b.store.PutPending(b.ctx, testSecret, "t5", value(t))
	require.Error(t, err)

	require.NoError(t, b.store.RetireUnstaged(b.ctx, testSecret, providers.RetireRequest{}))
	_, states := b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, disabled, enabled, enabled, enabled}, states)

	require.NoError(t, b.store.RetireUnstaged(b.ctx, testSecret, providers.RetireRequest{Destroy: true}))
	_, states = b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, destroyed, enabled, enabled, enabled}, states)

	// Once t5 is discarded its orphan is disabled and retire may destroy it.
	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t5"))
	destroyer := openStore(t, b.fake, Options{DestroyRetired: true})
	require.NoError(t, destroyer.RetireUnstaged(b.ctx, testSecret, providers.RetireRequest{}))
	sec, states = b.snapshot(t)
	require.Equal(t, []secretmanagerpb.SecretVersion_State{enabled, destroyed, enabled, enabled, destroyed}, states)
	require.Equal(t, map[string]string{tokenKey(3): "t3", tokenKey(4): "t4"}, sec.GetAnnotations())
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	_, err := b.store.PutPending(b.ctx, testSecret, "t1", value(t))
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.Contains(t, err.Error(), "create: true")
	require.Zero(t, b.fake.Calls("CreateSecret"))

	creator := openStore(t, b.fake, Options{Create: true, Labels: map[string]string{"managed-by": "swarmkey"}})
	_, err = creator.PutPending(b.ctx, testSecret, "t1", value(t))
	require.NoError(t, err)
	sec, _ := b.snapshot(t)
	require.Equal(t, map[string]string{"managed-by": "swarmkey"}, sec.GetLabels())
	require.NotNil(t, sec.GetReplication().GetAutomatic())
}

func TestInputValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	_, err := b.store.PutPending(b.ctx, "projects/p/secrets/s", "t1", value(t))
	require.ErrorContains(t, err, "short name")
	_, err = b.store.PutPending(b.ctx, testSecret, "", value(t))
	require.Error(t, err)
	_, err = b.store.PutPending(b.ctx, testSecret, "t1", secret.Secret{})
	require.Error(t, err)
	_, err = b.store.Get(b.ctx, testSecret, "latest")
	require.ErrorContains(t, err, "unknown stage")
	_, err = New(b.ctx, Options{})
	require.ErrorContains(t, err, "project")
	require.Equal(t, "gcp", b.store.Name())
}

// PERMISSION_DENIED names the permission to grant and where the roles are.
func TestPermissionDenied(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	b.fake.SetHooks(func(m string, _ proto.Message) error {
		if m == "UpdateSecret" {
			return status.Error(codes.PermissionDenied, "Permission 'secretmanager.secrets.update' denied")
		}
		return nil
	}, nil)
	_, err := b.store.PutPending(b.ctx, testSecret, "t1", value(t))
	require.ErrorContains(t, err, "secretmanager.secrets.update")
	require.ErrorContains(t, err, "deploy/gcp/roles.md")
	require.ErrorContains(t, err, `"projects/`+gcpfake.Project+`/secrets/`+testSecret+`"`)
	require.ErrorContains(t, err, "UpdateSecret")
}

// A server whose error messages echo the payload (a validation message
// quoting the request, say) must not get a value into swarmkey's errors.
func TestNoValueInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	v := value(t)
	echo := func(method string) gcpfake.Hook {
		return func(m string, _ proto.Message) error {
			if m == method {
				return status.Errorf(codes.InvalidArgument, "bad payload %q", v.RevealString())
			}
			return nil
		}
	}
	var errs []error

	b.fake.SetHooks(echo("AddSecretVersion"), nil)
	_, err := b.store.PutPending(b.ctx, testSecret, "t1", v)
	errs = append(errs, err)

	b.fake.SetHooks(nil, nil)
	_, err = b.store.PutPending(b.ctx, testSecret, "t1", v)
	require.NoError(t, err)
	b.fake.SetHooks(echo("AccessSecretVersion"), nil)
	_, err = b.store.Get(b.ctx, testSecret, providers.StagePending)
	errs = append(errs, err)
	_, err = b.store.PutPending(b.ctx, testSecret, "t1", v) // compares values
	errs = append(errs, err)

	b.fake.SetHooks(nil, nil)
	_, err = b.store.PutPending(b.ctx, testSecret, "t1", value(t))
	errs = append(errs, err)
	require.NoError(t, b.store.DiscardPending(b.ctx, testSecret, "t1"))
	_, err = b.store.Get(b.ctx, testSecret, providers.StagePending)
	errs = append(errs, err)

	for _, err := range errs {
		require.Error(t, err)
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), status.Convert(err).Message()} {
			require.NotContains(t, text, password(v))
		}
		var ce *callError
		if errors.As(err, &ce) {
			require.NotContains(t, ce.msg, password(v))
		}
	}
}

// The SDK logs whole requests and responses, payloads included, when
// GOOGLE_SDK_GO_LOGGING_LEVEL=debug; the store switches that logging off.
// Not parallel: it sets an environment variable and swaps os.Stderr.
func TestSDKDebugLogsNoValue(t *testing.T) {
	t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "debug")
	f := gcpfake.Start(t)
	f.Seed(testSecret)
	v := value(t)
	name := "projects/" + gcpfake.Project + "/secrets/" + testSecret

	logged := captureStderr(t, func() {
		// Control: a plain client does log the payload, or this test
		// would prove nothing.
		raw, err := secretmanager.NewClient(t.Context(), f.ClientOptions(t)...)
		require.NoError(t, err)
		defer raw.Close()
		_, err = raw.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: name, Payload: &secretmanagerpb.SecretPayload{Data: v.Reveal()}})
		require.NoError(t, err)
	})
	require.Contains(t, logged, base64.StdEncoding.EncodeToString(v.Reveal()), "the SDK's debug logging did not switch on")

	v2 := value(t)
	logged = captureStderr(t, func() {
		s := openStore(t, f, Options{})
		_, err := s.PutPending(t.Context(), testSecret, "t1", v2)
		require.NoError(t, err)
		_, err = s.Get(t.Context(), testSecret, providers.StagePending)
		require.NoError(t, err)
	})
	// The SDK logs payloads base64-encoded: search for both forms.
	require.NotContains(t, logged, password(v2))
	require.NotContains(t, logged, base64.StdEncoding.EncodeToString(v2.Reveal()))
	require.NotContains(t, logged, "api request")
}

func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stderr
	os.Stderr = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	defer func() { os.Stderr = saved }()
	fn()
	os.Stderr = saved
	require.NoError(t, w.Close())
	return <-out
}

// Errors from the cloud say which secret, which call and what to check.
func TestErrorsSayWhereAndWhat(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	missing := `"projects/` + gcpfake.Project + `/secrets/missing"`

	_, err := b.store.Get(b.ctx, "missing", providers.StageCurrent)
	require.ErrorIs(t, err, providers.ErrNotFound)
	for _, want := range []string{missing, "GetSecret", "no such secret", "check the secret id and the project"} {
		require.ErrorContains(t, err, want)
	}
	_, err = b.store.List(b.ctx, "missing")
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.ErrorContains(t, err, missing)
	require.ErrorContains(t, err, "list: GetSecret")

	wrong := openStore(t, b.fake, Options{Project: "someone-elses"})
	_, err = wrong.Get(b.ctx, testSecret, providers.StageCurrent)
	require.ErrorContains(t, err, `"projects/someone-elses/secrets/`+testSecret+`"`)
	require.ErrorContains(t, err, "secretmanager.secrets.get")
	require.ErrorContains(t, err, "check the project too")

	b.fake.SetHooks(func(string, proto.Message) error { return status.Error(codes.Unavailable, "connection refused") }, nil)
	_, err = b.store.List(b.ctx, testSecret)
	require.ErrorContains(t, err, "did not answer")
	require.ErrorContains(t, err, "GetSecret")
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Options{Project: "p", Labels: map[string]string{"team": "perf", "env": ""}}.Validate())

	err := Options{Project: "projects/p", Labels: map[string]string{"Team": "perf", "owner": "Ops Team"}}.Validate()
	var ve *validation.Error
	require.ErrorAs(t, err, &ve)
	require.Equal(t, []validation.Problem{
		{Field: "project", Msg: `"projects/p": give the project id alone, not a resource name`},
		{Field: "labels", Msg: `"Team" is not a label key: start with a lower-case letter, then at most 62 lower-case letters, digits, _ or -`},
		{Field: "labels.owner", Msg: "not a label value: at most 63 lower-case letters, digits, _ or -"},
	}, ve.Problems)

	_, err = New(t.Context(), Options{})
	require.EqualError(t, err, "gcp store: project: required: the Google Cloud project id that holds the secrets")
}
