package scan_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/scan"
)

// The corpus (testdata/corpus) is load-test files of real-world shapes:
// locustfiles, .env files, configs, CI files, scripts, Dockerfiles. A line
// that holds a credential ends with the label "  ⟦cred⟧"; every other line
// holds none (look-alikes included: UUIDs, hashes in URLs, placeholders,
// references, test fixtures). Token formats that code hosts block on push
// are spelled with their prefix as a marker (@@GHP@@ for GitHub's), which
// the test expands before scanning, as it strips the labels.
const credLabel = "  ⟦cred⟧"

var prefixMarkers = strings.NewReplacer(
	"@@GHP@@", "gh"+"p_",
	"@@AKIA@@", "AK"+"IA",
	"@@XOXB@@", "xo"+"xb-",
	"@@SG@@", "S"+"G.",
	"@@GLPAT@@", "gl"+"pat-",
)

// corpus copies testdata/corpus into a temporary folder as a repository
// would hold it, and returns the folder and the labelled FILE:LINEs.
func corpus(t testing.TB) (string, map[string]bool) {
	t.Helper()
	src := filepath.Join("testdata", "corpus")
	dst := t.TempDir()
	labels := map[string]bool{}
	files := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(prefixMarkers.Replace(string(data)), "\n")
		for i, l := range lines {
			if strings.HasSuffix(l, credLabel) {
				lines[i] = strings.TrimSuffix(l, credLabel)
				labels[fmt.Sprintf("%s:%d", filepath.ToSlash(rel), i+1)] = true
			}
		}
		out := filepath.Join(dst, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
		files++
		return os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644)
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, files, 60, "the corpus holds at least 60 files")
	return dst, labels
}

type quality struct {
	tp, fp, fn        int
	precision, recall float64
	missed, wrong     []string
}

func measure(t *testing.T, dir string, labels map[string]bool, rules scan.RuleSet) quality {
	t.Helper()
	r, err := scan.Scan([]string{dir}, scan.Options{Rules: rules})
	require.NoError(t, err)
	found := map[string]bool{}
	for _, f := range r.Findings {
		rel, err := filepath.Rel(dir, f.File)
		require.NoError(t, err)
		found[fmt.Sprintf("%s:%d", filepath.ToSlash(rel), f.Line)] = true
	}
	var q quality
	for loc := range found {
		if labels[loc] {
			q.tp++
		} else {
			q.fp++
			q.wrong = append(q.wrong, loc)
		}
	}
	for loc := range labels {
		if !found[loc] {
			q.fn++
			q.missed = append(q.missed, loc)
		}
	}
	slices.Sort(q.missed)
	slices.Sort(q.wrong)
	q.precision = float64(q.tp) / float64(max(1, q.tp+q.fp))
	q.recall = float64(q.tp) / float64(max(1, q.tp+q.fn))
	return q
}

// TestCorpusPrecisionAndRecall measures swarmkey's rules and the generic
// set alone on the labelled corpus and prints the figures the README
// quotes. Aims: recall ≥ 0.95 and precision ≥ 0.9 for swarmkey, and the
// Locust rules beat the generic set on recall.
func TestCorpusPrecisionAndRecall(t *testing.T) {
	dir, labels := corpus(t)
	require.GreaterOrEqual(t, len(labels), 40)
	own := measure(t, dir, labels, scan.AllRules)
	gen := measure(t, dir, labels, scan.GenericRules)
	t.Logf("corpus: %d labelled credentials", len(labels))
	for _, row := range []struct {
		name string
		q    quality
	}{{"swarmkey (generic + Locust rules)", own}, {"generic rules alone (gitleaks default)", gen}} {
		t.Logf("| %s | %d | %d | %d | %.2f | %.2f |", row.name, row.q.tp, row.q.fp, row.q.fn, row.q.precision, row.q.recall)
		t.Logf("  %s missed: %v", row.name, row.q.missed)
		t.Logf("  %s false positives: %v", row.name, row.q.wrong)
	}
	require.GreaterOrEqual(t, own.recall, 0.95, "swarmkey's recall; missed %v", own.missed)
	require.GreaterOrEqual(t, own.precision, 0.9, "swarmkey's precision; false positives %v", own.wrong)
	require.Greater(t, own.recall, gen.recall, "the Locust rules beat the generic set on recall")
}
