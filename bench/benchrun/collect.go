package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
)

// modulePrefix is cut from go test's "pkg:" lines in figure names.
const modulePrefix = "github.com/swarmkey/swarmkey/"

// figureCollector passes a command's standard output through to out, line
// by line as it comes, and gathers the figures in it: headline lines, and
// go test result lines that report a metric of the command's rules.
type figureCollector struct {
	out     io.Writer
	rules   []metricRule
	partial []byte
	pkg     string // from go test's last "pkg:" line
	figures []headline.Figure
}

func (c *figureCollector) Write(p []byte) (int, error) {
	n, err := c.out.Write(p)
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.line(string(c.partial[:i]))
		c.partial = c.partial[i+1:]
	}
	return n, err
}

// finish reads an unterminated last line.
func (c *figureCollector) finish() {
	if len(c.partial) > 0 {
		c.line(string(c.partial))
		c.partial = nil
	}
}

// goBenchResult is a go test -bench result line:
// "BenchmarkOverhead/Get-2   1   812345 ns/op   1.02 ratio". The -2
// (GOMAXPROCS) is left out of the name.
var goBenchResult = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(\S.*)$`)

func (c *figureCollector) line(text string) {
	// A headline may follow other text on its line: go test prints a
	// benchmark's name, then runs it, so what the benchmark prints lands
	// after the name.
	if i := strings.Index(text, headline.Prefix); i >= 0 {
		if f, ok := headline.Parse(text[i:]); ok {
			c.figures = append(c.figures, f)
		}
		return
	}
	if pkg, ok := strings.CutPrefix(text, "pkg: "); ok {
		c.pkg = strings.TrimPrefix(strings.TrimSpace(pkg), modulePrefix)
		return
	}
	if len(c.rules) == 0 {
		return
	}
	m := goBenchResult.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return
	}
	metrics := strings.Fields(m[2])
	for i := 0; i+1 < len(metrics); i += 2 {
		v, err := strconv.ParseFloat(metrics[i], 64)
		if err != nil {
			continue
		}
		unit := metrics[i+1]
		for _, r := range c.rules {
			if r.unit != unit {
				continue
			}
			f := headline.Figure{
				Name:     strings.TrimSpace(fmt.Sprintf("%s: %s %s", r.name, c.pkg, m[1])),
				Aim:      r.aim,
				Measured: formatNumber(v) + " " + unit,
				Pass:     r.meets(v),
			}
			if unit == "ratio" {
				f.Measured, f.Ratio = formatNumber(v), v
			}
			c.figures = append(c.figures, f)
		}
	}
}

// formatNumber keeps three significant digits, and whole numbers from a
// thousand up.
func formatNumber(v float64) string {
	if v >= 1000 || v <= -1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
