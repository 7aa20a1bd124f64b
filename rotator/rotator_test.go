package rotator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// bundle is one test's world: its own database, roles, file store and a
// log that captures everything the rotator printed.
type bundle struct {
	t        *testing.T
	ctx      context.Context
	db       *pgtest.Database
	state    *state.DB
	store    *file.Store
	rot      *rotator.Rotator
	logs     *rotationtest.LogBuffer
	host     string
	port     int
	username string
	group    string
	// initialPassword is the single role's password before swarmkey.
	initialPassword string
	// adminApp, when set, is the application_name of the targets' admin
	// sessions, so that a test can find them in pg_stat_activity.
	adminApp string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	state, db := rotationtest.State(t)
	fs := rotationtest.FileStore(t)

	host, port := pgtest.LoginHost(t)
	b := &bundle{
		t: t, ctx: ctx, db: db, state: state, store: fs, logs: &rotationtest.LogBuffer{}, host: host, port: port,
		username: pgtest.RoleName(t, "app"), group: pgtest.RoleName(t, "app_rw"),
		initialPassword: "initial-" + pgtest.RoleName(t, "pw") + "-password",
	}
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.rot = rotator.New(state, rotator.Config{Logger: logger})

	b.exec(`CREATE ROLE ` + ident(b.group) + ` NOLOGIN`)
	b.exec(`CREATE ROLE ` + ident(b.username) + ` LOGIN PASSWORD '` + b.initialPassword + `'`)
	b.exec(`CREATE TABLE orders (id int)`)
	b.exec(`GRANT SELECT ON orders TO ` + ident(b.group) + `, ` + ident(b.username))
	b.exec(`CREATE TABLE forbidden (id int)`)
	t.Cleanup(func() {
		for _, role := range []string{b.username, b.username + "_b", b.group} {
			b.exec(`DROP OWNED BY ` + ident(role) + ` CASCADE`)
			b.exec(`DROP ROLE IF EXISTS ` + ident(role))
		}
	})
	return b
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func (b *bundle) exec(sql string) {
	b.t.Helper()
	_, err := b.db.Pool.Exec(b.ctx, sql)
	if err != nil && !strings.Contains(sql, "DROP") {
		b.t.Fatalf("%s: %v", sql, err)
	}
}

// policy builds a policy with a postgres target; canaryQuery "" runs only
// SELECT 1.
func (b *bundle) policy(strategy targets.Strategy, canaryQuery string) rotator.Credential {
	b.t.Helper()
	adminURL := b.db.URL
	if b.adminApp != "" {
		u, err := url.Parse(adminURL)
		require.NoError(b.t, err)
		q := u.Query()
		q.Set("application_name", b.adminApp)
		u.RawQuery = q.Encode()
		adminURL = u.String()
	}
	opts := postgres.Options{
		Host: b.host, Port: b.port, DBName: b.db.Name, SSLMode: "disable",
		Username: b.username, Admin: secret.FromString(adminURL), CanaryQuery: canaryQuery,
	}
	if strategy == targets.Alternating {
		opts.GroupRole = b.group
	}
	target, err := postgres.New(b.ctx, opts)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { _ = target.Close() })
	return rotator.Credential{
		Name: "checkout-db", Strategy: strategy, Store: b.store, SecretID: "loadtest/checkout-db", Target: target,
		Canary: rotator.CanaryRetry{Attempts: 1, Interval: 10 * time.Millisecond},
	}
}

type login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (b *bundle) stage(stage providers.Stage) (login, bool) {
	b.t.Helper()
	v, err := b.store.Get(b.ctx, "loadtest/checkout-db", stage)
	if errors.Is(err, providers.ErrNotFound) {
		return login{}, false
	}
	require.NoError(b.t, err)
	var l login
	require.NoError(b.t, json.Unmarshal(v.Value.Reveal(), &l))
	return l, true
}

// logsIn opens a new SCRAM connection over TCP as l.
func (b *bundle) logsIn(l login) bool {
	b.t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=disable connect_timeout=5", b.host, b.port, b.db.Name))
	require.NoError(b.t, err)
	cfg.User, cfg.Password = l.Username, l.Password
	conn, err := pgx.ConnectConfig(b.ctx, cfg)
	if err != nil {
		return false
	}
	defer conn.Close(b.ctx)
	return conn.Ping(b.ctx) == nil
}

func (b *bundle) rotate(p rotator.Credential, opts rotator.Options) (rotator.Result, error) {
	if opts.Actor == "" {
		opts.Actor = "test"
	}
	return b.rot.Rotate(b.ctx, p, opts)
}

// rotateAfterCrash rotates once the crashed session is gone: the server
// releases its advisory lock when it notices the closed connection, a
// moment after the client closed it.
func (b *bundle) rotateAfterCrash(p rotator.Credential) (rotator.Result, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := b.rotate(p, rotator.Options{})
		var inProgress *rotator.InProgressError
		if !errors.As(err, &inProgress) || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// passwords are every password the store has held, for leak searches.
func (b *bundle) passwords(seen map[string]bool) {
	for _, stage := range providers.Stages {
		if l, ok := b.stage(stage); ok {
			seen[l.Password] = true
		}
	}
}

func TestSingleRotationReplacesThePassword(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Single, "")
	initial := login{b.username, b.initialPassword}
	require.True(t, b.logsIn(initial))

	var seen []login
	for i := range 3 {
		res, err := b.rotate(p, rotator.Options{})
		require.NoError(t, err, "rotation %d", i)
		require.Equal(t, state.OutcomeSucceeded, res.Outcome)
		require.Len(t, res.Steps, len(rotator.Steps))

		current, ok := b.stage(providers.StageCurrent)
		require.True(t, ok)
		require.Equal(t, b.username, current.Username)
		require.True(t, b.logsIn(current), "the new password logs in")
		require.False(t, b.logsIn(initial), "the password before swarmkey is refused")
		for _, old := range seen {
			require.False(t, b.logsIn(old), "an old password is refused")
		}
		_, pending := b.stage(providers.StagePending)
		require.False(t, pending)
		seen = append(seen, current)
	}
}

func TestAlternatingKeepsPreviousValid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Alternating, "SELECT count(*) FROM orders")

	var history []login
	for i := range 4 {
		_, err := b.rotate(p, rotator.Options{})
		require.NoError(t, err, "rotation %d", i)
		current, _ := b.stage(providers.StageCurrent)
		require.True(t, b.logsIn(current), "current logs in")
		if i > 0 {
			previous, ok := b.stage(providers.StagePrevious)
			require.True(t, ok)
			require.Equal(t, history[i-1], previous)
			require.NotEqual(t, current.Username, previous.Username, "the two roles take turns")
			require.True(t, b.logsIn(previous), "previous still logs in")
		}
		if i > 1 {
			require.False(t, b.logsIn(history[i-2]), "the one before previous is refused")
		}
		history = append(history, current)
	}
}

func TestCanaryFailureRollsBack(t *testing.T) {
	t.Parallel()

	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			good := b.policy(strategy, "")
			for range 2 {
				_, err := b.rotate(good, rotator.Options{})
				require.NoError(t, err)
			}
			before, _ := b.stage(providers.StageCurrent)
			previousBefore, _ := b.stage(providers.StagePrevious)

			// A canary query the role may not run.
			bad := b.policy(strategy, "SELECT * FROM forbidden")
			res, err := b.rotate(bad, rotator.Options{})
			require.Error(t, err)
			var stepErr *rotator.StepError
			require.ErrorAs(t, err, &stepErr)
			require.Equal(t, rotator.StepTest, stepErr.Step)
			require.True(t, res.RolledBack)
			require.Equal(t, state.OutcomeFailed, res.Outcome)

			after, _ := b.stage(providers.StageCurrent)
			require.Equal(t, before, after, "current is untouched")
			require.True(t, b.logsIn(after), "the current credential still logs in")
			if strategy == targets.Alternating {
				require.True(t, b.logsIn(previousBefore), "the previous credential still logs in")
			}
			_, pending := b.stage(providers.StagePending)
			require.False(t, pending, "no pending version is left")

			row, err := b.state.Rotation(b.ctx, res.Token)
			require.NoError(t, err)
			require.Equal(t, state.OutcomeFailed, row.Outcome)
			require.True(t, row.RolledBack)
			require.Contains(t, row.Error, "canary")
			require.Contains(t, row.Error, "forbidden")

			state, err := b.state.PolicyState(b.ctx, "checkout-db")
			require.NoError(t, err)
			require.Equal(t, "failed", state.LastOutcome)

			// The next rotation runs normally.
			_, err = b.rotate(good, rotator.Options{})
			require.NoError(t, err)
		})
	}
}

func TestCrashAfterEachStepResumes(t *testing.T) {
	t.Parallel()

	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		for _, step := range []rotator.Step{rotator.StepCreate, rotator.StepSet, rotator.StepTest, rotator.StepPromote} {
			t.Run(fmt.Sprintf("%s/%s", strategy, step), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				p := b.policy(strategy, "")
				_, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)

				crashed, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == step {
						return rotator.ErrCrash
					}
					return nil
				}})
				require.ErrorIs(t, err, rotator.ErrCrash)

				row, err := b.state.RunningRotation(b.ctx, "checkout-db")
				require.NoError(t, err, "the crashed rotation is left running")
				require.Equal(t, string(step), row.Step)

				res, err := b.rotateAfterCrash(p)
				require.NoError(t, err)
				require.True(t, res.Resumed)
				require.Equal(t, crashed.Token, res.Token, "the new rotate finishes the crashed one")

				current, ok := b.stage(providers.StageCurrent)
				require.True(t, ok)
				require.True(t, b.logsIn(current), "the current credential logs in")
				_, pending := b.stage(providers.StagePending)
				require.False(t, pending)

				versions, err := b.store.List(b.ctx, "loadtest/checkout-db")
				require.NoError(t, err)
				require.Len(t, versions, 2, "current and previous, no duplicates")
				require.NotEqual(t, versions[0].ID, versions[1].ID)

				// And the policy keeps rotating.
				_, err = b.rotate(p, rotator.Options{})
				require.NoError(t, err)
				current, _ = b.stage(providers.StageCurrent)
				require.True(t, b.logsIn(current))
			})
		}
	}
}

// TestCrashAfterFinishBeforeItsRecordResumes: the finish step is recorded
// with the outcome, in one statement. A process killed after finish ran but
// before that statement leaves the rotation running after promote; the
// next rotate finishes that rotation (finish is idempotent), records the
// finish step once and the success, and starts no other.
func TestCrashAfterFinishBeforeItsRecordResumes(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.policy(strategy, "")
			_, err := b.rotate(p, rotator.Options{})
			require.NoError(t, err)

			crashed, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
				if s == rotator.StepFinish {
					return rotator.ErrCrash
				}
				return nil
			}})
			require.ErrorIs(t, err, rotator.ErrCrash)
			row, err := b.state.RunningRotation(b.ctx, "checkout-db")
			require.NoError(t, err, "the crashed rotation is left running")
			require.Equal(t, string(rotator.StepPromote), row.Step, "finish is recorded only with the outcome")

			res, err := b.rotateAfterCrash(p)
			require.NoError(t, err)
			require.True(t, res.Resumed)
			require.Equal(t, crashed.Token, res.Token)
			done, err := b.state.Rotation(b.ctx, crashed.Token)
			require.NoError(t, err)
			require.Equal(t, state.OutcomeSucceeded, done.Outcome)
			require.Equal(t, string(rotator.StepFinish), done.Step)
			current, ok := b.stage(providers.StageCurrent)
			require.True(t, ok)
			require.True(t, b.logsIn(current), "the current credential logs in")
			_, pending := b.stage(providers.StagePending)
			require.False(t, pending)
		})
	}
}

func TestInjectedFailureAfterEachStepLeavesAWorkingCurrent(t *testing.T) {
	t.Parallel()

	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		for _, step := range []rotator.Step{rotator.StepCreate, rotator.StepSet, rotator.StepTest, rotator.StepPromote} {
			t.Run(fmt.Sprintf("%s/%s", strategy, step), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				p := b.policy(strategy, "")
				_, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)

				_, err = b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == step {
						return errors.New("injected failure")
					}
					return nil
				}})
				require.ErrorContains(t, err, "injected failure")

				current, ok := b.stage(providers.StageCurrent)
				require.True(t, ok)
				require.True(t, b.logsIn(current), "the current credential logs in")
				_, pending := b.stage(providers.StagePending)
				require.False(t, pending, "no pending version is left")

				res, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)
				require.False(t, res.Resumed)
				current, _ = b.stage(providers.StageCurrent)
				require.True(t, b.logsIn(current))
				versions, err := b.store.List(b.ctx, "loadtest/checkout-db")
				require.NoError(t, err)
				require.Len(t, versions, 2)
			})
		}
	}
}

func TestConcurrentRotationsOfOnePolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Alternating, "")

	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var holder rotator.Result
	go func() {
		res, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
			if s == rotator.StepCreate {
				close(entered)
				<-release
			}
			return nil
		}})
		holder = res
		done <- err
	}()
	<-entered

	_, err := b.rotate(p, rotator.Options{})
	var inProgress *rotator.InProgressError
	require.ErrorAs(t, err, &inProgress)
	require.Contains(t, err.Error(), "rotation in progress")
	row, rowErr := b.state.RunningRotation(b.ctx, "checkout-db")
	require.NoError(t, rowErr)
	require.Equal(t, row.Token, inProgress.Token, "the error names the token holding the lock")

	close(release)
	require.NoError(t, <-done)
	require.Equal(t, row.Token, holder.Token)
}

func TestNoPasswordReachesLogsRowsOrTheServerLog(t *testing.T) {
	t.Parallel()
	b := setup(t)

	seen := map[string]bool{b.initialPassword: true}
	var errs []string
	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		p := b.policy(strategy, "")
		for range 2 {
			_, err := b.rotate(p, rotator.Options{OnStep: func(e rotator.StepEvent) {
				errs = append(errs, fmt.Sprintf("%+v", e))
			}})
			require.NoError(t, err)
			b.passwords(seen)
		}
		// A failing rotation too: its error and row must not leak either.
		_, err := b.rotate(b.policy(strategy, "SELECT * FROM forbidden"), rotator.Options{})
		require.Error(t, err)
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
		b.passwords(seen)
	}
	require.GreaterOrEqual(t, len(seen), 5, "the initial password and four generated ones")

	var rows strings.Builder
	for _, table := range []string{"rotations", "audit_log", "policy_state"} {
		var dump string
		require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT coalesce(json_agg(t)::text, '') FROM `+table+` t`).Scan(&dump))
		rows.WriteString(dump)
	}
	serverLog, err := os.ReadFile(pgtest.ServerLog(t))
	require.NoError(t, err)
	require.Contains(t, string(serverLog), "ALTER ROLE", "the server log records statements (log_statement = all)")

	// The test itself created the role with a plaintext password; every
	// other value was generated by swarmkey.
	delete(seen, b.initialPassword)
	for password := range seen {
		// Plain booleans: a failure must not print the value it found.
		require.False(t, strings.Contains(b.logs.String(), password), "a generated password is in the rotator log")
		require.False(t, strings.Contains(strings.Join(errs, "\n"), password), "a generated password is in an error or step event")
		require.False(t, strings.Contains(rows.String(), password), "a generated password is in a database row")
		require.False(t, strings.Contains(string(serverLog), password), "a generated password is in the PostgreSQL server log")
	}
	require.Contains(t, b.logs.String(), "step completed", "the log was captured")
}
