package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// swarmkey-exec exists to start fast on load generators: it must link the
// API's client and nothing of the server, the stores, the targets or the
// state database. One import of those (through lease, api/client or
// execcli) would bring back the start-up this binary saves.
func TestLinksOnlyTheAPIClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/swarmkey/swarmkey/api/client")
	for _, dep := range deps {
		for _, banned := range []string{
			"github.com/swarmkey/swarmkey/api", // the server; api/client and api/wire are fine
			"github.com/swarmkey/swarmkey/app",
			"github.com/swarmkey/swarmkey/config",
			"github.com/swarmkey/swarmkey/state",
			"github.com/swarmkey/swarmkey/providers",
			"github.com/swarmkey/swarmkey/targets",
			"github.com/swarmkey/swarmkey/rotator",
			"github.com/jackc/pgx",
			"github.com/riverqueue/river",
			"github.com/aws/",
			"cloud.google.com/",
			"github.com/Azure/",
			"github.com/hashicorp/vault",
			"github.com/prometheus/",
			"github.com/zricethezav/gitleaks",
			"google.golang.org/grpc",
		} {
			if banned == "github.com/swarmkey/swarmkey/api" {
				require.NotEqual(t, banned, dep, "swarmkey-exec links the API server")
				continue
			}
			require.False(t, strings.HasPrefix(dep, banned), "swarmkey-exec links %s (through %s): keep it to the API's client", dep, banned)
		}
	}
}

// Bad input exits 2 before anything starts, naming the flag; swarmkey-exec
// has no source but the API, so --api and --token-file are required.
func TestInputErrorsExitTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", "checkout-db", "--", "true"}, "swarmkey-exec: --api and --token-file are required"},
		{[]string{"--api", "unix:/nowhere.sock", "--policy", "checkout-db", "--", "true"}, "--api and --token-file go together"},
		{[]string{"--bogus"}, "swarmkey-exec: unknown flag: --bogus"},
		{[]string{"--api", "unix:/x", "--token-file", "/x", "--policy", "checkout-db"}, "give the command after --: swarmkey-exec --policy NAME -- COMMAND"},
		{[]string{"--api", "unix:/x", "--token-file", "/x", "--policy", "checkout-db", "--lease-ttl", "2h", "--", "true"}, "--lease-ttl 2h0m0s: give a duration from 1s to 1h0m0s"},
		{[]string{"--api", "unix:/x", "--token-file", "/x", "--policy", "checkout-db", "--", "no-such-command-here"}, `command "no-such-command-here"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr.String())
		require.Contains(t, stderr.String(), tc.want, "%v", tc.args)
		require.Empty(t, stdout.String(), "%v", tc.args)
	}
}
