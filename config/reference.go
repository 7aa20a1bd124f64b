package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/swarmkey/swarmkey/secret"
)

// Reference schemes.
const (
	SchemeEnv   = "env"
	SchemeFile  = "file"
	SchemeStore = "store"
)

// referenceForms is the help text of every "not a reference" error.
const referenceForms = "env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]"

// errPlaintext is what a credential field that holds anything but a reference
// gets, including a connection URL with a password in it. The message never
// quotes the value: it may well be the password.
var errPlaintext = errors.New("plaintext credentials are not allowed here; give a reference: " + referenceForms)

// maxReferenceFile bounds what a file: reference reads; credentials are small.
const maxReferenceFile = 1 << 20

var (
	envNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	providerRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9]*$`) })
)

// Reference points at a credential without holding it. A policy file holds
// only references; Resolve fetches the value at the moment it is needed.
//
//	env:NAME                              the environment variable NAME
//	file:/abs/path                        the file's contents, one trailing newline trimmed
//	store:<provider>/<secret-id>[#field]  the current version of a secret; with #field,
//	                                      that field of the secret's JSON document
type Reference struct {
	// Scheme is SchemeEnv, SchemeFile or SchemeStore.
	Scheme string
	// Name is the variable name, the file path, or "<provider>/<secret-id>".
	Name string
	// Provider and SecretID are set for store references.
	Provider, SecretID string
	// Field is the JSON field a store reference picks, "" for the whole value.
	Field string
}

// ParseReference parses the three reference forms. Anything else, a
// connection URL included, is refused with an error that does not repeat the
// input.
func ParseReference(s string) (Reference, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		if s == "" {
			return Reference{}, errors.New("empty reference; give " + referenceForms)
		}
		return Reference{}, errPlaintext
	}
	switch scheme {
	case SchemeEnv:
		if !envNameRE().MatchString(rest) {
			return Reference{}, errors.New("env: reference needs a variable name of letters, digits and _ (env:NAME)")
		}
		return Reference{Scheme: SchemeEnv, Name: rest}, nil
	case SchemeFile:
		if !filepath.IsAbs(rest) || strings.ContainsRune(rest, 0) {
			return Reference{}, errors.New("file: reference needs an absolute path (file:/absolute/path)")
		}
		return Reference{Scheme: SchemeFile, Name: rest}, nil
	case SchemeStore:
		body, field, hasField := strings.Cut(rest, "#")
		provider, id, _ := strings.Cut(body, "/")
		if !providerRE().MatchString(provider) || id == "" || strings.ContainsFunc(id, isSpaceOrControl) {
			return Reference{}, errors.New("store: reference needs a provider and a secret id (store:<provider>/<secret-id>[#field])")
		}
		if hasField && (field == "" || strings.ContainsFunc(field, isSpaceOrControl)) {
			return Reference{}, errors.New("store: reference has an empty or malformed #field")
		}
		return Reference{Scheme: SchemeStore, Name: body, Provider: provider, SecretID: id, Field: field}, nil
	}
	return Reference{}, errPlaintext
}

// IsZero reports whether r is unset (an optional reference not given).
func (r Reference) IsZero() bool { return r.Scheme == "" }

// String is the reference as a policy file spells it; it holds no value.
func (r Reference) String() string {
	if r.IsZero() {
		return ""
	}
	s := r.Scheme + ":" + r.Name
	if r.Field != "" {
		s += "#" + r.Field
	}
	return s
}

// StoreReader reads the current version of a secret from the provider named
// as policies spell it ("file", "aws", "gcp").
type StoreReader func(ctx context.Context, provider, secretID string) (secret.Secret, error)

// Resolve fetches the value r points at. It fails, naming r and never the
// value, when an environment variable is unset or empty; when a file is
// missing, unreadable, empty, or readable by group or others (mode bits
// 0o077: chmod 600 it); when a store reference has no stores to read from or
// the store fails; and when #field is absent from the secret's JSON object or
// is neither a string nor a number. File contents lose one trailing newline
// ("\n" or "\r\n"), which editors and `echo` add.
func (r Reference) Resolve(ctx context.Context, stores StoreReader) (secret.Secret, error) {
	s, err := r.resolve(ctx, stores)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("reference %s: %w", r, err)
	}
	if s.IsZero() {
		return secret.Secret{}, fmt.Errorf("reference %s: the value is empty", r)
	}
	return s, nil
}

func (r Reference) resolve(ctx context.Context, stores StoreReader) (secret.Secret, error) {
	switch r.Scheme {
	case SchemeEnv:
		v, ok := os.LookupEnv(r.Name)
		if !ok || v == "" {
			return secret.Secret{}, errors.New("the environment variable is unset or empty")
		}
		return secret.FromString(v), nil
	case SchemeFile:
		return readSecretFile(r.Name)
	case SchemeStore:
		if stores == nil {
			return secret.Secret{}, errors.New("no secret stores to read from")
		}
		s, err := stores(ctx, r.Provider, r.SecretID)
		if err != nil {
			return secret.Secret{}, err
		}
		if r.Field == "" {
			return s, nil
		}
		return pickField(s, r.Field)
	}
	return secret.Secret{}, errors.New("not a reference")
}

func readSecretFile(path string) (secret.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return secret.Secret{}, pathErr(err)
	}
	defer f.Close()
	// Check the mode of the file actually opened, not of whatever the path
	// names a moment later.
	fi, err := f.Stat()
	if err != nil {
		return secret.Secret{}, pathErr(err)
	}
	if !fi.Mode().IsRegular() {
		return secret.Secret{}, errors.New("not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return secret.Secret{}, fmt.Errorf("mode %04o lets group or others read it; run chmod 600 %s", perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxReferenceFile+1))
	if err != nil {
		return secret.Secret{}, pathErr(err)
	}
	defer clear(b)
	if len(b) > maxReferenceFile {
		return secret.Secret{}, fmt.Errorf("larger than %d bytes", maxReferenceFile)
	}
	v := bytes.TrimSuffix(b, []byte("\n"))
	if len(v) < len(b) {
		v = bytes.TrimSuffix(v, []byte("\r"))
	}
	return secret.New(v), nil
}

// pathErr drops the path from an *os.PathError: the reference already names it.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pickField returns one field of a JSON object. Its errors describe the
// document's shape only: a json.SyntaxError would quote a byte of the value.
func pickField(s secret.Secret, field string) (secret.Secret, error) {
	b := s.Reveal()
	defer clear(b)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		return secret.Secret{}, errors.New("the secret is not a JSON object, so it has no fields")
	}
	raw, ok := doc[field]
	if !ok {
		return secret.Secret{}, fmt.Errorf("the secret has no field %q", field)
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return secret.FromString(str), nil
	}
	var num json.Number
	if err := json.Unmarshal(raw, &num); err == nil {
		return secret.FromString(num.String()), nil
	}
	return secret.Secret{}, fmt.Errorf("field %q is neither a string nor a number", field)
}
