// Package pgtest gives each test its own database in the one PostgreSQL server
// that scripts/with-postgres started (or that SWARMKEY_TEST_DATABASE_URL names),
// so database tests run in parallel and never see each other's state.
//
// A missing server fails the test: database tests never skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the variable that holds a superuser URL of the test server.
const EnvURL = "SWARMKEY_TEST_DATABASE_URL"

// Database is one fresh database for one test.
type Database struct {
	// Name of the database.
	Name string
	// URL connects as the server's superuser to this database.
	URL string
	// Pool is a pool on URL, closed when the test ends.
	Pool *pgxpool.Pool
}

// ServerURL returns the superuser URL of the test server, failing the test
// with what to do when there is none.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: run the tests with `make test` (it starts a throwaway PostgreSQL), "+
			"or set %s to a superuser URL of a server you own", EnvURL, EnvURL)
	}
	return u
}

// LoginHost and LoginPort are where roles log in over TCP with SCRAM: the
// superuser URL may use a unix socket with trust authentication, which would
// prove nothing about a password.
func LoginHost(t testing.TB) (string, int) {
	t.Helper()
	port := os.Getenv("SWARMKEY_TEST_POSTGRES_PORT")
	if port == "" {
		cfg, err := pgx.ParseConfig(ServerURL(t))
		if err != nil {
			t.Fatalf("parse %s: %v", EnvURL, err)
		}
		if strings.HasPrefix(cfg.Host, "/") {
			t.Fatalf("%s uses a unix socket; set SWARMKEY_TEST_POSTGRES_PORT to the server's TCP port on 127.0.0.1", EnvURL)
		}
		return cfg.Host, int(cfg.Port)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil {
		t.Fatalf("SWARMKEY_TEST_POSTGRES_PORT=%q: %v", port, err)
	}
	return "127.0.0.1", p
}

// ServerLog returns the path of the server's log (log_statement = all), or
// fails the test when the server was not started by scripts/with-postgres.
func ServerLog(t testing.TB) string {
	t.Helper()
	p := os.Getenv("SWARMKEY_TEST_POSTGRES_LOG")
	if p == "" {
		t.Fatalf("SWARMKEY_TEST_POSTGRES_LOG is not set: this test reads the server log; run it with `make test`")
	}
	return p
}

var createMu sync.Mutex

// New creates a database for this test and drops it when the test ends.
func New(t testing.TB) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	serverURL := ServerURL(t)
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("connect to the test server (%s): %v", EnvURL, err)
	}
	defer admin.Close(ctx)

	name := "swarmkey_test_" + randomHex(t, 6)
	// CREATE DATABASE copies template1, and two copies at once fail with
	// "source database is being accessed by other users".
	createMu.Lock()
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	createMu.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}

	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pool on test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return &Database{Name: name, URL: dbURL, Pool: pool}
}

// RoleName returns a role name unique to this test run (roles are
// server-wide, unlike schemas and tables).
func RoleName(t testing.TB, prefix string) string {
	t.Helper()
	return prefix + "_" + randomHex(t, 4)
}

func withDatabase(serverURL, db string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
