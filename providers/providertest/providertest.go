// Package providertest is the one conformance suite every secret store runs:
// the file store against a temp directory, AWS Secrets Manager against moto,
// Google Cloud Secret Manager against its gRPC fake. A new store is proven by
// the same cases: read by stage, not-found errors, idempotent pending writes,
// compare-and-swap promote (also under a race between two clients), discard,
// retire, and redaction of values in errors and formatted versions.
//
// A store's test calls Run with a Harness that prepares one empty backend per
// case:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		providertest.Run(t, providertest.Harness{NewBackend: newBackend})
//	}
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// Backend is one empty backend prepared for one test.
type Backend struct {
	// Open returns a new client of this backend; calling it twice gives two
	// independent clients of the same backend, as two processes would have.
	// Closing is the caller's job via t.Cleanup inside Open.
	Open func(t *testing.T) providers.Store
	// SecretID maps a short name used by a case to the id the secret has in
	// this backend (shared emulators prefix it so parallel tests do not
	// collide).
	SecretID func(name string) string
	// PendingOnCurrent puts the pending stage on the version that holds
	// current, behind the store's back, as another writer would (AWS's own
	// rotation functions leave AWSPENDING on AWSCURRENT when they finish; a
	// GCP secret may carry both aliases on one version). The case
	// PendingOnCurrentIsNoPending needs it and is skipped without it.
	PendingOnCurrent func(t *testing.T, id string)
}

// Harness prepares backends for the suite.
type Harness struct {
	// NewBackend returns a fresh, empty backend; it is called once per case.
	NewBackend func(t *testing.T) Backend

	// UnconditionalPendingLabel declares that the store cannot make the
	// pending write a compare-and-swap: two PutPending calls of different
	// tokens that race may both succeed, the later write holding pending
	// (AWS Secrets Manager: PutSecretValue moves AWSPENDING without a
	// condition). Such a store relies on its caller to serialise rotations
	// of one secret (swarmkey's per-policy advisory lock does). The race
	// case then checks the weaker property that still matters: one token
	// ends up pending, every client sees the same one, and the other
	// token cannot be promoted.
	UnconditionalPendingLabel bool
}

// Run runs every case as a parallel subtest, each with its own backend.
func Run(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, h.NewBackend, "providertest: Harness.NewBackend is nil")
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"NotFound", testNotFound},
		{"PutPendingThenGet", testPutPendingThenGet},
		{"PutPendingIdempotent", testPutPendingIdempotent},
		{"PutPendingAfterPromoteIsNoOp", testPutPendingAfterPromoteIsNoOp},
		{"PromoteRotations", testPromoteRotations},
		{"PromoteIdempotent", testPromoteIdempotent},
		{"PromoteCASConflict", testPromoteCASConflict},
		{"PromoteWithoutPending", testPromoteWithoutPending},
		{"RacePutPending", testRacePutPending},
		{"RacePromote", testRacePromote},
		{"StalePromote", testStalePromote},
		{"DiscardPending", testDiscardPending},
		{"DiscardPendingVersion", testDiscardPendingVersion},
		{"PromoteByPendingID", testPromoteByPendingID},
		{"PendingOnCurrentIsNoPending", testPendingOnCurrentIsNoPending},
		{"RetireUnstaged", testRetireUnstaged},
		{"SecretsAreIndependent", testSecretsAreIndependent},
		{"Redaction", testRedaction},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, h)
		})
	}
}

// bundle is what one case works with.
type bundle struct {
	ctx     context.Context
	backend Backend
	store   providers.Store
	id      string // the main secret of the case
	// passwords of every value the case wrote, so that every failing call
	// can be checked for leaks.
	mu        sync.Mutex
	passwords []string
}

func setup(t *testing.T, h Harness) *bundle {
	t.Helper()
	b := h.NewBackend(t)
	require.NotNil(t, b.Open, "providertest: Backend.Open is nil")
	require.NotNil(t, b.SecretID, "providertest: Backend.SecretID is nil")
	return &bundle{
		ctx:     t.Context(),
		backend: b,
		store:   b.Open(t),
		id:      b.SecretID("checkout-db"),
	}
}

// newToken returns a fresh rotation token, as the rotator makes them.
func newToken(t *testing.T) string {
	t.Helper()
	u, err := uuid.NewV7()
	require.NoError(t, err)
	return u.String()
}

// newValue returns a credential document with a long random password, and
// remembers the password so that leaks can be searched for.
func (b *bundle) newValue(t *testing.T) secret.Secret {
	t.Helper()
	raw := make([]byte, 24)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	password := "pw-" + hex.EncodeToString(raw)
	doc, err := json.Marshal(map[string]string{"username": "loadtest", "password": password})
	require.NoError(t, err)
	b.mu.Lock()
	b.passwords = append(b.passwords, password)
	b.mu.Unlock()
	return secret.New(doc)
}

// requireNoLeak fails if s contains any password the case wrote.
func (b *bundle) requireNoLeak(t *testing.T, s, what string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pw := range b.passwords {
		if strings.Contains(s, pw) {
			t.Fatalf("%s contains a secret value's password", what)
		}
	}
}

// requireErrIs checks that err wraps target and leaks no value.
func (b *bundle) requireErrIs(t *testing.T, err, target error, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, target, msgAndArgs...)
	b.requireNoLeak(t, err.Error(), "error "+fmt.Sprintf("%q", err.Error()))
}

// requireErrIsOneOf checks that err wraps one of targets and leaks no value.
func (b *bundle) requireErrIsOneOf(t *testing.T, err error, targets ...error) {
	t.Helper()
	require.Error(t, err)
	ok := false
	for _, target := range targets {
		ok = ok || errors.Is(err, target)
	}
	require.True(t, ok, "error %q wraps none of %v", err, targets)
	b.requireNoLeak(t, err.Error(), "error "+fmt.Sprintf("%q", err.Error()))
}

// requireVersion checks the metadata of v and, if value is not zero, its
// value.
func (b *bundle) requireVersion(t *testing.T, v providers.Version, token string, value secret.Secret, stages ...providers.Stage) {
	t.Helper()
	require.NotEmpty(t, v.ID, "version id")
	require.Equal(t, token, v.Token, "version token")
	require.ElementsMatch(t, stages, v.Stages, "stages of version of token %s", token)
	require.False(t, v.Created.IsZero(), "created time of version of token %s", token)
	if !value.IsZero() {
		// Compared by Equal so that a failure does not print the value.
		require.True(t, value.Equal(v.Value), "value of version of token %s differs (want %d bytes, got %d)", token, value.Len(), v.Value.Len())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		b.requireNoLeak(t, fmt.Sprintf(verb, v), "fmt "+verb+" of a version")
	}
}

// get reads stage and checks it is the version of token with value.
func (b *bundle) get(t *testing.T, store providers.Store, id string, stage providers.Stage, token string, value secret.Secret) providers.Version {
	t.Helper()
	v, err := store.Get(b.ctx, id, stage)
	require.NoError(t, err, "get %s", stage)
	require.Equal(t, token, v.Token, "token of the version holding %s", stage)
	require.True(t, v.HasStage(stage), "version returned for %s does not hold it: %v", stage, v.Stages)
	require.NotEmpty(t, v.ID)
	require.False(t, v.Created.IsZero())
	if !value.IsZero() {
		require.True(t, value.Equal(v.Value), "value of %s (token %s) differs (want %d bytes, got %d)", stage, token, value.Len(), v.Value.Len())
	}
	return v
}

// requireNoStage checks that no version holds stage.
func (b *bundle) requireNoStage(t *testing.T, store providers.Store, id string, stage providers.Stage) {
	t.Helper()
	_, err := store.Get(b.ctx, id, stage)
	b.requireErrIs(t, err, providers.ErrNotFound, "get %s", stage)
}

// listed is the short form of one listed version that cases compare.
type listed struct {
	Token  string
	Stages []providers.Stage
}

// list returns the listed versions, newest first, after checking that List
// returns no values and no unstaged version.
func (b *bundle) list(t *testing.T, store providers.Store, id string) []listed {
	t.Helper()
	vs, err := store.List(b.ctx, id)
	require.NoError(t, err, "list")
	out := make([]listed, 0, len(vs))
	for _, v := range vs {
		require.NotEmpty(t, v.ID)
		require.NotEmpty(t, v.Stages, "List returned version %s (token %q) that holds no stage", v.ID, v.Token)
		require.True(t, v.Value.IsZero(), "List returned a value for version %s", v.ID)
		require.False(t, v.Created.IsZero())
		out = append(out, listed{Token: v.Token, Stages: sortStages(v.Stages)})
	}
	return out
}

func sortStages(in []providers.Stage) []providers.Stage {
	out := make([]providers.Stage, 0, len(in))
	for _, s := range providers.Stages {
		for _, have := range in {
			if have == s {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func st(stages ...providers.Stage) []providers.Stage { return stages }

var (
	current  = providers.StageCurrent
	pending  = providers.StagePending
	previous = providers.StagePrevious
)

// rotate writes a pending version of a fresh token and promotes it over
// expected, returning the token, its value and its version.
func (b *bundle) rotate(t *testing.T, id, expectedCurrentID string) (string, secret.Secret, providers.Version) {
	t.Helper()
	token := newToken(t)
	value := b.newValue(t)
	v, err := b.store.PutPending(b.ctx, id, token, value)
	require.NoError(t, err, "put pending")
	require.NoError(t, b.store.Promote(b.ctx, id, providers.PromoteRequest{Token: token, ExpectedCurrentID: expectedCurrentID}), "promote")
	return token, value, v
}

func testNotFound(t *testing.T, h Harness) {
	b := setup(t, h)

	for _, stage := range providers.Stages {
		_, err := b.store.Get(b.ctx, b.id, stage)
		b.requireErrIs(t, err, providers.ErrNotFound, "get %s of a missing secret", stage)
	}
	_, err := b.store.List(b.ctx, b.id)
	b.requireErrIs(t, err, providers.ErrNotFound, "list of a missing secret")

	// The secret exists with a current version only: the other stages are
	// held by nobody.
	token, value, _ := b.rotate(t, b.id, "")
	b.get(t, b.store, b.id, current, token, value)
	b.requireNoStage(t, b.store, b.id, pending)
	b.requireNoStage(t, b.store, b.id, previous)
}

func testPutPendingThenGet(t *testing.T, h Harness) {
	b := setup(t, h)
	token := newToken(t)
	value := b.newValue(t)

	put, err := b.store.PutPending(b.ctx, b.id, token, value)
	require.NoError(t, err)
	// Created is not checked on the version PutPending returns: some
	// stores' write calls do not report it.
	require.NotEmpty(t, put.ID)
	require.Equal(t, token, put.Token)
	require.Equal(t, st(pending), sortStages(put.Stages))
	b.requireNoLeak(t, fmt.Sprintf("%+v", put), "fmt %+v of the written version")

	got := b.get(t, b.store, b.id, pending, token, value)
	require.Equal(t, put.ID, got.ID)
	b.requireVersion(t, got, token, value, pending)

	b.requireNoStage(t, b.store, b.id, current)
	b.requireNoStage(t, b.store, b.id, previous)
	require.Equal(t, []listed{{token, st(pending)}}, b.list(t, b.store, b.id))
}

func testPutPendingIdempotent(t *testing.T, h Harness) {
	b := setup(t, h)
	token := newToken(t)
	value := b.newValue(t)

	first, err := b.store.PutPending(b.ctx, b.id, token, value)
	require.NoError(t, err)
	// The same token and the same value again, as a retry after a crash
	// would write it (a copy, not the same Secret).
	again, err := b.store.PutPending(b.ctx, b.id, token, secret.New(value.Reveal()))
	require.NoError(t, err, "same token, same value")
	require.Equal(t, first.ID, again.ID, "a repeated write must return the same version")
	require.Equal(t, []listed{{token, st(pending)}}, b.list(t, b.store, b.id))

	// The same token with another value is refused; the stored value stays.
	_, err = b.store.PutPending(b.ctx, b.id, token, b.newValue(t))
	b.requireErrIs(t, err, providers.ErrConflict, "same token, other value")
	got := b.get(t, b.store, b.id, pending, token, value)
	require.Equal(t, first.ID, got.ID)

	// Another token while a pending version exists is refused.
	_, err = b.store.PutPending(b.ctx, b.id, newToken(t), b.newValue(t))
	b.requireErrIs(t, err, providers.ErrConflict, "other token while a pending exists")
	b.get(t, b.store, b.id, pending, token, value)
	require.Equal(t, []listed{{token, st(pending)}}, b.list(t, b.store, b.id))

	// The same holds once a current version exists.
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: token}))
	token2 := newToken(t)
	value2 := b.newValue(t)
	_, err = b.store.PutPending(b.ctx, b.id, token2, value2)
	require.NoError(t, err)
	_, err = b.store.PutPending(b.ctx, b.id, newToken(t), b.newValue(t))
	b.requireErrIs(t, err, providers.ErrConflict, "other token while a pending exists beside a current")
	b.get(t, b.store, b.id, pending, token2, value2)
	b.get(t, b.store, b.id, current, token, value)
}

func testPutPendingAfterPromoteIsNoOp(t *testing.T, h Harness) {
	b := setup(t, h)
	token, value, put := b.rotate(t, b.id, "")

	// A retry of the create step after the promote already happened: the
	// write is a no-op that returns the same version, still current.
	again, err := b.store.PutPending(b.ctx, b.id, token, value)
	require.NoError(t, err)
	require.Equal(t, put.ID, again.ID)
	b.requireNoStage(t, b.store, b.id, pending)
	b.get(t, b.store, b.id, current, token, value)
	require.Equal(t, []listed{{token, st(current)}}, b.list(t, b.store, b.id))

	_, err = b.store.PutPending(b.ctx, b.id, token, b.newValue(t))
	b.requireErrIs(t, err, providers.ErrConflict, "same token, other value, after promote")
	b.get(t, b.store, b.id, current, token, value)
}

func testPromoteRotations(t *testing.T, h Harness) {
	b := setup(t, h)

	// First rotation of a new secret: nothing was current.
	t1 := newToken(t)
	v1 := b.newValue(t)
	_, err := b.store.PutPending(b.ctx, b.id, t1, v1)
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1, ExpectedCurrentID: ""}))
	cur1 := b.get(t, b.store, b.id, current, t1, v1)
	b.requireNoStage(t, b.store, b.id, pending)
	b.requireNoStage(t, b.store, b.id, previous)
	require.Equal(t, []listed{{t1, st(current)}}, b.list(t, b.store, b.id))

	// Second: the old current becomes previous.
	t2 := newToken(t)
	v2 := b.newValue(t)
	_, err = b.store.PutPending(b.ctx, b.id, t2, v2)
	require.NoError(t, err)
	require.Equal(t, []listed{{t2, st(pending)}, {t1, st(current)}}, b.list(t, b.store, b.id))
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: cur1.ID}))
	cur2 := b.get(t, b.store, b.id, current, t2, v2)
	prev := b.get(t, b.store, b.id, previous, t1, v1)
	require.Equal(t, cur1.ID, prev.ID)
	b.requireNoStage(t, b.store, b.id, pending)
	require.Equal(t, []listed{{t2, st(current)}, {t1, st(previous)}}, b.list(t, b.store, b.id))

	// Third: the first version holds no stage any more and is not listed.
	t3, v3, _ := b.rotate(t, b.id, cur2.ID)
	b.get(t, b.store, b.id, current, t3, v3)
	prev = b.get(t, b.store, b.id, previous, t2, v2)
	require.Equal(t, cur2.ID, prev.ID)
	b.requireNoStage(t, b.store, b.id, pending)
	require.Equal(t, []listed{{t3, st(current)}, {t2, st(previous)}}, b.list(t, b.store, b.id))
}

func testPromoteIdempotent(t *testing.T, h Harness) {
	b := setup(t, h)
	t1, v1, _ := b.rotate(t, b.id, "")
	cur1 := b.get(t, b.store, b.id, current, t1, v1)
	t2, v2, _ := b.rotate(t, b.id, cur1.ID)
	before := b.list(t, b.store, b.id)

	// Promoting the token that is already current again, with the expected
	// id its caller saw then, and with the id it holds now: nothing changes.
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: cur1.ID}))
	cur2 := b.get(t, b.store, b.id, current, t2, v2)
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: cur2.ID}))

	require.Equal(t, before, b.list(t, b.store, b.id))
	b.get(t, b.store, b.id, current, t2, v2)
	b.get(t, b.store, b.id, previous, t1, v1)
	b.requireNoStage(t, b.store, b.id, pending)
}

func testPromoteCASConflict(t *testing.T, h Harness) {
	b := setup(t, h)

	// A new secret: expecting a current version that does not exist.
	t1 := newToken(t)
	v1 := b.newValue(t)
	_, err := b.store.PutPending(b.ctx, b.id, t1, v1)
	require.NoError(t, err)
	err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1, ExpectedCurrentID: newToken(t)})
	b.requireErrIs(t, err, providers.ErrConflict, "promote expecting a current on a new secret")
	b.get(t, b.store, b.id, pending, t1, v1)
	b.requireNoStage(t, b.store, b.id, current)

	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1}))
	cur1 := b.get(t, b.store, b.id, current, t1, v1)

	t2 := newToken(t)
	v2 := b.newValue(t)
	_, err = b.store.PutPending(b.ctx, b.id, t2, v2)
	require.NoError(t, err)
	before := b.list(t, b.store, b.id)

	for _, wrong := range []string{"", newToken(t), cur1.ID + "x"} {
		err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: wrong})
		b.requireErrIs(t, err, providers.ErrConflict, "promote with expected current %q", wrong)
		b.get(t, b.store, b.id, pending, t2, v2)
		b.get(t, b.store, b.id, current, t1, v1)
		b.requireNoStage(t, b.store, b.id, previous)
		require.Equal(t, before, b.list(t, b.store, b.id))
	}

	// The right expected id still works afterwards.
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: cur1.ID}))
	b.get(t, b.store, b.id, current, t2, v2)
	b.get(t, b.store, b.id, previous, t1, v1)
}

func testPromoteWithoutPending(t *testing.T, h Harness) {
	b := setup(t, h)

	// A secret that does not exist.
	err := b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: newToken(t)})
	b.requireErrIsOneOf(t, err, providers.ErrNotFound, providers.ErrConflict)
	_, err = b.store.List(b.ctx, b.id)
	b.requireErrIs(t, err, providers.ErrNotFound, "promote must not create the secret")

	t1, v1, _ := b.rotate(t, b.id, "")
	cur1 := b.get(t, b.store, b.id, current, t1, v1)
	t2, v2, _ := b.rotate(t, b.id, cur1.ID)
	cur2 := b.get(t, b.store, b.id, current, t2, v2)
	before := b.list(t, b.store, b.id)
	requireUnchanged := func() {
		t.Helper()
		require.Equal(t, before, b.list(t, b.store, b.id))
		b.get(t, b.store, b.id, current, t2, v2)
		b.get(t, b.store, b.id, previous, t1, v1)
		b.requireNoStage(t, b.store, b.id, pending)
	}

	// A token that never wrote anything.
	err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: newToken(t), ExpectedCurrentID: cur2.ID})
	b.requireErrIsOneOf(t, err, providers.ErrNotFound, providers.ErrConflict)
	requireUnchanged()

	// The previous version's token: it is not pending, so it must not come
	// back as current.
	err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1, ExpectedCurrentID: cur2.ID})
	b.requireErrIsOneOf(t, err, providers.ErrNotFound, providers.ErrConflict)
	requireUnchanged()

	// A token whose pending version was discarded.
	t3 := newToken(t)
	_, err = b.store.PutPending(b.ctx, b.id, t3, b.newValue(t))
	require.NoError(t, err)
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t3))
	err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t3, ExpectedCurrentID: cur2.ID})
	b.requireErrIsOneOf(t, err, providers.ErrNotFound, providers.ErrConflict)
	requireUnchanged()
}

// race runs fns at the same moment and returns their errors.
func race(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, fn := range fns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// raceRounds is how many secrets each race case races on, to give a broken
// store more than one chance to show it.
const raceRounds = 4

func testRacePutPending(t *testing.T, h Harness) {
	b := setup(t, h)
	clientA := b.store
	clientB := b.backend.Open(t)

	for round := range raceRounds {
		id := b.backend.SecretID(fmt.Sprintf("race-put-%d", round))
		tokens := []string{newToken(t), newToken(t)}
		values := []secret.Secret{b.newValue(t), b.newValue(t)}
		errs := race(
			func() error { _, err := clientA.PutPending(b.ctx, id, tokens[0], values[0]); return err },
			func() error { _, err := clientB.PutPending(b.ctx, id, tokens[1], values[1]); return err },
		)
		winner := -1
		for i, err := range errs {
			if err == nil {
				if !h.UnconditionalPendingLabel {
					require.Equal(t, -1, winner, "round %d: both PutPending calls with different tokens succeeded", round)
				}
				winner = i
				continue
			}
			b.requireErrIs(t, err, providers.ErrConflict, "round %d: the losing PutPending", round)
		}
		require.NotEqual(t, -1, winner, "round %d: no PutPending succeeded: %v", round, errs)
		if h.UnconditionalPendingLabel {
			winner = b.requireNoWrongPromote(t, clientA, clientB, id, tokens, values, errs)
		}

		for _, client := range []providers.Store{clientA, clientB} {
			b.get(t, client, id, pending, tokens[winner], values[winner])
			b.requireNoStage(t, client, id, current)
			require.Equal(t, []listed{{tokens[winner], st(pending)}}, b.list(t, client, id))
		}
	}
}

// requireNoWrongPromote is the race check for a store with an unconditional
// pending label, where both racing PutPending calls may have succeeded: the
// token that holds pending (the same for both clients) is one whose write
// succeeded, with its own value; the other token's Promote fails and changes
// nothing. It returns the index of the token holding pending.
func (b *bundle) requireNoWrongPromote(t *testing.T, clientA, clientB providers.Store, id string, tokens []string, values []secret.Secret, errs []error) int {
	t.Helper()
	v, err := clientA.Get(b.ctx, id, pending)
	require.NoError(t, err, "get pending after the race")
	holder := -1
	for i, token := range tokens {
		if v.Token == token {
			holder = i
		}
	}
	require.NotEqual(t, -1, holder, "pending holds token %q, which neither racer wrote", v.Token)
	require.NoError(t, errs[holder], "pending holds the token of a PutPending that failed")
	loser := 1 - holder
	for _, client := range []providers.Store{clientA, clientB} {
		err := client.Promote(b.ctx, id, providers.PromoteRequest{Token: tokens[loser]})
		b.requireErrIsOneOf(t, err, providers.ErrNotFound, providers.ErrConflict)
		b.get(t, client, id, pending, tokens[holder], values[holder])
		b.requireNoStage(t, client, id, current)
	}
	return holder
}

func testRacePromote(t *testing.T, h Harness) {
	b := setup(t, h)
	clientA := b.store
	clientB := b.backend.Open(t)

	for round := range raceRounds {
		id := b.backend.SecretID(fmt.Sprintf("race-promote-%d", round))

		// Round 0 races the first promote of a new secret; later rounds
		// race the second rotation.
		var t1 string
		var v1 secret.Secret
		expected := ""
		if round > 0 {
			t1, v1, _ = b.rotate(t, id, "")
			expected = b.get(t, clientA, id, current, t1, v1).ID
		}
		token := newToken(t)
		value := b.newValue(t)
		_, err := clientA.PutPending(b.ctx, id, token, value)
		require.NoError(t, err)

		req := providers.PromoteRequest{Token: token, ExpectedCurrentID: expected}
		errs := race(
			func() error { return clientA.Promote(b.ctx, id, req) },
			func() error { return clientB.Promote(b.ctx, id, req) },
		)
		succeeded := 0
		for _, err := range errs {
			if err == nil {
				succeeded++
				continue
			}
			b.requireErrIs(t, err, providers.ErrConflict, "round %d: the losing Promote", round)
		}
		require.GreaterOrEqual(t, succeeded, 1, "round %d: no Promote succeeded: %v", round, errs)

		want := []listed{{token, st(current)}}
		if round > 0 {
			want = append(want, listed{t1, st(previous)})
		}
		for _, client := range []providers.Store{clientA, clientB} {
			b.get(t, client, id, current, token, value)
			b.requireNoStage(t, client, id, pending)
			if round > 0 {
				b.get(t, client, id, previous, t1, v1)
			} else {
				b.requireNoStage(t, client, id, previous)
			}
			require.Equal(t, want, b.list(t, client, id))
		}
	}
}

func testStalePromote(t *testing.T, h Harness) {
	b := setup(t, h)
	clientA := b.store
	clientB := b.backend.Open(t)

	t1, v1, _ := b.rotate(t, b.id, "")

	// Client A reads current and starts a rotation later.
	seenByA := b.get(t, clientA, b.id, current, t1, v1)

	// Meanwhile client B completes a whole rotation.
	t2 := newToken(t)
	v2 := b.newValue(t)
	_, err := clientB.PutPending(b.ctx, b.id, t2, v2)
	require.NoError(t, err)
	require.NoError(t, clientB.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: seenByA.ID}))

	// A's rotation writes its pending version, then loses the CAS.
	t3 := newToken(t)
	v3 := b.newValue(t)
	_, err = clientA.PutPending(b.ctx, b.id, t3, v3)
	require.NoError(t, err)
	err = clientA.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t3, ExpectedCurrentID: seenByA.ID})
	b.requireErrIs(t, err, providers.ErrConflict, "promote with a stale expected current")

	for _, client := range []providers.Store{clientA, clientB} {
		b.get(t, client, b.id, current, t2, v2)
		b.get(t, client, b.id, previous, t1, v1)
		b.get(t, client, b.id, pending, t3, v3)
		require.Equal(t, []listed{{t3, st(pending)}, {t2, st(current)}, {t1, st(previous)}}, b.list(t, client, b.id))
	}
}

func testDiscardPending(t *testing.T, h Harness) {
	b := setup(t, h)

	// Discarding on a secret that does not exist, or a token that never
	// wrote, is a no-op.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, newToken(t)))

	t1, v1, _ := b.rotate(t, b.id, "")
	cur1 := b.get(t, b.store, b.id, current, t1, v1)
	t2, v2, _ := b.rotate(t, b.id, cur1.ID)
	staged := []listed{{t2, st(current)}, {t1, st(previous)}}
	requireStagedUnchanged := func() {
		t.Helper()
		b.get(t, b.store, b.id, current, t2, v2)
		b.get(t, b.store, b.id, previous, t1, v1)
	}

	t3 := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.id, t3, b.newValue(t))
	require.NoError(t, err)

	// Discarding another token's pending version changes nothing.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, newToken(t)))
	b.get(t, b.store, b.id, pending, t3, secret.Secret{})

	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t3))
	b.requireNoStage(t, b.store, b.id, pending)
	requireStagedUnchanged()
	require.Equal(t, staged, b.list(t, b.store, b.id))

	// Again: already discarded.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t3))
	b.requireNoStage(t, b.store, b.id, pending)
	requireStagedUnchanged()

	// The tokens of current and previous hold no pending version: nothing
	// happens to them.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t2))
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t1))
	requireStagedUnchanged()
	require.Equal(t, staged, b.list(t, b.store, b.id))

	// A new token can now write pending and be promoted.
	t4 := newToken(t)
	v4 := b.newValue(t)
	_, err = b.store.PutPending(b.ctx, b.id, t4, v4)
	require.NoError(t, err)
	b.get(t, b.store, b.id, pending, t4, v4)
	requireStagedUnchanged()
	cur2 := b.get(t, b.store, b.id, current, t2, v2)
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t4, ExpectedCurrentID: cur2.ID}))
	b.get(t, b.store, b.id, current, t4, v4)
	b.get(t, b.store, b.id, previous, t2, v2)
}

// testDiscardPendingVersion discards a pending version by its version id,
// as `swarmkey resolve --discard-pending` does for a version whose writer
// swarmkey does not know; current and previous are never touched.
func testDiscardPendingVersion(t *testing.T, h Harness) {
	b := setup(t, h)
	require.NoError(t, b.store.DiscardPendingVersion(b.ctx, b.id, "1"), "a secret that does not exist")

	t1, v1, _ := b.rotate(t, b.id, "")
	cur := b.get(t, b.store, b.id, current, t1, v1)
	t2 := newToken(t)
	put, err := b.store.PutPending(b.ctx, b.id, t2, b.newValue(t))
	require.NoError(t, err)

	// The id of the current version holds no pending stage: nothing happens.
	require.NoError(t, b.store.DiscardPendingVersion(b.ctx, b.id, cur.ID))
	b.get(t, b.store, b.id, current, t1, v1)
	b.get(t, b.store, b.id, pending, t2, secret.Secret{})

	require.NoError(t, b.store.DiscardPendingVersion(b.ctx, b.id, put.ID))
	b.requireNoStage(t, b.store, b.id, pending)
	b.get(t, b.store, b.id, current, t1, v1)
	require.Equal(t, []listed{{t1, st(current)}}, b.list(t, b.store, b.id))
	require.NoError(t, b.store.DiscardPendingVersion(b.ctx, b.id, put.ID), "again: already discarded")

	// The secret rotates on as before.
	t3, v3, _ := b.rotate(t, b.id, cur.ID)
	b.get(t, b.store, b.id, current, t3, v3)
	b.get(t, b.store, b.id, previous, t1, v1)
}

// testPromoteByPendingID promotes the pending version named by its id: with
// no token (another writer's version, after `swarmkey resolve
// --promote-pending` verified it), and refuses when another version is
// pending than the one named.
func testPromoteByPendingID(t *testing.T, h Harness) {
	b := setup(t, h)
	t1, v1, _ := b.rotate(t, b.id, "")
	cur := b.get(t, b.store, b.id, current, t1, v1)

	t2 := newToken(t)
	v2 := b.newValue(t)
	put2, err := b.store.PutPending(b.ctx, b.id, t2, v2)
	require.NoError(t, err)
	// Named as the version that is current, which t2 did not write: not the
	// pending one.
	err = b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, PendingID: cur.ID, ExpectedCurrentID: cur.ID})
	b.requireErrIsOneOf(t, err, providers.ErrConflict, providers.ErrNotFound)
	b.get(t, b.store, b.id, current, t1, v1)
	b.get(t, b.store, b.id, pending, t2, v2)

	req := providers.PromoteRequest{PendingID: put2.ID, ExpectedCurrentID: cur.ID}
	require.NoError(t, b.store.Promote(b.ctx, b.id, req))
	b.get(t, b.store, b.id, current, t2, v2)
	b.get(t, b.store, b.id, previous, t1, v1)
	b.requireNoStage(t, b.store, b.id, pending)
	require.NoError(t, b.store.Promote(b.ctx, b.id, req), "again: already current")
	require.Equal(t, []listed{{t2, st(current)}, {t1, st(previous)}}, b.list(t, b.store, b.id))
}

// testPendingOnCurrentIsNoPending: the pending stage on the current version
// (a finished rotation, by AWS's account) is no pending version. Get does
// not return it, List shows it, Promote of the current version removes it,
// a discard leaves the current version alone, and the next rotation writes
// over it.
func testPendingOnCurrentIsNoPending(t *testing.T, h Harness) {
	b := setup(t, h)
	if b.backend.PendingOnCurrent == nil {
		t.Skip("the harness cannot put pending on current behind the store's back")
	}
	t1, v1, _ := b.rotate(t, b.id, "")
	cur := b.get(t, b.store, b.id, current, t1, v1)

	b.backend.PendingOnCurrent(t, b.id)
	b.requireNoStage(t, b.store, b.id, pending)
	require.Equal(t, []listed{{t1, st(current, pending)}}, b.list(t, b.store, b.id))
	require.NoError(t, b.store.DiscardPendingVersion(b.ctx, b.id, cur.ID))
	b.get(t, b.store, b.id, current, t1, v1)

	// Promote of the version that is current completes it.
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1, PendingID: cur.ID, ExpectedCurrentID: cur.ID}))
	require.Equal(t, []listed{{t1, st(current)}}, b.list(t, b.store, b.id))

	// The next rotation proceeds over it.
	b.backend.PendingOnCurrent(t, b.id)
	t2 := newToken(t)
	v2 := b.newValue(t)
	_, err := b.store.PutPending(b.ctx, b.id, t2, v2)
	require.NoError(t, err)
	b.get(t, b.store, b.id, pending, t2, v2)
	b.get(t, b.store, b.id, current, t1, v1)
	require.Equal(t, []listed{{t2, st(pending)}, {t1, st(current)}}, b.list(t, b.store, b.id))
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t2, ExpectedCurrentID: cur.ID}))
	b.get(t, b.store, b.id, current, t2, v2)
	b.get(t, b.store, b.id, previous, t1, v1)
	b.requireNoStage(t, b.store, b.id, pending)
}

func testRetireUnstaged(t *testing.T, h Harness) {
	b := setup(t, h)
	t1, v1, _ := b.rotate(t, b.id, "")
	cur := b.get(t, b.store, b.id, current, t1, v1)
	t2, v2, _ := b.rotate(t, b.id, cur.ID)
	cur = b.get(t, b.store, b.id, current, t2, v2)
	// t1 falls off previous here and becomes unstaged.
	t3, v3, _ := b.rotate(t, b.id, cur.ID)
	t4 := newToken(t)
	v4 := b.newValue(t)
	_, err := b.store.PutPending(b.ctx, b.id, t4, v4)
	require.NoError(t, err)
	before := b.list(t, b.store, b.id)

	for _, destroy := range []bool{false, true} {
		require.NoError(t, b.store.RetireUnstaged(b.ctx, b.id, providers.RetireRequest{Destroy: destroy}))
		b.get(t, b.store, b.id, current, t3, v3)
		b.get(t, b.store, b.id, previous, t2, v2)
		b.get(t, b.store, b.id, pending, t4, v4)
		require.Equal(t, before, b.list(t, b.store, b.id))
	}

	// Retiring again after a discard left one more unstaged version.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.id, t4))
	require.NoError(t, b.store.RetireUnstaged(b.ctx, b.id, providers.RetireRequest{Destroy: true}))
	b.get(t, b.store, b.id, current, t3, v3)
	b.get(t, b.store, b.id, previous, t2, v2)
	b.requireNoStage(t, b.store, b.id, pending)
	require.Equal(t, []listed{{t3, st(current)}, {t2, st(previous)}}, b.list(t, b.store, b.id))
}

func testSecretsAreIndependent(t *testing.T, h Harness) {
	b := setup(t, h)
	other := b.backend.SecretID("checkout-api")
	require.NotEqual(t, b.id, other, "SecretID must map distinct names to distinct ids")

	t1, v1, _ := b.rotate(t, b.id, "")
	_, err := b.store.List(b.ctx, other)
	b.requireErrIs(t, err, providers.ErrNotFound, "a secret written nowhere")

	// A pending version in one secret does not block another.
	t2 := newToken(t)
	v2 := b.newValue(t)
	_, err = b.store.PutPending(b.ctx, other, t2, v2)
	require.NoError(t, err)
	b.get(t, b.store, other, pending, t2, v2)
	b.requireNoStage(t, b.store, other, current)
	b.get(t, b.store, b.id, current, t1, v1)
	b.requireNoStage(t, b.store, b.id, pending)
}

func testRedaction(t *testing.T, h Harness) {
	b := setup(t, h)
	var texts []string
	note := func(err error) {
		t.Helper()
		require.Error(t, err)
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}

	_, err := b.store.Get(b.ctx, b.id, current)
	note(err)
	_, err = b.store.List(b.ctx, b.id)
	note(err)

	t1 := newToken(t)
	v1 := b.newValue(t)
	put, err := b.store.PutPending(b.ctx, b.id, t1, v1)
	require.NoError(t, err)
	_, err = b.store.PutPending(b.ctx, b.id, t1, b.newValue(t)) // same token, other value
	note(err)
	_, err = b.store.PutPending(b.ctx, b.id, newToken(t), b.newValue(t)) // another token
	note(err)
	_, err = b.store.Get(b.ctx, b.id, current) // stage nobody holds
	note(err)
	note(b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1, ExpectedCurrentID: newToken(t)}))
	note(b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: newToken(t)}))
	require.NoError(t, b.store.Promote(b.ctx, b.id, providers.PromoteRequest{Token: t1}))
	_, err = b.store.Get(b.ctx, b.id, pending)
	note(err)

	got, err := b.store.Get(b.ctx, b.id, current)
	require.NoError(t, err)
	listedVersions, err := b.store.List(b.ctx, b.id)
	require.NoError(t, err)
	for _, v := range append([]providers.Version{put, got}, listedVersions...) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			texts = append(texts, fmt.Sprintf(verb, v), fmt.Sprintf(verb, &v))
		}
	}
	texts = append(texts, fmt.Sprintf("%+v", listedVersions))

	// The password must really be in the value, or the search proves nothing.
	b.mu.Lock()
	require.Contains(t, got.Value.RevealString(), b.passwords[0])
	b.mu.Unlock()
	for _, text := range texts {
		b.requireNoLeak(t, text, fmt.Sprintf("%q", text))
	}
}
