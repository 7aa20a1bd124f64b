// Package httpkey is the declarative http target: it rotates API keys that
// an admin API issues, described entirely in the policy (requests as
// templates, response fields as JSON pointers), so a new API needs no code.
//
// The verbs, as the rotator calls them:
//
//	Check   — before create: the current document must be one this target
//	          reads (api_key and key_id strings); an unreadable one stops
//	          the rotation before any key is issued.
//	Create  — the create step: the issue request makes the API create the
//	          key; its value goes into the pending document, which the
//	          rotator writes to the store right after Create returns, so a
//	          crash afterwards leaves no key whose value nobody holds.
//	          Issuing in Apply instead would leave the value in memory only
//	          until promote: the document written at create cannot change.
//	Apply   — the set step: with an enable request, switch the new key on
//	          (and, with disable, switch off the key that loses its place:
//	          single the current one, alternating the previous one);
//	          without them the key works from Create on and Apply only
//	          checks the document.
//	Verify  — the test step: the verify request, authenticated with the key.
//	Restore — rollback before promote: revoke the pending key (retried;
//	          a 404 counts as revoked) and, with disable, switch back on
//	          the key Apply switched off. A key that cannot be revoked is
//	          an error naming its id, which the rotator records as the
//	          needs_attention reason shown by status and the audit log.
//	Retire  — the finish step: single revokes the retired (old) key right
//	          after promote; alternating revokes the key that fell off
//	          previous, found from the rotator (FellOff) or, when the
//	          rotator lost it, from the retired document's previous_key_id.
//	          With a list request, keys named with the policy's prefix that
//	          are neither current nor previous are revoked too (orphans of
//	          failed creates), when FellOff is not known; a list of ids
//	          alone (no list.name) is taken as the policy's keys only.
//
// Network behaviour: every request has its own timeout; 429 is retried
// always, 5xx and network errors only for idempotent requests (everything
// but issue, which becomes idempotent with idempotency_header), with
// exponential backoff that honours Retry-After; redirects are followed only
// within one host and never from https to http; bodies are capped; URLs
// must be https:// unless AllowInsecure.
//
// Secrets: no key, bearer token or password appears in an error or a log
// line. Errors name requests by method and URL without query, report a
// status line but never a response body (APIs echo credentials in error
// bodies), and pass every text through a scrubber of the values in play.
package httpkey

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// cleanupTimeout bounds the revoke of a key Create issued but could not
// hand over, which runs even when the caller's context is done.
const cleanupTimeout = 30 * time.Second

// Target rotates the API keys of one policy. It is safe for concurrent use.
type Target struct {
	opts   Options
	c      *client
	scrub  *secret.Scrubber
	fields []string

	issue, verify, revoke   *compiled
	enable, disable, list   *compiled
	expect                  *template.Template
	keyPtr, idPtr, expPtr   pointer
	fieldPtrs               map[string]pointer
	verifyPtr               pointer
	itemsPtr, lidPtr, lname pointer
}

var _ targets.Target = (*Target)(nil)

// compiled is a request with its templates parsed.
type compiled struct {
	name    string
	method  string
	url     *template.Template
	headers map[string]*template.Template
	body    *template.Template
	// admin requests carry Options.Auth.
	admin bool
}

// New validates opts (after WithDefaults) and builds the target. It sends
// nothing: the first verb does.
func New(opts Options) (*Target, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c, err := newClient(opts)
	if err != nil {
		return nil, fmt.Errorf("http target of policy %q: %w", opts.Policy, err)
	}
	t := &Target{opts: opts, c: c, scrub: secret.NewScrubber(opts.Auth.Secret), fieldPtrs: map[string]pointer{}}
	if opts.Auth.Type == AuthBasic {
		t.scrub.Add(secret.FromString(opts.Auth.Username + ":" + opts.Auth.Secret.RevealString()))
	}
	for name := range opts.Issue.Fields {
		t.fields = append(t.fields, name)
	}
	sort.Strings(t.fields)

	must := func(r Request, name string, admin bool) *compiled {
		cr, cerr := compile(r, name, admin)
		if cerr != nil && err == nil {
			err = cerr
		}
		return cr
	}
	t.issue = must(opts.Issue.Request, "issue", true)
	t.verify = must(opts.Verify.Request, "verify", false)
	t.revoke = must(opts.Revoke, "revoke", true)
	if opts.Enable != nil {
		t.enable = must(*opts.Enable, "enable", true)
	}
	if opts.Disable != nil {
		t.disable = must(*opts.Disable, "disable", true)
	}
	if opts.List != nil {
		t.list = must(opts.List.Request, "list", true)
		t.itemsPtr, _ = parsePointer(opts.List.Items)
		t.lidPtr, _ = parsePointer(opts.List.ID)
		t.lname, _ = parsePointer(opts.List.Name)
	}
	if opts.Verify.Expect != "" && err == nil {
		t.expect, err = parse("verify.expect", opts.Verify.Expect)
	}
	if err != nil {
		return nil, fmt.Errorf("http target of policy %q: %w", opts.Policy, err)
	}
	t.keyPtr, _ = parsePointer(opts.Issue.Key)
	t.idPtr, _ = parsePointer(opts.Issue.ID)
	if opts.Issue.Expiry != "" {
		t.expPtr, _ = parsePointer(opts.Issue.Expiry)
	}
	for name, p := range opts.Issue.Fields {
		t.fieldPtrs[name], _ = parsePointer(p)
	}
	if opts.Verify.JSONPointer != "" {
		t.verifyPtr, _ = parsePointer(opts.Verify.JSONPointer)
	}
	return t, nil
}

func compile(r Request, name string, admin bool) (*compiled, error) {
	c := &compiled{name: name, method: r.Method, admin: admin, headers: map[string]*template.Template{}}
	var err error
	if c.url, err = parse(name+".url", r.URL); err != nil {
		return nil, fmt.Errorf("%s.url: %w", name, err)
	}
	for h, v := range r.Headers {
		if c.headers[h], err = parse(name+".headers."+h, v); err != nil {
			return nil, fmt.Errorf("%s.headers.%s: %w", name, h, err)
		}
	}
	if r.Body != "" {
		if c.body, err = parse(name+".body", r.Body); err != nil {
			return nil, fmt.Errorf("%s.body: %w", name, err)
		}
	}
	return c, nil
}

// Close releases idle connections.
func (t *Target) Close() error {
	t.c.hc.CloseIdleConnections()
	return nil
}

// errorf builds the target's errors: `http target of policy "p": VERB: …`,
// scrubbed.
func (t *Target) errorf(sc *secret.Scrubber, verb, format string, args ...any) error {
	return sc.Err(fmt.Errorf("http target of policy %q: %s: %w", t.opts.Policy, verb, fmt.Errorf(format, args...)))
}

// build renders r. key backs the key function: nil where the request has
// no key (issue, list), a zero Secret where the key is known only by id.
func (t *Target) build(r *compiled, d Data, key *secret.Secret, sc *secret.Scrubber) (call, error) {
	d.Policy, d.Vars = t.opts.Policy, t.opts.Vars
	if d.Current.Fields == nil {
		d.Current.Fields = t.opts.emptyKey("").Fields
	}
	var keyValue func() (string, error)
	if key != nil {
		keyValue = func() (string, error) {
			if key.IsZero() {
				return "", errors.New("the key's value is not known here (only its id)")
			}
			return key.RevealString(), nil
		}
	}
	k := call{name: r.name, method: r.method, header: http.Header{}, idempotent: r.name != "issue", scrub: sc}
	var err error
	if k.url, err = render(r.url, d, keyValue); err != nil {
		return k, fmt.Errorf("%s.url: %s", r.name, sc.Text(err.Error()))
	}
	for h, tmpl := range r.headers {
		v, err := render(tmpl, d, keyValue)
		if err != nil {
			return k, fmt.Errorf("%s.headers.%s: %s", r.name, h, sc.Text(err.Error()))
		}
		k.header.Set(h, v)
	}
	if r.body != nil {
		b, err := render(r.body, d, keyValue)
		if err != nil {
			return k, fmt.Errorf("%s.body: %s", r.name, sc.Text(err.Error()))
		}
		k.body = []byte(b)
	}
	if r.admin {
		a := t.opts.Auth
		switch a.Type {
		case AuthBearer:
			k.header.Set("Authorization", "Bearer "+a.Secret.RevealString())
		case AuthHeader:
			k.header.Set(a.Header, a.Prefix+a.Secret.RevealString())
		case AuthBasic:
			r := &http.Request{Header: k.header}
			r.SetBasicAuth(a.Username, a.Secret.RevealString())
		}
	}
	return k, nil
}

func checkStrategy(s targets.Strategy) error {
	_, err := targets.ParseStrategy(string(s))
	return err
}

// parse decodes a document of this target.
func (t *Target) parse(s secret.Secret, what string) (Document, error) {
	d, err := ParseDocument(s, t.fields)
	if err != nil {
		return Document{}, fmt.Errorf("%s: %w", what, err)
	}
	return d, nil
}

// own parses a document and checks that its key carries the policy's key
// name prefix, so a stray document never switches another key on or off.
func (t *Target) own(s secret.Secret, what string) (Document, error) {
	d, err := t.parse(s, what)
	if err != nil {
		return Document{}, err
	}
	if !strings.HasPrefix(d.KeyName, t.opts.KeyNamePrefix) {
		return Document{}, fmt.Errorf("%s: key %q is not a key of this policy: its key_name does not start with key_name_prefix %q",
			what, d.KeyID, t.opts.KeyNamePrefix)
	}
	return d, nil
}

// optional parses s when it is not zero.
func (t *Target) optional(s secret.Secret, what string) (Document, bool, error) {
	if s.IsZero() {
		return Document{}, false, nil
	}
	d, err := t.parse(s, what)
	return d, err == nil, err
}

// Check reads req.Document as a key document of this policy (see
// ParseDocument): api_key and key_id are required strings; key_name,
// expires_at, previous_key_id and the issue.fields, when present, strings.
// Anything else is a *targets.UnreadableError. It sends nothing.
func (t *Target) Check(_ context.Context, req targets.CheckRequest) error {
	sc := t.scrub.With()
	if err := checkStrategy(req.Strategy); err != nil {
		return t.errorf(sc, "check", "%w", err)
	}
	if err := t.check(req.Document); err != nil {
		return t.errorf(sc, "check", "%w", err)
	}
	return nil
}

func (t *Target) check(s secret.Secret) error {
	if _, err := ParseDocument(s, t.fields); err != nil {
		optional := append([]string{FieldKeyName, FieldExpiresAt, FieldPreviousKeyID}, t.fields...)
		return &targets.UnreadableError{Document: "an http key document", Err: err,
			Expected: "a JSON object with string fields " + FieldAPIKey + " and " + FieldKeyID +
				" (" + strings.Join(optional, ", ") + " optional)"}
	}
	return nil
}

// Create issues a new key (see the package doc). Principal is the key's id.
// A key the API issued but whose answer is unusable (a field missing) is
// revoked before Create returns its error. A current document that Check
// refuses is an error wrapping *targets.UnreadableError, and nothing is
// sent.
func (t *Target) Create(ctx context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	sc := t.scrub.With()
	if err := checkStrategy(req.Strategy); err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w", err)
	}
	if !req.Current.IsZero() {
		if err := t.check(req.Current); err != nil {
			return targets.CreateResponse{}, t.errorf(sc, "create", "current: %w", err)
		}
	}
	cur, hasCur, err := t.optional(req.Current, "current")
	if err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w", err)
	}
	sc.Add(cur.APIKey)
	name := t.opts.KeyNamePrefix + req.Token

	if t.list != nil && t.listByName() {
		// A key named for this token is an earlier attempt whose answer was
		// lost (the rotator calls Create again only when no pending
		// document was written): nobody holds its value.
		if err := t.revokeWhere(ctx, sc, func(_, n string) bool { return n == name }); err != nil {
			return targets.CreateResponse{}, t.errorf(sc, "create", "revoke an earlier attempt's key: %w", err)
		}
	}

	d := Data{Token: req.Token, KeyName: name}
	if hasCur {
		d.Current = cur.Public()
	}
	k, err := t.build(t.issue, d, nil, sc)
	if err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w", err)
	}
	if h := t.opts.IdempotencyHeader; h != "" {
		k.header.Set(h, req.Token)
		k.idempotent = true
	}
	resp, err := t.c.do(ctx, k)
	if err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w%s", err, t.orphanHint())
	}
	if resp.status < 200 || resp.status > 299 {
		hint := ""
		if resp.status >= 500 && !k.idempotent {
			hint = "; not retried: issue is not idempotent (set idempotency_header if the API takes an idempotency key)"
		}
		return targets.CreateResponse{}, t.errorf(sc, "create", "%s: %s%s", k.where(), resp.statusText(), hint)
	}
	v, err := decodeJSON(resp.body)
	if err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "issue response: %w%s", err, t.orphanHint())
	}
	id, err := t.field(v, t.idPtr, "issue.id", t.opts.Issue.ID)
	if err != nil {
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w%s", err, t.orphanHint())
	}
	doc := Document{KeyID: id, KeyName: name, PreviousKeyID: cur.KeyID, Fields: map[string]string{}}
	fail := func(err error) (targets.CreateResponse, error) {
		// Revoke what was issued: its value is not going anywhere.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := t.revokeID(cctx, sc, id, &doc.APIKey, d.Current); rerr != nil {
			err = fmt.Errorf("%w; revoking the new key %q failed too, revoke it by hand: %w", err, id, rerr)
		}
		return targets.CreateResponse{}, t.errorf(sc, "create", "%w", err)
	}
	rawKey, err := t.field(v, t.keyPtr, "issue.key", t.opts.Issue.Key)
	if err != nil {
		return fail(err)
	}
	doc.APIKey = secret.FromString(rawKey)
	sc.Add(doc.APIKey)
	if rawKey == id {
		return fail(errors.New("issue response: issue.id points at the key's value; the id is public, so it must be another field"))
	}
	if t.expPtr != nil {
		if x, err := t.expPtr.lookup(v); err == nil && x != nil {
			exp, ok := scalar(x)
			if !ok {
				return fail(fmt.Errorf("issue response: issue.expiry (%s) is not a string or a number", t.opts.Issue.Expiry))
			}
			doc.ExpiresAt = exp
		}
	}
	for _, f := range t.fields {
		val, err := t.field(v, t.fieldPtrs[f], "issue.fields."+f, t.opts.Issue.Fields[f])
		if err != nil {
			return fail(err)
		}
		doc.Fields[f] = val
	}
	pending, err := doc.Secret()
	if err != nil {
		return fail(err)
	}
	return targets.CreateResponse{Pending: pending, Principal: id}, nil
}

func (t *Target) orphanHint() string {
	if t.list != nil {
		return " (if the API issued a key anyway, it is revoked by a later create or finish)"
	}
	return " (if the API issued a key anyway, nobody holds it: revoke keys named " + t.opts.KeyNamePrefix + "… that no stage holds, or configure list)"
}

// field reads a non-empty scalar at p; errors name the policy field and its
// pointer, never the value.
func (t *Target) field(v any, p pointer, field, ptr string) (string, error) {
	x, err := p.lookup(v)
	if err != nil {
		return "", fmt.Errorf("issue response: %s (JSON pointer %s) is not in the response", field, ptr)
	}
	s, ok := scalar(x)
	if !ok || s == "" {
		return "", fmt.Errorf("issue response: %s (JSON pointer %s) is not a non-empty string or number", field, ptr)
	}
	return s, nil
}

// Apply makes the pending key valid (see the package doc). It refuses a
// pending document whose key is the current one, and does nothing beyond
// checking the document when the policy has no enable request.
func (t *Target) Apply(ctx context.Context, req targets.ApplyRequest) error {
	sc := t.scrub.With()
	if err := checkStrategy(req.Strategy); err != nil {
		return t.errorf(sc, "apply", "%w", err)
	}
	pending, err := t.own(req.Pending, "pending")
	if err != nil {
		return t.errorf(sc, "apply", "%w", err)
	}
	cur, hasCur, err := t.optional(req.Current, "current")
	if err != nil {
		return t.errorf(sc, "apply", "%w", err)
	}
	sc.Add(pending.APIKey, cur.APIKey)
	if hasCur && cur.KeyID == pending.KeyID {
		return t.errorf(sc, "apply", "refusing: the pending key %q is the current key", pending.KeyID)
	}
	if t.enable == nil {
		return nil
	}
	if err := t.switchKey(ctx, sc, t.enable, pending.KeyID, &pending.APIKey, cur.Public(), false); err != nil {
		return t.errorf(sc, "apply", "enable key %q: %w", pending.KeyID, err)
	}
	if t.disable == nil || !hasCur {
		return nil
	}
	off := cur.PreviousKeyID // alternating: the key that falls off at promote
	if req.Strategy == targets.Single {
		off = cur.KeyID
	}
	if off == "" || off == pending.KeyID {
		return nil
	}
	if err := t.switchKey(ctx, sc, t.disable, off, nil, cur.Public(), true); err != nil {
		return t.errorf(sc, "apply", "disable key %q: %w", off, err)
	}
	return nil
}

// Verify sends the verify request with the credential's key and checks the
// status and, with req.Canary, the JSON pointer's value.
func (t *Target) Verify(ctx context.Context, req targets.VerifyRequest) error {
	sc := t.scrub.With()
	doc, err := t.parse(req.Credential, "credential")
	if err != nil {
		return t.errorf(sc, "verify", "%w", err)
	}
	sc.Add(doc.APIKey)
	d := Data{KeyID: doc.KeyID, KeyName: doc.KeyName, Current: doc.Public()}
	k, err := t.build(t.verify, d, &doc.APIKey, sc)
	if err != nil {
		return t.errorf(sc, "verify", "%w", err)
	}
	key := doc.APIKey.RevealString()
	switch t.opts.Verify.KeyIn {
	case KeyInHeader:
		k.header.Set(t.opts.Verify.KeyName, t.opts.Verify.KeyPrefix+key)
	case KeyInQuery:
		u, err := url.Parse(k.url)
		if err != nil {
			return t.errorf(sc, "verify", "verify.url: not a URL")
		}
		q := u.Query()
		q.Set(t.opts.Verify.KeyName, key)
		u.RawQuery = q.Encode()
		k.url = u.String()
	case KeyInBasic:
		r := &http.Request{Header: k.header}
		r.SetBasicAuth(t.opts.Verify.KeyName, key)
		sc.Add(secret.FromString(t.opts.Verify.KeyName + ":" + key))
	}
	resp, err := t.c.do(ctx, k)
	if err != nil {
		return t.errorf(sc, "verify", "key %q: %w", doc.KeyID, err)
	}
	if resp.status != t.opts.Verify.Status {
		return t.errorf(sc, "verify", "key %q not accepted: %s: %s, want verify.status %d",
			doc.KeyID, k.where(), resp.statusText(), t.opts.Verify.Status)
	}
	if !req.Canary || t.verifyPtr == nil {
		return nil
	}
	v, err := decodeJSON(resp.body)
	if err != nil {
		return t.errorf(sc, "verify", "key %q: verify response: %w", doc.KeyID, err)
	}
	x, err := t.verifyPtr.lookup(v)
	if err != nil {
		return t.errorf(sc, "verify", "key %q: verify response: verify.json_pointer (%s) is not in the response", doc.KeyID, t.opts.Verify.JSONPointer)
	}
	got, ok := scalar(x)
	if t.expect == nil {
		return nil // presence is the check
	}
	want, err := render(t.expect, Data{Policy: t.opts.Policy, Vars: t.opts.Vars, KeyID: doc.KeyID, KeyName: doc.KeyName, Current: d.Current}, nil)
	if err != nil {
		return t.errorf(sc, "verify", "verify.expect: %w", err)
	}
	if !ok || got != want {
		// The value is not shown: it may be anything the API chose to put
		// there, the key included.
		return t.errorf(sc, "verify", "key %q: verify response: the value at verify.json_pointer (%s) does not equal verify.expect (%q)",
			doc.KeyID, t.opts.Verify.JSONPointer, want)
	}
	return nil
}

// Restore rolls back before promote: with disable, the key Apply switched
// off is switched back on (single: current; alternating: previous), then the
// pending key is revoked (retried; 404 counts as revoked). Both are tried;
// the error names every key it could not handle.
func (t *Target) Restore(ctx context.Context, req targets.RestoreRequest) error {
	sc := t.scrub.With()
	if err := checkStrategy(req.Strategy); err != nil {
		return t.errorf(sc, "restore", "%w", err)
	}
	pending, err := t.own(req.Pending, "pending")
	if err != nil {
		return t.errorf(sc, "restore", "%w", err)
	}
	sc.Add(pending.APIKey)
	cur, hasCur, err := t.optional(req.Current, "current")
	if err != nil {
		return t.errorf(sc, "restore", "%w", err)
	}
	prev, hasPrev, err := t.optional(req.Previous, "previous")
	if err != nil {
		return t.errorf(sc, "restore", "%w", err)
	}
	sc.Add(cur.APIKey, prev.APIKey)
	if hasCur && cur.KeyID == pending.KeyID {
		return t.errorf(sc, "restore", "refusing: the pending key %q is the current key", pending.KeyID)
	}
	var errs []error
	if t.disable != nil {
		back := Document{}
		switch {
		case req.Strategy == targets.Single && hasCur:
			back = cur
		case req.Strategy == targets.Alternating && hasPrev && prev.KeyID != pending.KeyID:
			back = prev
		}
		if back.KeyID != "" {
			if err := t.switchKey(ctx, sc, t.enable, back.KeyID, &back.APIKey, cur.Public(), false); err != nil {
				errs = append(errs, fmt.Errorf("enable key %q again: %w", back.KeyID, err))
			}
		}
	}
	if err := t.revokeID(ctx, sc, pending.KeyID, &pending.APIKey, cur.Public()); err != nil {
		errs = append(errs, fmt.Errorf("the pending key %q could not be revoked, revoke it by hand: %w", pending.KeyID, err))
	}
	if len(errs) > 0 {
		return t.errorf(sc, "restore", "%w", errors.Join(errs...))
	}
	return nil
}

// Retire revokes keys after promote (see the package doc). It never
// revokes the current key, nor, with alternating, the retired (previous)
// one.
func (t *Target) Retire(ctx context.Context, req targets.RetireRequest) error {
	sc := t.scrub.With()
	if err := checkStrategy(req.Strategy); err != nil {
		return t.errorf(sc, "retire", "%w", err)
	}
	cur, _, err := t.optional(req.Current, "current")
	if err != nil {
		return t.errorf(sc, "retire", "%w", err)
	}
	retired, hasRetired, err := t.optional(req.Retired, "retired")
	if err != nil {
		return t.errorf(sc, "retire", "%w", err)
	}
	fell, hasFell, err := t.optional(req.FellOff, "fell off")
	if err != nil {
		return t.errorf(sc, "retire", "%w", err)
	}
	sc.Add(cur.APIKey, retired.APIKey, fell.APIKey)

	keep := map[string]bool{}
	if cur.KeyID != "" {
		keep[cur.KeyID] = true
	}
	type victim struct {
		id  string
		key secret.Secret
	}
	var victims []victim
	if req.Strategy == targets.Single {
		if hasRetired {
			victims = append(victims, victim{retired.KeyID, retired.APIKey})
		}
	} else if hasRetired {
		keep[retired.KeyID] = true
	}
	switch {
	case hasFell:
		victims = append(victims, victim{fell.KeyID, fell.APIKey})
	case hasRetired && retired.PreviousKeyID != "":
		victims = append(victims, victim{id: retired.PreviousKeyID})
	}
	var errs []error
	done := map[string]bool{}
	for _, v := range victims {
		if keep[v.id] || done[v.id] {
			continue
		}
		done[v.id] = true
		if err := t.revokeID(ctx, sc, v.id, &v.key, cur.Public()); err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", v.id, err))
		}
	}
	if t.list != nil && !hasFell && len(keep) > 0 {
		err := t.revokeWhere(ctx, sc, func(id, name string) bool {
			return !keep[id] && !done[id] && (!t.listByName() || strings.HasPrefix(name, t.opts.KeyNamePrefix))
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("list sweep: %w", err))
		}
	}
	if len(errs) > 0 {
		return t.errorf(sc, "retire", "revoke: %w", errors.Join(errs...))
	}
	return nil
}

// switchKey sends enable or disable for id; gone404 counts a 404 or 410 as
// done (disabling a key that no longer exists).
func (t *Target) switchKey(ctx context.Context, sc *secret.Scrubber, r *compiled, id string, key *secret.Secret, cur Key, gone404 bool) error {
	if key == nil {
		key = &secret.Secret{}
	}
	k, err := t.build(r, Data{KeyID: id, Current: cur}, key, sc)
	if err != nil {
		return err
	}
	resp, err := t.c.do(ctx, k)
	if err != nil {
		return err
	}
	switch {
	case resp.status >= 200 && resp.status <= 299:
		return nil
	case gone404 && (resp.status == http.StatusNotFound || resp.status == http.StatusGone):
		return nil
	}
	return fmt.Errorf("%s: %s", k.where(), resp.statusText())
}

// revokeID revokes one key; 2xx, 404 and 410 count as revoked.
func (t *Target) revokeID(ctx context.Context, sc *secret.Scrubber, id string, key *secret.Secret, cur Key) error {
	return t.switchKey(ctx, sc, t.revoke, id, key, cur, true)
}

// listByName: the list names its keys (list.name), so the policy's own are
// told apart by KeyNamePrefix; without it every listed key is the policy's.
func (t *Target) listByName() bool { return t.opts.List != nil && t.opts.List.Name != "" }

// revokeWhere lists the API's keys and revokes those match accepts; name is
// "" when the list gives ids alone.
func (t *Target) revokeWhere(ctx context.Context, sc *secret.Scrubber, match func(id, name string) bool) error {
	k, err := t.build(t.list, Data{}, nil, sc)
	if err != nil {
		return err
	}
	resp, err := t.c.do(ctx, k)
	if err != nil {
		return err
	}
	if resp.status < 200 || resp.status > 299 {
		return fmt.Errorf("%s: %s", k.where(), resp.statusText())
	}
	v, err := decodeJSON(resp.body)
	if err != nil {
		return fmt.Errorf("list response: %w", err)
	}
	x, err := t.itemsPtr.lookup(v)
	items, ok := x.([]any)
	if err != nil || !ok {
		return fmt.Errorf("list response: list.items (%q) is not an array in the response", t.opts.List.Items)
	}
	var errs []error
	for _, it := range items {
		idv, err := t.lidPtr.lookup(it)
		if err != nil {
			continue
		}
		id, ok := scalar(idv)
		name := ""
		if t.listByName() {
			namev, err := t.lname.lookup(it)
			if err != nil {
				continue
			}
			name, ok = scalar(namev)
		}
		if !ok || id == "" || !match(id, name) {
			continue
		}
		if err := t.revokeID(ctx, sc, id, &secret.Secret{}, Key{}); err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
