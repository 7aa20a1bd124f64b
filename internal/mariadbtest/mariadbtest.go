// Package mariadbtest starts a private MariaDB server for a test binary:
// Debian's mariadbd (package mariadb-server, which scripts/test-deps
// installs) in a temporary folder, on a free port on 127.0.0.1, with the
// general log and the binary log on, so tests can search both for values
// that must never reach the server.
//
// A test package calls Main from its TestMain; a server that is missing or
// does not start fails the run: tests never skip.
package mariadbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Binaries are where Debian's mariadb-server puts them.
const (
	ServerBinary  = "/usr/sbin/mariadbd"
	InstallBinary = "/usr/bin/mariadb-install-db"
)

// Server is a running private server.
type Server struct {
	Dir    string
	Socket string
	// Port is the TCP port on 127.0.0.1 where accounts log in with a password.
	Port int
	// GeneralLog is the file of the general query log (every statement).
	GeneralLog string
	// BinlogPrefix is the binary log's files' path without the .NNNNNN suffix.
	BinlogPrefix string
	cmd          *exec.Cmd
}

var server *Server

// Main starts the server, runs the tests, stops the server and exits.
func Main(m *testing.M) {
	s, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mariadbtest: %v\n", err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// Get returns the server Main started, failing the test when there is none.
func Get(t testing.TB) *Server {
	t.Helper()
	if server == nil {
		t.Fatal("mariadbtest: no server: call mariadbtest.Main(m) from the package's TestMain")
	}
	return server
}

// Start installs a data folder and starts mariadbd in it.
func Start() (*Server, error) {
	for _, bin := range []string{ServerBinary, InstallBinary} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s is missing: install Debian's mariadb-server (scripts/test-deps does, as root; `make test` runs it)", bin)
		}
	}
	dir, err := os.MkdirTemp("", "swarmkey-mariadb-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Dir:          dir,
		Socket:       filepath.Join(dir, "mysqld.sock"),
		GeneralLog:   filepath.Join(dir, "general.log"),
		BinlogPrefix: filepath.Join(dir, "binlog"),
	}
	// mariadbd refuses to run as root unless told to.
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	data := filepath.Join(dir, "data")
	install := exec.Command(InstallBinary, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, asRoot...)...)
	if out, err := install.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		if lastErr = s.start(data, asRoot); lastErr == nil {
			return s, nil
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("mariadbd did not start: %v\n%s", lastErr, log)
}

func (s *Server) start(data string, asRoot []string) error {
	args := append([]string{
		"--no-defaults", "--datadir=" + data, "--socket=" + s.Socket,
		"--port=" + strconv.Itoa(s.Port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--general-log=1", "--general-log-file=" + s.GeneralLog,
		"--log-bin=" + s.BinlogPrefix, "--server-id=1", "--binlog-format=STATEMENT",
		"--plugin-load-add=auth_ed25519",
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"), "--log-error=" + filepath.Join(s.Dir, "error.log"),
		"--innodb-buffer-pool-size=32M", "--max-connections=500", "--skip-log-warnings",
	}, asRoot...)
	cmd := exec.Command(ServerBinary, args...)
	// The server dies with the test binary, even one that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("mariadbd exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if db, err := s.open(""); err == nil {
			err = db.Ping()
			_ = db.Close()
			if err == nil {
				s.cmd = cmd
				return nil
			}
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New("mariadbd did not accept connections within 60s")
}

// Stop kills the server and removes its folder.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
	}
	if os.Getenv("SWARMKEY_KEEP_MARIADB") == "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// RootDSN is the Go driver's DSN of the server's root account over its
// unix socket, to database db ("" for none).
func (s *Server) RootDSN(db string) string {
	cfg := driver.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = s.Socket
	cfg.DBName = db
	cfg.MultiStatements = false
	return cfg.FormatDSN()
}

func (s *Server) open(db string) (*sql.DB, error) {
	return sql.Open("mysql", s.RootDSN(db))
}

// Database is one test's database, and the root's pool on it.
type Database struct {
	Name string
	DB   *sql.DB
}

// NewDatabase creates a database for this test and drops it when the test
// ends.
func (s *Server) NewDatabase(t testing.TB) *Database {
	t.Helper()
	name := "swarmkey_test_" + RandomHex(t, 6)
	root, err := s.open("")
	if err != nil {
		t.Fatalf("mariadbtest: open: %v", err)
	}
	defer root.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("mariadbtest: create database: %v", err)
	}
	db, err := s.open(name)
	if err != nil {
		t.Fatalf("mariadbtest: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("mariadbtest: drop database %s: %v", name, err)
		}
		_ = db.Close()
	})
	return &Database{Name: name, DB: db}
}

// Logs returns the general log and every binary log file, concatenated.
func (s *Server) Logs(t testing.TB) string {
	t.Helper()
	general, err := os.ReadFile(s.GeneralLog)
	if err != nil {
		t.Fatalf("mariadbtest: read the general log: %v", err)
	}
	binlogs, err := filepath.Glob(s.BinlogPrefix + ".[0-9]*")
	if err != nil || len(binlogs) == 0 {
		t.Fatalf("mariadbtest: no binary log files at %s.*: %v", s.BinlogPrefix, err)
	}
	all := string(general)
	for _, f := range binlogs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("mariadbtest: read %s: %v", f, err)
		}
		all += string(b)
	}
	return all
}

// RandomHex returns n random bytes in hex: names unique to a test run
// (accounts and roles are server-wide).
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
