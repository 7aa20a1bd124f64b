// Package architecture checks that the package picture in docs/design.md is
// the code's: every package of the module is in the table, with the imports
// of ours that `go list` reports, and every import points to a lower layer.
package architecture

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/swarmkey/swarmkey"

// row is one line of the table under "## Package dependencies".
type row struct {
	layer   int
	imports []string
	line    int
}

func TestDesignPictureMatchesTheCode(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	doc := readTable(t, filepath.Join(root, "docs", "design.md"))
	actual := listImports(t, root)

	for pkg, imports := range actual {
		r, ok := doc[pkg]
		require.True(t, ok, "docs/design.md: package %s is missing from the table under \"## Package dependencies\"", pkg)
		require.Equal(t, imports, r.imports, "docs/design.md:%d: the imports of %s differ from `go list`", r.line, pkg)
		for _, imp := range imports {
			dep, ok := doc[imp]
			require.True(t, ok, "docs/design.md: package %s (imported by %s) is missing from the table", imp, pkg)
			require.Less(t, dep.layer, r.layer, "docs/design.md:%d: %s (layer %d) imports %s (layer %d): packages depend downward only",
				r.line, pkg, r.layer, imp, dep.layer)
		}
	}
	for pkg, r := range doc {
		_, ok := actual[pkg]
		require.True(t, ok, "docs/design.md:%d: package %s is in the table but not in the module", r.line, pkg)
	}
}

// readTable reads `| package | layer | imports |` rows of the section
// "## Package dependencies": package and imports as `a`, `b` relative to the
// module, "—" for none.
func readTable(t *testing.T, path string) map[string]row {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]row{}
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Package dependencies"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		require.Len(t, cells, 3, "%s:%d: want | package | layer | imports |", path, n)
		pkg := strings.Trim(strings.TrimSpace(cells[0]), "`")
		layer, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		require.NoError(t, err, "%s:%d: layer", path, n)
		var imports []string
		for _, imp := range strings.Split(cells[2], ",") {
			if imp = strings.Trim(strings.TrimSpace(imp), "`"); imp != "" && imp != "—" {
				imports = append(imports, imp)
			}
		}
		slices.Sort(imports)
		_, dup := out[pkg]
		require.False(t, dup, "%s:%d: %s is listed twice", path, n, pkg)
		out[pkg] = row{layer: layer, imports: imports, line: n}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out, "%s: no table under \"## Package dependencies\"", path)
	return out
}

// listImports returns, for every package of the module, the packages of
// ours it imports (tests excluded), relative to the module path.
func listImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	dec := json.NewDecoder(strings.NewReader(string(out)))
	result := map[string][]string{}
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		require.NoError(t, dec.Decode(&p))
		name := relative(p.ImportPath)
		var ours []string
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				ours = append(ours, relative(imp))
			}
		}
		slices.Sort(ours)
		result[name] = ours
	}
	return result
}

func relative(importPath string) string {
	return strings.TrimPrefix(importPath, module+"/")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}")
	out, err := cmd.Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}
