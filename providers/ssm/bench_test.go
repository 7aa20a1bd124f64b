package ssm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks set each store operation beside a replay of exactly the SDK
// calls the store makes for it, on the store's own client against the same
// moto, so that the ratio is the store's own overhead (the steady state: a
// parameter with a labelled current version):
//
//	PutPending  GetParameter(pending), GetParameterHistory, PutParameter(pending),
//	            GetParameter(pending)
//	Promote     GetParameter(pending), GetParameterHistory, PutParameter,
//	            GetParameterHistory, LabelParameterVersion(previous),
//	            LabelParameterVersion(current, token), GetParameterHistory,
//	            DeleteParameter(pending)
//	Get         GetParameterHistory, GetParameter(NAME:N)
//
// Every PutPending and Promote call gets a fresh parameter, made and deleted
// outside the timing. TestBenchReplaysStoreCalls checks that the replay
// still matches the store.
//
// The ratio per operation: go test -run '^$' -bench '^BenchmarkOverhead$' -benchtime 1x ./providers/ssm/

const benchValue = `{"engine":"postgres","host":"db.internal","port":5432,"dbname":"checkout","username":"loadtest_a","password":"0123456789abcdef0123456789abcdef"}`

// callLog records the operations a client makes, with the parameter name's
// kind and the labels of a label call.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("swarmkeyCallLog",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			call := awsmiddleware.GetOperationName(ctx)
			kind := func(name *string) string {
				n := awsv2.ToString(name)
				switch {
				case strings.HasPrefix(n, DefaultPendingPrefix+"/"):
					return "pending"
				case strings.Contains(n, ":"):
					return "version"
				}
				return "name"
			}
			switch p := in.Parameters.(type) {
			case *ssm.GetParameterInput:
				call += "(" + kind(p.Name) + ")"
			case *ssm.PutParameterInput:
				call += fmt.Sprintf("(%s overwrite=%t)", kind(p.Name), awsv2.ToBool(p.Overwrite))
			case *ssm.DeleteParameterInput:
				call += "(" + kind(p.Name) + ")"
			case *ssm.LabelParameterVersionInput:
				call += fmt.Sprintf("(%d labels)", len(p.Labels))
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

// benchParam is the state one benchmarked call works on.
type benchParam struct {
	name, current, token string
}

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
	n := 0
	var mu sync.Mutex
	fresh := func(what string) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("%s-%d", what, n)
	}
	put := func(tb testing.TB, name, value string) {
		_, err := setup.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String(value), Type: "SecureString", Overwrite: awsv2.Bool(true)})
		require.NoError(tb, err)
	}
	withCurrent := func(tb testing.TB) any {
		p := benchParam{name: prefix(tb) + "bench", current: fresh("tok-current"), token: fresh("tok")}
		put(tb, p.name, benchValue)
		_, err := setup.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: awsv2.String(p.name), ParameterVersion: awsv2.Int64(1), Labels: []string{labelCurrent, labelTokenPrefix + p.current}})
		require.NoError(tb, err)
		return p
	}
	record := func(token string) string {
		b, _ := json.Marshal(map[string]string{fieldToken: token, fieldDocument: benchValue})
		return string(b)
	}
	withPending := func(tb testing.TB) any {
		p := withCurrent(tb).(benchParam)
		put(tb, store.pendingName(p.name), record(p.token))
		return p
	}
	drop := func(tb testing.TB, arg any) {
		for _, name := range []string{arg.(benchParam).name, store.pendingName(arg.(benchParam).name)} {
			_, err := setup.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(name)})
			require.True(tb, err == nil || isCode(err, "ParameterNotFound"), "%v", err)
		}
	}
	shared := withCurrent(tb).(benchParam)
	tb.Cleanup(func() { drop(tb, shared) })
	history := func(name string) error {
		_, err := sdk.GetParameterHistory(ctx, &ssm.GetParameterHistoryInput{Name: awsv2.String(name), MaxResults: awsv2.Int32(50)})
		return err
	}
	label := func(name string, n int64, labels ...string) error {
		_, err := sdk.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: awsv2.String(name), ParameterVersion: awsv2.Int64(n), Labels: labels})
		return err
	}
	getPending := func(name string) error {
		_, err := sdk.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(store.pendingName(name)), WithDecryption: awsv2.Bool(true)})
		return err
	}
	return []providertest.OverheadCase{
		{
			Name:    "PutPending",
			Prepare: withCurrent,
			Cleanup: drop,
			Store: func(arg any) error {
				p := arg.(benchParam)
				_, err := store.PutPending(ctx, p.name, p.token, value)
				return err
			},
			Raw: func(arg any) error {
				p := arg.(benchParam)
				if err := getPending(p.name); !isCode(err, "ParameterNotFound") {
					return fmt.Errorf("pending read: %v", err)
				}
				if err := history(p.name); err != nil {
					return err
				}
				if _, err := sdk.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(store.pendingName(p.name)), Value: awsv2.String(record(p.token)), Type: "SecureString", Overwrite: awsv2.Bool(false)}); err != nil {
					return err
				}
				return getPending(p.name)
			},
		},
		{
			Name:    "Promote",
			Prepare: withPending,
			Cleanup: drop,
			Store: func(arg any) error {
				p := arg.(benchParam)
				return store.Promote(ctx, p.name, providers.PromoteRequest{Token: p.token, ExpectedCurrentID: p.current})
			},
			Raw: func(arg any) error {
				p := arg.(benchParam)
				if err := getPending(p.name); err != nil {
					return err
				}
				if err := history(p.name); err != nil {
					return err
				}
				out, err := sdk.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(p.name), Value: awsv2.String(benchValue), Type: "SecureString", Overwrite: awsv2.Bool(true)})
				if err != nil {
					return err
				}
				if err := history(p.name); err != nil {
					return err
				}
				if err := label(p.name, out.Version-1, labelPrevious); err != nil {
					return err
				}
				if err := label(p.name, out.Version, labelCurrent, labelTokenPrefix+p.token); err != nil {
					return err
				}
				if err := history(p.name); err != nil {
					return err
				}
				_, err = sdk.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(store.pendingName(p.name))})
				return err
			},
		},
		{
			Name:    "Get",
			Prepare: func(testing.TB) any { return shared },
			Store: func(arg any) error {
				v, err := store.Get(ctx, arg.(benchParam).name, providers.StageCurrent)
				if err != nil {
					return err
				}
				if v.Value.Len() != len(benchValue) {
					return fmt.Errorf("read %d bytes, want %d", v.Value.Len(), len(benchValue))
				}
				return nil
			},
			Raw: func(arg any) error {
				name := arg.(benchParam).name
				if err := history(name); err != nil {
					return err
				}
				out, err := sdk.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name + ":1"), WithDecryption: awsv2.Bool(true)})
				if err != nil {
					return err
				}
				if len(awsv2.ToString(out.Parameter.Value)) != len(benchValue) {
					return fmt.Errorf("read %d bytes, want %d", len(awsv2.ToString(out.Parameter.Value)), len(benchValue))
				}
				return nil
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
// store makes, in the same order.
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
