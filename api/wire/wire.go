// Package wire is the runner API's wire format: the requests and answers
// that the server (package api) and its client (package api/client) share,
// the lease TTLs a client may ask for, and how a credential's fields become
// the texts a program gets in its environment.
//
// It is its own package, and imports nothing of the server's (the state
// database, the stores, Prometheus), so that swarmkey-exec, the small
// binary load generators run, links only the client side.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/secret"
)

// Lease TTLs a client may ask for. The default matches `swarmkey exec`;
// the cap bounds how long a runner that dies without ending its lease
// blocks rotations.
const (
	DefaultLeaseTTL = 30 * time.Second
	MaxLeaseTTL     = time.Hour
)

// LeaseRequest is the body of POST /v1/leases.
type LeaseRequest struct {
	Run    string   `json:"run"`
	Uses   []string `json:"uses"`
	Holder string   `json:"holder"`
	// TTLSeconds: 0 means DefaultLeaseTTL; at most MaxLeaseTTL.
	TTLSeconds int `json:"ttl_seconds"`
}

// LeaseResponse answers POST /v1/leases and its heartbeats.
type LeaseResponse struct {
	ID         string    `json:"id"`
	TTLSeconds int       `json:"ttl_seconds,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// CredentialBody answers GET /v1/policies/{name}/credential: the fields
// exactly as the secret document holds them (a port stays a number).
type CredentialBody struct {
	Policy  string                     `json:"policy"`
	Version string                     `json:"version"`
	Fields  map[string]json.RawMessage `json:"fields"`
}

// MaxCredentialsPerRequest bounds the policies of one POST /v1/credentials.
const MaxCredentialsPerRequest = 100

// CredentialsRequest is the body of POST /v1/credentials: the policies
// whose credentials to read, each once.
type CredentialsRequest struct {
	Policies []string `json:"policies"`
}

// CredentialsBody answers POST /v1/credentials: one credential per policy
// asked, in the order asked.
type CredentialsBody struct {
	Credentials []CredentialBody `json:"credentials"`
}

// TTLSeconds rounds d up to whole seconds, as the API counts TTLs.
func TTLSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// IsLoopback reports whether host (a name or an address, without port)
// is this machine's loopback: "localhost" or a loopback IP. An empty host
// (every interface) is not.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// errNotObject is what a secret document that is not a JSON object gives.
// It never quotes the document (json's own errors quote a character of it).
var errNotObject = errors.New("the secret's current version is not a JSON object of fields")

// RawFields splits a secret document into its fields, as JSON texts. The
// error never quotes the document.
func RawFields(doc secret.Secret) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc.Reveal(), &m); err != nil || m == nil {
		return nil, errNotObject
	}
	return m, nil
}

// Fields splits a secret document (a JSON object) into its fields, each
// as the text a program expects in an environment variable (see
// FieldTexts). The error never quotes the document.
func Fields(doc secret.Secret) (map[string]secret.Secret, error) {
	raw, err := RawFields(doc)
	if err != nil {
		return nil, err
	}
	return FieldTexts(raw)
}

// FieldTexts turns fields as JSON texts into the texts a program expects
// in an environment variable: a string field as the string, null as "", a
// number, boolean, array or object as its compact JSON text. The error
// names the field, never its value.
func FieldTexts(raw map[string]json.RawMessage) (map[string]secret.Secret, error) {
	out := make(map[string]secret.Secret, len(raw))
	for name, r := range raw {
		r = bytes.TrimSpace(r)
		switch {
		case len(r) > 0 && r[0] == '"':
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, fmt.Errorf("field %q: not a valid JSON string", name)
			}
			out[name] = secret.FromString(s)
		case bytes.Equal(r, []byte("null")):
			out[name] = secret.Secret{}
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, r); err != nil {
				return nil, fmt.Errorf("field %q: not valid JSON", name)
			}
			out[name] = secret.New(buf.Bytes())
		}
	}
	return out, nil
}
