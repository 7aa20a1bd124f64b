package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/swarmkey/swarmkey/scan"
)

// A load-test project with hardcoded credentials of several kinds.
const (
	plantedToken    = "tk_4f9a2c7e1b8d3f6a0c5e9b2d7f1a4c8e"
	plantedPassword = "Kx9!mQ2v-Lp7w"
	plantedDBPass   = "Db!p4ss-Zq81Lx"
)

func writeProject(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"locustfile.py": `from locust import HttpUser, task

API_TOKEN = "` + plantedToken + `"


class U(HttpUser):
    def on_start(self):
        self.client.post("/login", json={"email": "a@b.c", "password": "` + plantedPassword + `"})

    @task
    def t(self):
        self.client.get("/", headers={"Authorization": f"Bearer {API_TOKEN}"})
`,
		".env":      "API_BASE=https://api.internal\nDB_PASSWORD=" + plantedDBPass + "\n",
		"README.md": "token: " + plantedToken + "\n", // not a file kind scan reads in a folder
	}
	for name, src := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
}

func TestScanCommand(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, dir: t.TempDir()}
	c.env = append(os.Environ(), "SWARMKEY_CONFIG=")
	project := filepath.Join(c.dir, "project")
	require.NoError(t, os.Mkdir(project, 0o755))
	writeProject(t, project)

	r := c.run("scan", project)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)^\S*project/locustfile\.py:3 +header +API_TOKEN +tk_4…8e \(35 chars\) +\S*locustfile\.py:12 header Authorization +none: swarmkey import$`, r.stdout)
	require.Regexp(t, `(?m)^\S*project/locustfile\.py:8 +login-payload +password `, r.stdout)
	require.Regexp(t, `(?m)^\S*project/\.env:2 +assignment +DB_PASSWORD `, r.stdout)
	require.Contains(t, r.stdout, "3 findings (3 not in the baseline) in 2 files")
	require.Contains(t, r.stderr, "3 hardcoded credentials not in the baseline")

	r = c.run("scan", "-o", "json", project)
	require.Equal(t, 1, r.code, r.stderr)
	var doc struct {
		Findings []scan.Finding `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc))
	require.Len(t, doc.Findings, 3)

	r = c.run("scan", "-o", "sarif", project)
	require.Equal(t, 1, r.code, r.stderr)
	var sarif map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sarif))
	require.Equal(t, "2.1.0", sarif["version"])

	// A baseline accepts what is there; a new credential fails again.
	baseline := filepath.Join(c.dir, "baseline.json")
	r = c.run("scan", "--write-baseline", baseline, project)
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("scan", "--baseline", baseline, project)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "3 findings (0 not in the baseline)")
	require.NoError(t, os.WriteFile(filepath.Join(project, "more.py"), []byte("SECRET_KEY = \"dj-7k2@p9!x#m4q$z8w&l1v\"\n"), 0o644))
	r = c.run("scan", "--baseline", baseline, project)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "4 findings (1 not in the baseline)")

	// # swarmkey:ignore leaves a line out.
	require.NoError(t, os.WriteFile(filepath.Join(project, "more.py"), []byte("SECRET_KEY = \"dj-7k2@p9!x#m4q$z8w&l1v\"  # swarmkey:ignore\n"), 0o644))
	r = c.run("scan", "--baseline", baseline, project)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	// A file named on the command line is read whatever its name.
	r = c.run("scan", filepath.Join(project, "README.md"))
	require.Equal(t, 1, r.code, r.stdout+r.stderr)

	// Bad input: exit 2, naming what to fix.
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"scan", "-o", "xml", project}, `-o "xml": use table, json or sarif`},
		{[]string{"scan", filepath.Join(c.dir, "missing")}, "missing: no such file or directory"},
		{[]string{"scan", "--baseline", filepath.Join(c.dir, "missing.json"), project}, "missing.json"},
		{[]string{"scan", "--no-such-flag"}, "--no-such-flag"},
		{[]string{"--config", filepath.Join(c.dir, "missing.yaml"), "scan", project}, "invalid configuration"},
	} {
		r = c.run(bad.args...)
		require.Equal(t, 2, r.code, "%v: %s%s", bad.args, r.stdout, r.stderr)
		require.Contains(t, r.stderr, bad.says)
	}
	c.requireNoLeak(plantedToken, plantedPassword, plantedDBPass, "dj-7k2@p9!x#m4q$z8w&l1v")
}

// TestScanInventory: with a config, the report names the policy whose exec
// variable a finding's variable is.
func TestScanInventory(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, dir: t.TempDir()}
	c.env = append(os.Environ(), "SWARMKEY_CONFIG=")
	c.config = filepath.Join(c.dir, "swarmkey.yaml")
	c.write(c.config, `database: env:SWARMKEY_DATABASE_URL
stores:
  file: { dir: secrets, key_file: secrets.key }
policies:
  - name: load-api
    secret: loadtest/load-api
    schedule: "@daily"
    target:
      generated: { field: api_key }
`)
	project := filepath.Join(c.dir, "project")
	require.NoError(t, os.Mkdir(project, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(project, "locustfile.py"), []byte(
		"import os\nKEY = os.getenv(\"LOAD_API_API_KEY\", \""+plantedToken+"\")\n"), 0o644))
	r := c.run("scan", project)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)locustfile\.py:2 +env-default +LOAD_API_API_KEY .* load-api \(exec sets LOAD_API_API_KEY\)$`, r.stdout)
	c.requireNoLeak(plantedToken)
}

// TestPreCommitHook reads .pre-commit-hooks.yaml as pre-commit does and
// runs its entry on staged file names: it fails a commit that adds a
// credential and passes one that does not. Its files pattern selects the
// files scan reads in a folder.
func TestPreCommitHook(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", ".pre-commit-hooks.yaml"))
	require.NoError(t, err)
	var hooks []struct {
		ID            string `yaml:"id"`
		Entry         string `yaml:"entry"`
		Language      string `yaml:"language"`
		PassFilenames *bool  `yaml:"pass_filenames"`
		Files         string `yaml:"files"`
	}
	require.NoError(t, yaml.Unmarshal(data, &hooks))
	require.Len(t, hooks, 1)
	h := hooks[0]
	require.Equal(t, "swarmkey-scan", h.ID)
	require.Equal(t, "golang", h.Language, "pre-commit builds the hook with go install")
	require.True(t, h.PassFilenames == nil || *h.PassFilenames)
	words := strings.Fields(h.Entry)
	require.Equal(t, []string{"swarmkey", "scan"}, words[:2])

	files := regexp.MustCompile(h.Files)
	for _, name := range []string{"locustfile.py", "a/b/tasks.py", ".env", "envs/.env.staging", "prod.env", "c.yaml", "d.yml",
		"e.json", "p.toml", "l.ini", "locust.conf", "run.sh", "Dockerfile", "docker/Dockerfile.ci", ".gitlab-ci.yml", "vars.tfvars",
		"README.md", "main.go", "logo.png", "notes.txt"} {
		require.Equal(t, scan.Scannable(name), files.MatchString(name), "%s: the hook's files pattern and scan.Scannable disagree", name)
	}

	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.py")
	dirty := filepath.Join(dir, "locustfile.py")
	require.NoError(t, os.WriteFile(clean, []byte("import os\nTOKEN = os.environ[\"API_TOKEN\"]\n"), 0o644))
	require.NoError(t, os.WriteFile(dirty, []byte("API_TOKEN = \""+plantedToken+"\"\n"), 0o644))
	hook := func(names ...string) (int, string) {
		cmd := exec.Command(binary, append(words[1:], names...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SWARMKEY_CONFIG=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}
	code, out := hook("clean.py")
	require.Equal(t, 0, code, out)
	code, out = hook("clean.py", "locustfile.py")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "locustfile.py:1")
	require.NotContains(t, out, plantedToken)
}
