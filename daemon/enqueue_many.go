package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// Enqueued is one request of EnqueueMany: its ticket, or why it was not
// queued (a *BlockedError, an unknown policy).
type Enqueued struct {
	Request Request
	Ticket  Ticket
	Err     error
}

// EnqueueMany is Enqueue for many requests at once (`rotate --tag`,
// `--all`): one liveness check, one read of the calendar and one insert for
// all of them, where Enqueue would do each per request. It returns
// ErrNoDaemon, queuing nothing, when no daemon runs. A request that a
// blocker refuses (without Force) or that names an unknown policy gets its
// error in its Enqueued and is not queued; the others are. Forced requests
// are audited like Enqueue's.
func EnqueueMany(ctx context.Context, pool *pgxpool.Pool, db *state.DB, set *PolicySet, reqs []Request) ([]Enqueued, error) {
	alive, err := Alive(ctx, pool)
	if err != nil {
		return nil, err
	}
	if !alive {
		return nil, ErrNoDaemon
	}
	now := time.Now().UTC()
	cal, err := set.Calendar(ctx, db, now)
	if err != nil {
		return nil, err
	}
	out := make([]Enqueued, len(reqs))
	var params []river.InsertManyParams
	var queued []int
	for i, req := range reqs {
		out[i].Request = req
		p, ok := set.Policies[req.Policy]
		if !ok {
			out[i].Err = fmt.Errorf("%w %q", ErrUnknownPolicy, req.Policy)
			continue
		}
		blockers := schedule.BlockersAt(*p.Plan, cal.For(req.Policy), now)
		if len(blockers) > 0 && !req.Force {
			// Only a refused request needs its next free slot, which reads
			// the calendar again.
			_, nextFree, err := Blockers(ctx, db, set, req.Policy, now)
			if err != nil {
				return nil, err
			}
			out[i].Err = &BlockedError{Policy: req.Policy, Blockers: blockers, NextFree: nextFree}
			continue
		}
		key := "request:" + uuid.Must(uuid.NewV7()).String()
		args := RotateArgs{Policy: req.Policy, Key: key, Slot: now, Force: req.Force, Actor: req.Actor}
		opts := args.InsertOpts()
		opts.MaxAttempts = max(p.MaxAttempts, 1)
		params = append(params, river.InsertManyParams{Args: args, InsertOpts: &opts})
		out[i].Ticket = Ticket{Key: key}
		if req.Force && len(blockers) > 0 {
			out[i].Ticket.Overridden = blockers
		}
		queued = append(queued, i)
	}
	if len(params) == 0 {
		return out, nil
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, err
	}
	jobs, err := client.InsertMany(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("ask the daemon: %w", err)
	}
	for n, i := range queued {
		out[i].Ticket.JobID = jobs[n].Job.ID
		req := out[i].Request
		if !req.Force {
			continue
		}
		detail := map[string]any{"request": out[i].Ticket.Key}
		if len(out[i].Ticket.Overridden) > 0 {
			detail["overrides"] = describeEach(out[i].Ticket.Overridden)
		}
		if err := db.AppendAudit(ctx, state.AuditEntry{Actor: req.Actor, Policy: req.Policy, Action: "rotation.forced", Detail: detail}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Finished is a ticket whose job is done: its last rotation (nil when the
// job ran none), and Err when the job failed (the daemon gave up on it, or
// it was cancelled), naming the rotation's outcome.
type Finished struct {
	Ticket   Ticket
	Rotation *state.Rotation
	Err      error
}

// FinishedTickets looks once at the jobs of tickets and returns those that
// are done, as Follow would end on them; the others are still queued,
// running or waiting to retry. It is how `rotate --tag` follows hundreds of
// requests with one query per poll rather than one Follow each.
func FinishedTickets(ctx context.Context, pool *pgxpool.Pool, db *state.DB, tickets []Ticket) ([]Finished, error) {
	if len(tickets) == 0 {
		return nil, nil
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(tickets))
	byID := make(map[int64]Ticket, len(tickets))
	for i, t := range tickets {
		ids[i] = t.JobID
		byID[t.JobID] = t
	}
	res, err := client.JobList(ctx, river.NewJobListParams().IDs(ids...).First(len(ids)))
	if err != nil {
		return nil, fmt.Errorf("ask how the daemon's rotations went: %w", err)
	}
	var out []Finished
	for _, job := range res.Jobs {
		done := job.State == rivertype.JobStateCompleted || job.State == rivertype.JobStateDiscarded ||
			job.State == rivertype.JobStateCancelled
		if !done {
			continue
		}
		t := byID[job.ID]
		rows, err := db.ByKey(ctx, t.Key)
		if err != nil {
			return out, err
		}
		f := Finished{Ticket: t}
		if len(rows) > 0 {
			f.Rotation = &rows[len(rows)-1]
		}
		switch {
		case job.State == rivertype.JobStateCompleted && f.Rotation != nil && f.Rotation.Outcome != state.OutcomeSucceeded:
			f.Err = fmt.Errorf("rotate %s: rotation %s %s: %s", t.Key, f.Rotation.Token, f.Rotation.Outcome, f.Rotation.Error)
		case job.State != rivertype.JobStateCompleted:
			reason := "the daemon gave up"
			if f.Rotation != nil {
				reason = fmt.Sprintf("rotation %s %s: %s", f.Rotation.Token, f.Rotation.Outcome, f.Rotation.Error)
			}
			f.Err = fmt.Errorf("rotate %s failed: %s", t.Key, reason)
		}
		out = append(out, f)
	}
	return out, nil
}
