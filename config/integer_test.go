package config

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// intFieldsOf lists the paths of the integer fields below the type t, the
// way a policy file spells them ("policies[].target.postgres.port").
func intFieldsOf(path string, t reflect.Type, depth int) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case depth > 8, t == durationType:
		return nil
	case isInt(t.Kind()):
		return []string{path}
	case t.Kind() == reflect.Slice:
		return intFieldsOf(path+"[]", t.Elem(), depth+1)
	case t.Kind() == reflect.Map:
		return intFieldsOf(path+".*", t.Elem(), depth+1)
	case t.Kind() != reflect.Struct:
		return nil
	}
	var out []string
	f := yamlFieldsOf(t)
	for _, name := range f.sorted {
		out = append(out, intFieldsOf(childPath(path, name), f.types[name], depth+1)...)
	}
	return out
}

// TestIntegerFieldsRefuseDecimals: a decimal number in an integer field is
// an error at its line, not a value truncated without a word (port: 47011.9
// would connect to 47011), in every integer field of the format, through
// an alias too.
func TestIntegerFieldsRefuseDecimals(t *testing.T) {
	// Every integer field of the file format is set below; a new one fails
	// here until the test sets it too.
	require.Equal(t, []string{
		"notifications.attempts",
		"policies[].canary.attempts",
		"policies[].max_attempts",
		"policies[].password.length",
		"policies[].target.http.max_attempts",
		"policies[].target.http.max_response_bytes",
		"policies[].target.http.verify.status",
		"policies[].target.mysql.port",
		"policies[].target.postgres.port",
		"policies[].target.redis.db",
		"policies[].target.redis.port",
	}, intFieldsOf("", reflect.TypeFor[rawFile](), 0))

	_, err := loadText(t, decodeHead+`
  - name: pg
    schedule: "@daily"
    target:
      postgres: { host: h, dbname: d, username: u, group_role: g, admin: env:A, port: 47011.9 }
    password: { length: 24.5 }
    max_attempts: 3.0
    canary: { attempts: 1e1 }
  - name: api
    schedule: "@daily"
    target:
      http:
        max_attempts: &n 2.5
        max_response_bytes: 65536.5
        auth: { type: bearer, secret: env:TOKEN }
        issue: { url: "https://k.example.com/keys", key: /key, id: /id }
        verify: { url: "https://k.example.com/me", key_in: query, status: *n }
        revoke: { url: "https://k.example.com/keys/{{.KeyID}}" }
  - name: my
    strategy: single
    schedule: "@daily"
    target:
      mysql: { host: h, username: u, port: 3306.5 }
  - name: rd
    strategy: single
    schedule: "@daily"
    target:
      redis: { host: h, username: u, admin: env:R, port: 6379.5, db: 1.5 }
notifications:
  attempts: 3.5
`)
	// One error each and no follow-on: a refused value is not checked
	// against the field's bounds as well.
	es := requireErrors(t, err,
		"p.yaml:9: policies[pg].target.postgres.port: want an integer, got a decimal number",
		"p.yaml:10: policies[pg].password.length: want an integer, got a decimal number",
		"p.yaml:11: policies[pg].max_attempts: want an integer, got a decimal number",
		"p.yaml:12: policies[pg].canary.attempts: want an integer, got a decimal number",
		"p.yaml:17: policies[api].target.http.max_attempts: want an integer, got a decimal number",
		"p.yaml:18: policies[api].target.http.max_response_bytes: want an integer, got a decimal number",
		"p.yaml:21: policies[api].target.http.verify.status: want an integer, got a decimal number",
		"p.yaml:27: policies[my].target.mysql.port: want an integer, got a decimal number",
		"p.yaml:32: policies[rd].target.redis.port: want an integer, got a decimal number",
		"p.yaml:32: policies[rd].target.redis.db: want an integer, got a decimal number",
		"p.yaml:34: notifications.attempts: want an integer, got a decimal number",
	)
	for _, e := range es {
		require.NotContains(t, e.Msg, ".5", "the value is not repeated")
	}

	// Whole numbers in the forms YAML gives them still load.
	cfg, err := loadText(t, decodeHead+`
  - name: pg
    schedule: "@daily"
    target:
      postgres: { host: h, dbname: d, username: u, group_role: g, admin: env:A, port: 0x1F90 }
    password: { length: +24 }
    max_attempts: 3
`)
	require.NoError(t, err)
	p := cfg.Policies[0]
	require.Equal(t, 8080, p.Target.Postgres.Options.Port)
	require.Equal(t, 24, p.Password.Length)
	require.Equal(t, 3, p.MaxAttempts)
}
