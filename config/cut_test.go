package config

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"weak"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// cutMismatches collects the loads whose result differed when every file
// was decoded whole; TestMain fails the run on any.
var (
	cutMu         sync.Mutex
	cutMismatches []string
	cutCompared   int
	cutFiles      int
)

// TestMain makes every load of the package's tests (Load, ValidateFiles,
// FuzzLoad's loader) a comparison: the same files are loaded again with
// each decoded as one tree (loader.noCut), and the config and the errors
// must be the same as when cut at their policies: entries.
func TestMain(m *testing.M) {
	loaded = compareWhole
	code := m.Run()
	cutMu.Lock()
	if os.Getenv("CUT_STATS") != "" {
		fmt.Fprintf(os.Stderr, "%d loads compared, %d files cut\n", cutCompared, cutFiles)
	}
	for _, msg := range cutMismatches {
		fmt.Fprintln(os.Stderr, msg)
	}
	if len(cutMismatches) > 0 && code == 0 {
		code = 1
	}
	cutMu.Unlock()
	os.Exit(code)
}

func compareWhole(l *loader, paths []string, cfg *Config, err error) {
	msg := wholeDifference(l, paths, cfg, err)
	cutMu.Lock()
	defer cutMu.Unlock()
	cutCompared++
	for _, s := range l.sources {
		if s.cut {
			cutFiles++
		}
	}
	if msg != "" {
		cutMismatches = append(cutMismatches, msg)
	}
}

// wholeDifference loads paths again as l did but with every file decoded
// whole, and says how the result differs from cfg and err; "" when it does
// not.
func wholeDifference(l *loader, paths []string, cfg *Config, err error) string {
	whole := newLoader(l.validate)
	whole.readFile, whole.glob, whole.noCut = l.readFile, l.glob, true
	wcfg, werr := whole.load(paths)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		return fmt.Sprintf("load of %v: errors differ\ncut:\n%v\nwhole:\n%v", paths, err, werr)
	}
	if !reflect.DeepEqual(cfg, wcfg) {
		return fmt.Sprintf("load of %v: configs differ\ncut:   %+v\nwhole: %+v", paths, cfg, wcfg)
	}
	return ""
}

// cutHead configures what the cutSeeds' policies use.
const cutHead = "database: env:DB\nstores:\n  file: { dir: /s, key_file: /k }\n"

// cutPolicy is a valid policy entry at indentation ind, called name.
func cutPolicy(ind, name string) string {
	return ind + "- name: " + name + "\n" + ind + "  schedule: \"@daily\"\n" + ind + "  target: { generated: {} }\n"
}

// cutSeeds are files whose layout a line-based cut could get wrong: each
// loads the same cut or whole (TestMain), and FuzzLoad starts from them.
var cutSeeds = []string{
	// A quoted scalar that spans lines, one of them looking like an entry.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    secret: \"x\n  - y\"\n" + cutPolicy("  ", "b"),
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    secret: 'x\n  - y'\n" + cutPolicy("  ", "b"),
	// A quoted scalar that spans lines, one at column 0 ending the list.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    secret: \"x\nnotifications: y\"\n" + cutPolicy("  ", "b"),
	// A flow list that spans lines.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    tags: [x,\n  - y]\n" + cutPolicy("  ", "b"),
	// policies: inside a quoted scalar of the header.
	cutHead + "deny: \"x\npolicies:\n" + cutPolicy("  ", "a") + "\"\n",
	// A block scalar whose text looks like entries and keys.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    secret: |\n      - name: b\n      x\n\n" + cutPolicy("  ", "c"),
	// Entries at column 0, comments at column 0 between them, CRLF.
	cutHead + "policies:\n# one\n" + cutPolicy("", "a") + "# two\n\n" + cutPolicy("", "b") + "deny: []\n",
	strings.ReplaceAll(cutHead+"policies:\n"+cutPolicy("  ", "a")+cutPolicy("  ", "b"), "\n", "\r\n"),
	// An anchor in one entry, its alias in another; a merge key.
	cutHead + "policies:\n  - &p\n    name: a\n    schedule: \"@daily\"\n    target: { generated: {} }\n  - <<: *p\n    name: b\n",
	// Two policies: keys; one after the list; a list that ends early.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "policies:\n" + cutPolicy("  ", "b"),
	cutHead + "policies:\n" + cutPolicy("    ", "a") + "  - name: b\n",
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "  stray: 1\n",
	// Document markers and a directive.
	cutHead + "policies:\n" + cutPolicy("", "a") + "---\n" + cutPolicy("", "b"),
	"%YAML 1.1\n---\n" + cutHead + "policies:\n" + cutPolicy("  ", "a"),
	// Decoding errors in the header after the list and in the entries.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "    max_attempts: x\n  - name: [b]\nnotifications: 5\n",
	// A tab before an entry's text; an empty entry; a null entry.
	cutHead + "policies:\n" + cutPolicy("  ", "a") + "\t- name: b\n",
	cutHead + "policies:\n  -\n" + cutPolicy("  ", "a") + "  - ~\n",
}

// TestCutLayouts: each cutSeed loads as a whole file does (TestMain
// compares), and the ones laid out for it are cut.
func TestCutLayouts(t *testing.T) {
	for i, text := range cutSeeds {
		_, _ = loadText(t, text)
		if i == 0 {
			_, ok := splitPolicies([]byte(text))
			require.True(t, ok, "the first seed is cut")
		}
	}
}

// TestCutFileTreesDoNotPileUp: while a cut file's policies are checked,
// the node trees of the entries already checked are garbage: at most the
// batch being checked (and one more, in hand-over) is alive, never the
// file's tree. Decoded whole (noCut), the same count sees every entry's
// tree alive until the file is done.
func TestCutFileTreesDoNotPileUp(t *testing.T) {
	path := writeManyPolicies(t, 3000)
	// Not parallel: no other test loads meanwhile. The comparison of
	// TestMain would load again and count twice.
	defer func(compare func(*loader, []string, *Config, error)) { loaded = compare }(loaded)
	loaded = nil
	for _, noCut := range []bool{false, true} {
		var checked []weak.Pointer[yaml.Node]
		most := 0
		entryChecked = func(item *yaml.Node) {
			checked = append(checked, weak.Make(item))
			if len(checked)%500 != 0 {
				return
			}
			runtime.GC()
			alive := 0
			for _, w := range checked {
				if w.Value() != nil {
					alive++
				}
			}
			most = max(most, alive)
		}
		l := newLoader(false)
		l.noCut = noCut
		cfg, err := l.load([]string{path})
		entryChecked = nil
		require.NoError(t, err)
		require.Len(t, cfg.Policies, 3000)
		require.Equal(t, 3000, len(checked))
		if noCut {
			require.Equal(t, 3000, most, "decoded whole, the file's tree lives while its policies are checked")
		} else {
			require.LessOrEqual(t, most, 2*entryBatch, "entry trees alive at once")
		}
	}
}
