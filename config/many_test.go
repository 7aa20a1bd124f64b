package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeManyPolicies writes a file of n policies over a handful of schedules
// and zones, the way a large installation looks (see also daemonbench's
// idle mode, which serves such a file).
func writeManyPolicies(t testing.TB, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("database: env:SWARMKEY_DATABASE_URL\nstores:\n  file: { dir: secrets, key_file: secrets.key }\n" +
		"deny:\n  - { cron: \"0 0 * * 5\", duration: 72h, timezone: Europe/Berlin }\npolicies:\n")
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"}
	for i := range n {
		fmt.Fprintf(&b, `  - name: p-%05d
    schedule: "%d %d * * *"
    timezone: %s
    window: 2h
    target:
      postgres: { host: db, dbname: app, username: u_%05d, group_role: g, admin: "env:PG_ADMIN_URL" }
    deny:
      - { cron: "0 9 * * 1-5", duration: 9h, timezone: Europe/Berlin }
`, i, i%4*15, i%24, zones[i%len(zones)], i)
	}
	path := filepath.Join(t.TempDir(), "many.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// TestLoadManyPolicies: ten thousand policies over a handful of schedules
// load, every one checked. How long it takes is BenchmarkLoad10000's to
// measure (about a second: the schedule checks are memoized by spec and
// zone), not a timed test's.
func TestLoadManyPolicies(t *testing.T) {
	path := writeManyPolicies(t, 10000)
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Len(t, cfg.Policies, 10000)
}

func BenchmarkLoad10000(b *testing.B) {
	path := writeManyPolicies(b, 10000)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
