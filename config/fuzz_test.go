package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as a policy file (which also includes
// itself once, through a glob) to Load and to ValidateFiles' loader: they may
// reject it, but must not panic, every error must name the file, and an
// error that calls it no policy file quotes none of its lines. Cutting the
// file at its policies: entries (split.go) must give what decoding it whole
// gives, config and errors alike.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range append(seeds, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("policies:\n  - name: x\n    schedule: \"TZ=\"\n"))
	f.Add([]byte(shadowLines))
	f.Add([]byte("policies:\n  - name: x\n    target: { postgres: { port: 5432.5 } }\n    max_attempts: &n 1e3\n    password: { length: *n }\n"))
	f.Add([]byte("database: *unknown-anchor-name\n"))
	for _, text := range cutSeeds {
		f.Add([]byte(text))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, validate := range []bool{false, true} {
			l := newLoader(validate)
			l.readFile = func(name string) ([]byte, error) {
				if name == "fuzz.yaml" || name == "inc.yaml" {
					return data, nil
				}
				return nil, fs.ErrNotExist
			}
			l.glob = func(string) ([]string, error) { return []string{"inc.yaml"}, nil }
			cfg, err := l.load([]string{"fuzz.yaml"})
			if msg := wholeDifference(l, []string{"fuzz.yaml"}, cfg, err); msg != "" {
				t.Fatal(msg)
			}
			if err == nil {
				if cfg == nil {
					t.Fatal("nil config without an error")
				}
				continue
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("want Errors, got %T: %v", err, err)
			}
			for _, e := range es {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("error without file or message: %#v", e)
				}
				if strings.Contains(e.Msg, "not a swarmkey policy file") {
					requireNoLineOf(t, e, data)
				}
			}
		}
	})
}

// notPolicyWords are the fixed words of the errors about a file that is
// not a policy file: a line of the input that is one of them is no quote.
const notPolicyWords = "not a swarmkey policy file (none of its top-level keys is database:, stores:, include:, deny:, policies: or notifications:) " +
	"its top level is a string, not a mapping of bad YAML: cannot parse the YAML: (…)"

// requireNoLineOf fails when e quotes a line of data (one of 16 bytes or
// more, trimmed, that is not part of the error's fixed words).
func requireNoLineOf(t *testing.T, e Error, data []byte) {
	t.Helper()
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.Contains(notPolicyWords, line) && strings.Contains(e.Error(), line) {
			t.Fatalf("%q quotes the line %q", e.Error(), line)
		}
	}
}
