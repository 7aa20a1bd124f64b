package scan_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/scan"
)

func findingAt(t *testing.T, file, src string, line int) scan.Finding {
	t.Helper()
	fs, _, err := scan.ScanFile(file, []byte(src), scan.AllRules)
	require.NoError(t, err)
	for _, f := range fs {
		if f.Line == line {
			return f
		}
	}
	t.Fatalf("no finding at %s:%d in %+v", file, line, fs)
	return scan.Finding{}
}

func TestRewrite(t *testing.T) {
	env := scan.Replacement{EnvVar: "LOAD_API_API_KEY"}
	cases := []struct {
		name, file, src string
		line            int
		r               scan.Replacement
		want            string
	}{
		{name: "a whole literal, import added before the first import", file: "l.py", line: 3, r: env,
			src:  "from locust import HttpUser\n\nAPI_KEY = \"ak_3Kx9Lm2Qz7Wp4Vn8Rt\"\nh = {\"X-API-Key\": API_KEY}\n",
			want: "import os\nfrom locust import HttpUser\n\nAPI_KEY = os.environ[\"LOAD_API_API_KEY\"]\nh = {\"X-API-Key\": API_KEY}\n"},
		{name: "a Bearer literal becomes an f-string", file: "l.py", line: 2, r: env,
			src:  "import os\nh = {\"Authorization\": \"Bearer hd_9Kp4Vn8Tr3Bc6Yd2Lq7Zx\", \"q\": \"{x}\"}\n",
			want: "import os\nh = {\"Authorization\": f\"Bearer {os.environ['LOAD_API_API_KEY']}\", \"q\": \"{x}\"}\n"},
		{name: "a getenv default goes with its call", file: "l.py", line: 2, r: env,
			src:  "import os\nTOKEN = os.getenv(\"API_TOKEN\", \"st_72hd8Jk2lPq9sX0vB3nM\")\n",
			want: "import os\nTOKEN = os.environ[\"LOAD_API_API_KEY\"]\n"},
		{name: "a connection string keeps the rest", file: "db.py", line: 1, r: scan.Replacement{EnvVar: "SHOP_DB_PASSWORD"},
			src:  "DSN = 'postgresql://u:r3p0rt-Zq81x@db:5432/s'\n",
			want: "import os\nDSN = f'postgresql://u:{os.environ[\"SHOP_DB_PASSWORD\"]}@db:5432/s'\n"},
		{name: "the plugin", file: "l.py", line: 3, r: scan.Replacement{Policy: "load-api", Field: "api_key"},
			src:  "#!/usr/bin/env python3\nfrom __future__ import annotations\nAPI_KEY = \"ak_3Kx9Lm2Qz7Wp4Vn8Rt\"\n",
			want: "#!/usr/bin/env python3\nfrom __future__ import annotations\nimport swarmkey_locust\nAPI_KEY = swarmkey_locust.credential(\"load-api\")[\"api_key\"]\n"},
		{name: "a .env value", file: ".env", line: 1, r: env,
			src: "LOAD_API_KEY=ak_3Kx9Lm2Qz7Wp4Vn8Rt\n", want: "LOAD_API_KEY=${LOAD_API_API_KEY}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := findingAt(t, c.file, c.src, c.line)
			change, err := scan.RewriteDiff(c.file, []byte(c.src), f, c.r)
			require.NoError(t, err)
			require.Equal(t, c.want, string(change.New))
			require.Contains(t, change.Diff, "--- a/"+c.file)
			require.NotContains(t, change.Diff, f.Value.RevealString(), "the diff shows the old value masked")
			require.Contains(t, change.Diff, "‹"+f.Preview+"›")
			// The rewritten file holds no finding any more.
			after, _, err := scan.ScanFile(c.file, change.New, scan.AllRules)
			require.NoError(t, err)
			require.Empty(t, after)
		})
	}
}

func TestRewriteRefusesAChangedFile(t *testing.T) {
	src := "API_KEY = \"ak_3Kx9Lm2Qz7Wp4Vn8Rt\"\n"
	f := findingAt(t, "l.py", src, 1)
	_, err := scan.Rewrite([]byte(strings.Replace(src, "ak_3", "bk_3", 1)), f, scan.Replacement{EnvVar: "X"})
	require.ErrorContains(t, err, "l.py:1: the file changed since it was scanned")
}
