package aws

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks set each store operation beside a replay of exactly the SDK
// calls the store makes for it, on the store's own SDK client against the
// same moto, so that the ratio is the store's own overhead:
//
//	PutPending  DescribeSecret, PutSecretValue(AWSPENDING)
//	Promote     DescribeSecret, UpdateSecretVersionStage(AWSCURRENT move),
//	            UpdateSecretVersionStage(AWSPENDING removal)
//	Get         GetSecretValue(VersionStage AWSCURRENT)
//
// (the steady state: a secret that has a current version). Every PutPending
// and Promote call gets a fresh secret, made and force-deleted outside the
// timing by a separate client, so moto holds the same number of secrets
// throughout (its lookups scan them all) and both sides see the same server
// state. TestBenchReplaysStoreCalls checks that the replay still matches
// the store.
//
// The ratio per operation (medians over rounds that alternate store and
// raw calls): go test -run '^$' -bench '^BenchmarkOverhead$' -benchtime 1x ./providers/aws/

const benchValue = `{"engine":"postgres","host":"db.internal","port":5432,"dbname":"checkout","username":"loadtest_a","password":"0123456789abcdef0123456789abcdef"}`

// callLog records the operations a client makes, with the detail that
// tells two calls of one operation apart.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("swarmkeyCallLog",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			call := awsmiddleware.GetOperationName(ctx)
			switch p := in.Parameters.(type) {
			case *secretsmanager.UpdateSecretVersionStageInput:
				call += fmt.Sprintf("(%s move=%t remove=%t)", awsv2.ToString(p.VersionStage), p.MoveToVersionId != nil, p.RemoveFromVersionId != nil)
			case *secretsmanager.PutSecretValueInput:
				call += "(" + strings.Join(p.VersionStages, ",") + ")"
			case *secretsmanager.GetSecretValueInput:
				call += fmt.Sprintf("(stage=%s id=%t)", awsv2.ToString(p.VersionStage), p.VersionId != nil)
			}
			l.mu.Lock()
			l.calls = append(l.calls, call)
			l.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

// benchSecret is the state one benchmarked call works on.
type benchSecret struct {
	name, current, token string
}

// overheadCases returns the benchmarked operations on a store whose client
// reports to log (nil: no recording).
func overheadCases(tb testing.TB, log *callLog) []providertest.OverheadCase {
	ctx := context.Background()
	cfg := mototest.Config(tb)
	if log != nil {
		cfg.APIOptions = append(cfg.APIOptions, log.middleware)
	}
	store, err := NewFromConfig(cfg, Options{})
	require.NoError(tb, err)
	sdk := store.client // the raw side uses the store's own client
	setup := rawClient(tb)
	value := secret.FromString(benchValue)

	withCurrent := func(tb testing.TB) any {
		name := prefix(tb) + "bench"
		return benchSecret{name: name, current: createSecret(tb, name, benchValue), token: newToken(tb)}
	}
	withPending := func(tb testing.TB) any {
		s := withCurrent(tb).(benchSecret)
		_, err := setup.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: awsv2.String(s.name), ClientRequestToken: awsv2.String(s.token),
			SecretString: awsv2.String(benchValue), VersionStages: []string{labelPending},
		})
		require.NoError(tb, err)
		return s
	}
	drop := func(tb testing.TB, arg any) {
		_, err := setup.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
			SecretId: awsv2.String(arg.(benchSecret).name), ForceDeleteWithoutRecovery: awsv2.Bool(true),
		})
		require.NoError(tb, err)
	}
	shared := withCurrent(tb).(benchSecret)
	tb.Cleanup(func() { drop(tb, shared) })
	checkRead := func(n int) error {
		if n != len(benchValue) {
			return fmt.Errorf("read %d bytes, want %d", n, len(benchValue))
		}
		return nil
	}

	return []providertest.OverheadCase{
		{
			Name:    "PutPending",
			Prepare: withCurrent,
			Cleanup: drop,
			Store: func(arg any) error {
				s := arg.(benchSecret)
				_, err := store.PutPending(ctx, s.name, s.token, value)
				return err
			},
			Raw: func(arg any) error {
				s := arg.(benchSecret)
				if _, err := sdk.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(s.name)}); err != nil {
					return err
				}
				_, err := sdk.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
					SecretId: awsv2.String(s.name), ClientRequestToken: awsv2.String(s.token),
					SecretString: awsv2.String(benchValue), VersionStages: []string{labelPending},
				})
				return err
			},
		},
		{
			Name:    "Promote",
			Prepare: withPending,
			Cleanup: drop,
			Store: func(arg any) error {
				s := arg.(benchSecret)
				return store.Promote(ctx, s.name, providers.PromoteRequest{Token: s.token, ExpectedCurrentID: s.current})
			},
			Raw: func(arg any) error {
				s := arg.(benchSecret)
				if _, err := sdk.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(s.name)}); err != nil {
					return err
				}
				_, err := sdk.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
					SecretId: awsv2.String(s.name), VersionStage: awsv2.String(labelCurrent),
					MoveToVersionId: awsv2.String(s.token), RemoveFromVersionId: awsv2.String(s.current),
				})
				if err != nil {
					return err
				}
				_, err = sdk.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
					SecretId: awsv2.String(s.name), VersionStage: awsv2.String(labelPending),
					RemoveFromVersionId: awsv2.String(s.token),
				})
				return err
			},
		},
		{
			Name:    "Get",
			Prepare: func(testing.TB) any { return shared },
			Store: func(arg any) error {
				v, err := store.Get(ctx, arg.(benchSecret).name, providers.StageCurrent)
				if err != nil {
					return err
				}
				return checkRead(v.Value.Len())
			},
			Raw: func(arg any) error {
				out, err := sdk.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
					SecretId: awsv2.String(arg.(benchSecret).name), VersionStage: awsv2.String(labelCurrent),
				})
				if err != nil {
					return err
				}
				return checkRead(len(awsv2.ToString(out.SecretString)))
			},
		},
	}
}

func BenchmarkStore(b *testing.B)  { providertest.BenchStore(b, overheadCases(b, nil)) }
func BenchmarkRawSDK(b *testing.B) { providertest.BenchRaw(b, overheadCases(b, nil)) }

// BenchmarkOverhead reports the store/raw ratio per operation; run it with
// -benchtime 1x.
func BenchmarkOverhead(b *testing.B) { providertest.BenchOverhead(b, overheadCases(b, nil)) }

// TestBenchReplaysStoreCalls checks that each raw replay makes the calls the
// store makes, in the same order: a benchmark against a replay that drifted
// from the store would measure nothing.
func TestBenchReplaysStoreCalls(t *testing.T) {
	t.Parallel()
	log := &callLog{}
	for _, c := range overheadCases(t, log) {
		log.take()
		arg := c.Prepare(t)
		require.NoError(t, c.Store(arg))
		store := log.take()
		if c.Cleanup != nil {
			c.Cleanup(t, arg)
		}
		arg = c.Prepare(t)
		require.NoError(t, c.Raw(arg))
		raw := log.take()
		if c.Cleanup != nil {
			c.Cleanup(t, arg)
		}
		require.NotEmpty(t, store, c.Name)
		require.Equal(t, store, raw, "%s: the raw replay differs from the store's calls", c.Name)
	}
}
