package headline

import (
	"bytes"
	"testing"
)

func TestPrintedFigureParsesBack(t *testing.T) {
	want := Figure{Name: "rotations/s, concurrency 1", Aim: "ratio ≥ 0.85", Measured: "163.3/s vs 150.1/s", Ratio: 0.92, Pass: true}
	var out bytes.Buffer
	Fprint(&out, want)
	got, ok := Parse(out.String())
	if !ok || got != want {
		t.Fatalf("Parse(%q) = %+v, %v; want %+v", out.String(), got, ok, want)
	}
	for _, line := range []string{"", "concurrency 1 163.3", "HEADLINE not json", `HEADLINE {"aim":"x"}`} {
		if _, ok := Parse(line); ok {
			t.Errorf("Parse(%q) took an ordinary line for a headline", line)
		}
	}
}
