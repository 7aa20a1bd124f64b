package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/timeline"
)

// writeTimeline is plan --html FILE: the page `serve --http-listen` shows
// at /, for the policies names over [from, to), written to path for the
// container-job users who run no daemon. The file has no links to policy
// pages (there is no server behind it).
func writeTimeline(cmd *cobra.Command, g *globals, sess *app.Session, set *daemon.PolicySet, names []string,
	now, from, to time.Time, path string) error {
	if cmd.Flags().Changed("output") {
		return usageError("--html %q with -o: --html writes the page instead of printing; drop one of them", path)
	}
	t, err := timeline.Gather(cmd.Context(), sess.DB, set, timeline.Options{Now: now, From: from, To: to, Policies: names,
		Location: time.Local, Static: true})
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := timeline.Render(&b, t); err != nil {
		return err
	}
	// The page holds no value: readable like any report.
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return usageError("--html %q: %v", path, err)
	}
	fmt.Fprintf(g.stderr, "wrote the timeline of %d policies (%s – %s) to %s\n", len(names),
		cliTime(from), cliTime(to), path)
	return nil
}
