package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/swarmkey/swarmkey/secret"
)

// Engine is the value of the document's "engine" field.
const Engine = "redis"

// Document is the secret document of a Redis ACL user: a JSON object with
// the field names of the other database targets (AWS's RDS secrets), db
// being the logical database number a client SELECTs:
//
//	{"engine":"redis","host":"127.0.0.1","port":6379,"db":0,"username":"checkout","password":"…"}
//
// Password is a secret.Secret, so printing a Document prints [REDACTED] in
// its place; everything else in the document is public.
type Document struct {
	Host     string
	Port     int
	DB       int
	Username string
	Password secret.Secret
}

// wireDocument is the JSON shape. It lives only inside Secret and
// ParseDocument, so the plaintext password never sits in a printable struct.
type wireDocument struct {
	Engine   string `json:"engine"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	DB       int    `json:"db"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// engines are the engine values ParseDocument accepts: Valkey, Redis's
// fork, speaks the same ACL commands.
var engines = map[string]bool{"": true, Engine: true, "valkey": true}

// Secret encodes the document as its JSON secret value. It fails when the
// username or the password is empty.
func (d Document) Secret() (secret.Secret, error) {
	if d.Username == "" {
		return secret.Secret{}, errors.New("redis secret document: username is empty")
	}
	if d.Password.IsZero() {
		return secret.Secret{}, fmt.Errorf("redis secret document for user %q: password is empty", d.Username)
	}
	b, err := json.Marshal(wireDocument{
		Engine: Engine, Host: d.Host, Port: d.Port, DB: d.DB,
		Username: d.Username, Password: d.Password.RevealString(),
	})
	if err != nil {
		// json.Marshal of strings and ints does not fail; say so without the value.
		return secret.Secret{}, fmt.Errorf("redis secret document for user %q: encode: %T", d.Username, err)
	}
	s := secret.New(b)
	clear(b)
	return s, nil
}

// ParseDocument decodes a secret document. Fields it does not know are
// ignored; engine may be absent, "redis" or "valkey".
// Username and password are required. Errors say which field is wrong and
// never quote any part of the value: encoding/json's own messages can
// carry a character or a number of the input, so they are rewritten here.
func ParseDocument(s secret.Secret) (Document, error) {
	if s.IsZero() {
		return Document{}, errors.New("redis secret document is empty")
	}
	raw := s.Reveal()
	defer clear(raw)

	var w wireDocument
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return Document{}, describeJSONError(err)
	}
	if dec.More() {
		return Document{}, errors.New("redis secret document: text after the JSON object")
	}
	if !engines[w.Engine] {
		return Document{}, fmt.Errorf("redis secret document: engine %q is not a Redis engine", w.Engine)
	}
	if w.Username == "" {
		return Document{}, errors.New("redis secret document: username is missing or empty")
	}
	if w.Password == "" {
		return Document{}, fmt.Errorf("redis secret document for user %q: password is missing or empty", w.Username)
	}
	if w.Port < 0 || w.Port > 65535 {
		return Document{}, fmt.Errorf("redis secret document for user %q: port %d is out of range 1-65535", w.Username, w.Port)
	}
	if w.DB < 0 {
		return Document{}, fmt.Errorf("redis secret document for user %q: db %d is negative", w.Username, w.DB)
	}
	return Document{
		Host: w.Host, Port: w.Port, DB: w.DB,
		Username: w.Username, Password: secret.FromString(w.Password),
	}, nil
}

func describeJSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("redis secret document is not valid JSON (error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		// typ.Value would name the input ("number 6379.5"), which for the
		// password field is part of the secret: keep only field and type.
		if typ.Field == "" {
			return fmt.Errorf("redis secret document must be a JSON object, not %s", jsonKind(typ.Value))
		}
		want := "string"
		if typ.Type.Kind().String() == "int" {
			want = "number"
		}
		return fmt.Errorf("redis secret document: field %q must be a JSON %s", typ.Field, want)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("redis secret document is not valid JSON (truncated)")
	}
	return errors.New("redis secret document is not valid JSON")
}

// jsonKind reduces UnmarshalTypeError.Value ("number 12", "string") to the
// kind word only.
func jsonKind(v string) string {
	for _, k := range []string{"number", "string", "array", "bool", "null"} {
		if strings.HasPrefix(v, k) {
			return "a JSON " + k
		}
	}
	return "another JSON value"
}
