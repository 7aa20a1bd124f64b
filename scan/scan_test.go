package scan_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/scan"
)

// One case per pattern kind: a file, the finding expected (at its line, of
// its kind, held by its variable, used where), and the planted value, which
// must be found exactly and never printed.
var kindCases = []struct {
	name, file, src string
	line            int
	kind            scan.Kind
	variable        string
	usedAt          string // "FILE:LINE (WHAT)", "" when none
	value           string
}{
	{name: "header through a variable", file: "locustfile.py", src: `from locust import HttpUser, task

API_TOKEN = "tk_4f9a2c7e1b8d3f6a0c5e9b2d"


class U(HttpUser):
    @task
    def t(self):
        self.client.get("/", headers={"Authorization": f"Bearer {API_TOKEN}"})
`, line: 3, kind: scan.KindHeader, variable: "API_TOKEN", usedAt: "locustfile.py:9 (header Authorization)", value: "tk_4f9a2c7e1b8d3f6a0c5e9b2d"},
	{name: "header literal with its scheme", file: "l.py", src: `self.client.get("/", headers={"Authorization": "Bearer hd_9Kp4Vn8Tr3Bc6Yd2Lq7Zx"})
`, line: 1, kind: scan.KindHeader, variable: "Authorization", value: "hd_9Kp4Vn8Tr3Bc6Yd2Lq7Zx"},
	{name: "X-API-Key of a class attribute", file: "l.py", src: `class U(HttpUser):
    api_key = "pk_9d8c7b6a5f4e3d2c1b0a"

    @task
    def t(self):
        self.client.get("/", headers={"X-API-Key": self.api_key})
`, line: 2, kind: scan.KindHeader, variable: "api_key", usedAt: "l.py:6 (header X-API-Key)", value: "pk_9d8c7b6a5f4e3d2c1b0a"},
	{name: "auth tuple", file: "l.py", src: `PW = "Vh3rT8qZ1nWx"
self.client.get("/admin", auth=("ops", PW))
`, line: 1, kind: scan.KindAuthTuple, variable: "PW", usedAt: "l.py:2 (auth tuple)", value: "Vh3rT8qZ1nWx"},
	{name: "HTTPBasicAuth", file: "l.py", src: `self.client.get("/me", auth=HTTPBasicAuth("svc", "Tq4!zWm9pLx2"))
`, line: 1, kind: scan.KindAuthTuple, value: "Tq4!zWm9pLx2"},
	{name: "login payload", file: "l.py", src: `self.client.post("/login", json={"email": "a@b.c", "password": "Kx9!mQ2v-Lp7w"})
`, line: 1, kind: scan.KindLoginPayload, variable: "password", value: "Kx9!mQ2v-Lp7w"},
	{name: "connection string", file: "db.py", src: `DSN = "postgresql://reporter:r3p0rt-Zq81x@db.internal:5432/search"
`, line: 1, kind: scan.KindConnectionString, variable: "DSN", value: "r3p0rt-Zq81x"},
	{name: "getenv default used in a header", file: "l.py", src: `import os
TOKEN = os.getenv("SEARCH_API_TOKEN", "st_72hd8Jk2lPq9sX0vB3nM")
self.client.get("/", headers={"Authorization": "Token " + TOKEN})
`, line: 2, kind: scan.KindEnvDefault, variable: "SEARCH_API_TOKEN", usedAt: "l.py:3 (header Authorization)", value: "st_72hd8Jk2lPq9sX0vB3nM"},
	{name: "os.environ.get default", file: "l.py", src: `PASSWORD = os.environ.get("DB_PASSWORD", "Pg-S3cret!81x")
`, line: 1, kind: scan.KindEnvDefault, variable: "DB_PASSWORD", value: "Pg-S3cret!81x"},
	{name: "host with userinfo", file: "l.py", src: `class U(HttpUser):
    host = "https://loadtest:Pw7zXq4Ls9@search.internal"
`, line: 2, kind: scan.KindHostUserinfo, variable: "host", value: "Pw7zXq4Ls9"},
	{name: "class attribute", file: "l.py", src: `class U(HttpUser):
    client_secret = "cs_Hq2Zx8Lm4Kp9Vn3Wt7Rc1Yb6"
`, line: 2, kind: scan.KindClassAttribute, variable: "client_secret", value: "cs_Hq2Zx8Lm4Kp9Vn3Wt7Rc1Yb6"},
	{name: "locust.conf host", file: "locust.conf", src: "locustfile = l.py\nhost = https://perf:Lc7!qZx2Wm9p@shop.internal\n",
		line: 2, kind: scan.KindHostUserinfo, variable: "host", value: "Lc7!qZx2Wm9p"},
	{name: "locust.conf key", file: "locust.conf", src: "api-token = lc_9Kp4Vn8Tr3Bc6Yd2Lq7Zx\n",
		line: 1, kind: scan.KindLocustConf, variable: "api-token", value: "lc_9Kp4Vn8Tr3Bc6Yd2Lq7Zx"},
	{name: ".env", file: ".env", src: "API_BASE=https://x\nDB_PASSWORD=\"Db!p4ss-Zq81Lx\"\n",
		line: 2, kind: scan.KindAssignment, variable: "DB_PASSWORD", value: "Db!p4ss-Zq81Lx"},
	{name: "YAML", file: "c.yaml", src: "auth:\n  password: Yl9!qZ2xLm7w\n", line: 2, kind: scan.KindAssignment, variable: "password", value: "Yl9!qZ2xLm7w"},
	{name: "JSON", file: "c.json", src: "{\n  \"apiKey\": \"js_7Wm4Kp9Vn3Tr6Lq2Zx8Bc\",\n  \"users\": 3\n}\n",
		line: 2, kind: scan.KindAssignment, variable: "apiKey", value: "js_7Wm4Kp9Vn3Tr6Lq2Zx8Bc"},
	{name: "TOML", file: "p.toml", src: "[tool]\napi_token = \"tm_2Lq7Zx9Wm4Kp6Vn8Tr3Bc\"\n", line: 2, kind: scan.KindAssignment, variable: "api_token", value: "tm_2Lq7Zx9Wm4Kp6Vn8Tr3Bc"},
	{name: "INI", file: "l.ini", src: "[creds]\npassword = In1!Zq8xLm2w\n", line: 2, kind: scan.KindAssignment, variable: "password", value: "In1!Zq8xLm2w"},
	{name: "shell curl header", file: "s.sh", src: "curl -H \"Authorization: Bearer cu_9Vn3Tr6Lq2Zx8Wm7Kp4B\" https://x/health\n",
		line: 1, kind: scan.KindHeader, variable: "Authorization", value: "cu_9Vn3Tr6Lq2Zx8Wm7Kp4B"},
	{name: "shell --host", file: "s.sh", src: "locust --headless --host \"https://runner:Rn8zQ2xLm7w@api.internal\"\n",
		line: 1, kind: scan.KindHostUserinfo, value: "Rn8zQ2xLm7w"},
	{name: "Dockerfile ENV", file: "Dockerfile", src: "FROM locustio/locust\nENV API_KEY=dk_7Lq2Zx9Wm4Kp6Vn8Tr3B\n",
		line: 2, kind: scan.KindAssignment, variable: "API_KEY", value: "dk_7Lq2Zx9Wm4Kp6Vn8Tr3B"},
	{name: "CI variables", file: ".gitlab-ci.yml", src: "job:\n  variables:\n    API_TOKEN: \"ci_8Tr3Bc6Lq2Zx7Wm9Kp4V\"\n",
		line: 3, kind: scan.KindAssignment, variable: "API_TOKEN", value: "ci_8Tr3Bc6Lq2Zx7Wm9Kp4V"},
	{name: "known token format", file: "notes.py", src: "# old key: " + "gh" + "p_Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5\n",
		line: 1, kind: scan.KindToken, value: "gh" + "p_Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5"},
}

func scanDir(t *testing.T, files map[string]string, opts scan.Options) *scan.Report {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	t.Chdir(dir)
	r, err := scan.Scan([]string{"."}, opts)
	require.NoError(t, err)
	return r
}

func TestEachPatternKind(t *testing.T) {
	require.True(t, scan.PythonParsed, "the tests run with cgo: the Python parser is part of what they test")
	for _, c := range kindCases {
		t.Run(c.name, func(t *testing.T) {
			r := scanDir(t, map[string]string{c.file: c.src}, scan.Options{})
			require.Len(t, r.Findings, 1, "%+v", r.Findings)
			f := r.Findings[0]
			require.Equal(t, c.line, f.Line)
			require.Equal(t, c.kind, f.Kind)
			if c.variable != "" {
				require.Equal(t, c.variable, f.Variable)
			}
			var used []string
			for _, u := range f.UsedAt {
				used = append(used, u.String())
			}
			require.Equal(t, c.usedAt, strings.Join(used, ", "))
			require.Equal(t, c.value, f.Value.RevealString())
			require.Equal(t, scan.Mask(c.value), f.Preview)
			requireNoValue(t, r, c.value)
		})
	}
}

// requireNoValue writes the report in every format and searches them for
// the value.
func requireNoValue(t *testing.T, r *scan.Report, values ...string) {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, scan.WriteTable(&out, r))
	require.NoError(t, scan.WriteJSON(&out, r))
	require.NoError(t, scan.WriteSARIF(&out, r))
	require.NoError(t, scan.WriteBaseline(&out, r.Findings))
	for _, v := range values {
		require.NotContains(t, out.String(), v, "a planted value appears in the output")
	}
}

func TestLookAlikesAreNoFindings(t *testing.T) {
	r := scanDir(t, map[string]string{
		"locustfile.py": `import os
API_TOKEN = os.environ["API_TOKEN"]
PASSWORD = os.getenv("LOAD_PASSWORD")
PLACEHOLDER = "changeme"
TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
TOKEN_URL = "https://auth.internal/oauth/token"
ASSET = "/static/app.4f3c2a1b9e8d7c6b5a4f3e2d1c0b9a8f.js"
self.client.get("/", headers={"Authorization": f"Bearer {API_TOKEN}"})
self.client.post("/login", json={"user": "u", "password": PASSWORD})
self.client.post("/login", json={"user": "u", "password": "<your-password>"})
`,
		".env.example": "API_TOKEN=changeme\nDATABASE_URL=postgres://app:${DB_PASSWORD}@db/app\n",
		"c.yaml":       "database: env:SWARMKEY_DATABASE_URL\nsecret: loadtest/payments-api\npassword_min_length: 12\n",
	}, scan.Options{})
	require.Empty(t, r.Findings, "%+v", r.Findings)
}

func TestIgnoreMarker(t *testing.T) {
	src := "API_KEY = \"demo-3Kx9Lm2Qz7Wp4Vn8\"  # swarmkey:ignore\nOTHER_TOKEN = \"demo-9Zx2Lm7Qp4Wv3Kn8\"\n"
	r := scanDir(t, map[string]string{"l.py": src}, scan.Options{})
	require.Len(t, r.Findings, 1)
	require.Equal(t, 2, r.Findings[0].Line)
}

func TestBaselineAcceptsKnownFindingsOnly(t *testing.T) {
	files := map[string]string{"l.py": "API_KEY = \"ak_3Kx9Lm2Qz7Wp4Vn8Rt\"\n"}
	r := scanDir(t, files, scan.Options{})
	require.Len(t, r.New(), 1)
	path := filepath.Join(t.TempDir(), "baseline.json")
	var buf bytes.Buffer
	require.NoError(t, scan.WriteBaseline(&buf, r.Findings))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	b, err := scan.LoadBaseline(path)
	require.NoError(t, err)

	// The finding moved two lines down: still accepted. A new one is not.
	files["l.py"] = "import os\n\nAPI_KEY = \"ak_3Kx9Lm2Qz7Wp4Vn8Rt\"\nDB_PASSWORD = \"Pg!x8Lm2Qz7W\"\n"
	r = scanDir(t, files, scan.Options{Baseline: b})
	require.Len(t, r.Findings, 2)
	require.True(t, r.Findings[0].Baselined)
	require.Len(t, r.New(), 1)
	require.Equal(t, 4, r.New()[0].Line)

	require.NoError(t, os.WriteFile(path, []byte(`{"version": 2}`), 0o644))
	_, err = scan.LoadBaseline(path)
	require.ErrorContains(t, err, "version 2")
}

func TestInventoryNamesThePolicyThatProvidesACredential(t *testing.T) {
	provided := []scan.Provided{{Policy: "payments-api", EnvVars: []string{"PAYMENTS_API_API_KEY"}, Fields: []string{"api_key"}}}
	r := scanDir(t, map[string]string{
		"a.py":  "import os\nKEY = os.getenv(\"PAYMENTS_API_API_KEY\", \"pay_Lq7Zx2Wm9Kp4Vn8Tr3Bc6Y\")\nOTHER_TOKEN = \"ot_Lq7Zx2Wm9Kp4Vn8Tr3Bc6Y\"\n",
		"b.py":  "import swarmkey_locust\napi_key = \"pk_9d8c7b6a5f4e3d2c1b0a\"\nkey = swarmkey_locust.credential(\"payments-api\")[\"api_key\"]\n",
		".env":  "PAYMENTS_API_API_KEY=pay_Zq7Lx2Wm9Kp4Vn8Tr3Bc6Y\n",
		"c.env": "UNRELATED_TOKEN=un_Zq7Lx2Wm9Kp4Vn8Tr3Bc6Y\n",
	}, scan.Options{Provided: provided})
	by := map[string]string{}
	for _, f := range r.Findings {
		if f.Provided != nil {
			by[f.Location()] = f.Provided.Policy + ": " + f.Provided.By
		} else {
			by[f.Location()] = ""
		}
	}
	require.Equal(t, map[string]string{
		"a.py:2":  "payments-api: exec sets PAYMENTS_API_API_KEY",
		"a.py:3":  "",
		"b.py:2":  `payments-api: credential("payments-api") in this file`,
		".env:1":  "payments-api: exec sets PAYMENTS_API_API_KEY",
		"c.env:1": "",
	}, by)
}

func TestMask(t *testing.T) {
	require.Equal(t, "sk_l…9f (40 chars)", scan.Mask("sk_l"+strings.Repeat("x", 34)+"9f"))
	require.Equal(t, "Pg… (12 chars)", scan.Mask("Pg!x8Lm2Qz7W"))
	require.Equal(t, "… (6 chars)", scan.Mask("abcdef"))
}

// TestSARIFIsValid validates the SARIF output against the SARIF 2.1.0
// schema (testdata/sarif-schema-2.1.0.json, from the OASIS specification's
// repository), with findings of every kind, a baselined one and uses.
func TestSARIFIsValid(t *testing.T) {
	schemaPath := filepath.Join(schemaDir(t), "sarif-schema-2.1.0.json")
	files := map[string]string{}
	var values []string
	for _, c := range kindCases {
		files[filepath.Join(strings.ReplaceAll(c.name, " ", "_"), c.file)] = c.src
		values = append(values, c.value)
	}
	r := scanDir(t, files, scan.Options{})
	require.Len(t, r.Findings, len(kindCases))
	r.Findings[0].Baselined = true
	var out bytes.Buffer
	require.NoError(t, scan.WriteSARIF(&out, r))

	c := jsonschema.NewCompiler()
	schemaDoc, err := os.Open(schemaPath)
	require.NoError(t, err)
	defer schemaDoc.Close()
	doc, err := jsonschema.UnmarshalJSON(schemaDoc)
	require.NoError(t, err)
	require.NoError(t, c.AddResource("sarif-schema-2.1.0.json", doc))
	schema, err := c.Compile("sarif-schema-2.1.0.json")
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.NoError(t, schema.Validate(inst))

	// And the schema does catch a broken log, so the check means something.
	var broken map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &broken))
	broken["version"] = "2.0.0"
	require.Error(t, schema.Validate(broken))

	var log struct {
		Runs []struct {
			Results []struct {
				RuleID        string `json:"ruleId"`
				Level         string `json:"level"`
				BaselineState string `json:"baselineState"`
			} `json:"results"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &log))
	require.Len(t, log.Runs[0].Results, len(kindCases))
	require.Equal(t, "note", log.Runs[0].Results[0].Level)
	require.Equal(t, "unchanged", log.Runs[0].Results[0].BaselineState)
	require.Equal(t, "error", log.Runs[0].Results[1].Level)
	requireNoValue(t, r, values...)
}

func schemaDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	return dir
}

func TestJSONOutput(t *testing.T) {
	r := scanDir(t, map[string]string{"l.py": "PW = \"Vh3rT8qZ1nWx\"\nself.client.get(\"/\", auth=(\"u\", PW))\n"}, scan.Options{})
	var out bytes.Buffer
	require.NoError(t, scan.WriteJSON(&out, r))
	var doc struct {
		Files    int `json:"files"`
		New      int `json:"new"`
		Findings []map[string]any
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.Equal(t, 1, doc.Files)
	require.Equal(t, 1, doc.New)
	require.Len(t, doc.Findings, 1)
	f := doc.Findings[0]
	require.Equal(t, "l.py", f["file"])
	require.Equal(t, float64(1), f["line"])
	require.Equal(t, "auth-tuple", f["kind"])
	require.Equal(t, "PW", f["variable"])
	require.Equal(t, "Vh… (12 chars)", f["preview"])
	require.NotContains(t, f, "Value")
	require.NotContains(t, out.String(), "Vh3rT8qZ1nWx")
}

func TestTableOutput(t *testing.T) {
	r := scanDir(t, map[string]string{"l.py": "PW = \"Vh3rT8qZ1nWx\"\nself.client.get(\"/\", auth=(\"u\", PW))\n"}, scan.Options{})
	var out bytes.Buffer
	require.NoError(t, scan.WriteTable(&out, r))
	require.Regexp(t, `(?m)^l\.py:1 +auth-tuple +PW +Vh… \(12 chars\) +l\.py:2 auth tuple +none: swarmkey import$`, out.String())
	require.Contains(t, out.String(), "1 findings (1 not in the baseline) in 1 files")
}
