package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGServer is a PostgreSQL cluster of the harness's own, which it may
// restart at will. The server of scripts/with-postgres is shared by every
// package of `make test` running in parallel, so restarting that one would
// break other tests; the harness borrows only its binaries
// (SWARMKEY_TEST_POSTGRES_BIN) and server user (SWARMKEY_TEST_POSTGRES_USER).
type PGServer struct {
	bin     string
	asUser  []string // runuser -u USER -- when root
	Data    string
	Sockets string
	Log     string
	Port    int
	opts    string // the server options of the last start
}

// findPGBin is scripts/with-postgres's choice: SWARMKEY_TEST_POSTGRES_BIN,
// else the newest /usr/lib/postgresql/*/bin with initdb and postgres.
func findPGBin(tb testing.TB) string {
	tb.Helper()
	if b := os.Getenv("SWARMKEY_TEST_POSTGRES_BIN"); b != "" {
		return b
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		tb.Fatal("chaos: no PostgreSQL server binaries: run under scripts/with-postgres (make test, make chaos), which installs them and exports SWARMKEY_TEST_POSTGRES_BIN")
	}
	sort.Slice(ok, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[j])))
		return a < b
	})
	return ok[len(ok)-1]
}

func isExec(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode()&0o111 != 0
}

// StartPG runs initdb in dir/pg and starts the server on a free loopback
// port, with trust on its private socket folder and SCRAM over TCP. It is
// stopped (-m immediate) when the test ends.
func StartPG(tb testing.TB, dir string) *PGServer {
	tb.Helper()
	s := &PGServer{bin: findPGBin(tb)}
	root := filepath.Join(dir, "pg")
	s.Data, s.Sockets, s.Log = filepath.Join(root, "data"), filepath.Join(root, "sockets"), filepath.Join(root, "postgres.log")
	for _, d := range []string{root, s.Data, s.Sockets} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(s.Log, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	if os.Getuid() == 0 {
		// initdb refuses root: the server runs as with-postgres's user.
		name := os.Getenv("SWARMKEY_TEST_POSTGRES_USER")
		if name == "" || name == "root" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			tb.Fatalf("chaos: as root the server runs as user %q, which does not exist: run under scripts/with-postgres (it creates it): %v", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{root, s.Data, s.Sockets, s.Log} {
			if err := os.Chown(p, uid, gid); err != nil {
				tb.Fatal(err)
			}
		}
		s.asUser = []string{"runuser", "-u", name, "--"}
	}
	if out, err := s.command("initdb", "-D", s.Data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C.UTF-8").CombinedOutput(); err != nil {
		tb.Fatalf("chaos: initdb: %v\n%s", err, out)
	}
	// synchronous_commit stays on: with it off, a restart -m immediate
	// loses commits the server had acknowledged, which no production
	// server does, and the harness would blame swarmkey for it. fsync is
	// off: only the server's processes die here, never the machine.
	var lastErr error
	for range 5 {
		s.Port = freePort(tb)
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=32MB "+
			"-c fsync=off -c full_page_writes=off -c password_encryption=scram-sha-256 "+
			"-c log_min_messages=warning", s.Port, s.Sockets)
		out, err := s.command("pg_ctl", "-D", s.Data, "-l", s.Log, "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
		if err == nil {
			s.opts, lastErr = opts, nil
			break
		}
		lastErr = fmt.Errorf("%v\n%s", err, out)
	}
	if lastErr != nil {
		log, _ := os.ReadFile(s.Log)
		tb.Fatalf("chaos: start PostgreSQL: %v\n%s", lastErr, tail(log, 3000))
	}
	tb.Cleanup(func() { _ = s.command("pg_ctl", "-D", s.Data, "-m", "immediate", "stop").Run() })
	return s
}

func (s *PGServer) command(tool string, args ...string) *exec.Cmd {
	argv := append(append(append([]string(nil), s.asUser...), filepath.Join(s.bin, tool)), args...)
	return exec.Command(argv[0], argv[1:]...)
}

// URL is the superuser's URL of database db, over the socket folder.
func (s *PGServer) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, s.Sockets, s.Port)
}

// Restart stops the server (mode "fast": sessions are ended cleanly;
// "immediate": no shutdown checkpoint, crash recovery on start) and starts
// it again with the options of the last start.
func (s *PGServer) Restart(mode string) error {
	out, err := s.command("pg_ctl", "-D", s.Data, "-l", s.Log, "-m", mode, "-w", "-t", "60", "restart").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl restart -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

// Stop stops the server (-m immediate: as a crash does).
func (s *PGServer) Stop() error {
	if out, err := s.command("pg_ctl", "-D", s.Data, "-m", "immediate", "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
	return nil
}

// Start starts the stopped server with the options of its first start.
func (s *PGServer) Start() error {
	if out, err := s.command("pg_ctl", "-D", s.Data, "-l", s.Log, "-w", "-t", "60", "-o", s.opts, "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil
}

// Exec runs statements as the superuser in database db.
func (s *PGServer) Exec(ctx context.Context, db string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// LogsIn reports whether username/password log in to db over TCP on
// 127.0.0.1 (SCRAM) and run SELECT 1.
func (s *PGServer) LogsIn(ctx context.Context, db, username, password string) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s sslmode=disable connect_timeout=10", s.Port, db))
	if err != nil {
		return err
	}
	cfg.User, cfg.Password = username, password
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.TrimSpace(b)
}
