// Package targettest is the conformance suite that every target runs, so a
// new target is proven by the same cases as the others: a full cycle of
// rotations per strategy, idempotent Apply, a wrong credential failing
// Verify, Restore before promote, Retire, an unreadable current document
// refused before anything changes, and no generated secret in any error or
// response.
//
// A target's own test calls Run with a Harness that builds the target on a
// fresh system (a database and roles, a fake API) for each case. A target
// that no system holds (generated), which cannot show that an old
// credential stops working, calls RunCheck instead: the cases of the
// contract's Check step alone.
package targettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Harness adapts one target to the suite.
type Harness struct {
	// NewTarget builds a target for one test with the strategy given; the
	// test's own system (database, roles) is set up inside. The suite closes
	// the target when the test ends.
	NewTarget func(t *testing.T, strategy targets.Strategy) targets.Target
	// Password returns a fresh password under the target's rules.
	Password func(t *testing.T) secret.Secret
	// SecretOf extracts the secret part of a document (password / api_key)
	// so the suite can search outputs for it.
	SecretOf func(t *testing.T, document secret.Secret) string
}

// opTimeout bounds each call into the target.
const opTimeout = 60 * time.Second

// Run runs every case for both strategies, each case in parallel on its own
// target from h.NewTarget.
func Run(t *testing.T, h Harness) {
	t.Helper()
	run(t, h, []suiteCase{
		{"FullCycle", testFullCycle},
		{"ApplyTwice", testApplyTwice},
		{"VerifyWrongCredential", testVerifyWrongCredential},
		{"RestoreFirstRotation", testRestoreFirstRotation},
		{"RestoreAfterApply", testRestoreAfterApply},
		{"RestoreWithoutApply", testRestoreWithoutApply},
		{"Retire", testRetire},
		{"UnreadableCurrent", testUnreadableCurrent},
		{"Redaction", testRedaction},
	})
}

// RunCheck runs the cases of the Check step alone (UnreadableCurrent), for
// both strategies: for targets that cannot run the whole suite.
func RunCheck(t *testing.T, h Harness) {
	t.Helper()
	run(t, h, []suiteCase{{"UnreadableCurrent", testUnreadableCurrent}})
}

type suiteCase struct {
	name string
	fn   func(b *bundle)
}

func run(t *testing.T, h Harness, cases []suiteCase) {
	t.Helper()
	require.NotNil(t, h.NewTarget, "Harness.NewTarget")
	require.NotNil(t, h.Password, "Harness.Password")
	require.NotNil(t, h.SecretOf, "Harness.SecretOf")
	for _, strategy := range []targets.Strategy{targets.Alternating, targets.Single} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(setup(t, h, strategy))
				})
			}
		})
	}
}

// bundle is one case's target plus the record of every generated secret and
// every output (error text, formatted response) the target produced. When the
// case ends, no output may contain any of the secrets.
type bundle struct {
	t        *testing.T
	h        Harness
	strategy targets.Strategy
	target   targets.Target

	// token is the rotation token of the latest Create, used by the Apply
	// and Restore that follow it.
	token string

	secrets []string
	outputs []string
}

func setup(t *testing.T, h Harness, strategy targets.Strategy) *bundle {
	t.Helper()
	target := h.NewTarget(t, strategy)
	require.NotNil(t, target, "Harness.NewTarget returned nil")
	b := &bundle{t: t, h: h, strategy: strategy, target: target}
	t.Cleanup(func() {
		b.output("Close", target.Close())
		b.requireNoSecretInOutputs()
	})
	return b
}

// state is what the secret store would hold: current and previous.
type state struct {
	current, previous secret.Secret
}

func (b *bundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(b.t.Context(), opTimeout)
	b.t.Cleanup(cancel)
	return ctx
}

func (b *bundle) password() secret.Secret {
	pw := b.h.Password(b.t)
	require.False(b.t, pw.IsZero(), "Harness.Password returned an empty secret")
	b.remember(pw.RevealString())
	return pw
}

func (b *bundle) remember(s string) {
	require.NotEmpty(b.t, s, "a generated secret is empty")
	if !slices.Contains(b.secrets, s) {
		b.secrets = append(b.secrets, s)
	}
}

// output records err's text, in every form a log line might use.
func (b *bundle) output(op string, err error) {
	if err != nil {
		b.outputs = append(b.outputs, op+": "+err.Error(), fmt.Sprintf("%s: %v | %+v | %#v | %q", op, err, err, err, err))
	}
}

// create runs Create and returns the pending document.
func (b *bundle) create(current secret.Secret) targets.CreateResponse {
	b.t.Helper()
	resp, err := b.tryCreate(current)
	require.NoError(b.t, err, "Create")
	return resp
}

func (b *bundle) tryCreate(current secret.Secret) (targets.CreateResponse, error) {
	b.token = newToken(b.t)
	resp, err := b.target.Create(b.ctx(), targets.CreateRequest{
		Token:    b.token,
		Strategy: b.strategy,
		Current:  current,
		Password: b.password(),
	})
	b.output("Create", err)
	b.outputs = append(b.outputs, fmt.Sprintf("%v | %+v | %#v", resp, resp, resp))
	if err == nil {
		require.False(b.t, resp.Pending.IsZero(), "Create returned an empty pending document")
		require.NotEmpty(b.t, resp.Principal, "Create returned no principal")
		b.remember(b.h.SecretOf(b.t, resp.Pending))
	}
	return resp, err
}

func (b *bundle) check(doc secret.Secret) error {
	err := b.target.Check(b.ctx(), targets.CheckRequest{Strategy: b.strategy, Document: doc})
	b.output("Check", err)
	return err
}

func (b *bundle) apply(pending, current secret.Secret) error {
	return b.applyAttempt(pending, current, false)
}

// retryApply is Apply as a resumed rotation calls it.
func (b *bundle) retryApply(pending, current secret.Secret) error {
	return b.applyAttempt(pending, current, true)
}

func (b *bundle) applyAttempt(pending, current secret.Secret, retry bool) error {
	err := b.target.Apply(b.ctx(), targets.ApplyRequest{
		Token: b.token, Strategy: b.strategy, Pending: pending, Current: current, Retry: retry,
	})
	b.output("Apply", err)
	return err
}

func (b *bundle) verify(doc secret.Secret) error {
	err := b.target.Verify(b.ctx(), targets.VerifyRequest{Credential: doc, Canary: true})
	b.output("Verify", err)
	return err
}

func (b *bundle) restore(pending secret.Secret, s state) error {
	err := b.target.Restore(b.ctx(), targets.RestoreRequest{
		Token: b.token, Strategy: b.strategy, Pending: pending, Current: s.current, Previous: s.previous,
	})
	b.output("Restore", err)
	return err
}

func (b *bundle) retire(s state) error {
	err := b.target.Retire(b.ctx(), targets.RetireRequest{
		Strategy: b.strategy, Retired: s.previous, Current: s.current,
	})
	b.output("Retire", err)
	return err
}

// rotate runs create, set and test, then promotes in s.
func (b *bundle) rotate(s state) state {
	b.t.Helper()
	pending := b.create(s.current).Pending
	require.NoError(b.t, b.apply(pending, s.current), "Apply")
	require.NoError(b.t, b.verify(pending), "Verify of the pending credential after Apply")
	return state{current: pending, previous: s.current}
}

func (b *bundle) requireVerifies(doc secret.Secret, what string) {
	b.t.Helper()
	require.NoError(b.t, b.verify(doc), "Verify of %s", what)
}

func (b *bundle) requireFails(doc secret.Secret, what string) {
	b.t.Helper()
	require.Error(b.t, b.verify(doc), "Verify of %s must fail", what)
}

func (b *bundle) requireNoSecretInOutputs() {
	b.t.Helper()
	for i, out := range b.outputs {
		for j, s := range b.secrets {
			// Do not print s: a failing check must not leak it either.
			if strings.Contains(out, s) {
				b.t.Errorf("output %d contains generated secret %d (of %d); the output without it: %s",
					i, j, len(b.secrets), strings.ReplaceAll(out, s, secret.Redacted))
			}
		}
	}
}

// testFullCycle threads the current document through three rotations.
// alternating: the previous credential still verifies, the one before it
// does not. single: every older credential stops verifying.
func testFullCycle(b *bundle) {
	var s state
	var history []secret.Secret
	for i := range 3 {
		s = b.rotate(s)
		history = append(history, s.current)
		b.requireVerifies(s.current, fmt.Sprintf("the current credential after rotation %d", i+1))
		for k, old := range history[:len(history)-1] {
			age := len(history) - 1 - k // 1: previous, 2: the one before
			what := fmt.Sprintf("the credential of rotation %d after rotation %d", k+1, i+1)
			if b.strategy == targets.Alternating && age == 1 {
				b.requireVerifies(old, what+" (previous)")
			} else {
				b.requireFails(old, what)
			}
		}
	}
	require.NotEqual(b.t, b.h.SecretOf(b.t, history[0]), b.h.SecretOf(b.t, history[2]))
}

// testApplyTwice: a retried Apply of the same pending is harmless, on the
// first rotation and on a later one, and so is a second first-attempt Apply.
func testApplyTwice(b *bundle) {
	first := b.create(secret.Secret{}).Pending
	require.NoError(b.t, b.apply(first, secret.Secret{}))
	require.NoError(b.t, b.retryApply(first, secret.Secret{}), "retried Apply")
	require.NoError(b.t, b.apply(first, secret.Secret{}), "second Apply")
	b.requireVerifies(first, "the first credential after two Applies")
	s := state{current: first}

	pending := b.create(s.current).Pending
	require.NoError(b.t, b.apply(pending, s.current))
	require.NoError(b.t, b.retryApply(pending, s.current), "retried Apply")
	b.requireVerifies(pending, "the pending credential after two Applies")
	if b.strategy == targets.Alternating {
		b.requireVerifies(s.current, "the current credential after two Applies of the other")
	} else {
		b.requireFails(s.current, "the replaced credential")
	}
}

// testVerifyWrongCredential: a created but never applied credential fails
// Verify, and Create had no side effect on the current one.
func testVerifyWrongCredential(b *bundle) {
	s := b.rotate(state{})
	never := b.create(s.current).Pending
	b.requireFails(never, "a credential that was never applied")
	err := b.target.Verify(b.ctx(), targets.VerifyRequest{Credential: never, Canary: false})
	b.output("Verify", err)
	require.Error(b.t, err, "Verify without canary of a credential that was never applied")
	b.requireVerifies(s.current, "the current credential after a Create (Create has no side effects)")
}

// testRestoreFirstRotation: a failed first rotation, restored, leaves the
// failed credential not verifying; Restore again is harmless; the next try
// works.
func testRestoreFirstRotation(b *bundle) {
	pending := b.create(secret.Secret{}).Pending
	require.NoError(b.t, b.apply(pending, secret.Secret{}))
	require.NoError(b.t, b.restore(pending, state{}))
	b.requireFails(pending, "the failed pending credential after Restore")
	require.NoError(b.t, b.restore(pending, state{}), "second Restore")
	b.requireFails(pending, "the failed pending credential after a second Restore")

	s := b.rotate(state{})
	b.requireVerifies(s.current, "a credential applied after Restore")
}

// testRestoreAfterApply: with a current and a previous credential, Restore
// after Apply leaves current (and, alternating, previous) verifying and the
// failed pending not; again with only a current one.
func testRestoreAfterApply(b *bundle) {
	s := b.rotate(state{})
	// alternating with a current credential and no previous yet.
	pending := b.create(s.current).Pending
	require.NoError(b.t, b.apply(pending, s.current))
	require.NoError(b.t, b.restore(pending, s))
	b.requireVerifies(s.current, "the current credential after Restore")
	b.requireFails(pending, "the failed pending credential after Restore")

	s = b.rotate(s)
	b.requireVerifies(s.current, "the current credential")
	pending = b.create(s.current).Pending
	require.NoError(b.t, b.apply(pending, s.current))
	b.requireVerifies(pending, "the pending credential after Apply")
	for round := range 2 {
		require.NoError(b.t, b.restore(pending, s), "Restore %d", round+1)
		b.requireVerifies(s.current, "the current credential after Restore")
		if b.strategy == targets.Alternating {
			b.requireVerifies(s.previous, "the previous credential after Restore")
		}
		b.requireFails(pending, "the failed pending credential after Restore")
	}

	s = b.rotate(s)
	b.requireVerifies(s.current, "a credential applied after Restore")
}

// testRestoreWithoutApply: Restore when Apply never ran (a crash before
// set) changes nothing that works.
func testRestoreWithoutApply(b *bundle) {
	s := b.rotate(b.rotate(state{}))
	pending := b.create(s.current).Pending
	require.NoError(b.t, b.restore(pending, s))
	b.requireVerifies(s.current, "the current credential after a Restore without Apply")
	if b.strategy == targets.Alternating {
		b.requireVerifies(s.previous, "the previous credential after a Restore without Apply")
	}
	b.requireFails(pending, "a pending credential that was never applied")
}

// testRetire: Retire after each promote keeps the current credential
// working, is idempotent, and the next rotation still works (alternating
// reuses the retired user or slot).
func testRetire(b *bundle) {
	var s state
	for i := range 3 {
		s = b.rotate(s)
		for round := range 2 {
			require.NoError(b.t, b.retire(s), "Retire after rotation %d (call %d)", i+1, round+1)
			b.requireVerifies(s.current, fmt.Sprintf("the current credential after Retire (rotation %d)", i+1))
		}
	}
}

// testUnreadableCurrent: documents the target cannot read (a plain string,
// bytes that are not text, JSON objects without the target's fields, other
// JSON values) are refused by Check with a *targets.UnreadableError that
// says what the target expects, and by Create before it has any effect: the
// current credential still verifies and the next rotation works. The
// target's own documents pass Check.
func testUnreadableCurrent(b *bundle) {
	s := b.rotate(state{})
	require.NoError(b.t, b.check(s.current), "Check of a current document the target wrote")
	require.NoError(b.t, b.check(b.create(s.current).Pending), "Check of a pending document the target wrote")

	pw := b.password().RevealString()
	binary := append([]byte{0xff, 0xfe, 0x00, 0x9c}, pw...)
	unreadable := map[string]secret.Secret{
		"a plain string":                   secret.FromString(pw),
		"binary bytes":                     secret.New(binary),
		"a JSON object without the fields": secret.FromString(`{"note": "` + pw + `"}`),
		"an empty JSON object":             secret.FromString(`{}`),
		"a JSON array":                     secret.FromString(`["` + pw + `"]`),
		"a JSON string":                    secret.FromString(`"` + pw + `"`),
		"JSON null":                        secret.FromString(`null`),
	}
	for what, doc := range unreadable {
		var unread *targets.UnreadableError
		require.ErrorAs(b.t, b.check(doc), &unread, "Check of %s", what)
		require.NotEmpty(b.t, unread.Document, "UnreadableError.Document for %s", what)
		require.NotEmpty(b.t, unread.Expected, "UnreadableError.Expected for %s", what)
		_, err := b.tryCreate(doc)
		require.ErrorAs(b.t, err, &unread, "Create with %s as current", what)
	}
	require.Error(b.t, b.check(secret.Secret{}), "Check of a zero document")
	b.requireVerifies(s.current, "the current credential after Creates refused an unreadable current")

	s = b.rotate(s)
	b.requireVerifies(s.current, "a credential applied after the refused Creates")
}

// testRedaction feeds the target broken and foreign documents that carry a
// generated secret; every verb must fail or do nothing without echoing it.
// The check itself runs for every case when it ends.
func testRedaction(b *bundle) {
	s := b.rotate(state{})
	pw := b.password().RevealString()
	cur := b.h.SecretOf(b.t, s.current)
	num := randomDigits(b.t, 24)
	b.remember(num)
	broken := []secret.Secret{
		secret.FromString("not json " + pw),
		secret.FromString(`["` + pw + `"]`),
		secret.FromString(`{"password": ` + pw + `}`),
		secret.FromString(`{"password": "` + pw + `", "api_key": "` + pw + `"`),
		secret.FromString(`{"password": 12345` + pw + `}`),
		// Well-formed JSON with a wrong type: encoding/json's message would
		// quote the number.
		secret.FromString(`{"username": "nobody", "password": ` + num + `, "api_key": ` + num + `}`),
	}
	for i, doc := range broken {
		require.Error(b.t, b.verify(doc), "Verify of broken document %d", i)
		require.Error(b.t, b.apply(doc, s.current), "Apply of broken document %d", i)
		require.Error(b.t, b.restore(doc, s), "Restore of broken document %d", i)
		_ = b.retire(state{current: s.current, previous: doc})
		_, _ = b.tryCreate(doc)
	}

	// The current secret under another principal: whatever each verb makes
	// of it, it must not echo the secret, and Verify must fail.
	foreign := secret.FromString(`{"username": "nobody", "key_id": "nobody", "password": "` + cur + `", "api_key": "` + cur + `"}`)
	require.Error(b.t, b.verify(foreign), "Verify of a foreign document")
	_ = b.apply(foreign, s.current)
	_ = b.retire(state{current: s.current, previous: foreign})
	b.requireVerifies(s.current, "the current credential after broken documents")

	never := b.create(s.current).Pending
	b.requireFails(never, "a credential that was never applied")
}

// newToken returns a rotation token; targets treat it as opaque.
func newToken(t *testing.T) string {
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "targettest-" + hex.EncodeToString(b)
}

func randomDigits(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = '1' + b[i]%9 // no leading zero: a valid JSON number
	}
	return string(b)
}
