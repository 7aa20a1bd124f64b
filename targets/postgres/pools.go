package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Sizes of a shared admin pool. The targets that share it use a connection
// for a query or two at a time, so a few serve many policies rotating at
// once; idle connections go after a minute, so a daemon between rotations
// holds none for long.
const (
	sharedAdminMaxConns    = 8
	sharedAdminMaxIdleTime = time.Minute
)

// AdminPools shares admin connection pools between the targets of one
// process. A target opened per rotation (the daemon's jobs, `rotate --all`)
// would otherwise open a pool, and a new admin connection, for every
// rotation: a server process started and, with a password, a SCRAM
// exchange, which cost more than the rotation's own statements. Targets
// whose Admin URL, ConnectTimeout and AllowInsecureAuth are the same share
// one pool; a target's Close leaves a shared pool open, and Close of the
// AdminPools closes them all.
type AdminPools struct {
	mu     sync.Mutex
	pools  map[adminPoolKey]*pgxpool.Pool
	closed bool
}

// adminPoolKey is what the pool's configuration is built from. It holds
// the Admin URL, a secret, only in memory, as Options does.
type adminPoolKey struct {
	admin             string
	connectTimeout    time.Duration
	allowInsecureAuth bool
}

// NewAdminPools returns an empty set of shared pools.
func NewAdminPools() *AdminPools {
	return &AdminPools{pools: map[adminPoolKey]*pgxpool.Pool{}}
}

// pool returns the shared pool of key, building it from cfg on first use.
func (p *AdminPools) pool(ctx context.Context, key adminPoolKey, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("the shared admin pools are closed")
	}
	if pool, ok := p.pools[key]; ok {
		return pool, nil
	}
	cfg.MaxConns = sharedAdminMaxConns
	cfg.MaxConnIdleTime = sharedAdminMaxIdleTime
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p.pools[key] = pool
	return pool, nil
}

// Close closes every shared pool; targets that still hold one fail their
// next admin step with a closed pool. It is safe to call more than once,
// and on nil.
func (p *AdminPools) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, pool := range p.pools {
		pool.Close()
		delete(p.pools, key)
	}
	p.closed = true
}
