package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every swarmkey command pays for the initialisation of every package of
// the one binary before it does anything: `swarmkey exec` in front of each
// Locust run, `swarmkey --help`. What only some commands need (the scan
// rules, the timeline's templates, the cloud stores' and targets' name
// rules) is built on first use instead. This test reads the Go runtime's
// own account of start-up (GODEBUG=inittrace=1: each package's
// initialisation with the bytes it allocated, which depend on the code, not
// on the machine's load) and fails when a package of ours does heavy work
// at start again.
func TestStartInitialisesNoHeavyPackage(t *testing.T) {
	cmd := exec.Command(binary, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())

	line := regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, [0-9.]+ ms clock, (\d+) bytes, (\d+) allocs$`)
	inits := map[string]int{}
	total := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		inits[m[1]] = n
		total += n
	}
	const module = "github.com/swarmkey/swarmkey/"
	require.Contains(t, inits, "main", "the runtime's init trace was read: %s", stderr.String())

	// These built megabytes of regular-expression programs and templates
	// at start (gcp's label rules alone 8 MB); they build them on first
	// use now. (A package without initialisation work is not listed: 0.)
	const lazyBudget = 16 << 10
	for _, pkg := range []string{"providers/gcp", "providers/azure", "providers/ssm", "scan", "timeline", "targets/mysql", "targets/redis", "targets/httpkey", "targets/generated", "targets/postgres", "config", "lease"} {
		require.LessOrEqual(t, inits[module+pkg], lazyBudget, "%s allocates %d bytes at start: build what only some commands use on first use (sync.OnceValue)", pkg, inits[module+pkg])
	}
	// No package of ours may start heavy (config's and the postgres
	// target's rules, about 130 and 100 KiB, were the last to build at
	// start).
	const packageBudget = 256 << 10
	for pkg, n := range inits {
		if strings.HasPrefix(pkg, module) {
			require.LessOrEqual(t, n, packageBudget, "%s allocates %d bytes at start: build what only some commands use on first use (sync.OnceValue)", pkg, n)
		}
	}
	// The whole binary: about 5 MB today, most of it the cloud SDKs' own
	// tables (14 MB before the lazy rules).
	require.Less(t, total, 8<<20, "packages allocate %d bytes at start", total)
}
