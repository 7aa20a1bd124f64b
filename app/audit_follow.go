package app

import (
	"context"
	"time"

	"github.com/swarmkey/swarmkey/state"
)

// FollowOptions configure FollowAudit.
type FollowOptions struct {
	// After is the id following starts above (state.DB.LastAuditID when the
	// listing before it was read).
	After int64
	// Interval between looks at the log; 0 means 500ms.
	Interval time.Duration
	// GapWait is how long an id missing below ids already seen is waited
	// for (an append whose transaction commits late) before it is taken for
	// a number the sequence skipped (a rolled-back append); 0 means 10s.
	GapWait time.Duration
}

// FollowAudit calls each with every entry f matches that is appended after
// o.After, in id order, until ctx ends (then it returns nil) or each fails.
// It polls by id. Ids are taken when an append begins, not when it
// commits, so a later id may show up first: an id missing below the ones
// already seen is looked for again until it appears or GapWait passes, and
// no entry is skipped because another committed before it.
func (s *Session) FollowAudit(ctx context.Context, f state.AuditFilter, o FollowOptions, each func(state.ExportedEntry) error) error {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.GapWait <= 0 {
		o.GapWait = 10 * time.Second
	}
	// low: every id up to it is settled (seen, or given up on). seen: ids
	// above low already handled. missing: when an id between low and the
	// highest seen was first found missing.
	low := o.After
	seen := map[int64]bool{}
	missing := map[int64]time.Time{}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		rows, err := s.DB.AuditSince(ctx, f, low, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		for _, r := range rows {
			if seen[r.Entry.ID] {
				continue
			}
			seen[r.Entry.ID] = true
			if r.Matches {
				if err := each(r.Entry); err != nil {
					return err
				}
			}
		}
		for len(seen) > 0 {
			next := low + 1
			if seen[next] {
				delete(seen, next)
				delete(missing, next)
				low = next
				continue
			}
			since, ok := missing[next]
			if !ok {
				// Every id up to the highest seen is missing from now on.
				for id := next; !seen[id]; id++ {
					if _, ok := missing[id]; !ok {
						missing[id] = now
					}
				}
				since = now
			}
			if now.Sub(since) < o.GapWait {
				break
			}
			delete(missing, next)
			low = next // the sequence skipped it
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
