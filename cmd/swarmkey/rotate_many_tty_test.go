package main_test

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"
)

// TestRotateAllDrawsAProgressBarOnATerminal: on a terminal (a real pseudo
// terminal here) `rotate --all` draws a progress bar, redrawn in place,
// then the same summary as on a pipe; and still no value.
func TestRotateAllDrawsAProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.addPolicies(&teamPolicy{name: "team-a-one", tags: []string{"team-a"}}, &teamPolicy{name: "team-a-two", tags: []string{"team-a"}})

	cmd := c.command("rotate", "--all", "--local", "--concurrency", "2")
	out := runOnTerminal(t, cmd)
	require.Contains(t, out, "rotating", out)
	require.Contains(t, out, "3/3", "the bar counts the policies done: %q", out)
	require.Contains(t, out, "\r", "the bar is redrawn in place")
	require.Contains(t, out, "summary: 3 of 3 policies rotated", out)
	var passwords []string
	for _, p := range []string{"checkout-db", "team-a-one", "team-a-two"} {
		cur, ok := c.current(p)
		require.True(t, ok, p)
		passwords = append(passwords, cur.Password)
	}
	for _, pw := range passwords {
		require.NotContains(t, out, pw)
	}
}

// runOnTerminal runs cmd with a pseudo terminal as its standard input,
// output and error, and returns everything it printed.
func runOnTerminal(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = io.Copy(&out, f) // until the child exits and the terminal closes (EIO)
	var errno syscall.Errno
	if err != nil && !(errors.As(err, &errno) && errno == syscall.EIO) {
		require.NoError(t, err)
	}
	_ = f.Close()
	require.NoError(t, cmd.Wait(), out.String())
	return out.String()
}
