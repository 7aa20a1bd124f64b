package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"
)

// motoURL is the endpoint of the moto server that TestMain starts for the
// whole package; every test and benchmark talks to it.
var motoURL string

func TestMain(m *testing.M) {
	os.Exit(runWithMoto(m))
}

// runWithMoto starts `python3 -m moto.server` on a free loopback port, runs
// the tests and stops it. A missing moto fails the run: these tests are the
// only proof the store works, and skipping them would hide that.
func runWithMoto(m *testing.M) int {
	if out, err := exec.Command("python3", "-c", "import moto.server").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "providers/aws tests need moto for the python3 on PATH: `python3 -c 'import moto.server'` failed: %v\n%s\ninstall it with: python3 -m pip install 'moto[server]'\n", err, out)
		return 1
	}
	port, err := freePort()
	if err != nil {
		fmt.Fprintf(os.Stderr, "providers/aws tests: no free loopback port for moto: %v\n", err)
		return 1
	}
	cmd := exec.Command("python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so the pyenv shim and python die together
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		fmt.Fprintf(os.Stderr, "providers/aws tests: %v\n", err)
		return 1
	}
	defer os.Remove(logFile.Name())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "providers/aws tests: start moto: %v\n", err)
		return 1
	}
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	defer stop()

	motoURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitForMoto(motoURL, 60*time.Second); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		fmt.Fprintf(os.Stderr, "providers/aws tests: moto did not answer on %s: %v\nmoto log:\n%s\n", motoURL, err, log)
		return 1
	}
	return m.Run()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitForMoto(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
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

// motoConfig is an SDK configuration for moto: static fake credentials and
// us-east-1, set on the config rather than in the process environment.
func motoConfig() awsv2.Config {
	return awsv2.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "test"),
	}
}

// newStore returns a Store on moto.
func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	opts.EndpointURL = motoURL
	s, err := NewFromConfig(motoConfig(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// rawClient is a plain SDK client on moto, for arranging state behind the
// store's back and for the raw-SDK benchmarks.
func rawClient() *secretsmanager.Client {
	return secretsmanager.NewFromConfig(motoConfig(), func(o *secretsmanager.Options) {
		o.BaseEndpoint = awsv2.String(motoURL)
	})
}

// prefix returns a random secret-name prefix, so parallel tests never see
// each other's secrets and moto is never reset under them.
func prefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "loadtest/t" + hex.EncodeToString(b) + "/"
}

// newToken returns a fresh rotation token (a UUID, as AWS expects of a
// ClientRequestToken: 32 to 64 characters).
func newToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// createSecret makes secret name on moto with an initial current value and
// returns its version id.
func createSecret(t testing.TB, name, value string) string {
	t.Helper()
	out, err := rawClient().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name:         awsv2.String(name),
		SecretString: awsv2.String(value),
	})
	require.NoError(t, err)
	return awsv2.ToString(out.VersionId)
}
