package httpkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// pointer is a parsed RFC 6901 JSON pointer: "" is the whole document,
// "/a/0/b~1c" the tokens a, 0, b/c.
type pointer []string

func parsePointer(s string) (pointer, error) {
	if s == "" {
		return pointer{}, nil
	}
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("%q is not a JSON pointer: it starts with / (RFC 6901), such as /data/key", s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(p, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("%q is not a JSON pointer: ~ is escaped as ~0 and / as ~1", s)
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

var errNoValue = errors.New("not in the response")

// lookup follows p through v, a value decoded with UseNumber.
func (p pointer) lookup(v any) (any, error) {
	for _, tok := range p {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[tok]
			if !ok {
				return nil, errNoValue
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(node) || (len(tok) > 1 && tok[0] == '0') {
				return nil, errNoValue
			}
			v = node[i]
		default:
			return nil, errNoValue
		}
	}
	return v, nil
}

// scalar turns a string, number or boolean into its text; ok is false for
// null, objects and arrays.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// decodeJSON decodes a response body with numbers kept as text, so that a
// numeric id keeps its digits.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("the response is not valid JSON")
	}
	if dec.More() {
		return nil, errors.New("the response has data after its JSON value")
	}
	return v, nil
}
