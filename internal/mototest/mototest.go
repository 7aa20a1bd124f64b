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
//
// RotationLambda gives tests of AWS's native rotation a rotation Lambda that
// exists. It switches the server's Lambda to moto's docker-free backend, in
// which every invocation succeeds and does nothing: RotateSecret then behaves
// as a Lambda that never touches the secret, and the test plays the Lambda's
// part itself.
package mototest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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

var (
	lambdaOnce sync.Once
	lambdaARN  string
	lambdaErr  error
)

// RotationLambda returns the ARN of a Lambda function on moto that
// RotateSecret accepts as a rotation Lambda, creating it (and the IAM role it
// runs as) on first use. Invoking it does nothing (see the package
// documentation). The SDK modules of IAM and Lambda are not dependencies of
// swarmkey, so the two calls are made by hand, signed as the SDK would.
func RotationLambda(tb testing.TB) string {
	tb.Helper()
	ep := Endpoint(tb)
	lambdaOnce.Do(func() { lambdaARN, lambdaErr = createLambda(ep) })
	if lambdaErr != nil {
		tb.Fatalf("mototest: rotation Lambda: %v", lambdaErr)
	}
	return lambdaARN
}

func createLambda(ep string) (string, error) {
	ctx := context.Background()
	resp, err := http.Post(ep+"/moto-api/config", "application/json", strings.NewReader(`{"lambda":{"use_docker":false}}`))
	if err != nil {
		return "", fmt.Errorf("moto config: %w", err)
	}
	resp.Body.Close()

	form := url.Values{
		"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {"swarmkey-test-rotation"},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`},
	}
	body, err := call(ctx, "iam", http.MethodPost, ep+"/", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("IAM CreateRole: %w", err)
	}
	var role struct {
		Arn string `xml:"CreateRoleResult>Role>Arn"`
	}
	if err := xml.Unmarshal(body, &role); err != nil || role.Arn == "" {
		return "", fmt.Errorf("IAM CreateRole: no role ARN in %q (%v)", body, err)
	}

	fn, err := json.Marshal(map[string]any{
		"FunctionName": "swarmkey-test-rotation", "Runtime": "python3.12", "Role": role.Arn,
		"Handler": "index.handler", "Code": map[string]any{"ZipFile": emptyZip},
	})
	if err != nil {
		return "", err
	}
	body, err = call(ctx, "lambda", http.MethodPost, ep+"/2015-03-31/functions", "application/json", fn)
	if err != nil {
		return "", fmt.Errorf("moto lambda CreateFunction: %w", err)
	}
	var created struct{ FunctionArn string }
	if err := json.Unmarshal(body, &created); err != nil || created.FunctionArn == "" {
		return "", fmt.Errorf("moto lambda CreateFunction: no function ARN in %q (%v)", body, err)
	}
	return created.FunctionArn, nil
}

// emptyZip is a zip archive with no entries, base64: moto keeps a function's
// code without running it.
const emptyZip = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="

// call sends one request signed for service with the fake credentials of
// Config and returns the body of a 2xx answer.
func call(ctx context.Context, service, method, u, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test", SessionToken: "test"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, out)
	}
	return out, nil
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
