package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Baseline is a set of accepted findings, by fingerprint: `swarmkey scan
// --baseline FILE` reports them but does not fail on them. The file is
// JSON; each entry names the finding as the table does (file, kind,
// variable, masked preview), so a reviewer sees what was accepted and no
// value is in it.
type Baseline struct {
	Version  int             `json:"version"`
	Findings []BaselineEntry `json:"findings"`
	accepted map[string]bool
}

// BaselineEntry is one accepted finding.
type BaselineEntry struct {
	Fingerprint string `json:"fingerprint"`
	File        string `json:"file"`
	Line        int    `json:"line"`
	Kind        Kind   `json:"kind"`
	Variable    string `json:"variable,omitempty"`
	Preview     string `json:"preview"`
}

// Accepts reports whether the baseline holds the fingerprint (a nil
// baseline holds none).
func (b *Baseline) Accepts(fingerprint string) bool {
	return b != nil && b.accepted[fingerprint]
}

// LoadBaseline reads a baseline file; an error names the file and what is
// wrong.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--baseline %s: %w (write one with --write-baseline %s)", path, unwrapPath(err), path)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("--baseline %s: not a baseline file: %v (write one with --write-baseline)", path, err)
	}
	if b.Version != 1 {
		return nil, fmt.Errorf("--baseline %s: version %d: this swarmkey reads version 1", path, b.Version)
	}
	b.accepted = map[string]bool{}
	for i, e := range b.Findings {
		if e.Fingerprint == "" {
			return nil, fmt.Errorf("--baseline %s: findings[%d]: fingerprint is missing", path, i)
		}
		b.accepted[e.Fingerprint] = true
	}
	return &b, nil
}

// WriteBaseline writes a baseline that accepts every finding given.
func WriteBaseline(w io.Writer, findings []Finding) error {
	b := Baseline{Version: 1, Findings: []BaselineEntry{}}
	for _, f := range findings {
		b.Findings = append(b.Findings, BaselineEntry{Fingerprint: f.Fingerprint, File: f.File, Line: f.Line,
			Kind: f.Kind, Variable: f.Variable, Preview: f.Preview})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(b)
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(interface{ Unwrap() error }); ok {
		if inner := pe.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
