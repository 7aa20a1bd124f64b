package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLocked is returned when another session holds a policy's lock.
var ErrLocked = errors.New("policy is locked by another rotation")

// PolicyLock is a held per-policy advisory lock. It is a session lock on one
// pooled connection: if the process dies, PostgreSQL ends the session and
// the lock goes with it, so a crash never leaves a policy locked.
type PolicyLock struct {
	conn   *pgxpool.Conn
	policy string
}

// lockKey namespaces our advisory locks so they do not collide with the
// application's or River's (which hash their own prefixes).
func lockKey(policy string) string { return "swarmkey/policy/" + policy }

// TryLockPolicy takes the policy's advisory lock without waiting. It returns
// ErrLocked when another session (a daemon, `run-due`, `rotate --local`)
// holds it.
func (db *DB) TryLockPolicy(ctx context.Context, policy string) (*PolicyLock, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock policy %q: %w", policy, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, lockKey(policy)).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock policy %q: %w", policy, err)
	}
	if !ok {
		conn.Release()
		return nil, ErrLocked
	}
	return &PolicyLock{conn: conn, policy: policy}, nil
}

// Release gives the lock back. If the unlock cannot be sent, the connection
// is closed instead, which ends the session and so releases the lock too.
func (l *PolicyLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var released bool
	err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey(l.policy)).Scan(&released)
	if err != nil || !released {
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
