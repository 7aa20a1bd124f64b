package gcpfake_test

import (
	"context"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
)

func client(t *testing.T, f *gcpfake.Server) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(context.Background(), f.ClientOptions(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

const name = "projects/" + gcpfake.Project + "/secrets/s"

// setLabel is an UpdateSecret (the client library does not retry it) that
// sets label k=v.
func setLabel(ctx context.Context, c *secretmanager.Client, v string) error {
	_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: name, Labels: map[string]string{"k": v}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	return err
}

func label(t *testing.T, f *gcpfake.Server) string {
	t.Helper()
	m, _ := f.Snapshot(t, "s")
	return m.GetLabels()["k"]
}

func TestFaultsAnswerWithoutRunningTheCall(t *testing.T) {
	t.Parallel()
	f := gcpfake.Start(t)
	f.Seed("s")
	c := client(t, f)
	ctx := context.Background()
	for _, tc := range []struct {
		kind gcpfake.FaultKind
		code codes.Code
	}{
		{gcpfake.FaultThrottle, codes.ResourceExhausted},
		{gcpfake.FaultServerError, codes.Internal},
		{gcpfake.FaultUnavailable, codes.Unavailable},
	} {
		f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 1, Kind: tc.kind})
		err := setLabel(ctx, c, string(tc.kind))
		require.Equal(t, tc.code, status.Code(err), tc.kind)
		require.NotEqual(t, string(tc.kind), label(t, f), "%s: the call did not run", tc.kind)
		require.Zero(t, f.PendingFaults(), "spent")
		require.NoError(t, setLabel(ctx, c, string(tc.kind)))
		require.Equal(t, string(tc.kind), label(t, f))
	}
	require.Equal(t, 1, f.Fired()[gcpfake.FaultThrottle])
}

func TestNthAndEveryCall(t *testing.T) {
	t.Parallel()
	f := gcpfake.Start(t)
	f.Seed("s")
	c := client(t, f)
	ctx := context.Background()
	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 2, Kind: gcpfake.FaultUnavailable})
	require.NoError(t, setLabel(ctx, c, "a"))
	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}) // another method: not counted
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable, status.Code(setLabel(ctx, c, "b")))
	require.NoError(t, setLabel(ctx, c, "c"))

	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Kind: gcpfake.FaultServerError})
	require.Error(t, setLabel(ctx, c, "d"))
	require.Error(t, setLabel(ctx, c, "e"))
	f.ClearFaults()
	require.NoError(t, setLabel(ctx, c, "f"))
}

func TestLostAndHeldAnswersStillChangeTheSecret(t *testing.T) {
	t.Parallel()
	f := gcpfake.Start(t)
	f.Seed("s")
	c := client(t, f)
	ctx := context.Background()

	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 1, Kind: gcpfake.FaultLost})
	require.Equal(t, codes.Unavailable, status.Code(setLabel(ctx, c, "lost")))
	require.Equal(t, "lost", label(t, f), "the change was made")

	fired := make(chan struct{}, 1)
	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 1, Kind: gcpfake.FaultHold, Hold: time.Minute,
		OnFire: func(string) { fired <- struct{}{} }})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := setLabel(short, c, "held")
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), err)
	require.Less(t, time.Since(start), 30*time.Second, "the hold ends with the client's deadline")
	<-fired
	require.Equal(t, "held", label(t, f), "the change was made")

	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 1, Kind: gcpfake.FaultHold, Hold: 300 * time.Millisecond})
	start = time.Now()
	require.NoError(t, setLabel(ctx, c, "late"))
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}

func TestHookIsAnotherWriterBetweenTwoCalls(t *testing.T) {
	t.Parallel()
	f := gcpfake.Start(t)
	f.Seed("s")
	c := client(t, f)
	ctx := context.Background()
	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	require.NoError(t, err)
	f.Inject(gcpfake.Fault{Method: "UpdateSecret", Nth: 1, Kind: gcpfake.FaultHook, Hook: func() {
		f.Mutate(t, "s", func(m *secretmanagerpb.Secret) { m.Labels = map[string]string{"k": "other"} })
	}})
	// The etag read before the hook is stale after it.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: name, Etag: sec.GetEtag(), Labels: map[string]string{"k": "mine"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
	require.Equal(t, "other", label(t, f))
}
