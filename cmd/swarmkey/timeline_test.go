package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
)

// plan --html FILE writes the timeline page for users who run no daemon:
// the policy's row with its deferral and the run that caused it, no link to
// a policy page (no server behind the file), and no value.
func TestPlanWritesTheTimelinePage(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	current, ok := c.stage(providers.StageCurrent)
	require.True(t, ok)

	// Daily (c.fire) with a one-hour window: the run covers the whole next
	// window.
	next := c.fire
	_, err := c.stateDB(t).AddOneOffRun(context.Background(), state.OneOffRunRequest{Name: "all-nighter",
		Start: next.Add(-time.Hour), Duration: 3 * time.Hour, Uses: []string{"checkout-db"}, CreatedBy: "test"})
	require.NoError(t, err)

	page := filepath.Join(c.dir, "timeline.html")
	r = c.run("plan", "--to", "+3d", "--html", page)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "wrote the timeline of 1 policies")
	require.Empty(t, r.stdout, "--html writes the page instead of the table")
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	html := string(b)
	require.Contains(t, html, `data-policy="checkout-db"`)
	require.Contains(t, html, `data-kind="run" data-name="all-nighter"`)
	require.Contains(t, html, `data-kind="deferral"`)
	require.Contains(t, html, "Content-Security-Policy")
	require.NotContains(t, html, "<script")
	require.NotContains(t, html, `href="/policies/`, "a file has no server to link to")
	require.False(t, strings.Contains(html, current.Password), "the current password is in the page")
	c.requireNoLeak(current.Password)

	r = c.run("plan", "--html", filepath.Join(c.dir, "no-such-folder", "t.html"))
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--html")
	r = c.run("plan", "--html", page, "-o", "json")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "-o")
}
