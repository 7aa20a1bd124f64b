package app

import (
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/config"
)

func TestReferencedEnv(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, fileStore+`policies:
  - name: pg
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: app, group_role: app_rw, admin: env:PG_ADMIN_URL }
  - name: pg-too
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: other, group_role: other_rw, admin: env:PG_ADMIN_URL }
  - name: pg-file
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: third, group_role: third_rw, admin: file:/etc/swarmkey/admin-url }
  - name: api
    schedule: "@daily"
    target:
      http:
        auth: { type: bearer, secret: env:KEYS_ADMIN_TOKEN }
        issue: { url: https://keys.example.com/v1/keys, key: /key, id: /id }
        verify: { url: https://api.example.com/v1/whoami, key_in: header, key_name: Authorization, key_prefix: "Bearer " }
        revoke: { url: "https://keys.example.com/v1/keys/{{pathescape .KeyID}}" }
  - name: shared
    schedule: "@daily"
    target:
      generated: {}
  - name: my
    schedule: "@daily"
    target:
      mysql: { host: db, username: app, role: app_rw, admin: env:MYSQL_ADMIN_DSN }
  - name: rd
    schedule: "@daily"
    target:
      redis: { host: cache, username: app, acl_rules: ["~app:*", "+@read"], admin: env:REDIS_ADMIN_URL }
notifications:
  sinks:
    - { name: hook, kind: webhook, url: "https://hooks.example.com/x", secret: env:WEBHOOK_KEY }
    - { name: chat, kind: slack, url: env:SLACK_URL }
`)
	require.Equal(t, []string{"KEYS_ADMIN_TOKEN", "MYSQL_ADMIN_DSN", "PG_ADMIN_URL", "REDIS_ADMIN_URL", "SLACK_URL", "SWARMKEY_DATABASE_URL", "WEBHOOK_KEY"}, ReferencedEnv(rt.Config))
}

// TestReferencedEnvKnowsEveryReference fails when config gains a Reference
// field that ReferencedEnv does not read: exec would pass what it points at
// on to its command.
func TestReferencedEnvKnowsEveryReference(t *testing.T) {
	t.Parallel()
	refType := reflect.TypeFor[config.Reference]()
	var found []string
	onPath := map[reflect.Type]bool{} // the struct types being walked: a cycle stops here
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if typ == refType {
			found = append(found, path)
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(typ.Elem(), path)
		case reflect.Struct:
			if onPath[typ] {
				return
			}
			onPath[typ] = true
			for i := range typ.NumField() {
				walk(typ.Field(i).Type, path+"."+typ.Field(i).Name)
			}
			delete(onPath, typ)
		}
	}
	walk(reflect.TypeFor[config.Config](), "Config")
	slices.Sort(found)
	require.Equal(t, []string{
		"Config.Database",
		"Config.Notifications.Sinks.Credential",
		"Config.Policies.Target.HTTP.AuthSecret",
		"Config.Policies.Target.MySQL.Admin",
		"Config.Policies.Target.Postgres.Admin",
		"Config.Policies.Target.Redis.Admin",
	}, found, "a new Reference field: read it in ReferencedEnv, and list it here")
}
