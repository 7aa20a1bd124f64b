package httpkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
)

// Data is what every template sees. Only public values are fields: a key's
// value is reachable through the key function alone, which the request
// builder binds per request and which renders into the request only.
//
// Templates run with missingkey=error, so a misspelt .Vars.NAME or
// .Current.Fields.NAME is an error, like an unknown field.
//
// Functions:
//
//	key         the value of the key the request is about (verify: the
//	            credential; revoke, enable, disable: the key, when its
//	            document is at hand). An error in issue and list requests,
//	            and in verify.expect.
//	json        a string as a JSON string literal, quotes included:
//	            {"name": {{json .KeyName}}}
//	pathescape  url.PathEscape; urlquery is text/template's own
type Data struct {
	// Policy is the policy's name.
	Policy string
	// Token is the rotation token (a UUIDv7); "" outside a rotation's
	// create, set and rollback.
	Token string
	// KeyName is KeyNamePrefix + Token in issue requests; the key's own
	// name elsewhere, when known.
	KeyName string
	// KeyID is the id of the key the request is about: verify, revoke,
	// enable, disable; "" in issue and list.
	KeyID string
	// Vars are the policy's vars.
	Vars map[string]string
	// Current is the current credential's public part; its fields are ""
	// on the first rotation.
	Current Key
}

// Key is the public part of a credential document.
type Key struct {
	KeyID     string
	KeyName   string
	ExpiresAt string
	// Fields are the issue.fields of the document.
	Fields map[string]string
}

// errNoKey is what the key function returns where no key value exists.
var errNoKey = errors.New("the key function is not available in this request")

func baseFuncs() template.FuncMap {
	return template.FuncMap{
		"key": func() (string, error) { return "", errNoKey },
		"json": func(s string) (string, error) {
			b, err := json.Marshal(s)
			return string(b), err
		},
		"pathescape": url.PathEscape,
	}
}

// parse parses one template under the name of its field.
func parse(field, text string) (*template.Template, error) {
	t, err := template.New(field).Option("missingkey=error").Funcs(baseFuncs()).Parse(text)
	if err != nil {
		return nil, templateError(err)
	}
	return t, nil
}

// render executes t with d; keyValue, when non-nil, backs the key function.
// Errors name the template and never its output: text/template's messages
// quote the template source and the failing action, not data, and the
// caller scrubs them all the same.
func render(t *template.Template, d Data, keyValue func() (string, error)) (string, error) {
	if keyValue != nil {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		t = c.Funcs(template.FuncMap{"key": keyValue})
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", templateError(err)
	}
	return b.String(), nil
}

// templateError trims text/template's "template: NAME:" prefix, which
// repeats the field the caller names anyway.
func templateError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "template: "); ok {
		msg = rest
	}
	return errors.New(msg)
}

// sample is the data templates are rendered against at Validate: every var
// and field the options define, and a current key.
func (o Options) sample() Data {
	return Data{
		Policy: o.Policy, Token: "01234567-89ab-7def-8123-456789abcdef",
		KeyName: o.KeyNamePrefix + "01234567-89ab-7def-8123-456789abcdef", KeyID: "sample-key-id",
		Vars: o.Vars, Current: o.emptyKey("sample-current-id"),
	}
}

// emptyKey is a Key with every configured field present, so that
// missingkey=error fails only on names the policy does not define.
func (o Options) emptyKey(id string) Key {
	k := Key{KeyID: id, Fields: map[string]string{}}
	for name := range o.Issue.Fields {
		k.Fields[name] = ""
	}
	return k
}

// checkTemplate parses text and renders it against the sample; it returns
// the output and whether both worked.
// withKey says whether the request binds the key function.
func (o Options) checkTemplate(ps *[]Problem, field, text string, withKey bool) (string, bool) {
	t, err := parse(field, text)
	if err == nil {
		var keyValue func() (string, error)
		if withKey {
			keyValue = func() (string, error) { return "sample-key-value", nil }
		}
		var out string
		out, err = render(t, o.sample(), keyValue)
		if err == nil {
			return out, true
		}
	}
	*ps = append(*ps, Problem{Field: field, Msg: fmt.Sprintf("bad template: %v", err)})
	return "", false
}
