package postgres_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// parseMessages holds every fixed word of ParseDocument's errors: a
// password that is one of them may well appear in an error without being
// quoted from the input.
const parseMessages = "postgres secret document is empty is not valid JSON (error at byte ) (truncated) " +
	"must be a JSON object, not a JSON number string array bool null another JSON value field must be a JSON " +
	"text after the JSON object engine is not a PostgreSQL engine username is missing or empty " +
	"for role password port is out of range 1-65535"

// FuzzParseDocument feeds arbitrary bytes to ParseDocument as a secret
// document: it must not panic; an error never quotes the password the input
// holds; a document it accepts encodes (Secret) to one that parses back to
// the same document, and prints without its password.
func FuzzParseDocument(f *testing.F) {
	for _, seed := range []string{
		`{"engine":"postgres","host":"127.0.0.1","port":5432,"dbname":"app","username":"checkout","password":"Zq9xW2vK7"}`,
		`{"engine":"aurora-postgresql","host":"h","port":5432,"username":"u","password":"p","dbClusterIdentifier":"c"}`,
		`{"username":"u","password":"Zq9xW2vK7","port":5432.5}`,
		`{"username":"u","password":123456789}`,
		`{"username":"u","password":"p"} {"password":"Zq9xW2vK7"}`,
		`{"username":"u","password":"p","port":70000}`,
		`{"engine":"mysql","username":"u","password":"Zq9xW2vK7"}`,
		`["Zq9xW2vK7"]`, `"Zq9xW2vK7"`, `null`, `{"username":"u\u0000","password":"\ud800"}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := postgres.ParseDocument(secret.New(data))
		var given struct {
			Engine   any `json:"engine"`
			Username any `json:"username"`
			Password any `json:"password"`
			Port     any `json:"port"`
		}
		_ = json.Unmarshal(data, &given)
		pw, _ := given.Password.(string)
		if err != nil {
			// The error may name the engine, the username and the port:
			// they are public. Cut them out, then look for the password.
			msg := err.Error()
			for _, public := range []any{given.Engine, given.Username, given.Port} {
				if s := fmt.Sprint(public); s != "" && s != "<nil>" {
					msg = strings.ReplaceAll(msg, strconv.Quote(s), "")
					msg = strings.ReplaceAll(msg, s, "")
				}
			}
			if len(pw) >= 4 && !strings.Contains(parseMessages, pw) && strings.Contains(msg, pw) {
				t.Fatalf("the error quotes the password %q: %v", pw, err)
			}
			return
		}
		if doc.Username == "" || doc.Password.IsZero() {
			t.Fatalf("accepted a document without username or password: %+v", doc)
		}
		s, err := doc.Secret()
		if err != nil {
			t.Fatalf("an accepted document does not encode: %v", err)
		}
		back, err := postgres.ParseDocument(s)
		if err != nil {
			t.Fatalf("an encoded document does not parse: %v", err)
		}
		if back.Host != doc.Host || back.Port != doc.Port || back.DBName != doc.DBName ||
			back.Username != doc.Username || !back.Password.Equal(doc.Password) {
			t.Fatalf("round trip changed the document: %+v became %+v", doc, back)
		}
		printed := fmt.Sprintf("%v %+v %#v", doc, doc, doc)
		public := fmt.Sprintf("%s %d %s %s %s", doc.Host, doc.Port, doc.DBName, doc.Username, secret.Redacted)
		if p := doc.Password.RevealString(); len(p) >= 4 && !strings.Contains(public, p) && !strings.Contains("postgres.Document{Host: Port: DBName: Username: Password:}", p) &&
			strings.Contains(printed, p) {
			t.Fatalf("printing the document shows its password: %s", printed)
		}
	})
}
