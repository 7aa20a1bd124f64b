// Package vaulttest gives the tests of a package a Vault-compatible server
// with the KV version 2 engine mounted at "secret/": a real OpenBao dev
// server when the environment names a script that starts one, and an
// in-process fake of the documented KV v2 API (fake.go) otherwise.
//
// SWARMKEY_TEST_OPENBAO_START names an executable that starts a dev server
// on a free loopback port and prints one line, "ADDR TOKEN PID" (`make test`
// sets it when the machine provides one). The server is started by the first
// test that asks for it and stopped (kill PID) when the binary's tests are
// done. A script that is named but fails fails the tests: nothing falls back
// silently. When the variable is unset, Run prints that the fake runs
// instead, so the test output says which server the store was proven on.
//
// A package that uses it wires it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(vaulttest.Run(m)) }
//
// Tests share the one server and keep apart by the path prefix of Prefix.
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// EnvStart names the script that starts a real server.
const EnvStart = "SWARMKEY_TEST_OPENBAO_START"

// Mount is the KV v2 mount of the server: a dev server mounts KV v2 at
// "secret/", and so does the fake.
const Mount = "secret"

// startTimeout bounds the start script (it unpacks the binary the first time).
const startTimeout = 60 * time.Second

// Server is the running server.
type Server struct {
	// Addr is its http://127.0.0.1:PORT address.
	Addr string
	// RootToken is a token allowed everything.
	RootToken string
	// Real is true for OpenBao, false for the fake.
	Real bool
	// fake is the in-process server when Real is false.
	fake *Fake
}

var (
	wrapped  bool
	once     sync.Once
	server   Server
	startErr error
	stop     = func() {}
)

// Run runs the package's tests and stops the server afterwards.
func Run(m *testing.M) int { return Around(m, (*testing.M).Run) }

// Around is Run for a package whose TestMain has another runner of its own
// (mototest.Run): os.Exit(vaulttest.Around(m, mototest.Run)).
func Around(m *testing.M, run func(*testing.M) int) int {
	wrapped = true
	code := run(m)
	stop()
	return code
}

// Start returns the package's server, starting it on first use.
func Start(tb testing.TB) Server {
	tb.Helper()
	if !wrapped {
		tb.Fatal("vaulttest: call vaulttest.Run from the package's TestMain (func TestMain(m *testing.M) { os.Exit(vaulttest.Run(m)) }), so that the server is stopped after the tests")
	}
	once.Do(func() { server, startErr = start() })
	if startErr != nil {
		tb.Fatalf("vaulttest: %v", startErr)
	}
	return server
}

func start() (Server, error) {
	script := os.Getenv(EnvStart)
	if script == "" {
		f := NewFake()
		stop = f.Close
		fmt.Fprintf(os.Stderr, "vaulttest: %s is unset: the KV v2 tests run against the in-process fake of KV v2, not a real OpenBao server\n", EnvStart)
		return Server{Addr: f.URL(), RootToken: f.RootToken(), fake: f}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Server{}, fmt.Errorf("%s=%s failed: %v: %s", EnvStart, script, err, strings.TrimSpace(stderr.String()))
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(out)).ReadLine()
	fields := strings.Fields(string(line))
	if len(fields) != 3 {
		return Server{}, fmt.Errorf("%s=%s printed %q, want \"ADDR TOKEN PID\"", EnvStart, script, line)
	}
	pid, err := strconv.Atoi(fields[2])
	if err != nil {
		return Server{}, fmt.Errorf("%s=%s printed pid %q: %v", EnvStart, script, fields[2], err)
	}
	stop = func() { _ = syscall.Kill(pid, syscall.SIGTERM) }
	fmt.Fprintf(os.Stderr, "vaulttest: the KV v2 tests run against a real OpenBao dev server at %s (pid %d)\n", fields[0], pid)
	return Server{Addr: fields[0], RootToken: fields[1], Real: true}, nil
}

// Client returns a client of the server with the root token.
func (s Server) Client(tb testing.TB) *vaultapi.Client {
	tb.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = s.Addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		tb.Fatalf("vaulttest: client: %v", err)
	}
	c.SetToken(s.RootToken)
	return c
}

// Fake returns the in-process fake, nil on a real server.
func (s Server) Fake() *Fake { return s.fake }

// Prefix returns a random path prefix ("loadtest/t<12 hex>/"), so tests
// that run in parallel on the one server never see each other's secrets.
func Prefix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "loadtest/t" + hex.EncodeToString(b) + "/"
}
