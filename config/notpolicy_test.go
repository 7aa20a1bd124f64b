package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// shadowLines look like /etc/shadow: each line ends in a colon, so YAML
// reads it as a mapping key.
const shadowLines = "root:$6$salt$hash:19000:0:99999:7:::\n" +
	"daemon:*:19000:0:99999:7:::\n" +
	"alice:$6$pepper$c2VjcmV0aGFzaA:19000:0:99999:7:::\n"

// requireNoneOf checks that no piece of text (its fields between colons and
// dollar signs, of three bytes or more) appears in err.
func requireNoneOf(t *testing.T, err error, text string) {
	t.Helper()
	for _, piece := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(":$\n*", r) }) {
		if len(piece) >= 3 {
			require.NotContains(t, err.Error(), piece, "the error quotes the file")
		}
	}
}

// TestNotAPolicyFile: a file that is not a policy file, reached by include:
// or given as a main file, is reported as such in one error that quotes
// none of it, whatever it holds.
func TestNotAPolicyFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, text string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
	write("shadow", shadowLines)
	write("main.yaml", smallPolicyFile+"include: [shadow]\n")

	const notMapping = "not a swarmkey policy file (none of its top-level keys is database:, stores:, include:, deny:, policies: or notifications:)"
	_, err := Load("main.yaml")
	requireErrors(t, err, "shadow: "+notMapping)
	requireNoneOf(t, err, shadowLines)
	_, err = Load("shadow")
	requireErrors(t, err, "shadow: "+notMapping)
	requireNoneOf(t, err, shadowLines)
	err = ValidateFiles("main.yaml", "shadow")
	requireErrors(t, err, "shadow: "+notMapping, "shadow: "+notMapping)
	requireNoneOf(t, err, shadowLines)

	for _, c := range []struct{ name, text, want string }{
		{"passwd", "root:x:0:0:root:/root:/bin/bash\nsvc:x:999:999::/home/svc:/usr/sbin/nologin\n",
			"passwd: not a swarmkey policy file (its top level is a string, not a mapping of database:, stores:, include:, deny:, policies: or notifications:)"},
		{"list.yaml", "- hunter2-list-item\n- correct-horse\n",
			"list.yaml: not a swarmkey policy file (its top level is a list, not a mapping"},
		{"compose.yaml", "version: \"3\"\nservices: { db: { image: postgres, environment: [POSTGRES_PASSWORD=hunter2] } }\n",
			"compose.yaml: " + notMapping},
		{"binary", "\x7fELF\x02\x01\x01\x00\x00secret-bytes\x00\xff\xfe",
			"binary: not a swarmkey policy file (bad YAML: "},
		{"tabs", "word\tvalue-with-secret: x\n\tsecret-indented: y\n",
			"tabs:2: not a swarmkey policy file (bad YAML: "},
		{"tagged.yaml", "!hunter2-tag-text\n",
			"tagged.yaml: not a swarmkey policy file (its top level is a value with a custom tag, not a mapping of"},
		{"anchor.yaml", "database: *hunter2-anchor\n",
			"anchor.yaml: not a swarmkey policy file (bad YAML: unknown anchor (…) referenced)"},
	} {
		write(c.name, c.text)
		_, err := Load(c.name)
		requireErrors(t, err, c.want)
		requireNoneOf(t, err, strings.NewReplacer("\x00", ":", "\t", ":").Replace(c.text))
	}

	// A policy file with a mistyped or stray key is still a policy file:
	// a field name is quoted with a hint, anything else is not shown.
	write("typo.yaml", smallPolicyFile+"polices: []\n")
	_, err = Load("typo.yaml")
	requireErrors(t, err, `typo.yaml:9: polices: unknown field "polices"; did you mean "policies"?`)
	write("spaced.yaml", smallPolicyFile+"    max attempts: 3\n")
	_, err = Load("spaced.yaml")
	requireErrors(t, err, `spaced.yaml:9: policies[a].max attempts: unknown field "max attempts"; did you mean "max_attempts"?`)
	write("stray.yaml", smallPolicyFile+"    "+strings.SplitN(shadowLines, "\n", 2)[0]+"\n")
	_, err = Load("stray.yaml")
	requireErrors(t, err, "stray.yaml:9: policies[a]: unknown key (not shown: it is not a field name); known fields: canary, deny, expected_duration")
	requireNoneOf(t, err, shadowLines)
	write("twice.yaml", smallPolicyFile+"    root:$6$x$twice:1:::\n    root:$6$x$twice:1:::\n")
	_, err = Load("twice.yaml")
	require.ErrorContains(t, err, "twice.yaml:10: policies[a]: a key is given twice (first at line 9); give it once")
	require.NotContains(t, err.Error(), "twice:1")
}
