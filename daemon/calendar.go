package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// calendarReads shares reads of the run calendar among the rotations that
// check it at about the same time. Each rotation checks three times (when
// its job starts, when it is recorded, right before set), and at 167
// rotations a second those reads were almost half of the statements the
// state database ran. A check still sees everything committed before it
// asked: it shares only a read that starts after it asked. One read runs
// at a time; the checks that ask meanwhile share the next, which starts as
// soon as it ends, so the busier the database, the more checks share a
// read.
type calendarReads struct {
	// read reads the calendar of a set.
	read func(ctx context.Context, set *PolicySet) (*schedule.Calendar, error)

	mu      sync.Mutex
	running bool
	// next is the read that checks asking now share; it starts when the
	// running one ends.
	next *calendarRead
}

type calendarRead struct {
	set  *PolicySet
	done chan struct{}
	cal  *schedule.Calendar
	err  error
}

// calendarReadTimeout bounds a shared read, which no one caller's context
// may cancel.
const calendarReadTimeout = 30 * time.Second

// newCalendarReads shares the reads of db's calendar at now.
func newCalendarReads(db *state.DB, now func() time.Time) *calendarReads {
	return &calendarReads{read: func(ctx context.Context, set *PolicySet) (*schedule.Calendar, error) {
		return set.Calendar(ctx, db, now())
	}}
}

// get returns set's calendar from a read that started after get was
// called. A check of another set (one read across a reload) reads alone.
func (c *calendarReads) get(ctx context.Context, set *PolicySet) (*schedule.Calendar, error) {
	c.mu.Lock()
	r := c.next
	switch {
	case r == nil:
		r = &calendarRead{set: set, done: make(chan struct{})}
		c.next = r
		if !c.running {
			c.startLocked()
		}
	case r.set != set:
		c.mu.Unlock()
		return c.read(ctx, set)
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.cal, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *calendarReads) startLocked() {
	r := c.next
	c.next, c.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), calendarReadTimeout)
		r.cal, r.err = c.read(ctx, r.set)
		cancel()
		close(r.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = false
		if c.next != nil {
			c.startLocked()
		}
	}()
}
