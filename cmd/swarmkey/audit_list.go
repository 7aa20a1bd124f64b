package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/termtext"
)

// auditTimeFormat is the one format of times in audit's tables: RFC 3339
// in UTC, to the second.
const auditTimeFormat = "2006-01-02T15:04:05Z"

// parseAuditTime reads a time flag of the audit commands: a date (midnight
// UTC), RFC 3339, now, or relative to now (-90d, +2h).
func parseAuditTime(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := parseWhen(flag, s, now)
	if err != nil {
		return time.Time{}, usageError("%s %q: use a date (2026-01-01), RFC 3339 (2026-01-01T00:00:00Z), now, or a duration before or after now (-90d, +2h)", flag, s)
	}
	return t, nil
}

// auditKind is an action (rotation.forced) or a kind of actions (rotation).
var auditKind = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`) })

type auditQueryFlags struct {
	policies, actors, kinds []string
	since, until, output    string
	limit                   int
	follow                  bool
}

func (q *auditQueryFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&q.policies, "policy", nil, "entries about this policy (repeatable)")
	f.StringArrayVar(&q.actors, "actor", nil, "entries by this actor: operator:alice, token:ci, daemon; alice matches every kind (repeatable)")
	f.StringArrayVar(&q.kinds, "kind", nil, "entries of this action (rotation.forced) or kind (rotation) (repeatable)")
	f.StringVar(&q.since, "since", "", "entries at or after this time (RFC 3339, a date, now, -1d)")
	f.StringVar(&q.until, "until", "", "entries before this time (RFC 3339, a date, now, -1d)")
	f.StringVarP(&q.output, "output", "o", "table", "table or json (one object per line)")
	f.IntVar(&q.limit, "limit", 50, "show the newest N entries that match; 0 for all")
	f.BoolVarP(&q.follow, "follow", "f", false, "keep printing entries as they are appended, until Ctrl-C")
}

// filter checks the flags and turns them into the state database's filter.
func (q *auditQueryFlags) filter() (state.AuditFilter, error) {
	var f state.AuditFilter
	if q.output != "table" && q.output != "json" {
		return f, usageError("--output %q: use table or json", q.output)
	}
	if q.limit < 0 {
		return f, usageError("--limit %d: give 0 (all) or more", q.limit)
	}
	for _, p := range q.policies {
		if strings.TrimSpace(p) == "" {
			return f, usageError("--policy is empty: give a policy name")
		}
	}
	for _, a := range q.actors {
		if strings.TrimSpace(a) == "" || strings.HasSuffix(a, ":") {
			return f, usageError("--actor %q: give who acted, such as operator:alice, token:ci, daemon or alice", a)
		}
	}
	for _, k := range q.kinds {
		if !auditKind().MatchString(k) {
			return f, usageError("--kind %q: give an action (rotation.forced) or a kind of actions (rotation, credential, lease, run, token, audit)", k)
		}
	}
	since, until, err := parseSpan(q.since, q.until)
	if err != nil {
		return f, err
	}
	if q.follow && !until.IsZero() {
		return f, usageError("--follow with --until: following prints entries appended from now on, which --until would leave out; drop one")
	}
	return state.AuditFilter{Policies: q.policies, Actors: q.actors, Kinds: q.kinds, Since: since, Until: until}, nil
}

// parseSpan reads --since and --until; --since must come first.
func parseSpan(sinceFlag, untilFlag string) (since, until time.Time, err error) {
	now := time.Now().UTC()
	if sinceFlag != "" {
		if since, err = parseAuditTime("--since", sinceFlag, now); err != nil {
			return since, until, err
		}
	}
	if untilFlag != "" {
		if until, err = parseAuditTime("--until", untilFlag, now); err != nil {
			return since, until, err
		}
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return since, until, usageError("--since %s is not before --until %s: nothing can match", since.UTC().Format(auditTimeFormat), until.UTC().Format(auditTimeFormat))
	}
	return since, until, nil
}

func listAudit(ctx context.Context, g *globals, sess *app.Session, q auditQueryFlags, f state.AuditFilter) error {
	// Following starts above the last id before the listing is read: an
	// entry appended in between is printed by the follower, never lost.
	var last int64
	if q.follow {
		var err error
		if last, err = sess.DB.LastAuditID(ctx); err != nil {
			return err
		}
	}
	entries, more, err := sess.DB.QueryAudit(ctx, f, q.limit)
	if err != nil {
		return err
	}
	emit := printAuditTable
	if q.output == "json" {
		emit = printAuditJSON
	} else {
		fmt.Fprintf(g.stdout, auditRowFormat, "TIME (UTC)", "ACTOR", "POLICY", "ACTION", "DETAIL")
	}
	for _, e := range entries {
		if q.follow && e.ID > last {
			continue // the follower prints it
		}
		if err := emit(g.stdout, e); err != nil {
			return err
		}
	}
	if more {
		fmt.Fprintf(g.stderr, "older entries match too: --limit %d shows the newest; use --limit 0 or --since for more\n", q.limit)
	}
	if !q.follow {
		return nil
	}
	return sess.FollowAudit(ctx, f, app.FollowOptions{After: last}, func(e state.ExportedEntry) error { return emit(g.stdout, e) })
}

const auditRowFormat = "%-20s  %-22s  %-20s  %-26s  %s\n"

func printAuditTable(w io.Writer, e state.ExportedEntry) error {
	detail := auditDetail(e.Detail)
	if e.Rotation != "" {
		detail = strings.TrimSpace("rotation=" + e.Rotation + " " + detail)
	}
	_, err := fmt.Fprintf(w, auditRowFormat, e.At.UTC().Format(auditTimeFormat), termtext.Printable(e.Actor), orDash(termtext.Printable(e.Policy)),
		termtext.Printable(e.Action), termtext.Printable(detail))
	return err
}

func printAuditJSON(w io.Writer, e state.ExportedEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// auditDetail writes an entry's detail as key=value pairs sorted by key:
// strings as they are, everything else as compact JSON.
func auditDetail(raw json.RawMessage) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return string(raw)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		var s string
		if json.Unmarshal(v, &s) == nil && !strings.ContainsAny(s, " \t\"") && s != "" {
			parts = append(parts, k+"="+s)
			continue
		}
		var compact bytes.Buffer
		if json.Compact(&compact, v) == nil {
			v = compact.Bytes()
		}
		parts = append(parts, k+"="+string(v))
	}
	return strings.Join(parts, " ")
}

func newAuditReadsCommand(g *globals) *cobra.Command {
	var policies, readers []string
	var since, until, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "reads [--policy P] [--reader TOKEN] [--since T] [--until T] [-o json]",
		Short: "Show who read which version of which credential, and when",
		Long: `reads lists the credential reads the runner API recorded: which token read
which version of which policy, under which lease, when first and last, and
how often (the first read of each is also a credential.read audit entry).
--since and --until keep the reads whose span overlaps the period. Times are
RFC 3339 in UTC, to the second; -o json writes one object per line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usageError("--output %q: use table or json", output)
			}
			if limit < 0 {
				return usageError("--limit %d: give 0 (all) or more", limit)
			}
			for _, r := range readers {
				if strings.TrimSpace(strings.TrimPrefix(r, "token:")) == "" {
					return usageError("--reader %q: give a token's name (token:ci or ci)", r)
				}
			}
			s, u, err := parseSpan(since, until)
			if err != nil {
				return err
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			reads, more, err := sess.DB.CredentialReads(cmd.Context(), state.ReadFilter{Policies: policies, Readers: readers, Since: s, Until: u}, limit)
			if err != nil {
				return err
			}
			const row = "%-20s  %-20s  %-22s  %-20s  %-36s  %6s  %s\n"
			if output == "table" {
				fmt.Fprintf(g.stdout, row, "FIRST READ (UTC)", "LAST READ (UTC)", "READER", "POLICY", "VERSION", "COUNT", "LEASE")
			}
			for _, r := range reads {
				if output == "json" {
					b, err := json.Marshal(r)
					if err != nil {
						return err
					}
					fmt.Fprintln(g.stdout, string(b))
					continue
				}
				fmt.Fprintf(g.stdout, row, r.FirstAt.Format(auditTimeFormat), r.LastAt.Format(auditTimeFormat), termtext.Printable(r.Reader),
					termtext.Printable(r.Policy), termtext.Printable(r.Version), fmt.Sprint(r.Count), orDash(r.Lease))
			}
			if more {
				fmt.Fprintf(g.stderr, "older reads match too: --limit %d shows the newest; use --limit 0 or --since for more\n", limit)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&policies, "policy", nil, "reads of this policy (repeatable)")
	cmd.Flags().StringArrayVar(&readers, "reader", nil, "reads by this token: token:ci or ci (repeatable)")
	cmd.Flags().StringVar(&since, "since", "", "reads at or after this time (RFC 3339, a date, now, -1d)")
	cmd.Flags().StringVar(&until, "until", "", "reads before this time (RFC 3339, a date, now, -1d)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json (one object per line)")
	cmd.Flags().IntVar(&limit, "limit", 50, "show the newest N reads that match; 0 for all")
	return cmd
}
