// Package app turns a loaded configuration into the running parts of
// swarmkey: the secret stores, the targets, the state database, the daemon's
// policy set and the API's catalog. It is the one place that knows every
// provider and target, so a new one is a folder plus a line here; the CLI,
// run-due, exec and the benchmarks all build through it.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// InputError is an error the user fixes by changing the input: a config
// file, a flag, a policy name. The CLI exits 2 on it.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Inputf returns an InputError with a formatted message.
func Inputf(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// Runtime is a loaded configuration with what it opens on demand: stores
// are opened on first use and shared by every policy that names them.
type Runtime struct {
	Config *config.Config
	Logger *slog.Logger
	// mu guards stores: the daemon's workers open policies concurrently.
	mu     sync.Mutex
	stores map[string]providers.Store
	// postgresAdmin is lent to every postgres target opened here, so that
	// targets opened per rotation share their admin connections.
	postgresAdmin *postgres.AdminPools
}

// NewRuntime wraps cfg; nothing is opened until it is needed.
func NewRuntime(cfg *config.Config, logger *slog.Logger) *Runtime {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{Config: cfg, Logger: logger, stores: map[string]providers.Store{}, postgresAdmin: postgres.NewAdminPools()}
}

// Close closes the stores it opened and the shared admin pools.
func (r *Runtime) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.stores {
		_ = s.Close()
	}
	r.postgresAdmin.Close()
}

// Store returns the configured provider called name, opening it on first use.
func (r *Runtime) Store(ctx context.Context, name string) (providers.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[name]; ok {
		return s, nil
	}
	open, ok := storeOpeners[name]
	if !ok || !r.Config.Stores.Configured(name) {
		return nil, Inputf("store %q is not configured: add a stores.%s block to the config", name, name)
	}
	s, err := open(ctx, r.Config.Stores)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", name, err)
	}
	r.stores[name] = s
	return s, nil
}

// ReadStore resolves store: references: the current version of a secret.
func (r *Runtime) ReadStore(ctx context.Context, provider, secretID string) (secret.Secret, error) {
	s, err := r.Store(ctx, provider)
	if err != nil {
		return secret.Secret{}, err
	}
	v, err := s.Get(ctx, secretID, providers.StageCurrent)
	if err != nil {
		return secret.Secret{}, err
	}
	return v.Value, nil
}

// Policy returns the configured policy called name, or an InputError that
// says where the policies come from.
func (r *Runtime) Policy(name string) (*config.Policy, error) {
	p, ok := r.Config.Policy(name)
	if !ok {
		return nil, Inputf("unknown policy %q: `swarmkey status` lists the policies of %s", name, strings.Join(r.Config.Files, ", "))
	}
	return p, nil
}

// Session is a Runtime with the state database open: what most commands,
// the daemon and exec need.
type Session struct {
	*Runtime
	DB *state.DB
	// pool is DB's pool, shared with River, which keeps its jobs in the
	// same database.
	pool *pgxpool.Pool
}

// Open resolves the config's database reference and connects.
func Open(ctx context.Context, rt *Runtime) (*Session, error) {
	cfg := rt.Config
	if cfg.Database.IsZero() {
		return nil, Inputf("%s: database: missing: set it to a reference such as env:SWARMKEY_DATABASE_URL", strings.Join(cfg.Files, ", "))
	}
	url, err := rt.resolve(ctx, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pool, err := state.Connect(ctx, url.RevealString())
	if err != nil {
		return nil, err
	}
	return &Session{Runtime: rt, DB: state.NewFromPool(pool, state.Options{}), pool: pool}, nil
}

// Close closes the database and the stores.
func (s *Session) Close() {
	s.DB.Close()
	s.Runtime.Close()
}
