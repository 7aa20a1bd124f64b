// Package redistest starts private Redis servers for a test binary:
// Debian's redis-server (package redis-server, which scripts/test-deps
// installs) in a temporary folder, on a free port on 127.0.0.1, with ACL
// users only (default is off; an admin user with every permission), the
// slow log recording every command and, by default, its users in an ACL
// file. It also records what tests need to search for values that must
// never reach the server: MONITOR output and the bytes a client sent.
//
// A test package calls Main from its TestMain; a server that is missing or
// does not start fails the run: tests never skip.
package redistest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerBinary is where Debian's redis-server puts it.
const ServerBinary = "/usr/bin/redis-server"

// AdminUser is the server's admin user: every command, key and channel.
const AdminUser = "admin"

// Config chooses how a server keeps its users.
type Config struct {
	// NoACLFile starts the server with its users given on the command line
	// (as redis.conf would), so ACL SAVE has no file to write.
	NoACLFile bool
}

// Server is a running private server.
type Server struct {
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// ACLFile is the users file; "" with Config.NoACLFile.
	ACLFile string
	// LogFile is the server's own log.
	LogFile       string
	adminPassword string
	cmd           *exec.Cmd
}

var server *Server

// Main starts the server, runs the tests, stops the server and exits.
func Main(m *testing.M) {
	s, err := Start(Config{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "redistest: %v\n", err)
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
		t.Fatal("redistest: no server: call redistest.Main(m) from the package's TestMain")
	}
	return server
}

// StartForTest starts a server of its own for one test, stopped when the
// test ends.
func StartForTest(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start starts redis-server in a new temporary folder.
func Start(cfg Config) (*Server, error) {
	if _, err := os.Stat(ServerBinary); err != nil {
		return nil, fmt.Errorf("%s is missing: install Debian's redis-server (scripts/test-deps does, as root; `make test` runs it)", ServerBinary)
	}
	dir, err := os.MkdirTemp("", "swarmkey-redis-")
	if err != nil {
		return nil, err
	}
	pw, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, LogFile: filepath.Join(dir, "redis.log"), adminPassword: pw}
	sum := sha256.Sum256([]byte(pw))
	adminRule := []string{AdminUser, "on", "#" + hex.EncodeToString(sum[:]), "~*", "&*", "+@all"}
	args := []string{
		"--bind", "127.0.0.1", "--dir", dir, "--logfile", s.LogFile, "--daemonize", "no",
		"--save", "", "--appendonly", "no", "--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000",
	}
	if cfg.NoACLFile {
		args = append(args, "--user", "default", "off")
		args = append(args, append([]string{"--user"}, adminRule...)...)
	} else {
		s.ACLFile = filepath.Join(dir, "users.acl")
		users := "user default off\nuser " + strings.Join(adminRule, " ") + "\n"
		if err := os.WriteFile(s.ACLFile, []byte(users), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--aclfile", s.ACLFile)
	}
	var lastErr error
	for range 5 {
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = s.start(append([]string{"--port", strconv.Itoa(s.Port)}, args...)); lastErr == nil {
			return s, nil
		}
	}
	log, _ := os.ReadFile(s.LogFile)
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("redis-server did not start: %v\n%s", lastErr, log)
}

func (s *Server) start(args []string) error {
	cmd := exec.Command(ServerBinary, args...)
	// The server dies with the test binary, even one that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if reply, err := s.AdminCommand("PING"); err == nil && reply == "+PONG" {
			s.cmd = cmd
			return nil
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New("redis-server did not answer PING within 30s")
}

// Stop kills the server and removes its folder.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	}
	if os.Getenv("SWARMKEY_KEEP_REDIS") == "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// AdminURL is a Redis URL of the admin user at addr ("" for the server's
// own address; a RecordingProxy's address to record the admin's traffic).
func (s *Server) AdminURL(addr string) string {
	if addr == "" {
		addr = s.Addr()
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword(AdminUser, s.adminPassword), Host: addr, Path: "/0"}
	return u.String()
}

// AdminCommand runs one command as the admin on a connection of its own
// and returns the first line of the reply ("+OK", "-ERR …", "$5", "*3").
// For setup and checks; the target under test uses its own client.
func (s *Server) AdminCommand(args ...string) (string, error) {
	conn, err := s.adminConn()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.Write(encode(args...)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// ReadAll runs one command as the admin and returns every byte of the
// reply that arrives within a short read (SLOWLOG GET, ACL LIST): a test
// searches the text, it does not parse it.
func (s *Server) ReadAll(t testing.TB, args ...string) string {
	t.Helper()
	conn, err := s.adminConn()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer conn.Close()
	// PING after the command: the reply is complete when +PONG arrives.
	if _, err := conn.Write(append(encode(args...), encode("PING")...)); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	var b strings.Builder
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("redistest: read the reply of %s: %v", args[0], err)
		}
		if line == "+PONG\r\n" {
			return b.String()
		}
	}
}

// adminConn is a raw connection, authenticated as the admin.
func (s *Server) adminConn() (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(encode("AUTH", AdminUser, s.adminPassword)); err != nil {
		conn.Close()
		return nil, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		conn.Close()
		return nil, fmt.Errorf("AUTH as %s: %q %v", AdminUser, line, err)
	}
	return conn, nil
}

// Monitor runs MONITOR as the admin until the test ends; the function it
// returns gives every line the server sent so far.
func (s *Server) Monitor(t testing.TB) func() string {
	t.Helper()
	conn, err := s.adminConn()
	if err != nil {
		t.Fatalf("redistest: monitor: %v", err)
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := conn.Write(encode("MONITOR")); err != nil {
		t.Fatalf("redistest: monitor: %v", err)
	}
	rec := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(rec, conn)
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return rec.String
}

// RecordingProxy listens on a free port on 127.0.0.1 and forwards every
// connection to the server, recording the bytes clients send; it stops when
// the test ends. The function it returns gives everything sent so far.
func (s *Server) RecordingProxy(t testing.TB) (addr string, sent func() string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	rec := &recorder{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			upstream, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
			if err != nil {
				_ = client.Close()
				continue
			}
			track(client)
			track(upstream)
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.MultiWriter(upstream, rec), client)
				_ = upstream.Close()
			}()
			go func() {
				defer wg.Done()
				_, _ = io.Copy(client, upstream)
				_ = client.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), rec.String
}

// recorder is a buffer that goroutines write to while a test reads it.
type recorder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// encode is one command in RESP.
func encode(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// RandomHex returns n random bytes in hex: names unique to a test run
// (users are server-wide).
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	h, err := randomHex(n)
	if err != nil {
		t.Fatalf("random: %v", err)
	}
	return h
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
