package ssm

import (
	"context"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
)

// TestReadersNeverGetPending: a reader's plain GetParameter NAME returns the
// current version at every step of two rotations, never the pending one;
// NAME:swarmkey-current and NAME:swarmkey-previous name current and
// previous; the pending value is gone once promoted.
func TestReadersNeverGetPending(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	name := prefix(t) + "checkout-db"
	ctx := t.Context()

	_, err := s.PutPending(ctx, name, "tok-1", doc("first"))
	require.NoError(t, err)
	require.Equal(t, "", readerPassword(t, name), "a reader gets nothing before the first promote")
	require.NoError(t, s.Promote(ctx, name, providers.PromoteRequest{Token: "tok-1"}))
	require.Equal(t, "first", readerPassword(t, name))
	cur, err := s.Get(ctx, name, providers.StageCurrent)
	require.NoError(t, err)

	_, err = s.PutPending(ctx, name, "tok-2", doc("second"))
	require.NoError(t, err)
	require.Equal(t, "first", readerPassword(t, name), "the pending version is not what a reader gets")
	require.Equal(t, "first", readerPassword(t, name+":"+labelCurrent))
	require.NoError(t, s.Promote(ctx, name, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: cur.ID}))
	require.Equal(t, "second", readerPassword(t, name), "current is the latest version")
	require.Equal(t, "second", readerPassword(t, name+":"+labelCurrent))
	require.Equal(t, "first", readerPassword(t, name+":"+labelPrevious), "previous stays readable by its label")

	// The pending parameter is deleted at promote, and its value with it.
	require.Equal(t, "", readerPassword(t, DefaultPendingPrefix+name))
}

// TestForeignWriteIsCurrentWithoutToken: another tool's put-parameter makes
// the latest version, which is current with no token and id v<K>; a promote
// that expected swarmkey's version fails with ErrConflict and writes
// nothing.
func TestForeignWriteIsCurrentWithoutToken(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	name := prefix(t) + "checkout-db"
	ctx := t.Context()
	_, err := s.PutPending(ctx, name, "tok-1", doc("first"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, name, providers.PromoteRequest{Token: "tok-1"}))
	_, err = s.PutPending(ctx, name, "tok-2", doc("second"))
	require.NoError(t, err)

	_, err = rawClient(t).PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String(`{"password":"theirs"}`), Type: "SecureString", Overwrite: awsv2.Bool(true)})
	require.NoError(t, err)
	cur, err := s.Get(ctx, name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, "v2", cur.ID)
	require.Equal(t, "", cur.Token)

	err = s.Promote(ctx, name, providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: "tok-1"})
	require.ErrorIs(t, err, providers.ErrConflict)
	require.Equal(t, "theirs", readerPassword(t, name))
	pending, err := s.Get(ctx, name, providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, "tok-2", pending.ID)
}

// TestPromoteStoppedAfterWrite: a promote that stopped after its
// PutParameter leaves an unlabelled latest version; Promote again
// recognises it and labels it instead of writing a second one.
func TestPromoteStoppedAfterWrite(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	name := prefix(t) + "checkout-db"
	ctx := t.Context()
	_, err := s.PutPending(ctx, name, "tok-1", doc("first"))
	require.NoError(t, err)
	require.NoError(t, s.Promote(ctx, name, providers.PromoteRequest{Token: "tok-1"}))
	_, err = s.PutPending(ctx, name, "tok-2", doc("second"))
	require.NoError(t, err)

	req := providers.PromoteRequest{Token: "tok-2", ExpectedCurrentID: "tok-1"}
	s.testHookStopAfterData = true
	require.NoError(t, s.Promote(ctx, name, req))
	s.testHookStopAfterData = false
	cur, err := s.Get(ctx, name, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, "v2", cur.ID, "unlabelled until the promote completes")

	require.NoError(t, s.Promote(ctx, name, req))
	list, err := s.List(ctx, name)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "tok-2", list[0].ID)
	require.Equal(t, []providers.Stage{providers.StageCurrent}, list[0].Stages)
	require.Equal(t, "tok-1", list[1].ID)
	require.Equal(t, []providers.Stage{providers.StagePrevious}, list[1].Stages)
	h, err := s.readHistory(ctx, name)
	require.NoError(t, err)
	require.Len(t, h, 2, "no second write of the pending document")
}

// TestLabelsDoNotPinOldVersions: after many rotations only current and
// previous carry swarmkey's labels, so Parameter Store's 100-version limit
// can drop the old ones (a labelled oldest version blocks every write).
func TestLabelsDoNotPinOldVersions(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{Create: true})
	name := prefix(t) + "checkout-db"
	ctx := t.Context()
	expected := ""
	for i := range 4 {
		tok := "tok-" + string(rune('a'+i))
		_, err := s.PutPending(ctx, name, tok, doc(tok))
		require.NoError(t, err)
		require.NoError(t, s.Promote(ctx, name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: expected}))
		expected = tok
	}
	h, err := s.readHistory(ctx, name)
	require.NoError(t, err)
	for _, v := range h[:len(h)-2] {
		require.Empty(t, v.labels, "version %d", v.n)
	}
}

// TestValidate: bad options and tokens are refused with the field named.
func TestValidate(t *testing.T) {
	t.Parallel()
	err := Options{EndpointURL: "ssm:443", PendingPrefix: "pending/"}.Validate()
	require.ErrorContains(t, err, "endpoint_url")
	require.ErrorContains(t, err, "pending_prefix")
	s := newStore(t, Options{Create: true})
	_, err = s.PutPending(context.Background(), prefix(t)+"x", "tok with space", doc("x"))
	require.ErrorContains(t, err, "rotation token")
	_, err = s.PutPending(context.Background(), DefaultPendingPrefix+"/x", "tok", doc("x"))
	require.ErrorContains(t, err, "pending_prefix")
	require.False(t, strings.Contains(err.Error(), `"password"`))
}
