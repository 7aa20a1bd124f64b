package httpkey

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// Defaults applied by WithDefaults to fields left zero.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxAttempts      = 4
	DefaultMaxBackoff       = 30 * time.Second
	DefaultMaxRetryAfter    = time.Minute
	DefaultMaxResponseBytes = 1 << 20
	// MaxMaxResponseBytes is the largest MaxResponseBytes: a key API's
	// answer is small, and the limit bounds what one request may buffer.
	MaxMaxResponseBytes  = 64 << 20
	DefaultMinTLSVersion = "1.2"
	// initialBackoff is the first wait between attempts: 0.5 s, 1 s, 2 s …
	// up to MaxBackoff.
	initialBackoff = 500 * time.Millisecond
)

// Fields of the secret document (DESIGN.md "The versioned secret").
const (
	FieldAPIKey        = "api_key"
	FieldKeyID         = "key_id"
	FieldKeyName       = "key_name"
	FieldExpiresAt     = "expires_at"
	FieldPreviousKeyID = "previous_key_id"
)

var reservedFields = []string{FieldAPIKey, FieldKeyID, FieldKeyName, FieldExpiresAt, FieldPreviousKeyID}

// Auth types of the admin requests (issue, revoke, enable, disable, list).
const (
	AuthNone   = ""
	AuthBearer = "bearer"
	AuthHeader = "header"
	AuthBasic  = "basic"
)

// Key locations of the verify request.
const (
	KeyInHeader = "header"
	KeyInQuery  = "query"
	KeyInBasic  = "basic"
)

// Options configure one http target. Every string marked "template" is a Go
// text/template over Data (see Data for the fields and functions); a
// template that names a field Data does not have is an error at Validate,
// which renders every template against a sample.
//
// The yaml tags are the keys of a policy file's target.http block, which
// package config decodes into Options. Auth.Secret is not among them: the
// file holds a reference to it (auth.secret), resolved when the target is
// opened.
type Options struct {
	// Policy names the policy in errors.
	Policy string `yaml:"-"`
	// Vars are the policy's own public values, .Vars.NAME in templates.
	Vars map[string]string `yaml:"vars"`
	// KeyNamePrefix starts the name of every key this policy issues
	// (.KeyName is KeyNamePrefix + the rotation token). It marks the keys
	// the target owns: Apply and Restore refuse a document whose key_name
	// lacks it, and the list sweep revokes only keys that carry it.
	// Default "swarmkey-" + Policy + "-".
	KeyNamePrefix string `yaml:"key_name_prefix"`

	// Auth authenticates the admin requests.
	Auth Auth `yaml:"auth"`

	// Issue creates a key; required. The Create verb sends it.
	Issue IssueRequest `yaml:"issue"`
	// Verify proves a key; required.
	Verify VerifyRequest `yaml:"verify"`
	// Revoke deletes a key (.KeyID is its id); required. 2xx, 404 and 410
	// all count as revoked.
	Revoke Request `yaml:"revoke"`
	// Enable and Disable, when the API has them, switch a key on and off
	// (.KeyID). With Enable, Issue should create the key disabled and Apply
	// enables it, so Create has no effect a client could see. With Disable
	// (which needs Enable), Apply also switches off the key that loses its
	// place at promote (single: the current key; alternating: the previous
	// key), and Restore switches it back on: at most two keys ever work,
	// the way the postgres target's two roles do.
	Enable  *Request `yaml:"enable"`
	Disable *Request `yaml:"disable"`
	// List, when set, lets the target find its orphans: keys named with
	// KeyNamePrefix that no stage of the secret holds (see Retire and
	// Create).
	List *ListRequest `yaml:"list"`

	// IdempotencyHeader, when set, is sent on Issue with the rotation token
	// as its value, and makes Issue retryable on 5xx and network errors.
	// Without it Issue is retried only on 429 (the API says it did not act).
	IdempotencyHeader string `yaml:"idempotency_header"`

	// Timeout bounds each HTTP request; default 10 s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the tries of one request (429 and 5xx, and network
	// errors for idempotent requests); 1 to 20, default 4.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxBackoff caps the exponential wait between tries; default 30 s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxRetryAfter is the longest Retry-After the target waits; a longer
	// one ends the retries at once. Default 1 min.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
	// MaxResponseBytes bounds a response body; 1 KiB to 64 MiB, default
	// 1 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// TLS configures HTTPS.
	TLS TLSOptions `yaml:"tls"`
	// AllowInsecure permits http:// URLs. Without it every URL must be
	// https://, checked at Validate and again on every request.
	AllowInsecure bool `yaml:"allow_insecure"`

	// Logger receives retry notices; nil discards them. Lines carry the
	// request's name, method and URL without its query, never a value.
	Logger *slog.Logger `yaml:"-"`
	// Transport replaces the HTTP transport (tests); nil builds one from TLS.
	Transport http.RoundTripper `yaml:"-"`
}

// Auth is the admin credential of the API.
type Auth struct {
	// Type is bearer (Authorization: Bearer SECRET), header (Header:
	// Prefix+SECRET), basic (Username and SECRET as password) or "" (none).
	Type     string `yaml:"type"`
	Header   string `yaml:"header"`
	Prefix   string `yaml:"prefix"`
	Username string `yaml:"username"`
	// Secret is the token, header value or password.
	Secret secret.Secret `yaml:"-"`
}

// Request is one HTTP request of the API.
type Request struct {
	// Method defaults to GET (POST for Issue, DELETE for Revoke);
	// WithDefaults upper-cases it.
	Method string `yaml:"method"`
	// URL is a template; the rendered URL must be https:// unless
	// AllowInsecure.
	URL string `yaml:"url"`
	// Headers are templates.
	Headers map[string]string `yaml:"headers"`
	// Body is a template; "" sends no body.
	Body string `yaml:"body"`
}

// IssueRequest creates a key and says where its parts are in the JSON
// response, as RFC 6901 JSON pointers ("/key", "/data/id").
type IssueRequest struct {
	Request `yaml:",inline"`
	// Key points at the key's value; required.
	Key string `yaml:"key"`
	// ID points at the key's id (a string or a number); required. It is
	// public: shown in status, audit rows and errors.
	ID string `yaml:"id"`
	// Expiry points at the key's expiry (copied as is); optional.
	Expiry string `yaml:"expiry"`
	// Fields maps document field names to pointers: public extras the
	// document carries and templates see as .Current.Fields.NAME.
	Fields map[string]string `yaml:"fields"`
}

// VerifyRequest is the canary: a request authenticated with the key.
type VerifyRequest struct {
	Request `yaml:",inline"`
	// KeyIn is where the key goes: header (KeyName, default X-API-Key,
	// value KeyPrefix+key), query (parameter KeyName, default api_key) or
	// basic (username KeyName, the key as password).
	KeyIn     string `yaml:"key_in"`
	KeyName   string `yaml:"key_name"`
	KeyPrefix string `yaml:"key_prefix"`
	// Status is the status that proves the key; default 200.
	Status int `yaml:"status"`
	// JSONPointer and Expect, when set, also require the response's value
	// at JSONPointer to equal Expect (a template, e.g. "{{.KeyID}}", so a
	// document whose key belongs to another id fails). Checked when the
	// rotator asks for the canary, not for a plain "is it accepted".
	JSONPointer string `yaml:"json_pointer"`
	Expect      string `yaml:"expect"`
}

// ListRequest lists the API's keys.
type ListRequest struct {
	Request `yaml:",inline"`
	// Items points at the array of keys; "" is the whole response.
	Items string `yaml:"items"`
	// ID points at a key's id within each item; required.
	ID string `yaml:"id"`
	// Name points at a key's name within each item. Without it the list
	// is taken as this policy's keys alone (its request must list only
	// those, as a per-service keys endpoint does): the sweep then revokes
	// every listed key no stage holds, and an earlier attempt's key is
	// found by that sweep rather than by its name.
	Name string `yaml:"name"`
}

// TLSOptions configure HTTPS.
type TLSOptions struct {
	// CAFile is a PEM bundle; when set it replaces the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Problem is one thing wrong with Options. Field is the path as a policy
// file spells it under target.http ("issue.url", "verify.key_in").
type Problem = validation.Problem

// ValidationError is every Problem of one Options; its Subject names the
// policy.
type ValidationError = validation.Error

// WithDefaults returns o with defaults filled in (see the constants and
// the field docs).
func (o Options) WithDefaults() Options {
	if o.KeyNamePrefix == "" && o.Policy != "" {
		o.KeyNamePrefix = "swarmkey-" + o.Policy + "-"
	}
	o.Issue.Method = method(o.Issue.Method, http.MethodPost)
	o.Revoke.Method = method(o.Revoke.Method, http.MethodDelete)
	o.Verify.Method = method(o.Verify.Method, http.MethodGet)
	// The optional requests are copied, not changed in place: o shares
	// them with the caller's Options.
	if o.Enable != nil {
		e := *o.Enable
		e.Method = method(e.Method, http.MethodPost)
		o.Enable = &e
	}
	if o.Disable != nil {
		d := *o.Disable
		d.Method = method(d.Method, http.MethodPost)
		o.Disable = &d
	}
	if o.List != nil {
		l := *o.List
		l.Method = method(l.Method, http.MethodGet)
		o.List = &l
	}
	switch o.Verify.KeyIn {
	case KeyInHeader:
		if o.Verify.KeyName == "" {
			o.Verify.KeyName = "X-API-Key"
		}
	case KeyInQuery:
		if o.Verify.KeyName == "" {
			o.Verify.KeyName = "api_key"
		}
	}
	if o.Verify.Status == 0 {
		o.Verify.Status = http.StatusOK
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.TLS.MinVersion == "" {
		o.TLS.MinVersion = DefaultMinTLSVersion
	}
	return o
}

// method is m upper-cased (methods are case-sensitive on the wire, and
// policy files often say "post"), or def when m is empty.
func method(m, def string) string {
	if m == "" {
		return def
	}
	return strings.ToUpper(m)
}

// headerNameRE and fieldNameRE are compiled on first use, not when swarmkey
// starts: every command links this package, and most never use them.
var (
	headerNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$") })
	fieldNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`) })
	methods      = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// Validate reports every problem of o (after WithDefaults) as a
// *ValidationError: missing requests, bad methods, headers and JSON
// pointers, templates that do not parse or name an unknown field, URLs
// that are not https:// without AllowInsecure, an unknown auth type or key
// location.
func (o Options) Validate() error {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if o.Policy == "" {
		add("policy", "required")
	}
	if o.KeyNamePrefix == "" || strings.ContainsFunc(o.KeyNamePrefix, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		add("key_name_prefix", "must be non-empty and free of control characters")
	}
	for _, name := range sortedKeys(o.Vars) {
		if !fieldNameRE().MatchString(name) {
			add("vars."+name, "a var name is lower case letters, digits and _, starting with a letter")
		}
	}

	switch o.Auth.Type {
	case AuthNone:
		if !o.Auth.Secret.IsZero() {
			add("auth.type", "required when auth.secret is given: bearer, header or basic")
		}
	case AuthBearer, AuthHeader, AuthBasic:
		if o.Auth.Secret.IsZero() {
			add("auth.secret", "required: the admin token, header value or password")
		}
		if o.Auth.Type == AuthHeader && !headerNameRE().MatchString(o.Auth.Header) {
			add("auth.header", "required for auth type header: a header name such as X-Admin-Key")
		}
		if o.Auth.Type == AuthBasic && (o.Auth.Username == "" || strings.Contains(o.Auth.Username, ":")) {
			add("auth.username", "required for auth type basic, without ':'")
		}
	default:
		add("auth.type", "unknown auth type %q: use bearer, header or basic", o.Auth.Type)
	}

	o.checkRequest(&ps, "issue", o.Issue.Request, false)
	if o.Issue.Key == "" {
		add("issue.key", "required: the JSON pointer of the key in the issue response, such as /key")
	}
	if o.Issue.ID == "" {
		add("issue.id", "required: the JSON pointer of the key's id in the issue response, such as /id")
	}
	if o.Issue.Key != "" && o.Issue.Key == o.Issue.ID {
		add("issue.id", "must differ from issue.key: the id is shown in status and audit rows, the key never")
	}
	checkPointer(&ps, "issue.key", o.Issue.Key)
	checkPointer(&ps, "issue.id", o.Issue.ID)
	checkPointer(&ps, "issue.expiry", o.Issue.Expiry)
	for _, name := range sortedKeys(o.Issue.Fields) {
		ptr := o.Issue.Fields[name]
		switch {
		case !fieldNameRE().MatchString(name):
			add("issue.fields."+name, "a field name is lower case letters, digits and _, starting with a letter")
		case slices.Contains(reservedFields, name):
			add("issue.fields."+name, "%q is a field of every document; choose another name", name)
		case ptr == "":
			add("issue.fields."+name, "required: a JSON pointer")
		case ptr == o.Issue.Key:
			add("issue.fields."+name, "points at the key itself; fields are public")
		}
		checkPointer(&ps, "issue.fields."+name, ptr)
	}
	if o.IdempotencyHeader != "" && !headerNameRE().MatchString(o.IdempotencyHeader) {
		add("idempotency_header", "%q is not a valid header name", o.IdempotencyHeader)
	}

	o.checkRequest(&ps, "verify", o.Verify.Request, true)
	switch o.Verify.KeyIn {
	case KeyInHeader:
		if !headerNameRE().MatchString(o.Verify.KeyName) {
			add("verify.key_name", "%q is not a valid header name", o.Verify.KeyName)
		}
	case KeyInQuery:
		if o.Verify.KeyPrefix != "" {
			add("verify.key_prefix", "used only with key_in: header")
		}
	case KeyInBasic:
		if strings.Contains(o.Verify.KeyName, ":") {
			add("verify.key_name", "a basic-auth username has no ':'")
		}
		if o.Verify.KeyPrefix != "" {
			add("verify.key_prefix", "used only with key_in: header")
		}
	case "":
		add("verify.key_in", "required: where the key goes: header, query or basic")
	default:
		add("verify.key_in", "unknown key location %q: use header, query or basic", o.Verify.KeyIn)
	}
	if o.Verify.Status < 100 || o.Verify.Status > 599 {
		add("verify.status", "must be an HTTP status between 100 and 599")
	}
	checkPointer(&ps, "verify.json_pointer", o.Verify.JSONPointer)
	if o.Verify.Expect != "" && o.Verify.JSONPointer == "" {
		add("verify.expect", "needs verify.json_pointer")
	}
	if o.Verify.Expect != "" {
		o.checkTemplate(&ps, "verify.expect", o.Verify.Expect, false)
	}

	o.checkRequest(&ps, "revoke", o.Revoke, true)
	if o.Enable != nil {
		o.checkRequest(&ps, "enable", *o.Enable, true)
	}
	if o.Disable != nil {
		o.checkRequest(&ps, "disable", *o.Disable, true)
		if o.Enable == nil {
			add("disable", "needs enable: Restore switches the disabled key back on")
		}
	}
	if o.List != nil {
		o.checkRequest(&ps, "list", o.List.Request, false)
		checkPointer(&ps, "list.items", o.List.Items)
		if o.List.ID == "" {
			add("list.id", "required: the JSON pointer of a key's id within each item, such as /id")
		}
		checkPointer(&ps, "list.id", o.List.ID)
		if o.List.Name != "" {
			checkPointer(&ps, "list.name", o.List.Name)
		}
	}

	if o.Timeout < 0 {
		add("timeout", "must not be negative")
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 20 {
		add("max_attempts", "must be between 1 and 20")
	}
	if o.MaxBackoff < 0 {
		add("max_backoff", "must not be negative")
	}
	if o.MaxRetryAfter < 0 {
		add("max_retry_after", "must not be negative")
	}
	if o.MaxResponseBytes < 1024 || o.MaxResponseBytes > MaxMaxResponseBytes {
		add("max_response_bytes", "must be between 1024 and %d (64 MiB)", MaxMaxResponseBytes)
	}
	if _, ok := tlsVersions[o.TLS.MinVersion]; !ok {
		add("tls.min_version", "unknown TLS version %q: use 1.2 or 1.3", o.TLS.MinVersion)
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		add("tls.cert_file", "cert_file and key_file go together")
	}

	if len(ps) > 0 {
		return &ValidationError{Subject: fmt.Sprintf("http target of policy %q", o.Policy), Problems: ps}
	}
	return nil
}

var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// checkRequest checks a request's method, URL, headers and body templates,
// rendering each against the sample data.
func (o Options) checkRequest(ps *[]Problem, name string, r Request, withKey bool) {
	add := func(field, format string, args ...any) {
		*ps = append(*ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if r.URL == "" {
		add(name+".url", "required")
		return
	}
	if !slices.Contains(methods, r.Method) {
		add(name+".method", "unknown method %q: use %s", r.Method, strings.Join(methods, ", "))
	}
	if rendered, ok := o.checkTemplate(ps, name+".url", r.URL, withKey); ok {
		if msg := o.urlProblem(rendered); msg != "" {
			add(name+".url", "%s", msg)
		}
	}
	for _, h := range sortedKeys(r.Headers) {
		v := r.Headers[h]
		if !headerNameRE().MatchString(h) {
			add(name+".headers", "%q is not a valid header name", h)
			continue
		}
		o.checkTemplate(ps, name+".headers."+h, v, withKey)
	}
	if r.Body != "" {
		o.checkTemplate(ps, name+".body", r.Body, withKey)
	}
}

// urlProblem says what is wrong with a rendered URL, "" when nothing.
func (o Options) urlProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "not an absolute URL (https://host/path)"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !o.AllowInsecure {
			return "http:// sends credentials in the clear: use https://, or set allow_insecure: true (tests, localhost)"
		}
	default:
		return fmt.Sprintf("unknown scheme %q: use https://", u.Scheme)
	}
	if u.User != nil {
		return "credentials in the URL are not allowed: use auth"
	}
	return ""
}

func checkPointer(ps *[]Problem, field, ptr string) {
	if ptr == "" {
		return
	}
	if _, err := parsePointer(ptr); err != nil {
		*ps = append(*ps, Problem{Field: field, Msg: err.Error()})
	}
}

// sortedKeys makes the order of problems (and so of config errors) stable.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
