package main_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExitCodesMatchTheREADME runs every command against each case of the
// README's exit-code table: 2 for bad input (an unknown flag, an invalid
// config, an unknown policy, an unresolvable reference), besides a run
// that succeeds (0) or runs and fails (1). Code 3 is
// TestTwoLocalRotationsOfOnePolicy's.
func TestExitCodesMatchTheREADME(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	// A stage that holds no version yet is input to fix, not a failure:
	// nothing is current before the first rotation, a single rotation has
	// no previous, and nothing is pending between rotations.
	r := c.run("verify", "checkout-db")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "checkout-db has no current version yet")
	require.Contains(t, r.stderr, "swarmkey rotate checkout-db --local")
	r = c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("verify", "checkout-db", "--stage", "previous")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, `checkout-db has no previous version yet`)
	r = c.run("verify", "checkout-db", "--stage", "pending")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, `checkout-db has no pending version`)
	r = c.run("verify", "checkout-db", "--stage", "newest")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	r = c.run("verify", "checkout-db", "--stage", "current")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	bad := filepath.Join(c.dir, "bad.yaml")
	c.write(bad, "database: env:SWARMKEY_DATABASE_URL\npolicies:\n  - name: x\n    schedulle: \"@daily\"\n    target: { generated: {} }\n")

	// A reference the command resolves: the database URL, or for the
	// commands that only open a target, the target's admin URL.
	const noDatabase, noAdmin = "SWARMKEY_DATABASE_URL=", "PG_ADMIN_URL="

	type command struct {
		words []string // the command, such as runs add
		args  []string // the arguments of a run that goes through
		// code is that run's exit code; -1 runs none (serve runs until
		// stopped).
		code int
		// withPolicy is args naming policy instead; nil when the command
		// takes no policy.
		withPolicy func(policy string) []string
		// unknown is args naming a run or token that does not exist, for
		// the commands that take one instead of a policy.
		unknown []string
		// reference is the variable whose emptying leaves a reference the
		// command needs unresolvable; "" when it resolves none (validate
		// checks files without resolving anything).
		reference string
	}
	commands := []command{
		{words: []string{"validate"}, args: []string{c.config}, code: 0},
		{words: []string{"migrate"}, code: 0, reference: noDatabase},
		{words: []string{"rotate"}, args: []string{"checkout-db", "--local"}, code: 0, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{p, "--local"} }},
		{words: []string{"rotate"}, args: []string{"checkout-db", "--local"}, code: -1, reference: noAdmin},
		// No daemon runs: rotate ran and failed, nothing was queued.
		{words: []string{"rotate"}, args: []string{"checkout-db"}, code: 1, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{p} }},
		{words: []string{"status"}, code: 0, reference: noDatabase},
		{words: []string{"history"}, args: []string{"checkout-db"}, code: 0, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{p} }},
		{words: []string{"verify"}, args: []string{"checkout-db"}, code: 0, reference: noAdmin,
			withPolicy: func(p string) []string { return []string{p} }},
		{words: []string{"plan"}, args: []string{"--policy", "checkout-db"}, code: 0, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{"--policy", p} }},
		{words: []string{"runs", "add"}, args: []string{"--name", "soak", "--start", "+1d", "--duration", "1h", "--uses", "checkout-db"},
			code: 0, reference: noDatabase,
			withPolicy: func(p string) []string {
				return []string{"--name", "soak-2", "--start", "+1d", "--duration", "1h", "--uses", p}
			}},
		{words: []string{"runs", "list"}, code: 0, reference: noDatabase},
		{words: []string{"runs", "cancel"}, args: []string{"soak"}, code: 0, reference: noDatabase, unknown: []string{"no-such-run"}},
		{words: []string{"tokens", "add"}, args: []string{"--name", "ci", "--scope", "runner", "--grant", "checkout-db"},
			code: 0, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{"--name", "ci-2", "--scope", "runner", "--grant", p} }},
		{words: []string{"tokens", "list"}, code: 0, reference: noDatabase},
		{words: []string{"tokens", "revoke"}, args: []string{"ci"}, code: 0, reference: noDatabase, unknown: []string{"no-such-token"}},
		{words: []string{"exec"}, args: []string{"--policy", "checkout-db", "--", "true"}, code: 0, reference: noDatabase,
			withPolicy: func(p string) []string { return []string{"--policy", p, "--", "true"} }},
		// The command's own failure is exec's: ran and failed.
		{words: []string{"exec"}, args: []string{"--policy", "checkout-db", "--", "false"}, code: 1},
		{words: []string{"run-due"}, code: 0, reference: noDatabase},
		{words: []string{"serve"}, args: []string{"--api-listen", ""}, code: -1, reference: noDatabase},
	}

	run := func(env string, config string, words []string, args ...string) result {
		t.Helper()
		saved, savedConfig := c.env, c.config
		defer func() { c.env, c.config = saved, savedConfig }()
		if env != "" {
			c.env = append(slices.Clone(c.env), env)
		}
		c.config = config
		return c.run(append(slices.Clone(words), args...)...)
	}
	for _, cmd := range commands {
		name := strings.Join(append(slices.Clone(cmd.words), cmd.args...), " ")
		check := func(what string, want int, r result) {
			t.Helper()
			require.Equal(t, want, r.code, "%s, %s:\n%s%s", name, what, r.stdout, r.stderr)
			require.NotContains(t, r.stderr, "goroutine", "%s, %s", name, what)
		}
		if cmd.code >= 0 {
			check("as is", cmd.code, run("", c.config, cmd.words, cmd.args...))
		}

		r := run("", c.config, append(slices.Clone(cmd.words), "--no-such-flag"), cmd.args...)
		check("an unknown flag", 2, r)
		require.Contains(t, r.stderr, "--no-such-flag", name)

		if slices.Equal(cmd.words, []string{"validate"}) {
			r = run("", c.config, cmd.words, bad)
		} else {
			r = run("", bad, cmd.words, cmd.args...)
		}
		check("an invalid config", 2, r)
		require.True(t, strings.HasPrefix(r.stderr, "swarmkey: invalid configuration:\n"), "%s: %s", name, r.stderr)
		require.Contains(t, r.stderr, "\n"+bad+`:4: policies[x].schedulle: unknown field "schedulle"`, name)

		if cmd.withPolicy != nil {
			r = run("", c.config, cmd.words, cmd.withPolicy("no-such-policy")...)
			check("an unknown policy", 2, r)
			require.Contains(t, r.stderr, `"no-such-policy"`, name)
			require.Contains(t, r.stderr, "unknown policy", name)
		}
		if cmd.unknown != nil {
			r = run("", c.config, cmd.words, cmd.unknown...)
			check("an unknown name", 2, r)
			require.Contains(t, r.stderr, cmd.unknown[0], name)
		}
		if cmd.reference != "" {
			r = run(cmd.reference, c.config, cmd.words, cmd.args...)
			check("an unresolvable reference", 2, r)
			variable, _, _ := strings.Cut(cmd.reference, "=")
			require.Contains(t, r.stderr, "reference env:"+variable+": the environment variable is unset or empty", name)
		}
	}

	// Ran and failed: with the single strategy the previous credential
	// stopped working when the table's rotation changed the password.
	r = c.run("verify", "checkout-db", "--stage", "previous")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "checkout-db previous (version ")
	require.Contains(t, r.stdout, "): refused")

	// run-due: a due policy whose reference does not resolve cannot start;
	// that is bad input too, whatever else run-due did.
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, strings.Replace(string(cfg), c.schedule, "schedule: \"@every 2s\"\n    window: 1900ms", 1))
	require.Eventually(t, func() bool {
		r = run(noAdmin, c.config, []string{"run-due"})
		return !strings.Contains(r.stdout, "not due")
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)^checkout-db +failed .*reference env:PG_ADMIN_URL: the environment variable is unset or empty`, r.stdout)
	require.Contains(t, r.stderr, "could not start for bad input [checkout-db]")
}
