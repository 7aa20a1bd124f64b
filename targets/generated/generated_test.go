package generated_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/targettest"
)

func TestVerbs(t *testing.T) {
	t.Parallel()
	tg, err := generated.New(generated.Options{Policy: "shared", Field: "token"})
	require.NoError(t, err)
	ctx := t.Context()
	pw := secret.FromString("generated-password-0123456789")
	resp, err := tg.Create(ctx, targets.CreateRequest{Token: "tok1", Strategy: targets.Alternating, Password: pw})
	require.NoError(t, err)
	require.Equal(t, "generated:tok1", resp.Principal)
	require.JSONEq(t, `{"token": "generated-password-0123456789"}`, resp.Pending.RevealString())
	require.NoError(t, tg.Apply(ctx, targets.ApplyRequest{Strategy: targets.Alternating, Pending: resp.Pending}))
	require.NoError(t, tg.Verify(ctx, targets.VerifyRequest{Credential: resp.Pending, Canary: true}))
	require.NoError(t, tg.Restore(ctx, targets.RestoreRequest{Strategy: targets.Alternating, Pending: resp.Pending}))
	require.NoError(t, tg.Retire(ctx, targets.RetireRequest{Strategy: targets.Alternating, Retired: resp.Pending}))
	require.NoError(t, tg.Close())

	_, err = tg.Create(ctx, targets.CreateRequest{Token: "tok2", Strategy: targets.Single})
	require.ErrorContains(t, err, "the generated password is empty")
	_, err = generated.New(generated.Options{Policy: "shared", Field: "Bad Field"})
	require.ErrorContains(t, err, `generated target of policy "shared": field: "Bad Field" is not a valid field name`)
}

// TestCheckConformance runs the shared suite's cases of the Check step; the
// rest of the suite does not apply (see the package doc).
func TestCheckConformance(t *testing.T) {
	t.Parallel()
	targettest.RunCheck(t, targettest.Harness{
		NewTarget: func(t *testing.T, _ targets.Strategy) targets.Target {
			tg, err := generated.New(generated.Options{Policy: "conformance", Field: "token"})
			require.NoError(t, err)
			return tg
		},
		Password: func(*testing.T) secret.Secret { return secret.FromString("generated-" + rand.Text()) },
		SecretOf: func(t *testing.T, doc secret.Secret) string {
			var d struct {
				Token string `json:"token"`
			}
			require.NoError(t, json.Unmarshal(doc.Reveal(), &d))
			return d.Token
		},
	})
}

// TestBrokenDocuments: every verb rejects a malformed document without
// echoing what it holds.
func TestBrokenDocuments(t *testing.T) {
	t.Parallel()
	tg, err := generated.New(generated.Options{Policy: "shared"})
	require.NoError(t, err)
	const pw = "s3cret-value-that-must-not-leak"
	for _, doc := range []string{
		"not json " + pw,
		`["` + pw + `"]`,
		`{"value": 1234567890123456789` + `}`,
		`{"other": "` + pw + `"}`,
		`{"value": ""}`,
	} {
		s := secret.FromString(doc)
		for _, err := range []error{
			tg.Verify(t.Context(), targets.VerifyRequest{Credential: s}),
			tg.Apply(t.Context(), targets.ApplyRequest{Pending: s}),
			tg.Restore(t.Context(), targets.RestoreRequest{Pending: s}),
		} {
			require.Error(t, err)
			out := fmt.Sprintf("%v %+v %#v", err, err, err)
			require.NotContains(t, out, pw)
			require.NotContains(t, out, "1234567890123456789")
		}
	}
}

// TestRotator rotates a generated policy through the real rotator: the
// store ends with the value under the policy's rules as current and the one
// before as previous.
func TestRotator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := rotationtest.State(t)
	fs := rotationtest.FileStore(t)

	tg, err := generated.New(generated.Options{Policy: "shared"})
	require.NoError(t, err)
	p := rotator.Credential{Name: "shared", Strategy: targets.Alternating, Store: fs, SecretID: "loadtest/shared", Target: tg,
		Password: rotator.PasswordRules{Length: 40, Characters: "0123456789abcdef"}}
	rot := rotator.New(db, rotator.Config{})
	var values []string
	for range 3 {
		res, err := rot.Rotate(ctx, p, rotator.Options{Actor: "test"})
		require.NoError(t, err)
		require.Equal(t, state.OutcomeSucceeded, res.Outcome)
		v, err := fs.Get(ctx, "loadtest/shared", providers.StageCurrent)
		require.NoError(t, err)
		var doc struct {
			Value string `json:"value"`
		}
		require.NoError(t, json.Unmarshal(v.Value.Reveal(), &doc))
		require.Len(t, doc.Value, 40)
		require.Empty(t, strings.Trim(doc.Value, "0123456789abcdef"))
		values = append(values, doc.Value)
	}
	require.NotEqual(t, values[1], values[2])
	prev, err := fs.Get(ctx, "loadtest/shared", providers.StagePrevious)
	require.NoError(t, err)
	require.Contains(t, prev.Value.RevealString(), values[1])
}

// TestRotatorUnreadableCurrent: a current value that is not the target's
// document (a bare token another tool stored) stops the rotation with
// nothing changed; with ReplaceUnreadableCurrent it is replaced, and the
// rotation after that works too.
func TestRotatorUnreadableCurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := rotationtest.State(t)
	fs := rotationtest.FileStore(t)
	const foreign = "0190b5a4-0000-7000-8000-0000000f0e19"
	_, err := fs.PutPending(ctx, "loadtest/shared", foreign, secret.FromString("bare-token-of-another-tool"))
	require.NoError(t, err)
	require.NoError(t, fs.Promote(ctx, "loadtest/shared", providers.PromoteRequest{Token: foreign}))

	tg, err := generated.New(generated.Options{Policy: "shared"})
	require.NoError(t, err)
	p := rotator.Credential{Name: "shared", Strategy: targets.Single, Store: fs, SecretID: "loadtest/shared", Target: tg}
	rot := rotator.New(db, rotator.Config{})
	_, err = rot.Rotate(ctx, p, rotator.Options{Actor: "test"})
	require.ErrorContains(t, err, `secret "loadtest/shared": current version `+foreign+
		` is not a generated document (the document is not a JSON object): expected a JSON object with a non-empty string field "value"; nothing was changed`)
	require.NotContains(t, err.Error(), "bare-token-of-another-tool")
	v, err := fs.Get(ctx, "loadtest/shared", providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, foreign, v.ID)
	_, err = fs.Get(ctx, "loadtest/shared", providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound)

	for _, replace := range []bool{true, false} {
		res, err := rot.Rotate(ctx, p, rotator.Options{Actor: "operator:alice", ReplaceUnreadableCurrent: replace})
		require.NoError(t, err)
		require.Equal(t, state.OutcomeSucceeded, res.Outcome)
	}
	v, err = fs.Get(ctx, "loadtest/shared", providers.StageCurrent)
	require.NoError(t, err)
	require.NoError(t, tg.Verify(ctx, targets.VerifyRequest{Credential: v.Value}))
}
