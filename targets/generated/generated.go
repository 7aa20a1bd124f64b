// Package generated is the target for shared tokens that no system issues:
// swarmkey generates a random value (the policy's password rules) and
// stores it; both sides of the load test read it from the store. There is
// nothing to apply, restore or retire, and Verify can only check that the
// document is well formed: the store is the system.
//
// Because no system holds the value, the shared conformance suite
// (targettest), which proves that an old credential stops working, does not
// apply; the package's own tests cover the verbs, and run the suite's cases
// of the Check step (targettest.RunCheck).
package generated

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/validation"
)

// DefaultField is the document's field when Options.Field is empty.
const DefaultField = "value"

// fieldRE is a document field name. It is compiled on first use, not when
// swarmkey starts: every command links this package, and most never use it.
var fieldRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`) })

// Options configure a generated target. The yaml tags are the keys of a
// policy file's target.generated block, which package config decodes into
// Options.
type Options struct {
	// Policy names the policy in errors.
	Policy string `yaml:"-"`
	// Field is the document's only field; default "value".
	Field string `yaml:"field"`
}

// WithDefaults returns o with Field "value" when it is empty.
func (o Options) WithDefaults() Options {
	if o.Field == "" {
		o.Field = DefaultField
	}
	return o
}

// Validate checks o after defaults: Field must be a ValidField. It returns
// a *validation.Error.
func (o Options) Validate() error {
	o = o.WithDefaults()
	ve := &validation.Error{Subject: fmt.Sprintf("generated target of policy %q", o.Policy)}
	if !ValidField(o.Field) {
		ve.Add("field", "%q is not a valid field name: use lower case letters, digits and _, starting with a letter", o.Field)
	}
	return ve.Err()
}

// Target stores generated values. It has no state.
type Target struct {
	opts Options
}

var _ targets.Target = (*Target)(nil)

// ValidField reports whether name may be the document's field: lower case
// letters, digits and _, starting with a letter, at most 63 bytes.
func ValidField(name string) bool { return fieldRE().MatchString(name) }

// New checks opts (see Validate) and fills in the default field.
func New(opts Options) (*Target, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Target{opts: opts.WithDefaults()}, nil
}

// Check reads req.Document as this target's document: a JSON object whose
// field is a non-empty string. Anything else is a
// *targets.UnreadableError.
func (t *Target) Check(_ context.Context, req targets.CheckRequest) error {
	if _, err := targets.ParseStrategy(string(req.Strategy)); err != nil {
		return t.errorf("check", err)
	}
	if err := t.readable(req.Document); err != nil {
		return t.errorf("check", err)
	}
	return nil
}

// Create returns the document {"<field>": <the generated password>}.
// Principal is "generated:" and the rotation token, since a shared token has
// no id of its own. A current document that Check refuses is an error
// wrapping *targets.UnreadableError: a value swarmkey cannot read is not
// replaced unless the rotator says so (by passing no Current).
func (t *Target) Create(_ context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	if _, err := targets.ParseStrategy(string(req.Strategy)); err != nil {
		return targets.CreateResponse{}, t.errorf("create", err)
	}
	if !req.Current.IsZero() {
		if err := t.readable(req.Current); err != nil {
			return targets.CreateResponse{}, t.errorf("create", fmt.Errorf("current: %w", err))
		}
	}
	if req.Password.IsZero() {
		return targets.CreateResponse{}, t.errorf("create", errors.New("the generated password is empty"))
	}
	b, err := json.Marshal(map[string]string{t.opts.Field: req.Password.RevealString()})
	if err != nil {
		return targets.CreateResponse{}, t.errorf("create", errors.New("cannot encode the document"))
	}
	doc := secret.New(b)
	clear(b)
	return targets.CreateResponse{Pending: doc, Principal: "generated:" + req.Token}, nil
}

// Apply checks the pending document; there is nothing to apply.
func (t *Target) Apply(_ context.Context, req targets.ApplyRequest) error {
	return t.check("apply", req.Pending)
}

// Verify checks that the document is a JSON object whose field is a
// non-empty string.
func (t *Target) Verify(_ context.Context, req targets.VerifyRequest) error {
	return t.check("verify", req.Credential)
}

// Restore checks the pending document; there is nothing to undo.
func (t *Target) Restore(_ context.Context, req targets.RestoreRequest) error {
	return t.check("restore", req.Pending)
}

// Retire does nothing: a value no stage holds is gone with its version.
func (t *Target) Retire(context.Context, targets.RetireRequest) error { return nil }

// Close does nothing.
func (t *Target) Close() error { return nil }

// check parses doc; errors name the field, never a value.
func (t *Target) check(verb string, doc secret.Secret) error {
	if err := t.readable(doc); err != nil {
		return t.errorf(verb, err)
	}
	return nil
}

// readable is nil when doc is this target's document, else a
// *targets.UnreadableError.
func (t *Target) readable(doc secret.Secret) error {
	unreadable := func(err error) error {
		return &targets.UnreadableError{Document: "a generated document", Err: err,
			Expected: fmt.Sprintf("a JSON object with a non-empty string field %q", t.opts.Field)}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(doc.Reveal(), &m) != nil || m == nil {
		return unreadable(errors.New("the document is not a JSON object"))
	}
	var v string
	raw, ok := m[t.opts.Field]
	if !ok {
		return unreadable(fmt.Errorf("the document has no %q", t.opts.Field))
	}
	if json.Unmarshal(raw, &v) != nil || v == "" {
		return unreadable(fmt.Errorf("the document's %q is not a non-empty string", t.opts.Field))
	}
	return nil
}

func (t *Target) errorf(verb string, err error) error {
	return fmt.Errorf("generated target of policy %q: %s: %w", t.opts.Policy, verb, err)
}
