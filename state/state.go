// Package state keeps swarmkey's state in PostgreSQL through pgx: the state
// of each policy, the rotations with their steps and outcomes, per-policy
// advisory locks, and the append-only audit log. It never stores a
// credential value.
package state

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/swarmkey/swarmkey/migrations"
	"github.com/swarmkey/swarmkey/secret"
)

// ErrNotFound is returned when a policy or rotation has no row.
var ErrNotFound = errors.New("not found")

// DB is swarmkey's state database.
type DB struct {
	// pool is the connection pool; whoever opened it (Connect) may share it
	// with River, which keeps its jobs in the same database.
	pool *pgxpool.Pool
	// locks is a second pool for the sessions that hold advisory locks,
	// opened on first use (see PolicyLock).
	locks     *pgxpool.Pool
	locksErr  error
	locksOnce sync.Once
	// scrub cuts the pool's password out of connection errors of the lock
	// pool, which pgx may give with the connection string quoted.
	scrub *secret.Scrubber
	now   func() time.Time
	// auditMonth is the month (year*12 + month, UTC) whose audit_log
	// partition this DB has made sure of (see auditTime).
	auditMonth atomic.Int64
}

// Options configures NewFromPool.
type Options struct {
	// Now is the clock of the times the database records (created, updated,
	// audited) and of what is live now (leases, runs, tokens); nil means
	// time.Now().UTC().
	Now func() time.Time
}

// Open connects to the state database at url and checks that it answers;
// the DB has the default Options. Errors name the host and the cause, never
// the password of the URL.
func Open(ctx context.Context, url string) (*DB, error) {
	pool, err := Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	return NewFromPool(pool, Options{}), nil
}

// Connect opens a pool on the state database at url and checks that it
// answers, with Open's errors. The caller that also runs River on the same
// database (the daemon) shares this pool with NewFromPool.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the connection string; ours does not.
		return nil, errors.New("the database URL does not parse: expected postgres://user@host:port/dbname (see `database:` in the config)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// Sessions say they are swarmkey's (pg_stat_activity), unless the URL
	// names them: replicas can be told apart by ?application_name=.
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "swarmkey"
	}
	// pgx may quote the connection string, password included, in its errors.
	scrub := secret.NewScrubber(secret.FromString(cfg.ConnConfig.Password))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", describeHost(cfg.ConnConfig), scrub.Err(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s is unreachable (check `database:` in the config, that the server runs and accepts this user): %w",
			describeHost(cfg.ConnConfig), scrub.Err(err))
	}
	return pool, nil
}

// NewFromPool wraps a pool from Connect (or a test's); Close closes it.
func NewFromPool(pool *pgxpool.Pool, opts Options) *DB {
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	return &DB{pool: pool, now: opts.Now, scrub: secret.NewScrubber(secret.FromString(pool.Config().ConnConfig.Password))}
}

// Ping checks that the database answers (readiness probes).
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Close closes the pools.
func (db *DB) Close() {
	if db.locks != nil {
		db.locks.Close()
	}
	db.pool.Close()
}

// Migrate applies swarmkey's pending migrations and returns how many ran.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	return migrations.Up(ctx, sqlDB)
}

func describeHost(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("%q (socket %s, port %d)", cfg.Database, host, cfg.Port)
	}
	return fmt.Sprintf("%q at %s", cfg.Database, net.JoinHostPort(host, fmt.Sprint(cfg.Port)))
}
