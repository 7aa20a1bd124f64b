// Package rotationtest sets up what a test of real rotations needs: a
// migrated state database of its own, an encrypted file store of its own,
// a store that refuses pending writes, and a log buffer that handlers may
// write from any goroutine.
package rotationtest

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// State returns a migrated state database for this test (its own database
// in the test server), closed when the test ends.
func State(t testing.TB) (*state.DB, *pgtest.Database) {
	t.Helper()
	pg := pgtest.New(t)
	db := state.NewFromPool(pg.Pool, state.Options{})
	t.Cleanup(db.Close)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate the test database: %v", err)
	}
	return db, pg
}

// FileStore returns a file store in a temporary folder with a fresh key.
func FileStore(t testing.TB) *file.Store {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := file.GenerateKey(keyFile); err != nil {
		t.Fatalf("file store key: %v", err)
	}
	fs, err := file.Open(file.Options{Dir: filepath.Join(dir, "secrets"), KeyFile: keyFile})
	if err != nil {
		t.Fatalf("open the file store: %v", err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	return fs
}

// RefusingStore is a store whose PutPending fails with Err while Err is set:
// a store that is down, or that refuses the write. With Landed the write
// reaches the wrapped store first and only the answer is lost, as after a
// timeout. Every other method is the wrapped store's.
type RefusingStore struct {
	providers.Store
	Err    error
	Landed bool
}

// PutPending fails with Err, after writing when Landed; without Err it
// writes.
func (s *RefusingStore) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	if s.Err == nil {
		return s.Store.PutPending(ctx, secretID, token, value)
	}
	if s.Landed {
		if _, err := s.Store.PutPending(ctx, secretID, token, value); err != nil {
			return providers.Version{}, err
		}
	}
	return providers.Version{}, s.Err
}

// LogBuffer collects log output written from several goroutines, for
// searching it afterwards (for values that must not be there).
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
