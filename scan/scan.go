package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/swarmkey/swarmkey/secret"
)

// RuleSet chooses the rules a scan runs.
type RuleSet int

const (
	// AllRules: the generic set and the Locust rules (what `swarmkey scan`
	// runs).
	AllRules RuleSet = iota
	// GenericRules: gitleaks' default rules alone, for comparison.
	GenericRules
)

// Options are a scan's settings.
type Options struct {
	Rules RuleSet
	// Baseline holds the fingerprints of accepted findings.
	Baseline *Baseline
	// Provided is the inventory: what each policy already provides.
	Provided []Provided
	// Workers is how many files are read at once; 0 is the number of CPUs.
	Workers int
}

// Report is a scan's result.
type Report struct {
	// Findings, ordered by file, line and column.
	Findings []Finding
	// Files is how many files were read.
	Files int
	// Notices are things the user should know that are no finding: a
	// Python file that could not be parsed, a file too large to read.
	Notices []string
}

// New returns the findings that no baseline accepts.
func (r *Report) New() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if !f.Baselined {
			out = append(out, f)
		}
	}
	return out
}

// maxFileSize: larger files are no load-test source or config (a data set,
// a bundle) and are skipped with a notice.
const maxFileSize = 4 << 20

// IgnoreMarker on a line keeps its findings out of the report.
const IgnoreMarker = "swarmkey:ignore"

// skippedDirs are never walked into: version control, dependencies,
// virtual environments, caches.
var skippedDirs = map[string]bool{
	".git": true, ".hg": true, ".svn": true, "node_modules": true, "venv": true, ".venv": true,
	"__pycache__": true, ".tox": true, ".nox": true, ".mypy_cache": true, ".pytest_cache": true, "site-packages": true,
	".idea": true, ".vscode": true,
}

// Scannable reports whether a file found under a scanned folder is read:
// Python, .env files, YAML, JSON, TOML, INI and other configs, CI files,
// shell scripts and Dockerfiles. A file named on the command line is read
// whatever its name.
func Scannable(name string) bool {
	base := strings.ToLower(filepath.Base(name))
	switch {
	case base == ".env" || strings.HasPrefix(base, ".env.") || strings.HasSuffix(base, ".env"):
		return true
	case base == "dockerfile" || strings.HasPrefix(base, "dockerfile.") || strings.HasSuffix(base, ".dockerfile"):
		return true
	case base == "jenkinsfile" || base == "makefile" || base == "procfile" || base == "locust.conf" || base == ".locust.conf":
		return true
	}
	switch filepath.Ext(base) {
	case ".py", ".pyw", ".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".properties",
		".sh", ".bash", ".zsh", ".ksh", ".envrc", ".tf", ".tfvars", ".mk":
		return true
	}
	return false
}

func isPython(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".py" || ext == ".pyw"
}

// Scan reads every scannable file under paths (files or folders) and
// returns the findings. A path that does not exist is an error naming it.
func Scan(paths []string, opts Options) (*Report, error) {
	if _, err := generic(); err != nil {
		return nil, fmt.Errorf("load the generic rule set: %w", err)
	}
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, errors.Unwrap(err))
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && skippedDirs[d.Name()] {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && Scannable(path) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", p, err)
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	type result struct {
		findings []Finding
		notice   string
		err      error
	}
	results := make([]result, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				src, err := os.ReadFile(files[i])
				switch {
				case err != nil:
					results[i].err = fmt.Errorf("%s: %w", files[i], errors.Unwrap(err))
					continue
				case len(src) > maxFileSize:
					results[i].notice = fmt.Sprintf("%s: skipped: larger than %d MiB", filepath.ToSlash(files[i]), maxFileSize>>20)
					continue
				case bytes.IndexByte(src[:min(len(src), 8000)], 0) >= 0:
					continue // binary
				}
				results[i].findings, results[i].notice, results[i].err = ScanFile(filepath.ToSlash(files[i]), src, opts.Rules)
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	r := &Report{Files: len(files)}
	for _, res := range results {
		if res.err != nil {
			return nil, res.err
		}
		if res.notice != "" {
			r.Notices = append(r.Notices, res.notice)
		}
		r.Findings = append(r.Findings, res.findings...)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		f.Baselined = opts.Baseline.Accepts(f.Fingerprint)
		f.Provided = provider(*f, opts.Provided)
	}
	return r, nil
}

// ScanFile finds the credentials of one file's content. file is the name
// reported (and decides how the file is read); notice says what the user
// should know (a Python file read by the line rules only).
func ScanFile(file string, src []byte, rules RuleSet) ([]Finding, string, error) {
	gen, err := scanGeneric(file, src)
	if err != nil {
		return nil, "", err
	}
	if rules == GenericRules {
		return describe(dropIgnored(src, gen), nil), "", nil
	}
	var own []Finding
	notice := ""
	if isPython(file) {
		own, err = scanPython(file, src)
		if err != nil {
			notice = fmt.Sprintf("%s: read line by line: %v", file, err)
			own = scanText(file, src)
		}
	} else {
		own = scanText(file, src)
	}
	// A value both sets find is reported once, as the Locust rule saw it
	// (its kind and variable say more than a token format does).
	for _, g := range gen {
		if !slices.ContainsFunc(own, func(o Finding) bool { return overlaps(o.span, g.span) }) {
			own = append(own, g)
		}
	}
	slices.SortFunc(own, func(a, b Finding) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return describe(dropIgnored(src, own), pluginPolicies(src)), notice, nil
}

// describe sets what a finding shows instead of its value: the masked
// preview, the length, the fingerprint; and the policies its file reads
// through the plugin.
func describe(fs []Finding, plugin []string) []Finding {
	for i := range fs {
		f := &fs[i]
		v := f.Value.RevealString()
		f.Preview = Mask(v)
		f.Length = utf8.RuneCountInString(v)
		f.Fingerprint = fingerprint(*f)
		f.plugin = plugin
	}
	return fs
}

func overlaps(a, b span) bool { return a.start < b.end && b.start < a.end }

// dropIgnored removes the findings on a line that carries IgnoreMarker.
func dropIgnored(src []byte, fs []Finding) []Finding {
	if !bytes.Contains(src, []byte(IgnoreMarker)) {
		return fs
	}
	lines := bytes.Split(src, []byte("\n"))
	out := fs[:0]
	for _, f := range fs {
		if f.Line-1 < len(lines) && bytes.Contains(lines[f.Line-1], []byte(IgnoreMarker)) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func secretOf(b []byte) secret.Secret { return secret.New(bytes.Clone(b)) }
