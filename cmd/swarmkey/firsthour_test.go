package main_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The first hour of a new user, following the README (issue 12, item 6).

// TestKeygenCreatesAMissingFolder: `keygen` into a folder that does not
// exist creates it, mode 0700, says so, and writes the key 0600.
func TestKeygenCreatesAMissingFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, dir: dir, env: append(os.Environ(), "SWARMKEY_CONFIG=")}
	keyFile := filepath.Join(dir, "etc", "swarmkey", "secrets.key")
	r := c.run("keygen", keyFile)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "created the folder "+filepath.Dir(keyFile)+" (mode 0700)")
	for path, mode := range map[string]os.FileMode{filepath.Dir(keyFile): 0o700, filepath.Join(dir, "etc"): 0o700, keyFile: 0o600} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, mode, info.Mode().Perm(), path)
	}
	// The folder exists now: nothing to say about it; the key is never overwritten.
	r = c.run("keygen", filepath.Join(filepath.Dir(keyFile), "other.key"))
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.NotContains(t, r.stdout, "created the folder")
	r = c.run("keygen", keyFile)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "already exists")
}

// TestValidateWithoutArgumentsReadsSwarmkeyConfig: `validate` with no FILE
// checks $SWARMKEY_CONFIG, as every other command reads it.
func TestValidateWithoutArgumentsReadsSwarmkeyConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	c := &cli{t: t, dir: dir}
	c.write(good, "database: env:SWARMKEY_DATABASE_URL\npolicies:\n  - name: x\n    schedule: \"@daily\"\n    target: { generated: {} }\n")
	c.write(bad, "database: env:SWARMKEY_DATABASE_URL\npolicies:\n  - name: x\n    schedulle: \"@daily\"\n    target: { generated: {} }\n")

	c.env = append(os.Environ(), "SWARMKEY_CONFIG="+good)
	r := c.run("validate")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Equal(t, good+": ok\n", r.stdout)

	c.env = append(os.Environ(), "SWARMKEY_CONFIG="+bad)
	r = c.run("validate")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, bad+":4:")

	// --config still wins over the environment.
	r = c.run("--config", good, "validate")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
}

// TestHelpNamesEveryTargetAndTheLogLevels: the root help names each kind of
// target, and --log-level claims no single default (serve logs at info, the
// other commands at warn).
func TestHelpNamesEveryTargetAndTheLogLevels(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, dir: t.TempDir(), env: append(os.Environ(), "SWARMKEY_CONFIG=")}
	r := c.run("--help")
	require.Equal(t, 0, r.code, r.stderr)
	for _, target := range []string{"PostgreSQL role", "HTTP service's API key", "generated shared token"} {
		require.Contains(t, r.stdout, target)
	}
	r = c.run("serve", "--help")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "default info for serve, warn for the other commands")
	require.NotContains(t, r.stdout, `(default "warn")`)
}

// TestServeWithoutRunSwarmkeyServesTheAPIOnAPrivateSocket: serve with its
// defaults outside systemd (no /run/swarmkey) serves the runner API on a
// socket of the user's own, logs its address, and the API answers there.
func TestServeWithoutRunSwarmkeyServesTheAPIOnAPrivateSocket(t *testing.T) {
	t.Parallel()
	require.NoDirExists(t, "/run/swarmkey", "this test shows serve's fallback when the systemd unit's folder is missing; remove /run/swarmkey to run it")
	c := newCLI(t, "single", "")
	// A short temporary folder: a socket path must fit in 108 bytes.
	tmp, err := os.MkdirTemp("", "sk")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	c.env = append(c.env, "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
	d := c.serve(t)

	socket := filepath.Join(tmp, fmt.Sprintf("swarmkey-%d", os.Getuid()), "swarmkey.sock")
	require.Eventually(t, func() bool { return d.logged("listen=unix:" + socket) }, 10*time.Second, 50*time.Millisecond)
	info, err := os.Stat(filepath.Dir(socket))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	resp, err := client.Get("http://swarmkey/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, d.logged("the HTTP API is not served"))
}

// TestServeRefusesAPrivateSocketFolderItDoesNotOwn: a swarmkey-UID folder
// others may enter (anyone can make one in /tmp first) is not used.
func TestServeRefusesAPrivateSocketFolderItDoesNotOwn(t *testing.T) {
	t.Parallel()
	require.NoDirExists(t, "/run/swarmkey")
	c := newCLI(t, "single", "")
	tmp, err := os.MkdirTemp("", "sk")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	folder := filepath.Join(tmp, fmt.Sprintf("swarmkey-%d", os.Getuid()))
	require.NoError(t, os.Mkdir(folder, 0o777))
	require.NoError(t, os.Chmod(folder, 0o777))
	c.env = append(c.env, "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
	d := c.serve(t)
	require.Eventually(t, func() bool { return d.logged("the HTTP API is not served") }, 10*time.Second, 50*time.Millisecond)
	d.mu.Lock()
	logs := strings.Join(d.lines, "\n")
	d.mu.Unlock()
	require.Regexp(t, regexp.MustCompile(`is not a folder of yours with mode 0700`), logs)
	require.NoFileExists(t, filepath.Join(folder, "swarmkey.sock"))
}
