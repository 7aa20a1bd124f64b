package httpkey_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/keyservice"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/httpkey"
)

// world is a key service, the rotator on its own test database, and a
// file store.
type world struct {
	*api
	ctx   context.Context
	state *state.DB
	store *file.Store
	rot   *rotator.Rotator
	rlogs *syncBuffer
}

const secretID = "loadtest/api-key"

func setupRotator(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	state, _ := rotationtest.State(t)
	fs := rotationtest.FileStore(t)
	w := &world{api: newAPI(t), ctx: ctx, state: state, store: fs, rlogs: &syncBuffer{}}
	w.rot = rotator.New(state, rotator.Config{Logger: slog.New(slog.NewJSONHandler(w.rlogs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return w
}

func (w *world) policy(strategy targets.Strategy, o httpkey.Options) rotator.Credential {
	return rotator.Credential{
		Name: o.Policy, Strategy: strategy, Store: w.store, SecretID: secretID, Target: w.target(o),
		Password: rotator.PasswordRules{Length: 24},
		Canary:   rotator.CanaryRetry{Attempts: 2, Interval: 10 * time.Millisecond},
	}
}

func (w *world) rotate(p rotator.Credential) (rotator.Result, error) {
	res, err := w.rot.Rotate(w.ctx, p, rotator.Options{Actor: "test"})
	w.record(err)
	return res, err
}

// stageID is the key id a stage holds, "" when none.
func (w *world) stageID(stage providers.Stage) string {
	w.t.Helper()
	v, err := w.store.Get(w.ctx, secretID, stage)
	if errors.Is(err, providers.ErrNotFound) {
		return ""
	}
	require.NoError(w.t, err)
	return keyID(w.t, v.Value)
}

func (w *world) stageValue(stage providers.Stage) secret.Secret {
	w.t.Helper()
	v, err := w.store.Get(w.ctx, secretID, stage)
	require.NoError(w.t, err)
	return v.Value
}

// requireValid checks that exactly ids work at the API (and in that order
// of issue).
func (w *world) requireValid(ids ...string) {
	w.t.Helper()
	got := w.svc.Valid()
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	require.Equal(w.t, want, got, "valid keys; the service holds %s", w.svc)
}

// requireClean checks logs, errors, audit rows and rotation rows for secrets.
func (w *world) requireClean() {
	w.t.Helper()
	audit, err := w.state.Audit(w.ctx, "", 1000)
	require.NoError(w.t, err)
	extra := []string{w.rlogs.String(), fmt.Sprintf("%+v", audit)}
	w.requireNoSecrets(extra...)
}

func TestRotatorAlternating(t *testing.T) {
	t.Parallel()
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("enable_disable=%v", full), func(t *testing.T) {
			t.Parallel()
			w := setupRotator(t)
			o := w.options("api-alt")
			if full {
				o = w.fullOptions("api-alt")
			}
			p := w.policy(targets.Alternating, o)
			var ids []string
			for i := range 4 {
				res, err := w.rotate(p)
				require.NoError(t, err, "rotation %d", i+1)
				require.Equal(t, state.OutcomeSucceeded, res.Outcome)
				ids = append(ids, res.Principal)
				require.Equal(t, res.Principal, w.stageID(providers.StageCurrent))
				if i == 0 {
					w.requireValid(ids[0])
					continue
				}
				require.Equal(t, ids[i-1], w.stageID(providers.StagePrevious))
				// current and previous work; everything older is revoked.
				w.requireValid(ids[i], ids[i-1])
			}
			for _, k := range w.svc.Keys() {
				if k.ID != ids[3] && k.ID != ids[2] {
					require.True(t, k.Revoked, "key %s revoked", k.ID)
				}
			}
			w.requireClean()
		})
	}
}

func TestRotatorSingle(t *testing.T) {
	t.Parallel()
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("enable_disable=%v", full), func(t *testing.T) {
			t.Parallel()
			w := setupRotator(t)
			o := w.options("api-single")
			if full {
				o = w.fullOptions("api-single")
			}
			p := w.policy(targets.Single, o)
			for i := range 3 {
				res, err := w.rotate(p)
				require.NoError(t, err, "rotation %d", i+1)
				// The old key is revoked right after promote.
				w.requireValid(res.Principal)
			}
			require.Len(t, w.svc.Keys(), 3)
			w.requireClean()
		})
	}
}

// TestRotatorCanaryFailure: a key that fails its canary is revoked and the
// current key keeps working.
func TestRotatorCanaryFailure(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Alternating, targets.Single} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			w := setupRotator(t)
			w.svc.EchoCredentials(true)
			p := w.policy(strategy, w.fullOptions("api-canary"))
			first, err := w.rotate(p)
			require.NoError(t, err)
			second, err := w.rotate(p)
			require.NoError(t, err)

			w.svc.BreakNewKeys(true)
			res, err := w.rotate(p)
			require.Error(t, err)
			require.Equal(t, state.OutcomeFailed, res.Outcome)
			require.True(t, res.RolledBack)
			require.Contains(t, err.Error(), "canary failed")
			keys := w.svc.Keys()
			failed := keys[len(keys)-1]
			require.True(t, failed.Revoked, "the failed key is revoked")
			require.Equal(t, second.Principal, w.stageID(providers.StageCurrent))
			require.Empty(t, w.stageID(providers.StagePending))
			if strategy == targets.Alternating {
				w.requireValid(second.Principal, first.Principal)
			} else {
				w.requireValid(second.Principal)
			}

			w.svc.BreakNewKeys(false)
			_, err = w.rotate(p)
			require.NoError(t, err)
			w.requireClean()
		})
	}
}

// TestRotatorOrphanNeedsAttention: a failed key that cannot be revoked ends
// the rotation in needs_attention, with the reason, naming the key id, in the
// error, the rotation row and the audit log (the rotator's scrub leaves the
// public fields of a document readable).
func TestRotatorOrphanNeedsAttention(t *testing.T) {
	t.Parallel()
	w := setupRotator(t)
	o := w.options("api-orphan")
	o.MaxAttempts = 2
	p := w.policy(targets.Alternating, o)
	_, err := w.rotate(p)
	require.NoError(t, err)

	w.svc.BreakNewKeys(true)
	w.svc.Inject(keyservice.OpRevoke, keyservice.Fault{Status: 500})
	res, err := w.rotate(p)
	require.Error(t, err)
	require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)
	keys := w.svc.Keys()
	orphan := keys[len(keys)-1]
	require.False(t, orphan.Revoked)
	want := fmt.Sprintf("the pending key %q could not be revoked", orphan.ID)
	require.Contains(t, err.Error(), want)

	row, err := w.state.Rotation(w.ctx, res.Token)
	require.NoError(t, err)
	require.Contains(t, row.Error, want)
	audit, err := w.state.Audit(w.ctx, "api-orphan", 100)
	require.NoError(t, err)
	found := false
	for _, e := range audit {
		found = found || (e.Action == "rotation.needs_attention" && strings.Contains(fmt.Sprint(e.Detail["reason"]), want))
	}
	require.True(t, found, "an audit row gives the reason: %+v", audit)
	w.requireClean()
}

// TestRotator429: the issue request's 429 is retried after its Retry-After
// and the rotation succeeds.
func TestRotator429(t *testing.T) {
	t.Parallel()
	w := setupRotator(t)
	p := w.policy(targets.Alternating, w.options("api-429"))
	w.svc.Inject(keyservice.OpIssue, keyservice.Fault{Status: 429, RetryAfter: "1", Count: 1})
	start := time.Now()
	res, err := w.rotate(p)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second)
	require.Equal(t, 2, w.svc.Count(keyservice.OpIssue))
	w.requireValid(res.Principal)
	w.requireClean()
}

// TestRotatorResumedFinish: when the rotator no longer knows the key that
// fell off (FellOff is zero), Retire finds it through previous_key_id, and
// the list sweep revokes orphans carrying the policy's prefix.
func TestRotatorResumedFinish(t *testing.T) {
	t.Parallel()
	w := setupRotator(t)
	o := w.fullOptions("api-resume")
	p := w.policy(targets.Alternating, o)
	for range 2 {
		_, err := w.rotate(p)
		require.NoError(t, err)
	}
	// An orphan: a key issued under the policy's prefix that no stage holds.
	tg := w.target(o)
	orphan, err := create(t, tg, targets.Alternating, secret.Secret{})
	require.NoError(t, err)
	res, err := w.rotate(p)
	require.NoError(t, err)

	cur, prev := w.stageID(providers.StageCurrent), w.stageID(providers.StagePrevious)
	require.Equal(t, res.Principal, cur)
	require.NoError(t, tg.Retire(w.ctx, targets.RetireRequest{Strategy: targets.Alternating,
		Retired: w.stageValue(providers.StagePrevious), Current: w.stageValue(providers.StageCurrent)}))
	w.requireValid(cur, prev)
	for _, k := range w.svc.Keys() {
		if k.ID == orphan.Principal {
			require.True(t, k.Revoked, "the orphan is revoked by the list sweep")
		}
	}
	w.requireClean()
}

// TestRotatorSweepsOrphansFromAListOfIDs: a service whose list gives key ids
// alone (no list.name) can still have its orphans revoked: every listed key
// no stage holds.
func TestRotatorSweepsOrphansFromAListOfIDs(t *testing.T) {
	t.Parallel()
	w := setupRotator(t)
	o := w.fullOptions("api-ids")
	o.List.Name = ""
	p := w.policy(targets.Alternating, o)
	for range 2 {
		_, err := w.rotate(p)
		require.NoError(t, err)
	}
	tg := w.target(o)
	orphan, err := create(t, tg, targets.Alternating, secret.Secret{})
	require.NoError(t, err)
	_, err = w.rotate(p)
	require.NoError(t, err)

	cur, prev := w.stageID(providers.StageCurrent), w.stageID(providers.StagePrevious)
	require.NoError(t, tg.Retire(w.ctx, targets.RetireRequest{Strategy: targets.Alternating,
		Retired: w.stageValue(providers.StagePrevious), Current: w.stageValue(providers.StageCurrent)}))
	w.requireValid(cur, prev)
	found := false
	for _, k := range w.svc.Keys() {
		if k.ID == orphan.Principal {
			found = true
			require.True(t, k.Revoked, "the orphan is revoked by the sweep of the ids")
		}
	}
	require.True(t, found)
	w.requireClean()
}

// TestRotatorStoreRefusesPending: the store refuses the pending write after
// the API issued the key (or takes it and loses the answer). The key is
// revoked on rollback, from the rotation's memory, so no issued key stays
// valid unless it is stored; the rotation fails, rolled back, and the keys
// that were valid still are.
func TestRotatorStoreRefusesPending(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Alternating, targets.Single} {
		for _, landed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/landed=%v", strategy, landed), func(t *testing.T) {
				t.Parallel()
				w := setupRotator(t)
				store := &rotationtest.RefusingStore{Store: w.store}
				p := w.policy(strategy, w.fullOptions("api-refused"))
				p.Store = store
				var valid []string
				for range 2 {
					res, err := w.rotate(p)
					require.NoError(t, err)
					valid = append(valid, res.Principal)
				}
				if strategy == targets.Single {
					valid = valid[1:]
				}
				w.requireValid(valid...)

				store.Err, store.Landed = errors.New("secret store unavailable"), landed
				res, err := w.rotate(p)
				require.ErrorContains(t, err, "write pending version: secret store unavailable")
				require.Equal(t, state.OutcomeFailed, res.Outcome)
				require.True(t, res.RolledBack)
				keys := w.svc.Keys()
				issued := keys[len(keys)-1]
				require.Equal(t, res.Principal, issued.ID, "the rotation issued a key")
				require.True(t, issued.Revoked, "the issued key is revoked")
				w.requireValid(valid...)
				require.Empty(t, w.stageID(providers.StagePending), "nothing is pending")

				store.Err = nil
				_, err = w.rotate(p)
				require.NoError(t, err)
				w.requireClean()
			})
		}
	}
}

// TestRotatorStoreRefusesPendingAndRevokeFails: the issued key can be
// neither stored nor revoked: the rotation ends needs_attention, and its
// reason names the key id that is still valid.
func TestRotatorStoreRefusesPendingAndRevokeFails(t *testing.T) {
	t.Parallel()
	w := setupRotator(t)
	o := w.options("api-refused-orphan")
	o.MaxAttempts = 2
	store := &rotationtest.RefusingStore{Store: w.store, Err: errors.New("secret store unavailable")}
	p := w.policy(targets.Alternating, o)
	p.Store = store
	w.svc.Inject(keyservice.OpRevoke, keyservice.Fault{Status: 500})

	res, err := w.rotate(p)
	require.Error(t, err)
	require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)
	keys := w.svc.Keys()
	require.Len(t, keys, 1)
	orphan := keys[0]
	require.False(t, orphan.Revoked)
	w.requireValid(orphan.ID)
	for _, want := range []string{
		fmt.Sprintf("the pending key %q could not be revoked, revoke it by hand", orphan.ID),
		fmt.Sprintf("what is left: this rotation's credential for %q (what create made, an issued key) may still be valid on the target", orphan.ID),
	} {
		require.Contains(t, err.Error(), want)
		row, err := w.state.Rotation(w.ctx, res.Token)
		require.NoError(t, err)
		require.Contains(t, row.Error, want)
	}
	w.requireClean()
}

// TestRotatorUnreadableCurrent: a current document the http target cannot
// read stops the rotation before any key is issued; with
// ReplaceUnreadableCurrent it is replaced (audited), and the replaced
// version, previous and then fallen off, is never handed to the API.
func TestRotatorUnreadableCurrent(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Alternating, targets.Single} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			w := setupRotator(t)
			const foreign = "0190b5a4-0000-7000-8000-0000000f0e19"
			_, err := w.store.PutPending(w.ctx, secretID, foreign, secret.FromString(`{"token": "key-of-another-tool-0123456789"}`))
			require.NoError(t, err)
			require.NoError(t, w.store.Promote(w.ctx, secretID, providers.PromoteRequest{Token: foreign}))
			p := w.policy(strategy, w.fullOptions("api-unreadable"))

			res, err := w.rotate(p)
			require.ErrorContains(t, err, `secret "loadtest/api-key": current version `+foreign+` is not an http key document (the document has no "api_key"): expected a JSON object with string fields api_key and key_id`)
			require.ErrorContains(t, err, "nothing was changed")
			require.Equal(t, state.OutcomeFailed, res.Outcome)
			require.Zero(t, w.svc.Count(keyservice.OpIssue), "no key was issued")
			require.Equal(t, "", w.stageID(providers.StagePending))

			res, err = w.rot.Rotate(w.ctx, p, rotator.Options{Actor: "operator:alice", ReplaceUnreadableCurrent: true})
			w.record(err)
			require.NoError(t, err)
			ids := []string{res.Principal}
			for range 2 {
				res, err := w.rotate(p)
				require.NoError(t, err)
				ids = append(ids, res.Principal)
			}
			if strategy == targets.Alternating {
				w.requireValid(ids[2], ids[1])
			} else {
				w.requireValid(ids[2])
			}
			audit, err := w.state.Audit(w.ctx, "api-unreadable", 100)
			require.NoError(t, err)
			var adopted []string
			for _, e := range audit {
				if e.Action == "rotation.adopted" {
					adopted = append(adopted, fmt.Sprintf("%s %v", e.Actor, e.Detail["replaced_version"]))
				}
			}
			require.Equal(t, []string{"operator:alice " + foreign}, adopted)
			w.requireClean()
			require.NotContains(t, w.rlogs.String(), "key-of-another-tool-0123456789")
		})
	}
}
