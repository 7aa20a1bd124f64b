package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// Request is an operator's ask for a rotation now, carried out by whichever
// daemon replica takes the job.
type Request struct {
	Policy string
	// Force rotates even while a run or a deny window blocks the policy;
	// it is audited with Actor.
	Force bool
	// Actor is who asked ("operator:NAME").
	Actor string
}

// Ticket is an enqueued request: the River job and the request key its
// rotations carry.
type Ticket struct {
	JobID int64
	Key   string
	// Overridden are the blockers a forced request overrides.
	Overridden []schedule.Interval
}

// BlockedError is a request refused because something blocks the policy now.
type BlockedError struct {
	Policy   string
	Blockers []schedule.Interval
	// NextFree is the next instant from which nothing blocks; zero when
	// there is none within a year.
	NextFree time.Time
}

func (e *BlockedError) Error() string {
	next := "no free slot within a year"
	if !e.NextFree.IsZero() {
		next = "the next allowed slot is " + e.NextFree.Local().Format(time.RFC3339)
	}
	return fmt.Sprintf("rotate %s refused: %s; %s (or pass --force, which is audited)", e.Policy, DescribeBlockers(e.Blockers), next)
}

// ErrUnknownPolicy is returned for a request naming a policy the set lacks.
var ErrUnknownPolicy = errors.New("unknown policy")

// ErrNoDaemon is returned by Enqueue when no `swarmkey serve` runs against
// the database: a queued request would wait silently and rotate whenever a
// daemon next starts.
var ErrNoDaemon = errors.New("no swarmkey daemon is running against this database (no replica holds River's leadership)")

// Alive reports whether a daemon runs against the database: some replica
// holds River's leadership, which every running replica contends for and
// the leader renews every few seconds, so a killed daemon's claim lapses
// within River's leader TTL. It reads River's own table, with the
// database's clock, so a skewed local clock does not matter.
func Alive(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var alive bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_leader WHERE expires_at > now())`).Scan(&alive)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return false, nil // undefined_table: no daemon ever ran here (serve applies River's migrations)
	}
	if err != nil {
		return false, fmt.Errorf("ask whether a daemon runs (river_leader): %w", err)
	}
	return alive, nil
}

// Enqueue inserts a rotation job for req through the state database (no
// daemon needs to be reachable, only PostgreSQL). It refuses with
// ErrNoDaemon when no daemon runs (see Alive), and unless req.Force with a
// *BlockedError while a run, a lease or a deny window blocks the policy; a
// forced request is audited with what it overrides.
func Enqueue(ctx context.Context, pool *pgxpool.Pool, db *state.DB, set *PolicySet, req Request) (Ticket, error) {
	p, ok := set.Policies[req.Policy]
	if !ok {
		return Ticket{}, fmt.Errorf("%w %q", ErrUnknownPolicy, req.Policy)
	}
	alive, err := Alive(ctx, pool)
	if err != nil {
		return Ticket{}, err
	}
	if !alive {
		return Ticket{}, ErrNoDaemon
	}
	now := time.Now().UTC()
	blockers, nextFree, err := Blockers(ctx, db, set, req.Policy, now)
	if err != nil {
		return Ticket{}, err
	}
	if len(blockers) > 0 && !req.Force {
		return Ticket{}, &BlockedError{Policy: req.Policy, Blockers: blockers, NextFree: nextFree}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return Ticket{}, err
	}
	key := "request:" + uuid.Must(uuid.NewV7()).String()
	args := RotateArgs{Policy: req.Policy, Key: key, Slot: now, Force: req.Force, Actor: req.Actor}
	opts := args.InsertOpts()
	opts.MaxAttempts = max(p.MaxAttempts, 1)
	job, err := client.Insert(ctx, args, &opts)
	if err != nil {
		return Ticket{}, fmt.Errorf("ask the daemon: %w", err)
	}
	ticket := Ticket{JobID: job.Job.ID, Key: key}
	if req.Force {
		detail := map[string]any{"request": key}
		if len(blockers) > 0 {
			ticket.Overridden = blockers
			detail["overrides"] = describeEach(blockers)
		}
		if err := db.AppendAudit(ctx, state.AuditEntry{Actor: req.Actor, Policy: req.Policy, Action: "rotation.forced", Detail: detail}); err != nil {
			return ticket, err
		}
	}
	return ticket, nil
}

// Progress is what Follow reports as a request advances.
type Progress struct {
	// Step is a step that completed (zero Step.Step when this is a retry).
	Step state.StepTiming
	// Retry: an attempt failed with Reason and the daemon tries again At.
	Retry   bool
	Attempt int
	Reason  string
	At      time.Time
}

// Follow reports each step of the ticket's rotations as it completes and
// returns when the job is done: the last rotation (nil when the job ran
// none) on success, an error naming the outcome otherwise. It polls every
// 200ms; ctx ends the following, not the rotation.
func Follow(ctx context.Context, pool *pgxpool.Pool, db *state.DB, t Ticket, report func(Progress)) (*state.Rotation, error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, err
	}
	return follow(ctx, client, db, t, report)
}

func follow(ctx context.Context, client *river.Client[pgx.Tx], db *state.DB, t Ticket, report func(Progress)) (*state.Rotation, error) {
	printed := map[string]int{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := db.ByKey(ctx, t.Key)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			for _, s := range r.Steps[printed[r.Token]:] {
				report(Progress{Step: s})
			}
			printed[r.Token] = len(r.Steps)
		}
		job, err := client.JobGet(ctx, t.JobID)
		if err != nil {
			return nil, err
		}
		switch job.State {
		case rivertype.JobStateCompleted:
			if len(rows) == 0 {
				return nil, nil
			}
			return &rows[len(rows)-1], nil
		case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
			reason := "the daemon gave up"
			if len(rows) > 0 {
				last := rows[len(rows)-1]
				reason = fmt.Sprintf("rotation %s %s: %s", last.Token, last.Outcome, last.Error)
			}
			return nil, fmt.Errorf("rotate %s failed: %s", t.Key, reason)
		case rivertype.JobStateRetryable:
			if len(rows) > 0 && rows[len(rows)-1].Outcome != state.OutcomeRunning {
				report(Progress{Retry: true, Attempt: job.Attempt, Reason: rows[len(rows)-1].Error, At: job.ScheduledAt})
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped following; the daemon carries on with request %s", t.Key)
		case <-tick.C:
		}
	}
}

// DescribeBlockers names blockers for people: kind, name and end, in the
// local zone.
func DescribeBlockers(ivs []schedule.Interval) string {
	out := ""
	for i, s := range describeEach(ivs) {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

func describeEach(ivs []schedule.Interval) []string {
	out := make([]string, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, fmt.Sprintf("%s %q until %s", iv.Kind, iv.Name, iv.End.UTC().Format(time.RFC3339)))
	}
	return out
}
