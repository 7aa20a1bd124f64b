// Package scan finds hardcoded credentials in a load-test repository
// (`swarmkey scan`): locustfiles and other Python, .env files, YAML, JSON,
// TOML and INI configs, CI files, shell scripts and Dockerfiles.
//
// Two rule sets run over every file. The generic set is gitleaks' default
// configuration, used as a library: known token formats and high-entropy
// strings near credential words. The Locust set is swarmkey's own: Python is
// parsed (tree-sitter) and a value is followed from the name it is assigned
// to into the header, auth tuple or login payload that uses it, so such a
// value is one finding at the assignment with the use site named; the other
// files are read key by key. A finding carries its value only as a
// secret.Secret, which never prints; what is shown is a masked preview.
package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/swarmkey/swarmkey/secret"
)

// Kind is what sort of credential a finding is, by where it was found.
type Kind string

// The kinds. The Locust kinds come first; KindToken is the generic set's.
const (
	// KindHeader: a value sent in an Authorization, X-API-Key or similar
	// header (a Python dict, a curl -H, a config key named so).
	KindHeader Kind = "header"
	// KindAuthTuple: the password of an auth=(user, password) tuple or an
	// HTTPBasicAuth call.
	KindAuthTuple Kind = "auth-tuple"
	// KindLoginPayload: a password, secret or token field of a request
	// body (json=, data=) or a call's keyword argument.
	KindLoginPayload Kind = "login-payload"
	// KindConnectionString: the password in a URL's userinfo
	// (postgresql://user:pw@host/db).
	KindConnectionString Kind = "connection-string"
	// KindHostUserinfo: the password in Locust's --host / host URL.
	KindHostUserinfo Kind = "host-userinfo"
	// KindEnvDefault: the fallback of os.environ.get / os.getenv.
	KindEnvDefault Kind = "env-default"
	// KindLocustConf: a credential key in locust.conf.
	KindLocustConf Kind = "locust-conf"
	// KindClassAttribute: a credential-named attribute of a class
	// (api_key = "…" in a User class).
	KindClassAttribute Kind = "class-attribute"
	// KindAssignment: a credential-named variable or config key.
	KindAssignment Kind = "assignment"
	// KindToken: a known token format or a high-entropy string near a
	// credential word, by the generic rule set.
	KindToken Kind = "token"
)

// Use is a place that uses a finding's value: the header, auth tuple or
// payload a variable is passed to.
type Use struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// What names the use: "header Authorization", "auth tuple",
	// "json password".
	What string `json:"what"`
}

func (u Use) String() string { return fmt.Sprintf("%s:%d (%s)", u.File, u.Line, u.What) }

// Provider is the policy that already provides a finding's credential: the
// inventory column of the report.
type Provider struct {
	Policy string `json:"policy"`
	// By is how: "exec sets PAYMENTS_API_API_KEY" or
	// `credential("payments-api") in this file`.
	By string `json:"by"`
}

// Finding is one hardcoded credential. It never holds the value in a form
// that prints: Value is a secret.Secret, and every writer shows Preview.
type Finding struct {
	// File is the path as given or found under a scanned folder, with /.
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Kind   Kind   `json:"kind"`
	// Rule is the rule that found it: "locust/header",
	// "gitleaks/aws-access-token", …
	Rule string `json:"rule"`
	// Variable is the name or key that holds the value ("" when none): a
	// Python variable or attribute, a config key, an environment variable.
	Variable string `json:"variable,omitempty"`
	// UsedAt names where the value is used, when it was followed there.
	UsedAt []Use `json:"used_at,omitempty"`
	// Preview is the masked value: Mask.
	Preview string `json:"preview"`
	Length  int    `json:"length"`
	// Fingerprint identifies the finding in a baseline: see fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Baselined: the baseline accepts it (it does not fail the scan).
	Baselined bool `json:"baselined"`
	// Provided names the policy that already provides this credential, or
	// nil: the credential inventory.
	Provided *Provider `json:"provided_by,omitempty"`
	// Value is the credential itself; never serialized or printed.
	Value secret.Secret `json:"-"`

	// span is where the value is in the file, for Rewrite.
	span span
	// plugin: the policies the file reads with the plugin's credential().
	plugin []string
}

// span locates a value in its file, in bytes.
type span struct {
	start, end int // the value
	// literalStart, literalEnd: the Python string literal around it (its
	// quotes and prefix included); zero outside Python.
	literalStart, literalEnd int
	// envCall: the value is an os.environ.get/os.getenv default; callStart
	// and callEnd are the call's bytes, replaced whole.
	envCall            bool
	callStart, callEnd int
	// python: the file was parsed as Python.
	python bool
}

// Location is FILE:LINE.
func (f Finding) Location() string { return fmt.Sprintf("%s:%d", f.File, f.Line) }

// Mask shows enough of a value to recognise it and never enough to use it:
// the first four and last two characters of a value of 16 characters or
// more ("sk_l…9f (40 chars)"), the first two of 10 to 15, none below.
func Mask(v string) string {
	n := utf8.RuneCountInString(v)
	r := []rune(v)
	switch {
	case n >= 16:
		return fmt.Sprintf("%s…%s (%d chars)", string(r[:4]), string(r[n-2:]), n)
	case n >= 10:
		return fmt.Sprintf("%s… (%d chars)", string(r[:2]), n)
	}
	return fmt.Sprintf("… (%d chars)", n)
}

// fingerprint identifies a finding across edits that move it: its file, rule,
// variable and masked preview, hashed. It holds nothing that the table does
// not show (no hash of the value, which a short password would not survive),
// so a baseline file may be committed.
func fingerprint(f Finding) string {
	h := sha256.Sum256([]byte(strings.Join([]string{f.File, f.Rule, f.Variable, f.Preview}, "\x00")))
	return hex.EncodeToString(h[:8])
}
