package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadText loads text as the policy file "p.yaml" in a temporary folder and
// returns the config or the errors with the folder cut from them.
func loadText(t *testing.T, text string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(text), 0o600))
	t.Chdir(dir)
	return Load("p.yaml")
}

const decodeHead = "database: env:DB\nstores:\n  file: { dir: /s, key_file: /k }\npolicies:\n"

// TestDecodeOptions: the blocks decoded into Options types take the file's
// durations (days included) and spellings the Options' own rules normalise.
func TestDecodeOptions(t *testing.T) {
	cfg, err := loadText(t, decodeHead+`
  - name: api
    schedule: "@daily"
    target:
      http:
        timeout: 1d
        max_backoff: 1m30s
        auth: { type: bearer, secret: env:TOKEN }
        issue: { method: post, url: "https://k.example.com/keys", key: /key, id: /id }
        verify: { url: "https://k.example.com/me", key_in: query }
        revoke: { method: delete, url: "https://k.example.com/keys/{{.KeyID}}" }
`)
	require.NoError(t, err)
	o := cfg.Policies[0].Target.HTTP.Options
	require.Equal(t, 24*time.Hour, o.Timeout)
	require.Equal(t, 90*time.Second, o.MaxBackoff)
	require.Equal(t, "POST", o.Issue.Method)
	require.Equal(t, "DELETE", o.Revoke.Method)
}

func TestDecodeErrors(t *testing.T) {
	_, err := loadText(t, decodeHead+`
  - name: zero
    target:
      postgres: { host: h, dbname: d, username: u, group_role: g, admin: env:A, port: 0, hots: x }
    schedule: "@daily"
  - name: api
    schedule: "@daily"
    target:
      http:
        timeout: 0
        max_backoff: 2 hours
        max_attempts: 0
        auth: { type: bearer, secret: { env: TOKEN } }
        issue: { url: "https://k.example.com/keys", key: /key, id: /id }
        verify: { url: "https://k.example.com/me", key_in: query }
        revoke: { url: "https://k.example.com/keys/{{.KeyID}}" }
`)
	requireErrors(t, err,
		"p.yaml:8: policies[zero].target.postgres.port: must not be 0; leave it out for the default",
		`p.yaml:8: policies[zero].target.postgres.hots: unknown field "hots"; did you mean "host"?`,
		"p.yaml:14: policies[api].target.http.timeout: must be longer than 0; leave it out for the default",
		`p.yaml:15: policies[api].target.http.max_backoff: bad duration "2 hours": use Go durations like 90s, 2h, 1h30m or days like 7d`,
		"p.yaml:16: policies[api].target.http.max_attempts: must not be 0; leave it out for the default",
		"p.yaml:17: policies[api].target.http.auth.secret: want a reference (a string), got a mapping",
	)
}

// TestDecodeMergeKeys: keys merged in with "<<" are checked like the
// mapping's own, and a reference merged in is found; the mapping's own
// keys win.
func TestDecodeMergeKeys(t *testing.T) {
	text := decodeHead + `
  - name: a
    target:
      postgres:
        <<: &pg { host: h, dbname: d, username: u, group_role: g, admin: env:MERGED }
        admin: env:OWN
    schedule: "@daily"
  - name: b
    target:
      postgres:
        <<: [*pg]
        username: u2
    schedule: "@daily"
`
	cfg, err := loadText(t, text)
	require.NoError(t, err)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "OWN"}, cfg.Policies[0].Target.Postgres.Admin)
	require.Equal(t, "h", cfg.Policies[0].Target.Postgres.Options.Host)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "MERGED"}, cfg.Policies[1].Target.Postgres.Admin)
	require.Equal(t, "u2", cfg.Policies[1].Target.Postgres.Options.Username)

	_, err = loadText(t, decodeHead+`
  - name: a
    target:
      postgres:
        <<: { host: h, dbname: d, username: u, group_role: g, admin: env:A, sslmod: require }
    schedule: "@daily"
`)
	requireErrors(t, err, `p.yaml:9: policies[a].target.postgres.sslmod: unknown field "sslmod"; did you mean "sslmode"?`)
}
