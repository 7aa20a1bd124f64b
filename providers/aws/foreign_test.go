package aws

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
)

// TestLambdaMidRotationIsLeftAlone: a rotation Lambda started a rotation
// and wrote its AWSPENDING version (its createSecret step, played here:
// moto's Lambda does nothing when invoked). No call of the store changes a label, and
// NativeRotation names the Lambda, also once rotation is cancelled.
func TestLambdaMidRotationIsLeftAlone(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	arn := mototest.RotationLambda(t)
	current := b.withCurrent(t, `{"password":"p0"}`)
	_, err := b.raw.RotateSecret(b.ctx, &secretsmanager.RotateSecretInput{
		SecretId:          awsv2.String(b.name),
		RotationLambdaARN: awsv2.String(arn),
		RotationRules:     &types.RotationRulesType{AutomaticallyAfterDays: awsv2.Int64(30)},
		RotateImmediately: awsv2.Bool(false),
	})
	require.NoError(t, err)
	before := b.labels(t)
	lambdaVersion := ""
	for id, labels := range before {
		if id != current {
			lambdaVersion = id
			require.Equal(t, []string{labelPending}, labels, "the Lambda's version is pending")
		}
	}
	require.NotEmpty(t, lambdaVersion, "RotateSecret made a pending version")
	// The Lambda's createSecret step (moto's Lambda does nothing): the new
	// value under the version id RotateSecret handed it.
	_, err = b.raw.PutSecretValue(b.ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awsv2.String(b.name), ClientRequestToken: awsv2.String(lambdaVersion),
		SecretString: awsv2.String(`{"password":"lambda"}`), VersionStages: []string{labelPending},
	})
	require.NoError(t, err)
	got, err := b.store.Get(b.ctx, b.name, providers.StagePending)
	require.NoError(t, err, "reads are not refused")
	require.Equal(t, lambdaVersion, got.ID)

	nr, err := b.store.NativeRotation(b.ctx, b.name)
	require.NoError(t, err)
	require.True(t, nr.Enabled)
	require.Contains(t, nr.Rotator, arn)

	for name, call := range map[string]func() error{
		"DiscardPending":        func() error { return b.store.DiscardPending(b.ctx, b.name, lambdaVersion) },
		"DiscardPendingVersion": func() error { return b.store.DiscardPendingVersion(b.ctx, b.name, lambdaVersion) },
		"Promote": func() error {
			return b.store.Promote(b.ctx, b.name, providers.PromoteRequest{PendingID: lambdaVersion, ExpectedCurrentID: current})
		},
		"PutPending": func() error {
			_, err := b.store.PutPending(b.ctx, b.name, newToken(t), val(`{"password":"p1"}`))
			return err
		},
	} {
		err := call()
		require.ErrorIs(t, err, ErrNativeRotation, name)
		require.Contains(t, err.Error(), arn, name)
		require.Equal(t, before, b.labels(t), "%s changed a label", name)
	}

	// Cancelled mid-way: AWS no longer rotates, but keeps the Lambda, whose
	// pending version is still there.
	_, err = b.raw.CancelRotateSecret(b.ctx, &secretsmanager.CancelRotateSecretInput{SecretId: awsv2.String(b.name)})
	require.NoError(t, err)
	nr, err = b.store.NativeRotation(b.ctx, b.name)
	require.NoError(t, err)
	require.False(t, nr.Enabled)
	require.Contains(t, nr.Rotator, arn)
	require.Equal(t, before, b.labels(t))

	nr, err = b.store.NativeRotation(b.ctx, prefix(t)+"missing")
	require.NoError(t, err)
	require.Equal(t, providers.NativeRotation{}, nr, "a missing secret has no rotator")
}

// failNth is an http.RoundTripper that answers the nth call of one Secrets
// Manager operation (counted from 1) with an error AWS does not retry, and
// passes every other request to moto.
type failNth struct {
	next  http.RoundTripper
	op    string
	n     int32
	calls atomic.Int32
}

func (f *failNth) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "secretsmanager."+f.op || f.calls.Add(1) != f.n {
		return f.next.RoundTrip(r)
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := fmt.Sprintf(`{"__type":"AccessDeniedException","message":"injected: %s call %d denied"}`, f.op, f.n)
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Requestid": {"injected"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// TestPromoteStoppedBetweenItsTwoCallsIsVisibleAndCompletes: the second
// UpdateSecretVersionStage of a promote (removing AWSPENDING) fails. The
// version holds both labels: List shows it, Get does not count it as
// pending, and Promote again completes it.
func TestPromoteStoppedBetweenItsTwoCallsIsVisibleAndCompletes(t *testing.T) {
	t.Parallel()
	cfg := mototest.Config(t)
	fault := &failNth{next: http.DefaultTransport, op: "UpdateSecretVersionStage", n: 2}
	cfg.HTTPClient = &http.Client{Transport: fault}
	s, err := NewFromConfig(cfg, Options{})
	require.NoError(t, err)
	b := setup(t, Options{})
	v0 := b.withCurrent(t, `{"password":"p0"}`)
	tok := newToken(t)
	_, err = s.PutPending(b.ctx, b.name, tok, val(`{"password":"p1"}`))
	require.NoError(t, err)

	err = s.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: v0})
	require.ErrorContains(t, err, "injected")
	require.ElementsMatch(t, []string{labelCurrent, labelPending}, b.labels(t)[tok], "the first call landed, the second did not")
	_, err = s.Get(b.ctx, b.name, providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound, "pending on current is no pending version")
	list, err := s.List(b.ctx, b.name)
	require.NoError(t, err)
	require.Equal(t, tok, list[0].ID)
	require.ElementsMatch(t, []providers.Stage{providers.StageCurrent, providers.StagePending}, list[0].Stages, "List shows the leftover label")

	require.NoError(t, s.Promote(b.ctx, b.name, providers.PromoteRequest{Token: tok, ExpectedCurrentID: v0}))
	require.Equal(t, map[string][]string{tok: {labelCurrent}, v0: {labelPrevious}}, b.labels(t))
}
