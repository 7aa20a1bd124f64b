package config

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/redis"
)

func TestLoadHTTPAndGenerated(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/http.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Policies, 3)

	api := cfg.Policies[0]
	require.Equal(t, targets.Single, api.Strategy)
	require.Nil(t, api.Target.Postgres)
	require.NotNil(t, api.Target.HTTP)
	h := api.Target.HTTP
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "KEYS_ADMIN_TOKEN"}, h.AuthSecret)
	o := h.Options
	require.True(t, o.Auth.Secret.IsZero(), "config never holds the secret's value")
	require.Equal(t, "checkout-api", o.Policy)
	require.Equal(t, "swarmkey-checkout-api-", o.KeyNamePrefix)
	require.Equal(t, httpkey.AuthBearer, o.Auth.Type)
	require.Equal(t, http.MethodPost, o.Issue.Method)
	require.Equal(t, http.MethodDelete, o.Revoke.Method)
	require.Equal(t, http.MethodGet, o.Verify.Method)
	require.Equal(t, 200, o.Verify.Status)
	require.Equal(t, "Bearer ", o.Verify.KeyPrefix)
	require.Equal(t, map[string]string{"label": "/name"}, o.Issue.Fields)
	require.Equal(t, 5*time.Second, o.Timeout)
	require.Equal(t, int64(65536), o.MaxResponseBytes)
	require.Equal(t, httpkey.DefaultMaxAttempts, o.MaxAttempts)
	require.Equal(t, filepath.Join("testdata", "ca.pem"), o.TLS.CAFile, "relative to the file")
	require.Equal(t, "1.3", o.TLS.MinVersion)
	require.NotNil(t, o.List)
	require.Equal(t, "/keys", o.List.Items)
	require.False(t, o.AllowInsecure)

	require.Equal(t, &generated.Options{Policy: "shared-token", Field: "token"}, cfg.Policies[1].Target.Generated)
	require.Equal(t, 48, cfg.Policies[1].Password.Length)
	require.Equal(t, &generated.Options{Policy: "shared-default", Field: "value"}, cfg.Policies[2].Target.Generated)
}

func TestLoadHTTPErrors(t *testing.T) {
	t.Parallel()
	const forms = "env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]"
	cfg, err := Load("testdata/errors/http.yaml")
	require.Nil(t, cfg)
	requireErrors(t, err,
		"testdata/errors/http.yaml:9: policies[api].target.http.auth.secret: required: the admin token, header value or password, as a reference: "+forms,
		"testdata/errors/http.yaml:11: policies[api].target.http.issue.url: http:// sends credentials in the clear: use https://, or set allow_insecure: true",
		`testdata/errors/http.yaml:12: policies[api].target.http.issue.body: bad template: issue.body:1:12: executing "issue.body" at <.KeyNme>: can't evaluate field KeyNme in type httpkey.Data`,
		`testdata/errors/http.yaml:13: policies[api].target.http.issue.key: "key" is not a JSON pointer`,
		`testdata/errors/http.yaml:17: policies[api].target.http.verify.key_in: unknown key location "cookie": use header, query or basic`,
		"testdata/errors/http.yaml:18: policies[api].target.http.verify.expect: needs verify.json_pointer",
		`testdata/errors/http.yaml:18: policies[api].target.http.verify.expect: bad template: verify.expect:1:7: executing "verify.expect" at <.Vars.team>: map has no entry for key "team"`,
		"testdata/errors/http.yaml:19: policies[api].target.http.revoke.url: bad template: ",
		"testdata/errors/http.yaml:20: policies[api].target.http.max_response_bytes: must be between 1024 and",
		`testdata/errors/http.yaml:24: policies[gen].target.generated.field: "Bad-Field" is not a valid field name`,
		"testdata/errors/http.yaml:28: policies[typo].target.http.issue.url: required",
		"testdata/errors/http.yaml:28: policies[typo].target.http.issue.key: required",
		"testdata/errors/http.yaml:28: policies[typo].target.http.issue.id: required",
		"testdata/errors/http.yaml:28: policies[typo].target.http.verify.url: required",
		"testdata/errors/http.yaml:28: policies[typo].target.http.verify.key_in: required",
		"testdata/errors/http.yaml:28: policies[typo].target.http.revoke.url: required",
		`testdata/errors/http.yaml:29: policies[typo].target.http.isue: unknown field "isue"; did you mean "issue"?`,
		"testdata/errors/http.yaml:34: policies[auth-plain].target.http.auth.secret: plaintext credentials are not allowed here",
		`testdata/errors/http.yaml:36: policies[auth-plain].target.http.verify.expect: bad template: verify.expect:1:10: executing "verify.expect" at <.Current.Fields.nope>: map has no entry for key "nope"`,
		"testdata/errors/http.yaml:38: policies[auth-plain].target.http.disable: needs enable",
	)
}

func TestLoadMySQL(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/mysql.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Policies, 2)

	alt := cfg.Policies[0]
	require.Equal(t, targets.Alternating, alt.Strategy)
	require.NotNil(t, alt.Target.MySQL)
	require.Nil(t, alt.Target.Postgres)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "MYSQL_ADMIN_DSN"}, alt.Target.MySQL.Admin)
	o := alt.Target.MySQL.Options
	require.True(t, o.Admin.IsZero(), "config never holds the admin DSN's value")
	require.Equal(t, mysql.DefaultPort, o.Port)
	require.Equal(t, "checkout_b", o.AlternateUsername)
	require.Equal(t, "checkout_app", o.Role)
	require.Equal(t, "%", o.UserHost)
	require.Equal(t, mysql.PluginNative, o.AuthPlugin)
	require.True(t, o.RetireLock)

	single := cfg.Policies[1].Target.MySQL
	require.True(t, single.Admin.IsZero(), "single may go without admin")
	require.Equal(t, 3307, single.Options.Port)
	require.Empty(t, single.Options.AlternateUsername)
	require.Equal(t, mysql.PluginEd25519, single.Options.AuthPlugin)
	require.Equal(t, "10.%", single.Options.UserHost)
}

func TestLoadMySQLErrors(t *testing.T) {
	t.Parallel()
	const forms = "env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]"
	cfg, err := Load("testdata/errors/mysql.yaml")
	require.Nil(t, cfg)
	requireErrors(t, err,
		`testdata/errors/mysql.yaml:8: policies[alt].target.mysql.role: required for strategy alternating`,
		`testdata/errors/mysql.yaml:8: policies[alt].target.mysql.admin: required for strategy alternating: a DSN (user:password@tcp(host:port)/) of an account that may CREATE USER, ALTER USER and GRANT the role, as a reference: `+forms,
		`testdata/errors/mysql.yaml:10: policies[alt].target.mysql.username: "app'x" is not a valid user name`,
		`testdata/errors/mysql.yaml:11: policies[alt].target.mysql.auth_plugin: unsupported plugin "caching_sha2_password"`,
		`testdata/errors/mysql.yaml:16: policies[single].target.mysql.admin: plaintext credentials are not allowed here`,
		`testdata/errors/mysql.yaml:16: policies[single].target.mysql.role: used only by strategy alternating`,
	)
}

func TestLoadRedis(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/redis.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Policies, 2)

	alt := cfg.Policies[0]
	require.Equal(t, targets.Alternating, alt.Strategy)
	require.NotNil(t, alt.Target.Redis)
	require.Nil(t, alt.Target.MySQL)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "REDIS_ADMIN_URL"}, alt.Target.Redis.Admin)
	o := alt.Target.Redis.Options
	require.True(t, o.Admin.IsZero(), "config never holds the admin URL's value")
	require.Equal(t, redis.DefaultPort, o.Port)
	require.Equal(t, "checkout_b", o.AlternateUsername)
	require.Equal(t, []string{"~checkout:*", "+@read", "+@write", "-flushall"}, o.ACLRules)
	require.Equal(t, []string{"GET", "checkout:ready"}, o.CanaryCommand)
	require.Equal(t, "false", o.TLS)
	require.True(t, o.RetireOff)

	single := cfg.Policies[1].Target.Redis
	require.Equal(t, Reference{Scheme: SchemeFile, Name: "/etc/swarmkey/redis-admin"}, single.Admin)
	require.Equal(t, 6380, single.Options.Port)
	require.Equal(t, 2, single.Options.DB)
	require.Equal(t, "true", single.Options.TLS)
	require.Empty(t, single.Options.AlternateUsername)
}

func TestLoadRedisErrors(t *testing.T) {
	t.Parallel()
	const forms = "env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]"
	cfg, err := Load("testdata/errors/redis.yaml")
	require.Nil(t, cfg)
	requireErrors(t, err,
		`testdata/errors/redis.yaml:8: policies[alt].target.redis.admin: required: a Redis URL (redis://user:password@host:6379/) of a user that may run ACL SETUSER, ACL GETUSER, ACL WHOAMI and ACL SAVE (Redis has no command by which a user changes its own password), as a reference: `+forms,
		`testdata/errors/redis.yaml:10: policies[alt].target.redis.username: "app x" is not a valid user name`,
		`testdata/errors/redis.yaml:13: policies[alt].target.redis.acl_rules[1]: sets or removes a password: the target sets the password itself, as a SHA-256 hash; remove the rule`,
		`testdata/errors/redis.yaml:14: policies[alt].target.redis.acl_rules[2]: "nopass" is the target's to set (it sets the password and switches the user on and off); remove the rule`,
		`testdata/errors/redis.yaml:19: policies[single].target.redis.admin: plaintext credentials are not allowed here`,
		`testdata/errors/redis.yaml:19: policies[single].target.redis.acl_rules: used only by strategy alternating`,
	)
	require.NotContains(t, err.Error(), "hunter2")
}
