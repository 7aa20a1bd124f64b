package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/config"
)

// TestExampleConfigValidates keeps the example policy file in step with the
// config format.
func TestExampleConfigValidates(t *testing.T) {
	t.Parallel()
	require.NoError(t, config.ValidateFiles("swarmkey.yaml"))
}

func TestRunRefusesAShortToken(t *testing.T) {
	t.Setenv("KEYSERVICE_ADMIN_TOKEN", "short")
	require.ErrorContains(t, run("127.0.0.1:0"), "at least 16 characters")
}
