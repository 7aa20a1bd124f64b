package scan

import (
	"regexp"
	"strings"
	"sync"
)

// The scan package's regular expressions are compiled on first use
// (sync.OnceValue), not when the program starts: every swarmkey command links
// this package, and exec or --help should not pay for rules only scan runs.

// credentialName matches names and keys that hold a credential: api_key,
// API_TOKEN, db-password, clientSecret, … (lower-cased, with - . as _).
var credentialName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(^|_|[a-z])(pass(word|wd|phrase)?|pwd|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|credentials?|bearer)($|_|[0-9])`)
})

// notCredentialName: names built on a credential word that hold something
// else (a URL, a file, a field's name, a length).
var notCredentialName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(_|^)(url|uri|endpoint|path|file|dir|name|names|field|header|type|id|ids|env|var|length|len|size|ttl|expiry|expires|expires_at|timeout|count|limit|prefix|pattern|regex|min|max|required|policy|policies|hash|salt_rounds|rotation|mode|method|scheme|location|store|format|enabled|key_name|key_id)$`)
})

// headerName matches HTTP header names that carry a credential.
var headerName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)^(authorization|proxy-authorization|x-api-key|api-key|apikey|x-auth-token|x-access-token|x-api-token|x-token|x-secret|x-client-secret|private-token|x-session-token)$`)
})

// payloadName matches request-body fields that carry a credential.
var payloadName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)^(password|passwd|pass|pwd|passphrase|secret|client_secret|clientsecret|token|access_token|refresh_token|api_key|apikey|api_token|auth_token|private_key|otp_secret)$`)
})

// isCredentialName reports whether a variable, attribute or key names a
// credential.
func isCredentialName(name string) bool {
	n := normalizeName(name)
	return credentialName().MatchString(n) && !notCredentialName().MatchString(n)
}

// normalizeName lower-cases name and turns camelCase, - and . into _.
func normalizeName(name string) string {
	var b strings.Builder
	prevLower := false
	for _, c := range name {
		switch {
		case c >= 'A' && c <= 'Z':
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(c + 'a' - 'A')
			prevLower = false
		case c == '-' || c == '.' || c == ' ':
			b.WriteByte('_')
			prevLower = false
		default:
			b.WriteRune(c)
			prevLower = c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		}
	}
	return b.String()
}

// placeholderWords are whole values that stand for a credential without
// being one.
var placeholderWords = map[string]bool{
	"password": true, "passwd": true, "pass": true, "secret": true, "token": true, "apikey": true, "api_key": true,
	"test": true, "testing": true, "admin": true, "root": true, "guest": true, "user": true, "username": true,
	"none": true, "null": true, "nil": true, "true": true, "false": true, "todo": true, "tbd": true, "fixme": true,
	"foo": true, "bar": true, "foobar": true, "baz": true, "123456": true, "12345678": true, "qwerty": true,
	"default": true, "required": true, "optional": true, "unset": true, "empty": true, "string": true, "str": true,
	"bearer": true, "basic": true, "hunter2": true, "letmein": true, "mysecret": true, "mypassword": true,
	"secret123": true, "password123": true, "s3cr3t": true, "notasecret": true, "not-a-secret": true,
	"insecure": true, "local": true, "localhost": true, "postgres": true, "locust": true,
}

// placeholderParts are substrings of values that are placeholders,
// templates or references, not credentials.
var placeholderParts = []string{
	"changeme", "change_me", "change-me", "changethis", "example", "placeholder", "your_", "your-", "yourpassword",
	"yourtoken", "yourkey", "xxxx", "****", "....", "…", "redacted", "dummy", "<", ">", "${", "{{", "%(", "$(",
	"replace_me", "replace-me", "replaceme", "insert_", "insert-", "sample", "fake", "not_set", "notset", "no-secret",
}

// referencePrefix: values that point at a credential kept elsewhere.
var referencePrefix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(env|file|store|vault|secret|secrets|aws|gcp|ssm|op|keyring|ref)[:.]`)
})

var envVarLike = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\$?[A-Z][A-Z0-9_]{2,}$`) })

// placeholder reports whether v is no credential: a placeholder word, a
// template, a reference to a credential kept elsewhere, a variable's name,
// a single repeated character.
func placeholder(v string) bool {
	l := strings.ToLower(strings.TrimSpace(v))
	if l == "" || placeholderWords[l] {
		return true
	}
	for _, p := range placeholderParts {
		if strings.Contains(l, p) {
			return true
		}
	}
	if strings.HasPrefix(l, "$") || referencePrefix().MatchString(l) || envVarLike().MatchString(v) {
		return true
	}
	if strings.Count(l, l[:1]) == len(l) {
		return true
	}
	return false
}

// plausibleSecret reports whether v, found by its name or key alone, looks
// like a credential rather than an ordinary setting: long enough, no spaces,
// not a URL, path, number, boolean or placeholder.
func plausibleSecret(v string) bool {
	if len(v) < 6 || len(v) > 512 || placeholder(v) || strings.ContainsAny(v, " \t") {
		return false
	}
	if strings.Contains(v, "://") || strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "~/") {
		return false
	}
	if isNumber(v) || slugPath().MatchString(v) {
		return false
	}
	return true
}

// slugPath: a lower-case path of words, such as a secret's id
// (loadtest/payments-api); base64 and generated secrets mix cases.
var slugPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]*(/[a-z0-9_-]+)+$`) })

// plausibleUsedSecret is plausibleSecret for a value swarmkey saw used as a
// credential (a header, an auth tuple, a login field): a shorter one counts.
func plausibleUsedSecret(v string) bool {
	return len(v) >= 4 && len(v) <= 4096 && !placeholder(v) && !strings.Contains(v, "://")
}

func isNumber(v string) bool {
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// stripScheme removes an authorization scheme ("Bearer ", "Token ",
// "Basic ", "ApiKey ") from a header value and returns how many bytes it
// removed.
func stripScheme(v string) (string, int) {
	m := schemePrefix().FindStringIndex(v)
	if m == nil {
		return v, 0
	}
	return v[m[1]:], m[1]
}

var schemePrefix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)^\s*(bearer|token|basic|apikey|api-key|key|digest|jwt)\s+`)
})

// userinfoURL finds the password of a URL with userinfo:
// scheme://user:password@host. Group 1 is the scheme, 2 the password.
var userinfoURL = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*)://[^\s:/@'"` + "`" + `]*:([^\s@/'"` + "`" + `]+)@[^\s'"` + "`" + `]+`)
})

// urlPasswords returns the passwords in s's URLs with userinfo, with their
// byte offsets and whether the URL is HTTP (a Locust host) rather than a
// connection string.
func urlPasswords(s string) []urlPassword {
	var out []urlPassword
	for _, m := range userinfoURL().FindAllStringSubmatchIndex(s, -1) {
		pw := s[m[4]:m[5]]
		if placeholder(pw) || len(pw) < 3 {
			continue
		}
		scheme := strings.ToLower(s[m[2]:m[3]])
		out = append(out, urlPassword{value: pw, start: m[4], end: m[5], http: scheme == "http" || scheme == "https"})
	}
	return out
}

type urlPassword struct {
	value      string
	start, end int
	http       bool
}
