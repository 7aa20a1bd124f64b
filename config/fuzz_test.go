package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as a policy file (which also includes
// itself once, through a glob) to Load and to ValidateFiles' loader: they may
// reject it, but must not panic, and every error must name the file.
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
			}
		}
	})
}
