package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// planCommand is one benchmark command: a shell command line, run with
// /bin/sh -c from benchrun's working folder.
type planCommand struct {
	// where names it in messages: "bench/plan.txt:12", or "argument 2".
	where   string
	command string
	// metrics turn columns of `go test -bench` result lines into figures,
	// for Go benchmarks that report a metric instead of printing headlines.
	metrics []metricRule
}

// metricRule reads one go test metric as a figure: every result line that
// reports unit becomes the figure "name: package benchmark", its aim "op
// limit".
type metricRule struct {
	unit  string
	op    string // <, ≤, >, ≥
	limit float64
	aim   string // as the plan wrote it: "< 1.1"
	name  string
}

// meets says whether v satisfies the rule's aim.
func (r metricRule) meets(v float64) bool {
	switch r.op {
	case "<":
		return v < r.limit
	case "≤":
		return v <= r.limit
	case ">":
		return v > r.limit
	default: // ≥
		return v >= r.limit
	}
}

var metricLine = regexp.MustCompile(`^metric\s+(\S+)\s+(<=|>=|<|>|≤|≥)\s*(\S+)\s*:\s*(\S.*)$`)

const metricSyntax = "want `metric UNIT OP LIMIT: FIGURE NAME` with OP one of < <= > >=, e.g. `metric ratio < 1.1: store/raw overhead ratio`"

// parsePlan reads a plan: one command per line; blank lines and lines
// starting with # are skipped; an indented line `metric UNIT OP LIMIT: NAME`
// adds a metric rule to the command above it. name is the file's name for
// messages.
func parsePlan(name string, r io.Reader) ([]planCommand, error) {
	var plan []planCommand
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		if raw[0] != ' ' && raw[0] != '\t' {
			plan = append(plan, planCommand{where: where, command: line})
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s: an indented line is a metric rule of the command above: %s", where, metricSyntax)
		}
		if len(plan) == 0 {
			return nil, fmt.Errorf("%s: a metric rule before any command: put it under the go test command it reads", where)
		}
		limit, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: limit %q is not a number: %s", where, m[3], metricSyntax)
		}
		op := map[string]string{"<=": "≤", ">=": "≥"}[m[2]]
		if op == "" {
			op = m[2]
		}
		cmd := &plan[len(plan)-1]
		cmd.metrics = append(cmd.metrics, metricRule{unit: m[1], op: op, limit: limit, aim: op + " " + m[3], name: m[4]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("%s: no commands: write one benchmark command per line", name)
	}
	return plan, nil
}
