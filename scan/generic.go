package scan

import (
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	"github.com/zricethezav/gitleaks/v8/report"
)

// The generic rule set is gitleaks' default configuration (its detect
// package, as a library): some 200 known token formats and its
// generic-api-key rule (a high-entropy value near a credential word).
// Written once, kept by its maintainers; the Locust rules add what it
// misses.

var (
	genericOnce     sync.Once
	genericDetector *detect.Detector
	genericErr      error
)

// generic returns the shared detector. Detect is safe for concurrent use:
// findings are returned, not accumulated (AddFinding is never called).
func generic() (*detect.Detector, error) {
	genericOnce.Do(func() {
		// gitleaks logs through a package logger to stderr; some debug
		// lines carry a finding's value. Nothing of it may print.
		logging.Logger = zerolog.Nop()
		genericDetector, genericErr = detect.NewDetectorDefaultConfig()
	})
	return genericDetector, genericErr
}

// scanGeneric runs the generic rule set over one file.
func scanGeneric(file string, src []byte) ([]Finding, error) {
	d, err := generic()
	if err != nil {
		return nil, err
	}
	// The path lets gitleaks' global allowlist skip files by name (lock
	// files, vendored code). detect.Fragment is the one way v8 takes it;
	// v9 replaces it with sources.Fragment.
	//lint:ignore SA1019 gitleaks v8's Detect takes only this type
	found := d.Detect(detect.Fragment{Raw: string(src), FilePath: file})
	lineStarts := lineOffsets(src)
	var out []Finding
	for _, g := range found {
		start, end, ok := locate(src, lineStarts, g)
		if !ok {
			continue
		}
		out = append(out, Finding{
			File: file, Line: g.StartLine + 1, Column: start - lineStarts[g.StartLine] + 1,
			Kind: KindToken, Rule: "gitleaks/" + g.RuleID,
			Value: secretOf(src[start:end]),
			span:  span{start: start, end: end},
		})
	}
	return out, nil
}

// locate finds a gitleaks finding's secret in src: at its reported line, the
// first occurrence of the secret within the match.
func locate(src []byte, lineStarts []int, g report.Finding) (int, int, bool) {
	if g.Secret == "" || g.StartLine < 0 || g.StartLine >= len(lineStarts) {
		return 0, 0, false
	}
	from := lineStarts[g.StartLine]
	rest := string(src[from:])
	i := strings.Index(rest, g.Secret)
	if i < 0 {
		return 0, 0, false
	}
	return from + i, from + i + len(g.Secret), true
}

// lineOffsets returns the byte offset of each line's start (0-based lines).
func lineOffsets(src []byte) []int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}
