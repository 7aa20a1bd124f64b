// Package migrations holds swarmkey's SQL migrations, embedded in the binary
// and applied by goose (`swarmkey migrate`, and `swarmkey serve` on start).
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which goose records what it applied; named
// after us so it never collides with an application's own goose table.
const VersionTable = "swarmkey_schema_version"

// migrationLockID is the advisory lock goose holds while it migrates: our
// own, so it never waits on an application's goose run in the same database.
const migrationLockID int64 = 0x5357_4b4d_4947 // "SWKMIG"

// Up applies every migration that has not run yet, each in a transaction,
// and returns how many it applied. goose takes a Postgres advisory lock, so
// several replicas starting at once apply each migration once.
func Up(ctx context.Context, db *sql.DB) (int, error) {
	provider, err := newProvider(db)
	if err != nil {
		return 0, err
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return len(results), fmt.Errorf("apply migrations: %w", err)
	}
	return len(results), nil
}

// Pending reports how many migrations have not been applied.
func Pending(ctx context.Context, db *sql.DB) (int, error) {
	provider, err := newProvider(db)
	if err != nil {
		return 0, err
	}
	status, err := provider.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("read migration status: %w", err)
	}
	n := 0
	for _, s := range status {
		if s.State == goose.StatePending {
			n++
		}
	}
	return n, nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID))
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
	)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return provider, nil
}
