package httpkey

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/swarmkey/swarmkey/secret"
)

// Document is an API-key credential as stored:
//
//	{"api_key": …, "key_id": …, "key_name": …, "expires_at": …,
//	 "previous_key_id": …, <issue.fields>…}
//
// previous_key_id is the id of the key that was current when this one was
// created: the key that falls off when this one's successor is promoted.
// It lets Retire find that key even when the rotator no longer has its
// document (a rotation resumed after promote).
type Document struct {
	APIKey        secret.Secret
	KeyID         string
	KeyName       string
	ExpiresAt     string
	PreviousKeyID string
	Fields        map[string]string
}

// Secret encodes the document.
func (d Document) Secret() (secret.Secret, error) {
	m := make(map[string]string, len(d.Fields)+5)
	for k, v := range d.Fields {
		m[k] = v
	}
	m[FieldAPIKey] = d.APIKey.RevealString()
	m[FieldKeyID] = d.KeyID
	for k, v := range map[string]string{FieldKeyName: d.KeyName, FieldExpiresAt: d.ExpiresAt, FieldPreviousKeyID: d.PreviousKeyID} {
		if v != "" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return secret.Secret{}, errors.New("cannot encode the document")
	}
	s := secret.New(b)
	clear(b)
	return s, nil
}

// Public is the part of the document templates see.
func (d Document) Public() Key {
	return Key{KeyID: d.KeyID, KeyName: d.KeyName, ExpiresAt: d.ExpiresAt, Fields: d.Fields}
}

// ParseDocument decodes a document; fields names the issue.fields to keep
// (other entries are ignored: they may hold anything). Errors name fields,
// never values: encoding/json's messages can quote them.
func ParseDocument(s secret.Secret, fields []string) (Document, error) {
	if s.IsZero() {
		return Document{}, errors.New("the document is empty")
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(s.Reveal(), &m) != nil {
		return Document{}, errors.New("the document is not a JSON object")
	}
	str := func(name string, required bool) (string, error) {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			if required {
				return "", fmt.Errorf("the document has no %q", name)
			}
			return "", nil
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return "", fmt.Errorf("the document's %q is not a string", name)
		}
		if required && v == "" {
			return "", fmt.Errorf("the document's %q is empty", name)
		}
		return v, nil
	}
	var d Document
	key, err := str(FieldAPIKey, true)
	if err != nil {
		return Document{}, err
	}
	d.APIKey = secret.FromString(key)
	if d.KeyID, err = str(FieldKeyID, true); err != nil {
		return Document{}, err
	}
	if d.KeyName, err = str(FieldKeyName, false); err != nil {
		return Document{}, err
	}
	if d.ExpiresAt, err = str(FieldExpiresAt, false); err != nil {
		return Document{}, err
	}
	if d.PreviousKeyID, err = str(FieldPreviousKeyID, false); err != nil {
		return Document{}, err
	}
	d.Fields = make(map[string]string, len(fields))
	for _, f := range fields {
		if d.Fields[f], err = str(f, false); err != nil {
			return Document{}, err
		}
	}
	return d, nil
}
