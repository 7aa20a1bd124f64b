package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/notify"
)

// TestLoadExampleNotifications: the reference file's notifications: block
// reaches Config with its sinks, references and routes.
func TestLoadExampleNotifications(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/example.yaml")
	require.NoError(t, err)
	n := cfg.Notifications
	require.NotNil(t, n)
	require.Equal(t, 6*time.Hour, n.DeferralThreshold)
	require.Equal(t, 10, n.Attempts)
	require.Len(t, n.Sinks, 2)
	require.Equal(t, notify.Webhook, n.Sinks[0].Kind)
	require.Equal(t, "https://hooks.example.com/swarmkey", n.Sinks[0].URL)
	require.Equal(t, Reference{Scheme: SchemeEnv, Name: "SWARMKEY_WEBHOOK_KEY"}, n.Sinks[0].Credential)
	require.Equal(t, notify.Slack, n.Sinks[1].Kind)
	require.Empty(t, n.Sinks[1].URL, "a Slack URL is only a reference")
	require.Equal(t, Reference{Scheme: SchemeFile, Name: "/etc/swarmkey/slack-webhook-url"}, n.Sinks[1].Credential)
	require.Equal(t, []notify.Route{
		{Policies: []string{"checkout-db"}, Sinks: []string{"oncall", "team-chat"}},
		{Tags: []string{"checkout"}, Kinds: []notify.Kind{notify.NeedsAttention, notify.Overdue, notify.LeaseExpired}, Sinks: []string{"oncall"}},
	}, n.Routes)
}

func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

const notificationsBase = `database: env:DB
stores:
  file: { dir: /s, key_file: /k }
policies:
  - name: app
    strategy: single
    schedule: "@daily"
    target:
      generated: {}
`

// TestLoadBadNotifications: every mistake in the block is an error at its
// file:line and field, all at once, and never quotes a plaintext Slack URL
// or webhook URL.
func TestLoadBadNotifications(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "swarmkey.yaml", notificationsBase+`notifications:
  deferral_threshold: soon
  attempts: 0
  sinks:
    - name: hook
      kind: webhook
      url: http://hooks.example.com/x?token=querytoken123
    - name: chat
      kind: slack
      url: https://hooks.slack.com/services/T0/B0/slacktoken456
    - name: hook
      kind: email
  routes:
    - policies: [app, nope]
      events: [failed, exploded]
      sinks: [hook, nobody]
    - tags: [x]
`)
	_, err := Load(path)
	es := requireErrors(t, err,
		path+":11: notifications.deferral_threshold: bad duration",
		path+":12: notifications.attempts: must be between 1 and 100",
		path+":14: notifications.sinks[0].secret: required: a reference to the HMAC key",
		path+":16: notifications.sinks[0].url: plain http is allowed only to a loopback host; use https",
		path+":19: notifications.sinks[1].url: plaintext credentials are not allowed here; give a reference",
		path+":20: notifications.sinks[2].name: sink \"hook\" is given twice",
		path+":21: notifications.sinks[2].kind: unknown sink kind \"email\": use webhook or slack",
		path+":23: notifications.routes[0].policies[1]: no policy is called \"nope\"",
		path+":24: notifications.routes[0].events[1]: unknown event \"exploded\": use needs_attention, failed, overdue, deferred, lease_expired",
		path+":25: notifications.routes[0].sinks[1]: no sink is called \"nobody\"",
		path+":26: notifications.routes[1].sinks: required",
	)
	require.NotContains(t, es.Error(), "querytoken123")
	require.NotContains(t, es.Error(), "slacktoken456")
}

// TestLoadNotificationsOnlyInMainFiles: an included file may not give the
// block, and two main files may not both give it.
func TestLoadNotificationsOnlyInMainFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	block := "notifications:\n  sinks: []\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inc.yaml"), []byte(block), 0o600))
	main := filepath.Join(dir, "main.yaml")
	require.NoError(t, os.WriteFile(main, []byte(notificationsBase+"include: [inc.yaml]\n"+block), 0o600))
	other := filepath.Join(dir, "other.yaml")
	require.NoError(t, os.WriteFile(other, []byte(block), 0o600))
	_, err := Load(main, other)
	requireErrors(t, err,
		filepath.Join(dir, "inc.yaml")+":1: notifications: not allowed in an included file",
		other+":1: notifications: already set at "+main+":11; set it in one file only",
	)
}
