// Command scanbench times `swarmkey scan` over a generated load-test tree
// beside `grep -rE` of the same credential words over the same tree, in the
// same run, rounds alternating: the figure is the ratio of the medians
// (`make bench`). The tree has -files files: locustfiles, .env files, YAML,
// JSON and shell scripts, one in ten holding a credential.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
)

// grepPattern is the credential words scan's rules look for.
const grepPattern = `(password|passwd|secret|token|api[_-]?key|apikey|authorization|bearer|://[^:/@ ]*:[^@ ]+@)`

func main() {
	files := flag.Int("files", 10000, "files in the generated tree")
	rounds := flag.Int("rounds", 5, "rounds of each command")
	binary := flag.String("binary", "bin/swarmkey", "the swarmkey binary")
	flag.Parse()
	if err := run(*files, *rounds, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "scanbench:", err)
		os.Exit(1)
	}
}

func run(files, rounds int, binary string) error {
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("%s: %w (make build)", binary, err)
	}
	dir, err := os.MkdirTemp("", "scanbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := generate(dir, files); err != nil {
		return err
	}
	commands := map[string][]string{
		"swarmkey scan": {binary, "scan", "-o", "json", dir},
		"grep -rE":      {"grep", "-rEi", grepPattern, dir},
	}
	times := map[string][]time.Duration{}
	for range rounds {
		for _, name := range []string{"grep -rE", "swarmkey scan"} {
			d, err := timeOne(commands[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			times[name] = append(times[name], d)
		}
	}
	scanMedian, grepMedian := median(times["swarmkey scan"]), median(times["grep -rE"])
	ratio := float64(scanMedian) / float64(grepMedian)
	fmt.Printf("scan of %d files, %d rounds (medians): swarmkey scan %s, grep -rE %s, ratio %.1f\n",
		files, rounds, scanMedian.Round(time.Millisecond), grepMedian.Round(time.Millisecond), ratio)
	// The README sets no aim for scan's speed: grep matches one pattern
	// where scan parses Python and runs ~220 rules, so the figure is for
	// information (no aim, never a miss).
	headline.Print(headline.Figure{
		Name:     fmt.Sprintf("scan time / grep -rEi time, %d files (median of %d rounds)", files, rounds),
		Aim:      "—",
		Measured: fmt.Sprintf("%s vs %s", scanMedian.Round(time.Millisecond), grepMedian.Round(time.Millisecond)),
		Ratio:    ratio,
		Pass:     true,
	})
	return nil
}

// timeOne runs a command; exit status 1 (a finding, a match) is success.
func timeOne(argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SWARMKEY_CONFIG=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		err = nil
	}
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, stderr.String())
	}
	return d, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// generate writes n files in folders of 100, cycling through the kinds.
func generate(dir string, n int) error {
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("svc%03d", i/100))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		name, body := sample(i)
		if err := os.WriteFile(filepath.Join(sub, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func sample(i int) (string, string) {
	secret := ""
	if i%10 == 0 {
		secret = fmt.Sprintf("Zq%06dLm7Wx2Kp9", i)
	}
	switch i % 5 {
	case 0:
		token := `os.environ["API_TOKEN"]`
		if secret != "" {
			token = `"tk_` + secret + `"`
		}
		return fmt.Sprintf("locustfile_%d.py", i), fmt.Sprintf(`import os

from locust import HttpUser, between, task

API_TOKEN = %s
TENANT = "3f2504e0-4f89-11d3-9a0c-%012d"


class User%d(HttpUser):
    wait_time = between(1, 2)

    @task
    def browse(self):
        self.client.get(f"/tenants/{TENANT}/items", headers={"Authorization": f"Bearer {API_TOKEN}"})

    @task
    def search(self):
        self.client.get("/search?q=shoes&page=2")
`, token, i, i)
	case 1:
		pw := "${DB_PASSWORD}"
		if secret != "" {
			pw = secret
		}
		return fmt.Sprintf("svc_%d.env", i), fmt.Sprintf("API_BASE=https://api.internal\nDB_HOST=db%d.internal\nDB_PASSWORD=%s\nUSERS=50\n", i, pw)
	case 2:
		pw := "env:LOAD_PASSWORD"
		if secret != "" {
			pw = secret
		}
		return fmt.Sprintf("load_%d.yaml", i), fmt.Sprintf("target:\n  host: https://api.internal\n  users: %d\nauth:\n  username: load\n  password: %s\n", i, pw)
	case 3:
		return fmt.Sprintf("settings_%d.json", i), fmt.Sprintf("{\n  \"baseUrl\": \"https://api.internal\",\n  \"users\": %d,\n  \"retry\": {\"attempts\": 3}\n}\n", i)
	}
	return fmt.Sprintf("run_%d.sh", i), fmt.Sprintf("#!/bin/sh\nset -eu\nlocust --headless -u %d -r 5 -t 2m --host https://api.internal\n", i%200)
}
