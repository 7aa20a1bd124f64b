package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// bundle is one test's fixture: a store on moto and a secret name that no
// other test uses.
type bundle struct {
	store *Store
	raw   *secretsmanager.Client
	name  string
	ctx   context.Context
}

func setup(t *testing.T, opts Options) bundle {
	t.Helper()
	return bundle{store: newStore(t, opts), raw: rawClient(t), name: prefix(t) + "db", ctx: context.Background()}
}

// labels returns the AWS labels of every version of the secret, as moto's
// DescribeSecret reports them.
func (b bundle) labels(t *testing.T) map[string][]string {
	t.Helper()
	d, err := b.raw.DescribeSecret(b.ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(b.name)})
	require.NoError(t, err)
	return d.VersionIdsToStages
}

// withCurrent creates the secret with a current version and returns its id.
func (b bundle) withCurrent(t *testing.T, value string) string {
	t.Helper()
	return createSecret(t, b.name, value)
}

func val(s string) secret.Secret { return secret.FromString(s) }

func TestPutPendingIsIdempotentByToken(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)

	v1, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	require.Equal(t, tok, v1.ID)
	require.Equal(t, tok, v1.Token)
	require.Equal(t, []providers.Stage{providers.StagePending}, v1.Stages)
	require.WithinDuration(t, time.Now(), v1.Created, time.Minute)

	v2, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	require.Equal(t, v1.ID, v2.ID)
	require.Equal(t, v1.Stages, v2.Stages)

	got, err := b.store.Get(b.ctx, b.name, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, `{"password":"new"}`, got.Value.RevealString())
	got, err = b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, cur, got.ID)
	require.Equal(t, `{"password":"old"}`, got.Value.RevealString())
	require.Len(t, b.labels(t), 2, "the repeated put made no new version")
}

func TestPutPendingSameTokenOtherValueConflicts(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"first"}`))
	require.NoError(t, err)

	_, err = b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"second"}`))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.NotContains(t, err.Error(), "first")
	require.NotContains(t, err.Error(), "second")

	// moto would have overwritten the pending value had the store not
	// compared first.
	got, err := b.store.Get(b.ctx, b.name, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, `{"password":"first"}`, got.Value.RevealString())
}

func TestPutPendingNeverStacks(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.withCurrent(t, `{"password":"old"}`)
	first, second := newToken(t), newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, first, val(`{"password":"a"}`))
	require.NoError(t, err)

	_, err = b.store.PutPending(b.ctx, b.name, second, val(`{"password":"b"}`))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), "a pending version "+first+" exists: reconcile or discard it first")
	require.NotContains(t, b.labels(t), second, "nothing was written")
}

func TestPutPendingDetectsStalePendingOfAnotherTool(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.withCurrent(t, `{"password":"old"}`)
	stale := newToken(t)
	_, err := b.raw.PutSecretValue(b.ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           awsv2.String(b.name),
		ClientRequestToken: awsv2.String(stale),
		SecretString:       awsv2.String(`{"password":"left-behind"}`),
		VersionStages:      []string{"AWSPENDING"},
	})
	require.NoError(t, err)

	_, err = b.store.PutPending(b.ctx, b.name, newToken(t), val(`{"password":"mine"}`))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), stale)
	require.Contains(t, err.Error(), b.name)
}

func TestPutPendingOfPromotedToken(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: cur}))

	// A retried create step after promote: same value is a no-op.
	v, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	require.Equal(t, []providers.Stage{providers.StageCurrent}, v.Stages)

	// Another value under a used token: AWS answers ResourceExistsException.
	_, err = b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"S3cr3t-other"}`))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.NotContains(t, err.Error(), "S3cr3t")
}

func TestPutPendingOfDiscardedTokenConflicts(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, tok))

	_, err = b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), "discarded")
}

func TestPromoteMovesCurrentAndPrevious(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	v0 := b.withCurrent(t, `{"password":"v0"}`)

	// Two rotations, so that the first promote's previous falls off.
	ids := []string{v0}
	for i := 1; i <= 2; i++ {
		tok := newToken(t)
		_, err := b.store.PutPending(b.ctx, b.name, tok, val(fmt.Sprintf(`{"password":"v%d"}`, i)))
		require.NoError(t, err)
		require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: ids[len(ids)-1]}))
		ids = append(ids, tok)
	}

	cur, err := b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, ids[2], cur.ID)
	require.Equal(t, `{"password":"v2"}`, cur.Value.RevealString())
	prev, err := b.store.Get(b.ctx, b.name, providers.StagePrevious)
	require.NoError(t, err)
	require.Equal(t, ids[1], prev.ID)
	require.Equal(t, `{"password":"v1"}`, prev.Value.RevealString())
	_, err = b.store.Get(b.ctx, b.name, providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound)

	// moto moves AWSPREVIOUS itself, as AWS does, and AWSPENDING is gone.
	labels := b.labels(t)
	require.ElementsMatch(t, []string{"AWSCURRENT"}, labels[ids[2]])
	require.ElementsMatch(t, []string{"AWSPREVIOUS"}, labels[ids[1]])
	require.Empty(t, labels[ids[0]], "the old previous holds no label")

	list, err := b.store.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, ids[2], list[0].ID)
	require.Equal(t, []providers.Stage{providers.StageCurrent}, list[0].Stages)
	require.Equal(t, ids[1], list[1].ID)
	require.Equal(t, []providers.Stage{providers.StagePrevious}, list[1].Stages)
	for _, v := range list {
		require.True(t, v.Value.IsZero(), "List returns no values")
		require.False(t, v.Created.IsZero())
	}
}

func TestPromoteIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	req := providers.PromoteRequest{Token: tok, ExpectedCurrentID: cur}
	require.NoError(t, b.store.Promote(b.ctx, b.name, req))
	require.NoError(t, b.store.Promote(b.ctx, b.name, req))

	// A promote interrupted after the move but before AWSPENDING was
	// removed: the retry finishes it.
	tok2 := newToken(t)
	_, err = b.store.PutPending(b.ctx, b.name, tok2, val(`{"password":"newer"}`))
	require.NoError(t, err)
	_, err = b.raw.UpdateSecretVersionStage(b.ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: awsv2.String(b.name), VersionStage: awsv2.String("AWSCURRENT"),
		MoveToVersionId: awsv2.String(tok2), RemoveFromVersionId: awsv2.String(tok),
	})
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok2, ExpectedCurrentID: tok}))
	require.ElementsMatch(t, []string{"AWSCURRENT"}, b.labels(t)[tok2])
}

func TestPromoteCompareAndSwap(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)
	before := b.labels(t)

	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: newToken(t)})
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), "current is "+cur)

	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: ""})
	require.ErrorIs(t, err, providers.ErrConflict, "the caller saw no current, but there is one")
	require.Equal(t, before, b.labels(t), "a lost compare-and-swap changes nothing")
}

// TestPromoteRaceLostBetweenDescribeAndMove moves AWSCURRENT behind the
// store's back after it checked the labels and before it moves them: the
// RemoveFromVersionId of the move no longer holds AWSCURRENT, moto rejects
// the call (as AWS documents it does) and the store reports ErrConflict
// without having changed anything.
func TestPromoteRaceLostBetweenDescribeAndMove(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok, rival := newToken(t), newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"mine"}`))
	require.NoError(t, err)
	_, err = b.raw.PutSecretValue(b.ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awsv2.String(b.name), ClientRequestToken: awsv2.String(rival),
		SecretString: awsv2.String(`{"password":"rival"}`), VersionStages: []string{"RIVAL"},
	})
	require.NoError(t, err)

	b.store.testHookBeforeMove = func() {
		_, err := b.raw.UpdateSecretVersionStage(b.ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: awsv2.String(b.name), VersionStage: awsv2.String("AWSCURRENT"),
			MoveToVersionId: awsv2.String(rival), RemoveFromVersionId: awsv2.String(cur),
		})
		require.NoError(t, err)
	}
	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: cur})
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Contains(t, err.Error(), "current moved to "+rival)

	labels := b.labels(t)
	require.Contains(t, labels[rival], "AWSCURRENT")
	require.ElementsMatch(t, []string{"AWSPENDING"}, labels[tok], "the loser's pending version is untouched")
}

// TestPutPendingRaceWindow pins down what the pending check cannot prevent:
// PutSecretValue moves AWSPENDING unconditionally, so a writer that passed
// the check while another was writing wins silently. The loser learns it at
// Promote, which fails with ErrNotFound and promotes nothing.
func TestPutPendingRaceWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	loser, winner := newToken(t), newToken(t)
	other := newStore(t, Options{})
	b.store.testHookBeforePut = func() {
		b.store.testHookBeforePut = nil
		_, err := other.PutPending(b.ctx, b.name, loser, val(`{"password":"first"}`))
		require.NoError(t, err)
	}
	_, err := b.store.PutPending(b.ctx, b.name, winner, val(`{"password":"second"}`))
	require.NoError(t, err)

	labels := b.labels(t)
	require.ElementsMatch(t, []string{"AWSPENDING"}, labels[winner])
	require.Empty(t, labels[loser], "the first writer's version lost its label")
	err = other.Promote(b.ctx, b.name, providers.PromoteRequest{Token: loser, ExpectedCurrentID: cur})
	require.ErrorIs(t, err, providers.ErrNotFound)
	got, err := b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, cur, got.ID)
}

// TestMotoRejectsStaleRemoveFromVersionID pins the emulator behaviour the
// compare-and-swap relies on, with the raw SDK.
func TestMotoRejectsStaleRemoveFromVersionID(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	v1 := b.withCurrent(t, "one")
	v2, v3 := newToken(t), newToken(t)
	for _, v := range []string{v2, v3} {
		_, err := b.raw.PutSecretValue(b.ctx, &secretsmanager.PutSecretValueInput{
			SecretId: awsv2.String(b.name), ClientRequestToken: awsv2.String(v),
			SecretString: awsv2.String(v), VersionStages: []string{"X" + v[:4]},
		})
		require.NoError(t, err)
	}
	_, err := b.raw.UpdateSecretVersionStage(b.ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: awsv2.String(b.name), VersionStage: awsv2.String("AWSCURRENT"),
		MoveToVersionId: awsv2.String(v3), RemoveFromVersionId: awsv2.String(v2),
	})
	var ipe *types.InvalidParameterException
	require.ErrorAs(t, err, &ipe)
	require.Contains(t, b.labels(t)[v1], "AWSCURRENT")
}

func TestPromoteWithoutPending(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)

	err := b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: newToken(t), ExpectedCurrentID: cur})
	require.ErrorIs(t, err, providers.ErrNotFound)

	// A token that became previous: a later rotation promoted over it.
	t1, t2 := newToken(t), newToken(t)
	for i, tok := range []string{t1, t2} {
		_, err := b.store.PutPending(b.ctx, b.name, tok, val(fmt.Sprintf(`{"n":%d}`, i)))
		require.NoError(t, err)
		require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: cur}))
		cur = tok
	}
	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: t1, ExpectedCurrentID: t2})
	require.ErrorIs(t, err, providers.ErrConflict)
}

func TestDiscardPending(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	cur := b.withCurrent(t, `{"password":"old"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"new"}`))
	require.NoError(t, err)

	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, tok))
	_, err = b.store.Get(b.ctx, b.name, providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound)
	got, err := b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, cur, got.ID)
	require.Empty(t, b.labels(t)[tok], "the discarded version holds no label: AWS deprecates it")
	list, err := b.store.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, tok), "discarding again is a no-op")
	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, newToken(t)), "a token that never wrote is a no-op")

	// A new rotation may start now.
	_, err = b.store.PutPending(b.ctx, b.name, newToken(t), val(`{"password":"next"}`))
	require.NoError(t, err)
}

func TestRetireUnstagedHasNothingToDo(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.withCurrent(t, "x")
	require.NoError(t, b.store.RetireUnstaged(b.ctx, b.name, providers.RetireRequest{Destroy: true}))
	err := b.store.RetireUnstaged(b.ctx, b.name+"-missing", providers.RetireRequest{})
	require.ErrorIs(t, err, providers.ErrNotFound)
}

func TestMissingSecret(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	missing := b.name + "-missing"
	tok := newToken(t)

	_, err := b.store.PutPending(b.ctx, missing, tok, val(`{"password":"new"}`))
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.Contains(t, err.Error(), missing)
	require.Contains(t, err.Error(), "DescribeSecret")
	require.Contains(t, err.Error(), "create: true")
	require.Contains(t, err.Error(), "create-secret --name "+missing)

	_, err = b.store.Get(b.ctx, missing, providers.StageCurrent)
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.Contains(t, err.Error(), missing)
	_, err = b.store.List(b.ctx, missing)
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.ErrorIs(t, b.store.Promote(b.ctx, missing, providers.PromoteRequest{Token: tok}), providers.ErrNotFound)
	require.NoError(t, b.store.DiscardPending(b.ctx, missing, tok), "nothing to discard")

	// A secret that exists without the stage asked for.
	b.withCurrent(t, "x")
	_, err = b.store.Get(b.ctx, b.name, providers.StagePrevious)
	require.ErrorIs(t, err, providers.ErrNotFound)
}

// TestCreateAndFirstVersion covers create: true and the placeholder: AWS
// makes the first version of a secret AWSCURRENT whatever labels the write
// asked for, so the store writes a placeholder first and the real value as
// AWSPENDING, never current before promote.
func TestCreateAndFirstVersion(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true, Description: "checkout db", Tags: map[string]string{"team": "perf", "managed-by": "swarmkey"}})
	tok := newToken(t)

	v, err := b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"first"}`))
	require.NoError(t, err)
	require.Equal(t, tok, v.ID)
	require.Equal(t, []providers.Stage{providers.StagePending}, v.Stages)

	d, err := b.raw.DescribeSecret(b.ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(b.name)})
	require.NoError(t, err)
	require.Equal(t, "checkout db", awsv2.ToString(d.Description))
	tags := map[string]string{}
	for _, tag := range d.Tags {
		tags[awsv2.ToString(tag.Key)] = awsv2.ToString(tag.Value)
	}
	require.Equal(t, map[string]string{"team": "perf", "managed-by": "swarmkey"}, tags)

	// AWSCURRENT is on the placeholder; the store does not show it.
	labels := b.labels(t)
	require.ElementsMatch(t, []string{"AWSCURRENT"}, labels[placeholderToken])
	require.ElementsMatch(t, []string{"AWSPENDING"}, labels[tok])
	raw, err := b.raw.GetSecretValue(b.ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(b.name), VersionStage: awsv2.String("AWSCURRENT")})
	require.NoError(t, err)
	require.Equal(t, placeholderValue, awsv2.ToString(raw.SecretString), "what readers of AWSCURRENT see before the first promote")
	_, err = b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.ErrorContains(t, err, "placeholder")
	list, err := b.store.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, tok, list[0].ID)

	// Idempotent: no second placeholder, no second version.
	_, err = b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"first"}`))
	require.NoError(t, err)
	require.Len(t, b.labels(t), 2)

	// The caller cannot have seen another current version.
	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: newToken(t)})
	require.ErrorIs(t, err, providers.ErrConflict)

	// The first pending version can be discarded; the placeholder stays
	// current and a new rotation starts over it.
	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, tok))
	require.Empty(t, b.labels(t)[tok])
	require.ElementsMatch(t, []string{"AWSCURRENT"}, b.labels(t)[placeholderToken])
	tok1 := newToken(t)
	_, err = b.store.PutPending(b.ctx, b.name, tok1, val(`{"password":"first again"}`))
	require.NoError(t, err)

	// Promote with "no current seen" replaces the placeholder, which
	// becomes AWSPREVIOUS and stays hidden.
	require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok1}))
	labels = b.labels(t)
	require.ElementsMatch(t, []string{"AWSCURRENT"}, labels[tok1])
	require.ElementsMatch(t, []string{"AWSPREVIOUS"}, labels[placeholderToken])
	_, err = b.store.Get(b.ctx, b.name, providers.StagePrevious)
	require.ErrorIs(t, err, providers.ErrNotFound)
	list, err = b.store.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Len(t, list, 1)

	// Create on an existing secret leaves it alone; the second promote
	// drops the placeholder's last label (AWS deprecates it).
	tok2 := newToken(t)
	_, err = b.store.PutPending(b.ctx, b.name, tok2, val(`{"password":"second"}`))
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok2, ExpectedCurrentID: tok1}))
	prev, err := b.store.Get(b.ctx, b.name, providers.StagePrevious)
	require.NoError(t, err)
	require.Equal(t, tok1, prev.ID)
	require.Empty(t, b.labels(t)[placeholderToken])

	// The placeholder's token is nobody's rotation token.
	_, err = b.store.PutPending(b.ctx, b.name, placeholderToken, val(`{"password":"x"}`))
	require.ErrorContains(t, err, "reserved")
}

// TestPlaceholderOnExistingEmptySecret: a secret created without a value
// (by an operator, create: false) gets the placeholder too.
func TestPlaceholderOnExistingEmptySecret(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	_, err := b.raw.CreateSecret(b.ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String(b.name)})
	require.NoError(t, err)
	tok := newToken(t)
	_, err = b.store.PutPending(b.ctx, b.name, tok, val(`{"password":"p"}`))
	require.NoError(t, err)
	_, err = b.store.Get(b.ctx, b.name, providers.StageCurrent)
	require.ErrorIs(t, err, providers.ErrNotFound)
	got, err := b.store.Get(b.ctx, b.name, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, tok, got.ID)
}

// TestNativeRotationRefused: moto sets RotationEnabled from RotateSecret with
// rotation rules and no Lambda ARN (AWS itself would demand a Lambda, and moto
// demands that a given Lambda exists), which is enough to put the flag into
// DescribeSecret's answer, where the store reads it.
func TestNativeRotationRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	_, err := b.raw.CreateSecret(b.ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String(b.name)})
	require.NoError(t, err)
	_, err = b.raw.RotateSecret(b.ctx, &secretsmanager.RotateSecretInput{
		SecretId:      awsv2.String(b.name),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: awsv2.Int64(30)},
	})
	require.NoError(t, err)
	d, err := b.raw.DescribeSecret(b.ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(b.name)})
	require.NoError(t, err)
	require.True(t, awsv2.ToBool(d.RotationEnabled), "moto set RotationEnabled")

	_, err = b.store.PutPending(b.ctx, b.name, newToken(t), val(`{"password":"x"}`))
	require.ErrorIs(t, err, ErrNativeRotation)
	require.Contains(t, err.Error(), "two rotators on one secret")
	require.Contains(t, err.Error(), "cancel-rotate-secret --secret-id "+b.name)
	require.Empty(t, b.labels(t), "nothing was written")

	err = b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: newToken(t)})
	require.ErrorIs(t, err, ErrNativeRotation)
}

func TestSecretScheduledForDeletionRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Create: true})
	b.withCurrent(t, "x")
	_, err := b.raw.DeleteSecret(b.ctx, &secretsmanager.DeleteSecretInput{SecretId: awsv2.String(b.name), RecoveryWindowInDays: awsv2.Int64(7)})
	require.NoError(t, err)
	_, err = b.store.PutPending(b.ctx, b.name, newToken(t), val(`{"password":"x"}`))
	require.ErrorContains(t, err, "scheduled for deletion")
	require.ErrorContains(t, err, "restore-secret")
}

// TestNoValueInErrors drives every failing write path with a recognisable
// value and checks that no error text carries it.
func TestNoValueInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	const leak = "hunter2-LEAK-canary"
	doc := func(s string) secret.Secret { return val(`{"password":"` + leak + s + `"}`) }
	var errs []error
	collect := func(_ providers.Version, err error) {
		require.Error(t, err)
		errs = append(errs, err)
	}

	collect(b.store.PutPending(b.ctx, b.name, newToken(t), doc("missing")))
	cur := b.withCurrent(t, `{"password":"`+leak+`"}`)
	tok := newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, tok, doc("a"))
	require.NoError(t, err)
	collect(b.store.PutPending(b.ctx, b.name, tok, doc("b")))         // same token, other value
	collect(b.store.PutPending(b.ctx, b.name, newToken(t), doc("c"))) // stacking
	require.NoError(t, b.store.DiscardPending(b.ctx, b.name, tok))
	collect(b.store.PutPending(b.ctx, b.name, cur, doc("d")))                                // ResourceExistsException
	collect(b.store.PutPending(b.ctx, b.name, "short", doc("e")))                            // token rejected by the service
	collect(b.store.PutPending(b.ctx, b.name, newToken(t), secret.New([]byte{0xff, 0xfe})))  // not UTF-8
	collect(b.store.PutPending(b.ctx, b.name, newToken(t), doc(strings.Repeat("x", 70000)))) // too large

	// The guard in translate, for a service message that echoes the value.
	value := doc("echo")
	errs = append(errs, translate(b.name, mototest.Region, "PutSecretValue", &smithy.GenericAPIError{Code: "ValidationException", Message: "Value '" + value.RevealString() + "' failed"}, &value))
	errs = append(errs, translate(b.name, mototest.Region, "PutSecretValue", fmt.Errorf("wrapped: %s", value.RevealString()), &value))

	for _, err := range errs {
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			require.NotContains(t, text, leak, "error %q", err)
		}
		require.Contains(t, err.Error(), b.name, "every error names the secret")
	}
}

func TestTranslateExplains(t *testing.T) {
	t.Parallel()
	err := translate("loadtest/db", "eu-west-1", "PutSecretValue", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"}, nil)
	require.ErrorContains(t, err, `aws secret "loadtest/db": PutSecretValue: permission secretsmanager:PutSecretValue denied`)
	require.ErrorContains(t, err, "deploy/aws/iam-rotator.json")

	err = translate("loadtest/db", "eu-west-1", "PutSecretValue", &smithy.GenericAPIError{Code: "LimitExceededException"}, nil)
	require.ErrorContains(t, err, "about 100 versions")

	err = translate("loadtest/db", "eu-west-1", "GetSecretValue", &types.ResourceNotFoundException{Message: awsv2.String("nope")}, nil)
	require.ErrorIs(t, err, providers.ErrNotFound)
	require.ErrorContains(t, err, `aws secret "loadtest/db": GetSecretValue:`)
	require.ErrorContains(t, err, "region eu-west-1")
	require.ErrorContains(t, err, "check its name, the region and the account")

	err = translate("loadtest/db", "eu-west-1", "DescribeSecret", errors.New("dial tcp 10.0.0.1:443: connect: connection refused"), nil)
	require.ErrorContains(t, err, `aws secret "loadtest/db": DescribeSecret:`)
	require.ErrorContains(t, err, "check the region, endpoint_url")

	err = translate("loadtest/db", "eu-west-1", "GetSecretValue", fmt.Errorf("op: %w", context.DeadlineExceeded), nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestGetEveryStage(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	v0 := b.withCurrent(t, "v0")
	t1, t2 := newToken(t), newToken(t)
	_, err := b.store.PutPending(b.ctx, b.name, t1, val("v1"))
	require.NoError(t, err)
	require.NoError(t, b.store.Promote(b.ctx, b.name, providers.PromoteRequest{Token: t1, ExpectedCurrentID: v0}))
	_, err = b.store.PutPending(b.ctx, b.name, t2, val("v2"))
	require.NoError(t, err)

	want := map[providers.Stage][2]string{
		providers.StagePrevious: {v0, "v0"},
		providers.StageCurrent:  {t1, "v1"},
		providers.StagePending:  {t2, "v2"},
	}
	for stage, w := range want {
		got, err := b.store.Get(b.ctx, b.name, stage)
		require.NoError(t, err)
		require.Equal(t, w[0], got.ID, stage)
		require.Equal(t, w[1], got.Value.RevealString(), stage)
		require.Equal(t, []providers.Stage{stage}, got.Stages)
		require.False(t, got.Created.IsZero())
	}
	_, err = b.store.Get(b.ctx, b.name, providers.Stage("latest"))
	require.ErrorContains(t, err, "unknown stage")

	list, err := b.store.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, []string{t2, t1, v0}, []string{list[0].ID, list[1].ID, list[2].ID}, "newest first")
}

// TestRetriesThrottlingAnd5xx puts a proxy in front of moto that answers the
// first attempts with a throttle and a 500: the store's retryer gets through.
func TestRetriesThrottlingAnd5xx(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(mototest.Endpoint(t))
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
		case 2:
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"__type":"InternalServiceError","message":"boom"}`)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	s, err := NewFromConfig(mototest.Config(t), Options{EndpointURL: srv.URL})
	require.NoError(t, err)
	require.Equal(t, retryMaxAttempts, s.client.Options().Retryer.MaxAttempts())
	name := prefix(t) + "db"
	createSecret(t, name, "v0")

	got, err := s.Get(context.Background(), name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, "v0", got.Value.RevealString())
	require.Equal(t, int32(3), calls.Load())
}

func TestNewAppliesOptions(t *testing.T) {
	t.Parallel()
	s, err := New(context.Background(), Options{Region: "eu-west-1", EndpointURL: "https://vpce-123.secretsmanager.eu-west-1.vpce.amazonaws.com"})
	require.NoError(t, err)
	require.Equal(t, "aws", s.Name())
	o := s.client.Options()
	require.Equal(t, "eu-west-1", o.Region)
	require.Equal(t, "https://vpce-123.secretsmanager.eu-west-1.vpce.amazonaws.com", awsv2.ToString(o.BaseEndpoint))
	require.Equal(t, retryMaxAttempts, o.Retryer.MaxAttempts())

	_, err = NewFromConfig(awsv2.Config{}, Options{})
	require.ErrorContains(t, err, "no region")
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Options{}.Validate())
	require.NoError(t, Options{EndpointURL: "http://localhost:5000"}.Validate())
	for _, bad := range []string{"localhost:5000", "secretsmanager.eu-west-1.amazonaws.com", "ftp://x", "https://"} {
		_, err := NewFromConfig(awsv2.Config{Region: "eu-west-1"}, Options{EndpointURL: bad})
		require.EqualError(t, err, "aws store: endpoint_url: not an absolute URL: give one such as https://secretsmanager.eu-west-1.amazonaws.com or http://localhost:5000", bad)
	}
}
