// Package mototest runs moto, the AWS emulator installed on the machine
// image, for the tests of a package: one `python3 -m moto.server -H
// 127.0.0.1 -p PORT` on a free loopback port per test binary, started by the
// first test that asks for it and stopped when the binary's tests are done.
//
// A package that uses it wires it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(mototest.Run(m)) }
//
// and its tests call Endpoint or Config. A missing moto fails those tests,
// with what to install: they are the only proof that the AWS store works, and
// skipping them would hide that.
//
// Tests share the one server. They keep apart by giving their secrets a
// prefix of their own (Prefix) rather than by resetting moto under each other.
package mototest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region of Config; moto accepts any.
const Region = "us-east-1"

// startTimeout bounds moto's start; a cold Python start on a busy CI machine
// takes a few seconds.
const startTimeout = 60 * time.Second

var (
	wrapped  bool // Run is in charge of stopping the server
	once     sync.Once
	endpoint string
	startErr error
	stop     = func() {}
)

// Run runs the package's tests and stops moto afterwards if a test started
// it. Call it from TestMain; Endpoint refuses to start a server that nothing
// would stop.
func Run(m *testing.M) int {
	wrapped = true
	code := m.Run()
	stop()
	return code
}

// Endpoint returns moto's URL (http://127.0.0.1:PORT), starting the server
// on first use. It fails the test when moto cannot be started.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	if !wrapped {
		tb.Fatal("mototest: call mototest.Run from the package's TestMain (func TestMain(m *testing.M) { os.Exit(mototest.Run(m)) }), so that moto is stopped after the tests")
	}
	once.Do(func() { endpoint, startErr = start() })
	if startErr != nil {
		tb.Fatalf("mototest: %v", startErr)
	}
	return endpoint
}

// Config returns an SDK configuration for moto: static fake credentials,
// Region and moto's endpoint as the base endpoint of every service. Nothing
// is read from the environment or the shared config files, so a developer's
// real AWS profile is never used by a test.
func Config(tb testing.TB) aws.Config {
	tb.Helper()
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", "test"),
		BaseEndpoint: aws.String(Endpoint(tb)),
	}
}

// Prefix returns a random secret-name prefix ("loadtest/t<12 hex>/"), so
// tests that run in parallel on the one server never see each other's
// secrets.
func Prefix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "loadtest/t" + hex.EncodeToString(b) + "/"
}

func start() (string, error) {
	if out, err := exec.Command("python3", "-c", "import moto.server").CombinedOutput(); err != nil {
		return "", fmt.Errorf("these tests need moto for the python3 on PATH, and `python3 -c 'import moto.server'` failed: %v\n%s\ninstall it with: python3 -m pip install 'moto[server]'", err, out)
	}
	port, err := freePort()
	if err != nil {
		return "", fmt.Errorf("no free loopback port for moto: %w", err)
	}
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// Its own process group, so that a pyenv shim and the python it runs
	// die together; Pdeathsig so that moto does not outlive a test binary
	// that was killed before Run could stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		os.Remove(logFile.Name())
		return "", fmt.Errorf("start moto: %w", err)
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logFile.Close()
		os.Remove(logFile.Name())
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitFor(url, startTimeout); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return "", fmt.Errorf("moto did not answer on %s within %s: %v\nmoto log:\n%s", url, startTimeout, err, log)
	}
	return url, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := errors.New("no attempt")
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
