package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the summary table.
type row struct {
	figure, aim, measured, ratio, result, machine string
}

var tableHeader = row{"figure", "aim", "measured", "ratio", "result", "machine"}

// rows turns the results into the table: a row per figure; a command that
// failed gets a FAILED row, and one that succeeded without a figure a
// "no figure" row, so that nothing missing goes unseen.
func rows(results []commandResult) []row {
	var out []row
	for _, res := range results {
		machine := res.state.String()
		for _, f := range res.figures {
			ratio := "—"
			if f.Ratio != 0 {
				ratio = strconv.FormatFloat(f.Ratio, 'f', 2, 64)
			}
			result := "MISS"
			if f.Pass {
				result = "pass"
			}
			out = append(out, row{f.Name, orDash(f.Aim), orDash(f.Measured), ratio, result, machine})
		}
		switch {
		case res.err != nil:
			out = append(out, row{fmt.Sprintf("command failed (%v): %s", res.err, res.cmd.command), "—", "—", "—", "FAILED", machine})
		case len(res.figures) == 0:
			out = append(out, row{"no figure from: " + res.cmd.command, "—", "—", "—", "none", machine})
		}
	}
	return out
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

func (r row) cells() []string {
	return []string{r.figure, r.aim, r.measured, r.ratio, r.result, r.machine}
}

// writeText prints the table in aligned columns.
func writeText(w io.Writer, results []commandResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range append([]row{tableHeader}, rows(results)...) {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	return tw.Flush()
}

// report is what the Markdown copy says besides the table.
type report struct {
	date    time.Time
	machine machineInfo
	rule    quietRule
	// env is the values of the environment variables the commands use.
	env []string
}

// envReference is a $NAME or ${NAME} in a command.
var envReference = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// usedEnv lists NAME=value for each variable the commands refer to and
// the environment sets.
func usedEnv(results []commandResult, lookup func(string) (string, bool)) []string {
	var out []string
	for _, res := range results {
		for _, m := range envReference.FindAllStringSubmatch(res.cmd.command, -1) {
			if v, ok := lookup(m[1]); ok && !slices.Contains(out, m[1]+"="+v) {
				out = append(out, m[1]+"="+v)
			}
		}
	}
	return out
}

// writeMarkdown writes the table as the README shows it: the date, the
// machine and the quiet rule, the table, then the commands that made it.
func writeMarkdown(w io.Writer, rep report, results []commandResult) error {
	fmt.Fprintf(w, "Measured %s with `make bench` on %s.\n", rep.date.Format("2006-01-02"), rep.machine)
	fmt.Fprintf(w, "Before each program, benchrun waited up to %s for a quiet machine (%s);\n", rep.rule.wait, rep.rule)
	fmt.Fprintf(w, "a figure taken on a machine that was not quiet, before or during its program, is marked BUSY.\n\n")
	writeMarkdownRow(w, tableHeader.cells())
	writeMarkdownRow(w, slices.Repeat([]string{"---"}, len(tableHeader.cells())))
	busy := 0
	for _, r := range rows(results) {
		writeMarkdownRow(w, r.cells())
		if strings.HasPrefix(r.machine, "BUSY") {
			busy++
		}
	}
	if busy > 0 {
		fmt.Fprintf(w, "\n%d of the rows above were measured on a busy machine: not figures to quote.\n", busy)
	}
	fmt.Fprintf(w, "\nThe commands, in order")
	if len(rep.env) > 0 {
		fmt.Fprintf(w, " (with %s)", inlineCode(strings.Join(rep.env, " ")))
	}
	fmt.Fprintf(w, ":\n\n")
	for i, res := range results {
		fmt.Fprintf(w, "%d. %s\n", i+1, inlineCode(res.cmd.command))
	}
	return nil
}

func writeMarkdownRow(w io.Writer, cells []string) {
	escaped := make([]string, len(cells))
	for i, c := range cells {
		escaped[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(escaped, " | "))
}

// inlineCode quotes s as Markdown code, with a longer fence when s holds
// a backtick.
func inlineCode(s string) string {
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// writeMarkdownFile writes the Markdown copy to path.
func writeMarkdownFile(path string, rep report, results []commandResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeMarkdown(f, rep, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
