package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/swarmkey/swarmkey/notify"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// QueueRotations is the River queue rotation jobs run in.
const QueueRotations = "swarmkey_rotations"

// Scheduled is one configured policy as the daemon sees it.
type Scheduled struct {
	// Plan is the policy's timing: a pointer, so that a set of 100,000
	// policies shares the config's rather than holding a copy of each
	// (20 MiB); the set never changes it.
	Plan        *schedule.Timing
	Strategy    string
	Store       string
	SecretID    string
	Tags        []string
	MaxAttempts int
	// Open opens the policy's store and target for one rotation; the caller
	// closes the target.
	Open func(ctx context.Context) (rotator.Credential, error)
}

// PolicySet is the configured policies; the daemon swaps the whole set on
// reload, so a rotation sees one consistent configuration. Policies is not
// changed once the set is in use (Expand indexes it).
type PolicySet struct {
	Policies map[string]Scheduled
	// Deny are the global deny windows.
	Deny []schedule.DenyWindow

	// tagged lists the policies of each tag, sorted, built on first use:
	// every calendar read expands the tags its runs use, and with 100,000
	// policies a scan of all of them per tag was most of a plan.
	taggedOnce sync.Once
	tagged     map[string][]string
}

// Expand turns the `uses` of a run (policy names and `tag:NAME` entries)
// into policy names.
func (s *PolicySet) Expand(uses []string) []string {
	var out []string
	for _, u := range uses {
		tag, isTag := strings.CutPrefix(u, "tag:")
		if !isTag {
			out = append(out, u)
			continue
		}
		s.taggedOnce.Do(s.indexTags)
		out = append(out, s.tagged[tag]...)
	}
	return out
}

// StateReadOf is what to give a read of the state rows of names
// (state.PolicyStatesOf, PlanStatesOf): names when they are some of the
// set's policies (one policy's page reads its own rows), nil when they are
// all of them, so that the read takes every row rather than name 100,000
// policies in an array.
func (s *PolicySet) StateReadOf(names []string) []string {
	if len(names) < len(s.Policies) {
		if names == nil {
			return []string{}
		}
		return names
	}
	return nil
}

func (s *PolicySet) indexTags() {
	s.tagged = map[string][]string{}
	for name, p := range s.Policies {
		for _, t := range slices.Compact(slices.Sorted(slices.Values(p.Tags))) {
			s.tagged[t] = append(s.tagged[t], name)
		}
	}
	for _, names := range s.tagged {
		slices.Sort(names)
	}
}

// RotateArgs is the River job of one rotation: one per schedule fire (key
// "fire:<policy>:<fire>") or per operator request (key "request:<uuid>").
// Uniqueness by policy and key makes a fire insertable once.
type RotateArgs struct {
	Policy string    `json:"policy" river:"unique"`
	Key    string    `json:"key" river:"unique"`
	Slot   time.Time `json:"slot"`
	Force  bool      `json:"force,omitempty"`
	Actor  string    `json:"actor"`
	// WindowEnd is when the window of a fire's job ends: the rotation must
	// start before it, whoever held the job back (a run or lease that began
	// after the job was inserted, a dead replica, a drain). Zero for an
	// operator's request, a forced (overdue) start and a missed: asap start,
	// which have no window.
	WindowEnd time.Time `json:"window_end,omitzero"`
	// MissedASAP marks the job of a fire whose own job could not start in
	// its window, for a policy with `missed: asap`: it starts at the
	// earliest free moment instead, under the fire's key. It is part of the
	// job's identity, so the fire's job and its missed-asap job are two
	// jobs, each insertable once.
	MissedASAP bool `json:"missed_asap,omitempty" river:"unique"`
}

// Kind implements river.JobArgs.
func (RotateArgs) Kind() string { return "swarmkey_rotate" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RotateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRotations, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// FireKey is the request key of a schedule fire.
func FireKey(policy string, fire time.Time) string {
	return "fire:" + policy + ":" + fire.UTC().Format(time.RFC3339)
}

// planArgs is the planning job of earlier versions, which River's leader
// inserted every tick. Planning now runs in every replica (planLoop); the
// kind stays registered so that such a job, left in the queue by an older
// replica during an upgrade, completes as one more planning tick.
type planArgs struct{}

func (planArgs) Kind() string { return "swarmkey_plan" }

// Config tunes the daemon.
type Config struct {
	// Workers is how many rotations one process runs at once (jobs waiting
	// for their slot do not count); default 10.
	Workers int
	// PlanInterval is how often each replica tries to plan (one plans at a
	// time, under the planning lock); default 2s.
	PlanInterval time.Duration
	// Lookahead: jobs are inserted for slots this close; the worker waits
	// for the slot itself, so a rotation starts on time whatever River's
	// scheduler interval. Default twice PlanInterval.
	Lookahead time.Duration
	// RescueAfter: a rotation job whose worker died (a killed replica) is
	// rescued and resumed elsewhere after this long (plus up to River's
	// 30s rescuer interval); it is also the longest a rotation job may run
	// before it is cancelled and resumed. Default 1m.
	RescueAfter time.Duration
	// RetryBase and RetryCap bound the exponential backoff between
	// attempts; defaults 5s and 10m.
	RetryBase, RetryCap time.Duration
	// PollOnly disables LISTEN/NOTIFY (tests with a pooler).
	PollOnly bool
	Logger   *slog.Logger
	// ID names this replica in River and in logs.
	ID string
	// Now is the clock of planning, of the wait for a job's slot and of the
	// rotations the daemon runs (it is handed to the rotator); default
	// time.Now().UTC(). River's own timers (the planning tick, snoozes,
	// retries, rescues) keep the real time.
	Now func() time.Time
	// Notifier routes and delivers notifications (needs_attention, failed,
	// overdue, long deferrals, expired leases); nil sends none. Its
	// deliveries run in this daemon's River client, in their own queue.
	Notifier *notify.Notifier
}

// Daemon plans and runs rotations on River.
type Daemon struct {
	pool     *pgxpool.Pool
	db       *state.DB
	rot      *rotator.Rotator
	river    *river.Client[pgx.Tx]
	policies atomic.Pointer[PolicySet]
	cfg      Config
	logger   *slog.Logger
	// OnResult, if set, is called after each rotation job (tests, metrics).
	OnResult func(args RotateArgs, res rotator.Result, err error)
	// OnStart, if set, is called when a rotation job first gets to run,
	// with how late it is after its slot (metrics).
	OnStart func(args RotateArgs, lag time.Duration)
	// rotating holds a token per rotation running in this process: at most
	// DaemonConfig.Workers.
	rotating chan struct{}
	// stopPlanning ends planLoop, which closes planningDone.
	stopPlanning context.CancelFunc
	planningDone chan struct{}
	// calendars shares the rotations' calendar reads.
	calendars *calendarReads
	// changes is what markChanged keeps between this replica's plans.
	changes struct {
		sync.Mutex
		// since is the database's clock at the last read of the
		// calendar's changes; zero before this replica's first plan.
		since time.Time
		// seen are the changes marked, for changeMargin after the read
		// that first saw each.
		seen map[string]time.Time
		// pending are the policies a reload changed, to mark at the next
		// plan.
		pending []string
	}
}

// maxWaiting is how many jobs one process may hold while they wait for their
// slot: a waiting job is a sleeping goroutine, cheap, and holding it means it
// starts on time instead of queueing behind others.
const maxWaiting = 2000

// MigrateRiver applies River's own migrations. Replicas started together
// would race in them (two runs of one migration: a "duplicate key" error
// that stops serve), so they run under a PostgreSQL advisory lock: the
// first replica migrates, the others wait and find nothing left to do.
func MigrateRiver(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	defer conn.Release()
	// A session lock on a connection of its own: River's migrator runs its
	// statements on other connections of the pool.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, riverMigrateLock); err != nil {
		return fmt.Errorf("river migrations: wait for the migration lock: %w", err)
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, riverMigrateLock); err != nil {
			// Ending the session releases the lock; never pool it held.
			_ = conn.Conn().Close(unlockCtx)
		}
	}()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// riverMigrateLock names the advisory lock of River's migrations (hashed
// like the policy locks, under a prefix of its own).
const riverMigrateLock = "swarmkey/river-migrate"

// New builds a daemon; Start runs it. River keeps its jobs in the state
// database: pool is the pool db was made from (state.Connect).
func New(pool *pgxpool.Pool, db *state.DB, set *PolicySet, cfg Config) (*Daemon, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 10
	}
	if cfg.PlanInterval <= 0 {
		cfg.PlanInterval = 2 * time.Second
	}
	if cfg.Lookahead <= 0 {
		// A slot must be seen by at least one planning tick before it
		// comes: two ticks' worth.
		cfg.Lookahead = 2 * cfg.PlanInterval
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = time.Minute
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 5 * time.Second
	}
	if cfg.RetryCap <= 0 {
		cfg.RetryCap = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	d := &Daemon{pool: pool, db: db, rot: rotator.New(db, rotator.Config{Logger: cfg.Logger, Now: cfg.Now}), cfg: cfg, logger: cfg.Logger,
		rotating: make(chan struct{}, cfg.Workers)}
	d.changes.seen = map[string]time.Time{}
	d.calendars = newCalendarReads(db, cfg.Now)
	d.policies.Store(set)

	workers := river.NewWorkers()
	river.AddWorker(workers, &rotateWorker{d: d})
	river.AddWorker(workers, &planWorker{d: d})
	if cfg.Notifier == nil {
		// Deliveries queued before a restart without notifications are
		// dropped (logged, counted) rather than left to fail as unknown.
		cfg.Notifier = notify.New(notify.Config{}, cfg.Logger)
		d.cfg.Notifier = cfg.Notifier
	}
	cfg.Notifier.AddWorker(workers)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:     cfg.ID,
		Logger: quietRiverLogger(cfg.Logger),
		// River's workers mostly wait for their job's slot (see Lookahead);
		// d.rotating bounds the rotations that run at once.
		Queues: map[string]river.QueueConfig{QueueRotations: {MaxWorkers: cfg.Workers + maxWaiting},
			notify.Queue: {MaxWorkers: notify.QueueWorkers}},
		Workers:              workers,
		RescueStuckJobsAfter: cfg.RescueAfter,
		// River rescues only jobs that have outlived their timeout, so the
		// timeout is the rescue interval: a rotation running longer is
		// cancelled, which leaves it resumable, and is resumed by whoever
		// gets the job next. RescueAfter must exceed the longest rotation.
		JobTimeout:  cfg.RescueAfter,
		RetryPolicy: &backoff{base: cfg.RetryBase, cap: cfg.RetryCap},
		PollOnly:    cfg.PollOnly,
		// Keep finished jobs a day: `rotate --wait` and the HA checks read
		// them; rotations and the audit log keep the history for good.
		CompletedJobRetentionPeriod: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	d.river = client
	return d, nil
}

// quietRiverLogger keeps River's own logs at warn and above unless the
// operator asked for debug: its info lines are per-job chatter.
func quietRiverLogger(l *slog.Logger) *slog.Logger {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return l
	}
	return slog.New(levelFloor{l.Handler(), slog.LevelWarn})
}

type levelFloor struct {
	slog.Handler
	floor slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.floor && h.Handler.Enabled(ctx, l)
}

// Start records every configured policy and starts River. It returns once
// some replica (this one or another) leads, or after leaderWait: until a
// leader exists, `swarmkey rotate` takes the daemon for absent (see Alive).
// Without a leader by then it starts all the same (another replica may take
// over a lapsed leadership a moment later) and logs a warning.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.ensurePolicies(ctx, d.policies.Load()); err != nil {
		return err
	}
	if err := d.river.Start(ctx); err != nil {
		return err
	}
	planCtx, stop := context.WithCancel(ctx)
	d.stopPlanning, d.planningDone = stop, make(chan struct{})
	go d.planLoop(planCtx)
	deadline := time.Now().Add(leaderWait)
	for {
		alive, err := Alive(ctx, d.pool)
		if err == nil && alive {
			return nil
		}
		if time.Now().After(deadline) {
			d.logger.Warn("no replica leads yet; `swarmkey rotate` refuses until one does", "waited", leaderWait, "error", err)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaderWait bounds how long Start waits for a leader.
const leaderWait = 15 * time.Second

// Reload swaps the policy set; rotations already running keep the one they
// started with. The policies that are new or whose timing changed are
// planned at the next tick.
func (d *Daemon) Reload(ctx context.Context, set *PolicySet) error {
	if err := d.ensurePolicies(ctx, set); err != nil {
		return err
	}
	old := d.policies.Load()
	var changed []string
	for name, p := range set.Policies {
		if o, ok := old.Policies[name]; !ok || !o.Plan.Equal(*p.Plan) {
			changed = append(changed, name)
		}
	}
	// Stored first: a tick that plans them before they are marked plans
	// with the new set, and the mark plans them once more.
	d.policies.Store(set)
	d.changes.Lock()
	d.changes.pending = append(d.changes.pending, changed...)
	d.changes.Unlock()
	return nil
}

// Stop drains: no new jobs are fetched, running rotations get until ctx is
// done to finish; then they are cancelled, which leaves each resumable from
// its last recorded step (the job is snoozed for another replica).
func (d *Daemon) Stop(ctx context.Context) error {
	if d.stopPlanning != nil {
		d.stopPlanning()
		select {
		case <-d.planningDone:
		case <-ctx.Done():
		}
	}
	err := d.river.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cancelCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.river.StopAndCancel(cancelCtx)
	}
	return err
}

// River exposes the client, for inserting jobs and subscribing in tests.
func (d *Daemon) River() *river.Client[pgx.Tx] { return d.river }

func (d *Daemon) ensurePolicies(ctx context.Context, set *PolicySet) error {
	states := make([]state.PolicyState, 0, len(set.Policies))
	for name, p := range set.Policies {
		states = append(states, state.PolicyState{Policy: name, Strategy: p.Strategy, Store: p.Store, SecretID: p.SecretID})
	}
	return d.db.EnsurePolicies(ctx, states)
}

// backoff is exponential backoff with jitter and a cap: base·2^(attempt−1)
// (5s, 10s, 20s, … by default), never above cap, each delay drawn from
// [½·d, d] so that replicas retrying together spread out.
type backoff struct{ base, cap time.Duration }

func (b *backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := b.base << min(max(job.Attempt-1, 0), 30)
	if d <= 0 || d > b.cap {
		d = b.cap
	}
	d = d/2 + rand.N(d/2+1)
	return time.Now().UTC().Add(d)
}
