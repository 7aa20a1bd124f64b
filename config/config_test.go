package config

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/azure"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/providers/ssm"
	"github.com/swarmkey/swarmkey/providers/vault"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// requireErrors checks that err is an Errors whose lines contain wants, one
// for one and in order: no error missing, none extra.
func requireErrors(t *testing.T, err error, wants ...string) Errors {
	t.Helper()
	require.Error(t, err)
	var es Errors
	require.True(t, errors.As(err, &es), "want config.Errors, got %T: %v", err, err)
	got := make([]string, len(es))
	for i, e := range es {
		got[i] = e.Error()
	}
	require.Len(t, got, len(wants), "errors:\n%s", err)
	for i, want := range wants {
		require.Contains(t, got[i], want, "error %d of:\n%s", i, err)
	}
	return es
}

func TestLoadExample(t *testing.T) {
	t.Parallel()

	cfg, err := Load("testdata/example.yaml")
	require.NoError(t, err)

	require.Equal(t, []string{"testdata/example.yaml", "testdata/example.d/reports.yaml"}, cfg.Files)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "SWARMKEY_DATABASE_URL"}, cfg.Database)
	require.Equal(t, &file.Options{Dir: "/var/lib/swarmkey/secrets", KeyFile: "/etc/swarmkey/secrets.key"}, cfg.Stores.File)
	require.Equal(t, &aws.Options{Region: "eu-west-1", Tags: map[string]string{"team": "perf"}}, cfg.Stores.AWS)
	require.Equal(t, &gcp.Options{Project: "my-project", Labels: map[string]string{"team": "perf"}}, cfg.Stores.GCP)
	require.Equal(t, &vault.Options{Address: "https://vault.example:8200", Mount: "secret", Auth: vault.Auth{
		Method: "approle", RoleID: "0f1c2d3e-aaaa-bbbb-cccc-123456789abc", SecretIDFile: filepath.Join("testdata", "vault-secret-id"),
	}}, cfg.Stores.Vault)
	require.Equal(t, &ssm.Options{Region: "eu-west-1"}, cfg.Stores.SSM)
	require.Equal(t, &azure.Options{VaultURL: "https://checkout-kv.vault.azure.net"}, cfg.Stores.Azure)

	require.Len(t, cfg.Deny, 2)
	require.Equal(t, "release-freeze", cfg.Deny[0].Name)
	require.Equal(t, 72*time.Hour, cfg.Deny[0].Duration)
	require.Equal(t, "Europe/Berlin", cfg.Deny[0].Schedule.Location().String())
	require.Equal(t, "month-end", cfg.Deny[1].Name)
	require.Equal(t, "testdata/example.d/reports.yaml", cfg.Deny[1].File)
	require.Equal(t, 24*time.Hour, cfg.Deny[1].Duration)

	var names []string
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{"checkout-db", "search-db", "reports-db"}, names)

	p, ok := cfg.Policy("checkout-db")
	require.True(t, ok)
	require.Equal(t, targets.Alternating, p.Strategy)
	require.Equal(t, "file", p.Store)
	require.Equal(t, "loadtest/checkout-db", p.SecretID)
	require.Equal(t, []string{"checkout"}, p.Tags)
	require.Equal(t, &PostgresTarget{
		Options: postgres.Options{
			Host: "127.0.0.1", Port: 5432, DBName: "app", SSLMode: "prefer",
			Username: "checkout", AlternateUsername: "checkout_b", GroupRole: "checkout_rw",
			CanaryQuery:    "SELECT count(*) FROM orders",
			ConnectTimeout: postgres.DefaultConnectTimeout,
		},
		Admin: Reference{Scheme: SchemeEnv, Name: "PG_ADMIN_URL"},
	}, p.Target.Postgres)
	require.Nil(t, p.Target.HTTP)
	require.Equal(t, PasswordRules{PasswordRules: rotator.PasswordRules{Length: 32, Characters: alphabets["alphanumeric"]}, Alphabet: "alphanumeric"}, p.Password)
	require.Equal(t, "0 3 * * *", p.Schedule.Spec())
	require.Equal(t, "Europe/Berlin", p.Schedule.Location().String())
	require.Equal(t, 23*time.Hour, p.Schedule.ShortestGap(), "the spring DST switch makes one day 23h")
	require.Equal(t, 2*time.Hour, p.Window)
	require.Equal(t, time.Minute, p.ExpectedDuration)
	require.Equal(t, 5*time.Minute, p.GuardBefore)
	require.Equal(t, 5*time.Minute, p.GuardAfter)
	require.Equal(t, 72*time.Hour, p.MaxAge)
	require.Equal(t, schedule.OverdueAlert, p.OnOverdue)
	require.Equal(t, schedule.MissedNextWindow, p.Missed)
	require.Equal(t, time.Hour, p.Grace)
	require.Equal(t, 5, p.MaxAttempts)
	require.Equal(t, rotator.CanaryRetry{Attempts: 3, Interval: time.Second}, p.Canary)
	require.Len(t, p.Deny, 1)
	require.Equal(t, 9*time.Hour, p.Deny[0].Duration)
	require.Equal(t, "testdata/example.yaml", p.File)
	require.Equal(t, 88, p.Line)

	// The schedule fires at 03:00 Berlin whatever the zone of its argument.
	berlin3am := time.Date(2025, time.March, 10, 3, 0, 0, 0, p.Schedule.Location())
	for _, from := range []time.Time{
		time.Date(2025, time.March, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2025, time.March, 9, 20, 0, 0, 0, time.FixedZone("X", -5*3600)),
	} {
		require.True(t, p.Schedule.Next(from).Equal(berlin3am), "Next(%v) = %v", from, p.Schedule.Next(from))
	}

	search, ok := cfg.Policy("search-db")
	require.True(t, ok)
	require.Equal(t, Reference{Scheme: SchemeStore, Name: "aws/swarmkey/pg-admin", Provider: "aws", SecretID: "swarmkey/pg-admin", Field: "url"}, search.Target.Postgres.Admin)
	require.Equal(t, 7*24*time.Hour, search.Schedule.ShortestGap())

	reports, ok := cfg.Policy("reports-db")
	require.True(t, ok)
	require.Equal(t, targets.Single, reports.Strategy)
	require.Equal(t, "gcp", reports.Store)
	require.Equal(t, "reports-db", reports.SecretID)
	require.Equal(t, 6432, reports.Target.Postgres.Options.Port)
	require.Equal(t, "verify-full", reports.Target.Postgres.Options.SSLMode)
	require.Empty(t, reports.Target.Postgres.Options.AlternateUsername)
	require.True(t, reports.Target.Postgres.Admin.IsZero())
	require.Equal(t, PasswordRules{PasswordRules: rotator.PasswordRules{Length: 24, Characters: "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"}}, reports.Password)
	require.Equal(t, 12*time.Hour, reports.Schedule.ShortestGap())
	require.Equal(t, 30*time.Minute, reports.Window)
	require.Equal(t, 7*24*time.Hour, reports.MaxAge)
	require.Equal(t, schedule.OverdueForce, reports.OnOverdue)
	require.Equal(t, schedule.MissedASAP, reports.Missed)
	require.Equal(t, "testdata/example.d/reports.yaml", reports.File)
	require.Equal(t, 6, reports.Line)

	require.NoError(t, ValidateFiles("testdata/example.yaml"))
}

// TestLoadStores: every key of every store reaches the provider's Options.
func TestLoadStores(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/stores.yaml")
	require.NoError(t, err)
	require.Equal(t, &file.Options{Dir: "/var/lib/swarmkey/secrets", KeyFile: "/etc/swarmkey/secrets.key"}, cfg.Stores.File)
	require.Equal(t, &aws.Options{
		Region: "eu-central-1", EndpointURL: "http://localhost:5000", Create: true, KMSKeyID: "alias/swarmkey",
		Description: "rotated by swarmkey", Tags: map[string]string{"team": "perf"}, Profile: "loadtest",
	}, cfg.Stores.AWS)
	require.Equal(t, &gcp.Options{
		Project: "perf-project", Endpoint: "localhost:8081", Create: true,
		Labels: map[string]string{"team": "perf", "managed-by": "swarmkey"}, DestroyRetired: true,
	}, cfg.Stores.GCP)
	require.Equal(t, &azure.Options{
		VaultURL: "https://checkout-kv.vault.azure.net", PendingSuffix: "-staging", Create: true,
		TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
	}, cfg.Stores.Azure)
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()

	cfg, err := Load("testdata/defaults.yaml")
	require.NoError(t, err)
	require.Equal(t, "testdata/secrets", cfg.Stores.File.Dir, "relative to the file")
	require.Nil(t, cfg.Stores.AWS)
	require.Nil(t, cfg.Stores.GCP)
	require.Empty(t, cfg.Deny)
	require.Len(t, cfg.Policies, 1)

	p := cfg.Policies[0]
	require.Equal(t, targets.Alternating, p.Strategy)
	require.Equal(t, "file", p.Store)
	require.Equal(t, "minimal", p.SecretID)
	require.Equal(t, &PostgresTarget{
		Options: postgres.Options{
			Host: "db", Port: 5432, DBName: "app", SSLMode: "prefer",
			Username: "app", AlternateUsername: "app_b", GroupRole: "app_rw",
			ConnectTimeout: postgres.DefaultConnectTimeout,
		},
		Admin: Reference{Scheme: SchemeFile, Name: "/etc/swarmkey/pg-admin-url"},
	}, p.Target.Postgres)
	require.Equal(t, PasswordRules{PasswordRules: rotator.PasswordRules{Length: 32, Characters: alphabets["alphanumeric"]}, Alphabet: "alphanumeric"}, p.Password)
	require.Equal(t, time.UTC, p.Schedule.Location())
	require.Equal(t, 24*time.Hour, p.Schedule.ShortestGap())
	require.Equal(t, time.Hour, p.Window)
	require.Equal(t, time.Minute, p.ExpectedDuration)
	require.Zero(t, p.GuardBefore)
	require.Zero(t, p.GuardAfter)
	require.Zero(t, p.MaxAge)
	require.Zero(t, p.Grace)
	require.Equal(t, schedule.OverdueAlert, p.OnOverdue)
	require.Equal(t, schedule.MissedNextWindow, p.Missed)
	require.Equal(t, 5, p.MaxAttempts)
	require.Equal(t, rotator.CanaryRetry{Attempts: 3, Interval: time.Second}, p.Canary)
	require.Empty(t, p.Deny)
	require.Equal(t, Policy{}.Target.HTTP, p.Target.HTTP)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()

	const forms = "env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]"
	tests := []struct {
		file  string
		wants []string
	}{
		{"syntax.yaml", []string{
			"testdata/errors/syntax.yaml:4: not a swarmkey policy file (bad YAML: found unexpected end of stream)",
		}},
		{"two_documents.yaml", []string{
			"testdata/errors/two_documents.yaml:2: a second YAML document",
		}},
		{"empty.yaml", []string{
			"testdata/errors/empty.yaml: database: required: give a reference to the state database URL: " + forms,
		}},
		{"unknown_field.yaml", []string{
			`testdata/errors/unknown_field.yaml:3: stores.file.keyfile: unknown field "keyfile"; did you mean "key_file"?`,
			"testdata/errors/unknown_field.yaml:5: policies[a].schedule: required",
			`testdata/errors/unknown_field.yaml:8: policies[a].schedul: unknown field "schedul"; did you mean "schedule"?`,
		}},
		{"wrong_type.yaml", []string{
			"testdata/errors/wrong_type.yaml:17: policies[2].target.postgres.port: want an integer, got a string",
			"testdata/errors/wrong_type.yaml:23: policies[2].max_attempts: want an integer, got a list",
		}},
		{"duplicate_key.yaml", []string{
			`testdata/errors/duplicate_key.yaml:9: policies[a].schedule: "schedule" is given twice (first at line 8)`,
		}},
		{"provider.yaml", []string{
			`testdata/errors/provider.yaml:1: database: unknown provider "keepass": use file, aws, gcp, vault, ssm, azure`,
			`testdata/errors/provider.yaml:6: policies[a].store: unknown provider "keepass"`,
			`testdata/errors/provider.yaml:11: policies[b].store: provider "aws" is not configured under stores:`,
			`testdata/errors/provider.yaml:13: policies[b].target.postgres.admin: provider "gcp" is not configured under stores:`,
		}},
		{"required.yaml", []string{
			"testdata/errors/required.yaml: database: required",
			"testdata/errors/required.yaml:2: stores.gcp.project: required",
			"testdata/errors/required.yaml:4: policies[0].name: required",
			"testdata/errors/required.yaml:4: policies[0].schedule: required",
			"testdata/errors/required.yaml:6: policies[0].target.postgres.host: required",
			"testdata/errors/required.yaml:6: policies[0].target.postgres.dbname: required",
			"testdata/errors/required.yaml:6: policies[0].target.postgres.username: required",
			"testdata/errors/required.yaml:6: policies[0].target.postgres.group_role: required for strategy alternating",
			"testdata/errors/required.yaml:6: policies[0].target.postgres.admin: required: an admin connection URL, as a reference: " + forms,
			"testdata/errors/required.yaml:8: policies[b].schedule: required",
			"testdata/errors/required.yaml:10: policies[b].target: required: give exactly one of postgres, http, generated, mysql, redis",
		}},
		{"schedule.yaml", []string{
			`testdata/errors/schedule.yaml:8: policies[bad-cron].schedule: bad cron spec "0 3 * *": expected exactly 5 fields`,
			"testdata/errors/schedule.yaml:12: policies[cron-tz].schedule: a time zone inside the cron spec is not supported; remove the CRON_TZ=/TZ= prefix and set timezone: instead",
			`testdata/errors/schedule.yaml:17: policies[bad-zone].timezone: unknown time zone "Mars/Olympus"`,
			`testdata/errors/schedule.yaml:22: policies[bad-duration].window: bad duration "2 hours"`,
			"testdata/errors/schedule.yaml:23: policies[bad-duration].grace: must not be negative",
			"testdata/errors/schedule.yaml:28: policies[long-window].window: window 2h is not shorter than the schedule's period 1h",
			"testdata/errors/schedule.yaml:34: policies[dst-window].window: window 23h is not shorter than the schedule's period 23h",
			`testdata/errors/schedule.yaml:38: policies[never].schedule: the cron spec "0 0 30 2 *" never fires`,
			"testdata/errors/schedule.yaml:43: policies[max-age].max_age: max_age 24h is not longer than the schedule's period 24h",
		}},
		{"target.yaml", []string{
			"testdata/errors/target.yaml:7: policies[api].target.http.issue.url: required",
			"testdata/errors/target.yaml:7: policies[api].target.http.issue.key: required",
			"testdata/errors/target.yaml:7: policies[api].target.http.issue.id: required",
			"testdata/errors/target.yaml:7: policies[api].target.http.verify.url: required",
			"testdata/errors/target.yaml:7: policies[api].target.http.verify.key_in: required",
			"testdata/errors/target.yaml:7: policies[api].target.http.revoke.url: required",
			"testdata/errors/target.yaml:10: policies[both].target: give exactly one of postgres, http, generated, mysql, redis, not postgres and generated",
			"testdata/errors/target.yaml:17: policies[single].target.postgres.port: must be between 1 and 65535",
			`testdata/errors/target.yaml:17: policies[single].target.postgres.sslmode: unknown sslmode "strict"`,
			"testdata/errors/target.yaml:17: policies[single].target.postgres.group_role: used only by strategy alternating",
			"testdata/errors/target.yaml:18: policies[single].password.length: must be between 16 and 128",
			"testdata/errors/target.yaml:18: policies[single].password.characters: needs at least 10 distinct characters, has 3",
			`testdata/errors/target.yaml:21: policies[odd].strategy: unknown strategy "sometimes": use alternating or single`,
			`testdata/errors/target.yaml:22: policies[odd].on_overdue: unknown action "panic": use alert or force`,
			`testdata/errors/target.yaml:23: policies[odd].missed: unknown action "never": use next_window or asap`,
			`testdata/errors/target.yaml:24: policies[odd].password.alphabet: unknown alphabet "emoji"`,
			"testdata/errors/target.yaml:30: policies[twins].target.postgres.alternate_username: must differ from username",
			"testdata/errors/target.yaml:30: policies[twins].target.postgres.group_role: must differ from username and alternate_username",
		}},
		{"plaintext.yaml", []string{
			"testdata/errors/plaintext.yaml:1: database: plaintext credentials are not allowed here; give a reference: " + forms,
			"testdata/errors/plaintext.yaml:7: policies[a].target.postgres.admin: plaintext credentials are not allowed here; give a reference: " + forms,
		}},
		{"include_main.yaml", []string{
			"testdata/errors/include_main.yaml:4: include[1]: no such file: testdata/errors/missing.yaml",
			"testdata/errors/include_bad.d/bad.yaml:2: database: not allowed in an included file; an included file holds only policies: and deny:",
			"testdata/errors/include_bad.d/bad.yaml:3: stores: not allowed in an included file",
		}},
		{"stores.yaml", []string{
			"testdata/errors/stores.yaml:3: stores.file.dir: required: the directory that holds one file per secret",
			`testdata/errors/stores.yaml:4: stores.aws.profil: unknown field "profil"; did you mean "profile"?`,
			"testdata/errors/stores.yaml:4: stores.aws.endpoint_url: not an absolute URL",
			`testdata/errors/stores.yaml:6: stores.gcp.project: "projects/perf-project": give the project id alone, not a resource name`,
			`testdata/errors/stores.yaml:7: stores.gcp.labels: "Team" is not a label key`,
			`testdata/errors/stores.yaml:9: stores.vault.auth.method: unknown method "ldap": use token, approle or kubernetes`,
			`testdata/errors/stores.yaml:10: stores.ssm.pending_prefix: a parameter path such as /swarmkey-pending: it starts with /, does not end with one`,
			`testdata/errors/stores.yaml:11: stores.azure.vault_url: "checkout-kv.vault.azure.net" is not a vault address: give https://NAME.vault.azure.net (https, no path)`,
			`testdata/errors/stores.yaml:11: stores.azure.pending_suffix: "_pending": use up to 64 letters, digits and dashes`,
		}},
		{"deny.yaml", []string{
			"testdata/errors/deny.yaml:5: deny[0].duration: required",
			"testdata/errors/deny.yaml:6: deny[1].duration: duration 48h is not shorter than the cron's period 24h",
			`testdata/errors/deny.yaml:7: deny[2].timezone: "Local" depends on the host; give an IANA zone`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load("testdata/errors/" + tt.file)
			require.Nil(t, cfg)
			requireErrors(t, err, tt.wants...)
		})
	}
}

func TestErrorFields(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/errors/wrong_type.yaml")
	es := requireErrors(t, err, "port", "max_attempts")
	require.Equal(t, Error{
		File: "testdata/errors/wrong_type.yaml", Line: 17,
		Field: "policies[2].target.postgres.port", Msg: "want an integer, got a string",
	}, es[0])
	require.Equal(t, "a.yaml: b: c", Error{File: "a.yaml", Field: "b", Msg: "c"}.Error())
	require.Equal(t, "a.yaml:3: c", Error{File: "a.yaml", Line: 3, Msg: "c"}.Error())
	require.Equal(t, "a:1: x: m\nb:2: y: n", Errors{{"a", 1, "x", "m"}, {"b", 2, "y", "n"}}.Error())
}

func TestLoadNeverEchoesCredentials(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/errors/plaintext.yaml")
	require.Error(t, err)
	for _, leak := range []string{"hunter2", "swarmkey:", "db.internal", "correct-horse-battery"} {
		require.NotContains(t, err.Error(), leak)
	}
}

func TestLoadMerge(t *testing.T) {
	t.Parallel()

	cfg, err := Load("testdata/merge/a.yaml", "testdata/merge/b.yaml", "testdata/merge/a.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"testdata/merge/a.yaml", "testdata/merge/b.yaml", "testdata/merge/b.d/p3.yaml"}, cfg.Files,
		"a file given twice is read once")
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "SWARMKEY_DATABASE_URL"}, cfg.Database)
	require.NotNil(t, cfg.Stores.File)
	require.Equal(t, &aws.Options{Region: "eu-west-1", Tags: map[string]string{"team": "perf"}}, cfg.Stores.AWS)
	require.Nil(t, cfg.Stores.GCP)
	require.Len(t, cfg.Deny, 2)
	require.Equal(t, "testdata/merge/b.yaml", cfg.Deny[0].File)
	require.Equal(t, "testdata/merge/b.d/p3.yaml", cfg.Deny[1].File)

	var got []string
	for _, p := range cfg.Policies {
		got = append(got, p.Name+"@"+p.File)
	}
	require.Equal(t, []string{
		"p1@testdata/merge/a.yaml", "p2@testdata/merge/b.yaml", "p3@testdata/merge/b.d/p3.yaml",
	}, got)
}

func TestLoadMergeConflict(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/merge/a.yaml", "testdata/merge/b.yaml", "testdata/merge/conflict.yaml")
	requireErrors(t, err,
		"testdata/merge/conflict.yaml:1: database: already set at testdata/merge/a.yaml:1; set it in one file only",
		"testdata/merge/conflict.yaml:3: stores.file: already set at testdata/merge/a.yaml:3; set it in one file only",
	)
}

func TestLoadDuplicatesAcrossFiles(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/dup/main.yaml")
	requireErrors(t, err,
		`testdata/dup/more.yaml:3: policies[other].secret: secret "shared" in store file is already rotated by the policy at testdata/dup/main.yaml:6`,
		`testdata/dup/more.yaml:7: policies[shared].name: policy "shared" is already defined at testdata/dup/main.yaml:6; policy names are unique across all files`,
	)
}

func TestLoadUnreadable(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/does-not-exist.yaml")
	requireErrors(t, err, "testdata/does-not-exist.yaml: cannot read the file: no such file or directory")

	_, err = Load()
	require.EqualError(t, err, "no policy files given")
}

func TestValidateFiles(t *testing.T) {
	t.Parallel()

	// Alone, a policies-only file may use any known provider and needs no
	// database.
	require.NoError(t, ValidateFiles("testdata/validate/policies_only.yaml"))
	_, err := Load("testdata/validate/policies_only.yaml")
	requireErrors(t, err,
		"testdata/validate/policies_only.yaml: database: required",
		`testdata/validate/policies_only.yaml:3: policies[a].store: provider "aws" is not configured under stores:`,
		`testdata/validate/policies_only.yaml:5: policies[a].target.postgres.admin: provider "gcp" is not configured under stores:`,
	)

	// A file that configures stores is held to them; each file is checked
	// alone and the errors of all files come back together.
	err = ValidateFiles("testdata/validate/policies_only.yaml", "testdata/validate/stores_set.yaml", "testdata/errors/deny.yaml")
	requireErrors(t, err,
		`testdata/validate/stores_set.yaml:5: policies[a].store: provider "aws" is not configured under stores:`,
		"testdata/errors/deny.yaml:5: deny[0].duration: required",
		"testdata/errors/deny.yaml:6: deny[1].duration",
		"testdata/errors/deny.yaml:7: deny[2].timezone",
	)

	// Two main files that would conflict under Load are fine alone.
	require.NoError(t, ValidateFiles("testdata/merge/a.yaml", "testdata/merge/conflict.yaml"))
}
