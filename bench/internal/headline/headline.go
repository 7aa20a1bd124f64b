// Package headline is how a benchmark program states one of its headline
// figures for `make bench`'s summary table: the figure, its aim, what was
// measured, the ratio to the baseline of the same run (when there is one)
// and whether the aim was met.
//
// A program prints each figure as one line, "HEADLINE " followed by JSON,
// on standard output. bench/benchrun runs every program, records the
// machine's state around it, and gathers these lines into the table; the
// lines stay readable when a program is run by hand.
package headline

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Prefix starts every headline line.
const Prefix = "HEADLINE "

// Figure is one row of the summary table.
type Figure struct {
	// Name says what was measured, with its conditions:
	// "rotations/s, concurrency 4, under load".
	Name string `json:"figure"`
	// Aim is the goal as a reader would write it: "ratio ≥ 0.85",
	// "< 12 ms".
	Aim string `json:"aim"`
	// Measured is the figure with its unit: "163.3/s vs 108.5/s", "9.1 ms".
	Measured string `json:"measured"`
	// Ratio to the baseline of the same run; 0 when there is none.
	Ratio float64 `json:"ratio,omitempty"`
	// Pass says whether the aim was met.
	Pass bool `json:"pass"`
}

// Print writes f as a headline line to standard output.
func Print(f Figure) { Fprint(os.Stdout, f) }

// Fprint writes f as a headline line to w.
func Fprint(w io.Writer, f Figure) {
	b, err := json.Marshal(f)
	if err != nil {
		// A Figure of strings, a float and a bool always marshals.
		panic(err)
	}
	fmt.Fprintf(w, "%s%s\n", Prefix, b)
}

// Parse reads a headline line; ok is false for any other line.
func Parse(line string) (f Figure, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), Prefix)
	if !found {
		return Figure{}, false
	}
	if err := json.Unmarshal([]byte(rest), &f); err != nil || f.Name == "" {
		return Figure{}, false
	}
	return f, true
}
