package mysql

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
const Engine = "mysql"

// Document is the secret document of a MySQL or MariaDB credential: a JSON
// object with the field names of AWS's RDS secrets, so that tools that read
// those read ours:
//
//	{"engine":"mysql","host":"127.0.0.1","port":3306,"dbname":"app","username":"checkout","password":"…"}
//
// Password is a secret.Secret, so printing a Document prints [REDACTED] in
// its place; everything else in the document is public.
type Document struct {
	Host     string
	Port     int
	DBName   string
	Username string
	Password secret.Secret
}

// wireDocument is the JSON shape. It lives only inside Secret and
// ParseDocument, so the plaintext password never sits in a printable struct.
type wireDocument struct {
	Engine   string `json:"engine"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	DBName   string `json:"dbname,omitempty"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// engines are the engine values ParseDocument accepts (RDS writes the
// last two for its MariaDB and Aurora secrets).
var engines = map[string]bool{"": true, Engine: true, "mariadb": true, "aurora-mysql": true}

// Secret encodes the document as its JSON secret value. It fails when the
// username or the password is empty.
func (d Document) Secret() (secret.Secret, error) {
	if d.Username == "" {
		return secret.Secret{}, errors.New("mysql secret document: username is empty")
	}
	if d.Password.IsZero() {
		return secret.Secret{}, fmt.Errorf("mysql secret document for user %q: password is empty", d.Username)
	}
	b, err := json.Marshal(wireDocument{
		Engine: Engine, Host: d.Host, Port: d.Port, DBName: d.DBName,
		Username: d.Username, Password: d.Password.RevealString(),
	})
	if err != nil {
		// json.Marshal of strings and ints does not fail; say so without the value.
		return secret.Secret{}, fmt.Errorf("mysql secret document for user %q: encode: %T", d.Username, err)
	}
	s := secret.New(b)
	clear(b)
	return s, nil
}

// ParseDocument decodes a secret document. Fields it does not know are
// ignored; engine may be absent, "mysql", "mariadb" or "aurora-mysql".
// Username and password are required. Errors say which field is wrong and
// never quote any part of the value: encoding/json's own messages can
// carry a character or a number of the input, so they are rewritten here.
func ParseDocument(s secret.Secret) (Document, error) {
	if s.IsZero() {
		return Document{}, errors.New("mysql secret document is empty")
	}
	raw := s.Reveal()
	defer clear(raw)

	var w wireDocument
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return Document{}, describeJSONError(err)
	}
	if dec.More() {
		return Document{}, errors.New("mysql secret document: text after the JSON object")
	}
	if !engines[w.Engine] {
		return Document{}, fmt.Errorf("mysql secret document: engine %q is not a MySQL or MariaDB engine", w.Engine)
	}
	if w.Username == "" {
		return Document{}, errors.New("mysql secret document: username is missing or empty")
	}
	if w.Password == "" {
		return Document{}, fmt.Errorf("mysql secret document for user %q: password is missing or empty", w.Username)
	}
	if w.Port < 0 || w.Port > 65535 {
		return Document{}, fmt.Errorf("mysql secret document for user %q: port %d is out of range 1-65535", w.Username, w.Port)
	}
	return Document{
		Host: w.Host, Port: w.Port, DBName: w.DBName,
		Username: w.Username, Password: secret.FromString(w.Password),
	}, nil
}

func describeJSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("mysql secret document is not valid JSON (error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		// typ.Value would name the input ("number 3306.5"), which for the
		// password field is part of the secret: keep only field and type.
		if typ.Field == "" {
			return fmt.Errorf("mysql secret document must be a JSON object, not %s", jsonKind(typ.Value))
		}
		want := "string"
		if typ.Type.Kind().String() == "int" {
			want = "number"
		}
		return fmt.Errorf("mysql secret document: field %q must be a JSON %s", typ.Field, want)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("mysql secret document is not valid JSON (truncated)")
	}
	return errors.New("mysql secret document is not valid JSON")
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
