package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLocked is returned when another session holds a policy's lock.
var ErrLocked = errors.New("policy is locked by another rotation")

// PolicyLock is a held per-policy advisory lock. It is a session lock on a
// connection of the lock pool: if the process dies, PostgreSQL ends the
// session and the lock goes with it, so a crash never leaves a policy
// locked. Locks do not take connections from the main pool, because a
// rotation holds its lock while it queries through that pool: N rotations
// holding N of its connections would starve each other.
type PolicyLock struct {
	conn *pgxpool.Conn
	key  string
}

// maxHeldLocks bounds the lock pool: how many policies one process may
// rotate at once. A further TryLockPolicy waits for a free connection.
const maxHeldLocks = 64

func (db *DB) lockPool() (*pgxpool.Pool, error) {
	db.locksOnce.Do(func() {
		cfg := db.pool.Config().Copy()
		cfg.MaxConns = maxHeldLocks
		cfg.MinConns = 0
		cfg.MaxConnIdleTime = time.Minute
		db.locks, db.locksErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	return db.locks, db.locksErr
}

// lockKey namespaces our advisory locks so they do not collide with the
// application's or River's (which hash their own prefixes).
func lockKey(policy string) string { return "swarmkey/policy/" + policy }

// TryLockPolicy takes the policy's advisory lock without waiting. It returns
// ErrLocked when another session (a daemon, `run-due`, `rotate --local`)
// holds it.
func (db *DB) TryLockPolicy(ctx context.Context, policy string) (*PolicyLock, error) {
	lock, err := db.tryLock(ctx, lockKey(policy))
	if err != nil && !errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("lock policy %q: %w", policy, err)
	}
	return lock, err
}

// plannerLockKey names the lock that one daemon replica at a time plans
// under; no policy lock can take this name (theirs all start with
// "swarmkey/policy/").
const plannerLockKey = "swarmkey/planner"

// TryLockPlanner takes the planning lock without waiting: one daemon
// replica plans at a time. It returns ErrLocked while another replica
// plans. Like a policy lock it goes with its session, so a planner killed
// mid-plan (kill -9, a lost node) frees it as soon as PostgreSQL sees the
// connection close.
func (db *DB) TryLockPlanner(ctx context.Context) (*PolicyLock, error) {
	lock, err := db.tryLock(ctx, plannerLockKey)
	if err != nil && !errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("take the planning lock: %w", err)
	}
	return lock, err
}

func (db *DB) tryLock(ctx context.Context, key string) (*PolicyLock, error) {
	pool, err := db.lockPool()
	if err != nil {
		return nil, db.scrub.Err(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", db.scrub.Err(err))
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, err
	}
	if !ok {
		conn.Release()
		return nil, ErrLocked
	}
	return &PolicyLock{conn: conn, key: key}, nil
}

// Release gives the lock back and returns its connection to the lock pool.
func (l *PolicyLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var released bool
	err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, l.key).Scan(&released)
	if err != nil || !released {
		// Ending the session releases the lock whatever state it is in; a
		// connection that may still hold a lock never goes back to the pool.
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
	l.conn = nil
}

// Abandon drops the lock the way a crashed process would: the session ends.
// Tests use it to simulate a crash.
func (l *PolicyLock) Abandon() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.conn.Conn().Close(ctx)
	l.conn.Release()
	l.conn = nil
}
