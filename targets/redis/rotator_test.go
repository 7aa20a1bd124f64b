package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/redistest"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// recordingTarget is the real target, remembering every pending document
// it created, so the test can search outputs for the passwords the
// rotator generated.
type recordingTarget struct {
	targets.Target
	mu      sync.Mutex
	pending []secret.Secret
}

func (r *recordingTarget) Create(ctx context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	resp, err := r.Target.Create(ctx, req)
	if err == nil {
		r.mu.Lock()
		r.pending = append(r.pending, resp.Pending)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recordingTarget) passwords(t *testing.T) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.pending {
		out = append(out, passwordOf(t, p))
	}
	return out
}

// TestRotator rotates through the real rotator (state in PostgreSQL, a file
// store) with the target's own canary: three rotations, then one whose
// canary command has no permission, which is rolled back with current (and,
// for alternating, previous) still logging in; then a good one again.
// Nothing the rotator logged or audited or returned, nor the MONITOR output
// a client recorded during the rotations, nor the bytes the admin
// connection sent, nor the slow log, holds a generated password.
func TestRotator(t *testing.T) {
	t.Parallel()
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := redistest.Get(t)
			monitor := srv.Monitor(t)
			proxy, adminSent := srv.RecordingProxy(t)
			s := newSystem(t, srv, strategy)
			db, _ := rotationtest.State(t)
			store := rotationtest.FileStore(t)
			logs := &rotationtest.LogBuffer{}
			rot := rotator.New(db, rotator.Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			const secretID = "loadtest/checkout-redis"

			// Without retire_off, so previous keeps logging in after finish.
			opts := s.options(strategy)
			opts.RetireOff = false
			opts.Admin = secret.FromString(srv.AdminURL(proxy))
			good := &recordingTarget{Target: newTarget(t, strategy, opts)}
			brokenOpts := opts
			brokenOpts.CanaryCommand = []string{"GET", "hidden:" + s.prefix}
			broken := &recordingTarget{Target: newTarget(t, strategy, brokenOpts)}
			cred := func(tg targets.Target) rotator.Credential {
				return rotator.Credential{
					Name: "checkout-redis", Strategy: strategy, Store: store, SecretID: secretID, Target: tg,
					Password: rotator.PasswordRules{Length: 24},
					Canary:   rotator.CanaryRetry{Attempts: 1, Interval: 10 * time.Millisecond},
				}
			}
			stage := func(st providers.Stage) secret.Secret {
				v, err := store.Get(ctx, secretID, st)
				require.NoError(t, err)
				return v.Value
			}
			verify := func(doc secret.Secret) error {
				return good.Verify(ctx, targets.VerifyRequest{Credential: doc, Canary: true})
			}

			var history []secret.Secret
			for i := range 3 {
				res, err := rot.Rotate(ctx, cred(good), rotator.Options{Actor: "test"})
				require.NoError(t, err, "rotation %d", i+1)
				require.Equal(t, state.OutcomeSucceeded, res.Outcome)
				cur := stage(providers.StageCurrent)
				doc, err := redis.ParseDocument(cur)
				require.NoError(t, err)
				require.Equal(t, res.Principal, doc.Username)
				require.NoError(t, verify(cur))
				history = append(history, cur)
			}
			if strategy == targets.Alternating {
				require.NoError(t, verify(history[1]), "previous still logs in")
			} else {
				require.Error(t, verify(history[1]), "single: the replaced password stops working")
			}

			res, failErr := rot.Rotate(ctx, cred(broken), rotator.Options{Actor: "test"})
			require.Error(t, failErr)
			require.True(t, res.RolledBack, "a failed canary rolls back")
			require.Equal(t, state.OutcomeFailed, res.Outcome)
			require.True(t, stage(providers.StageCurrent).Equal(history[2]), "current is unchanged")
			require.NoError(t, verify(history[2]), "current still logs in after the rollback")
			if strategy == targets.Alternating {
				require.NoError(t, verify(history[1]), "previous still logs in after the rollback")
			}
			failed := broken.pending[len(broken.pending)-1]
			require.Error(t, good.Verify(ctx, targets.VerifyRequest{Credential: failed}), "the failed credential does not log in")

			res, err := rot.Rotate(ctx, cred(good), rotator.Options{Actor: "test"})
			require.NoError(t, err)
			require.Equal(t, state.OutcomeSucceeded, res.Outcome)
			require.NoError(t, verify(stage(providers.StageCurrent)))

			passwords := append(good.passwords(t), broken.passwords(t)...)
			require.Len(t, passwords, 5)
			audit, err := db.Audit(ctx, "", 1000)
			require.NoError(t, err)
			requireNoneIn(t, logs.String(), passwords)
			requireNoneIn(t, fmt.Sprintf("%+v", audit), passwords)
			requireNoneIn(t, fmt.Sprintf("%v %+v", failErr, failErr), passwords)
			mon := monitor()
			require.True(t, strings.Contains(mon, `"AUTH" "(redacted)" "(redacted)"`), "MONITOR should show the canary's logins")
			require.True(t, strings.Contains(mon, `"GET" "`+s.prefix+`:orders"`), "MONITOR should show the canary's command")
			require.True(t, strings.Contains(strings.ToUpper(adminSent()), "SETUSER"), "the admin's traffic should hold the set step")
			requireNoneIn(t, mon, passwords)
			requireNoneIn(t, adminSent(), passwords)
			requireNoneIn(t, srv.ReadAll(t, "SLOWLOG", "GET", "-1"), passwords)
		})
	}
}
