package faultproxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/faultproxy"
	"github.com/swarmkey/swarmkey/internal/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Run(m)) }

// upstream is a JSON service that counts the calls it answered.
type upstream struct {
	srv     *httptest.Server
	handled atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		n := u.handled.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{"n": n, "target": r.Header.Get("X-Amz-Target")})
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func newProxy(t *testing.T, upstream string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(upstream)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.True(t, strings.HasPrefix(p.URL(), "http://127.0.0.1:"), p.URL())
	return p
}

type answer struct {
	status int
	code   string
	n      int64
	err    error
}

func call(t *testing.T, client *http.Client, url, target, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	var out struct {
		Type string `json:"__type"`
		N    int64  `json:"n"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return answer{status: resp.StatusCode, code: out.Type, n: out.N}
}

func TestErrorAnswersNeverReachTheServer(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	c := &http.Client{}
	for _, tc := range []struct {
		kind   faultproxy.Kind
		status int
		code   string
	}{
		{faultproxy.Throttle, 400, "ThrottlingException"},
		{faultproxy.ServerError, 500, "InternalServiceError"},
		{faultproxy.Unavailable, 503, "ServiceUnavailable"},
	} {
		before := up.handled.Load()
		p.Add(faultproxy.Rule{Call: "svc.Put", Nth: 1, Kind: tc.kind})
		a := call(t, c, p.URL(), "svc.Put", `{}`)
		require.NoError(t, a.err)
		require.Equal(t, tc.status, a.status, tc.kind)
		require.Equal(t, tc.code, a.code, tc.kind)
		require.Equal(t, before, up.handled.Load(), "%s: the call was not forwarded", tc.kind)
		// Spent: the next call goes through.
		a = call(t, c, p.URL(), "svc.Put", `{}`)
		require.Equal(t, 200, a.status)
		require.Equal(t, before+1, up.handled.Load())
	}
	fired := p.Fired()
	require.Equal(t, 1, fired[faultproxy.Throttle])
	require.Equal(t, 1, fired[faultproxy.ServerError])
	require.Equal(t, 1, fired[faultproxy.Unavailable])
}

func TestNthPicksOneOccurrenceOfOneCall(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	c := &http.Client{}
	id := p.Add(faultproxy.Rule{Call: "svc.Move", Nth: 3, Kind: faultproxy.Unavailable})
	var statuses []int
	for i := range 6 {
		target := "svc.Move"
		if i%2 == 1 {
			target = "svc.Describe" // does not count
		}
		statuses = append(statuses, call(t, c, p.URL(), target, `{}`).status)
	}
	// Moves are calls 0, 2, 4: the third is call 4.
	require.Equal(t, []int{200, 200, 200, 200, 503, 200}, statuses)
	require.False(t, p.Armed(id), "a one-shot rule is spent once it fired")

	every := p.Add(faultproxy.Rule{Call: "svc.Move", Kind: faultproxy.Throttle})
	require.Equal(t, 400, call(t, c, p.URL(), "svc.Move", `{}`).status)
	require.Equal(t, 400, call(t, c, p.URL(), "svc.Move", `{}`).status)
	require.Equal(t, 200, call(t, c, p.URL(), "svc.Other", `{}`).status)
	p.Remove(every)
	require.Equal(t, 200, call(t, c, p.URL(), "svc.Move", `{}`).status)

	// Match narrows a rule to calls with given fields.
	p.Add(faultproxy.Rule{Call: "svc.Move", Nth: 1, Kind: faultproxy.ServerError,
		Match: func(c faultproxy.Call) bool { return c.Stage == "AWSCURRENT" }})
	require.Equal(t, 200, call(t, c, p.URL(), "svc.Move", `{"VersionStage":"AWSPENDING"}`).status)
	require.Equal(t, 500, call(t, c, p.URL(), "svc.Move", `{"VersionStage":"AWSCURRENT"}`).status)
}

func TestLostResponseIsAppliedButNeverAnswered(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	var firedAfter int64
	p.Add(faultproxy.Rule{Call: "svc.Put", Nth: 1, Kind: faultproxy.Lost,
		OnFire: func(faultproxy.Call) { firedAfter = up.handled.Load() }})
	a := call(t, &http.Client{}, p.URL(), "svc.Put", `{}`)
	require.Error(t, a.err, "the client gets no answer")
	require.Equal(t, int64(1), up.handled.Load(), "the server applied the call")
	require.Equal(t, int64(1), firedAfter, "OnFire runs after the server answered")
	// The proxy logs the call once the reset connection is done with, which
	// may come just after the client saw the reset.
	require.Eventually(t, func() bool { return len(p.Calls()) == 1 }, 5*time.Second, 10*time.Millisecond)
	calls := p.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, faultproxy.Lost, calls[0].Fault)
	require.Equal(t, 200, calls[0].Status)
}

func TestHeldAnswerOutlivesTheClientsDeadlineButTheCallLands(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	held := make(chan struct{})
	p.Add(faultproxy.Rule{Call: "svc.Put", Nth: 1, Kind: faultproxy.Hold, Hold: 2 * time.Second,
		OnFire: func(faultproxy.Call) { close(held) }})
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	a := call(t, impatient, p.URL(), "svc.Put", `{}`)
	require.Error(t, a.err)
	<-held
	require.Equal(t, int64(1), up.handled.Load(), "the call landed although its answer never came")

	// A patient client gets the answer, late.
	p.Add(faultproxy.Rule{Call: "svc.Put", Nth: 1, Kind: faultproxy.Hold, Hold: 400 * time.Millisecond})
	start := time.Now()
	a = call(t, &http.Client{}, p.URL(), "svc.Put", `{}`)
	require.NoError(t, a.err)
	require.Equal(t, 200, a.status)
	require.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
	require.Equal(t, int64(2), a.n)
}

func TestHookRunsBetweenTwoCalls(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	var seenByHook int64 = -1
	p.Add(faultproxy.Rule{Call: "svc.Move", Nth: 1, Kind: faultproxy.Hook,
		Hook: func() { seenByHook = up.handled.Load() }})
	c := &http.Client{}
	require.Equal(t, 200, call(t, c, p.URL(), "svc.Describe", `{}`).status)
	a := call(t, c, p.URL(), "svc.Move", `{}`)
	require.Equal(t, 200, a.status)
	require.Equal(t, int64(1), seenByHook, "the hook ran after the first call and before the second")
	require.Equal(t, int64(2), a.n, "the hooked call is forwarded afterwards")
}

func TestLogKeepsLabelsNeverValues(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	p := newProxy(t, up.srv.URL)
	c := &http.Client{}
	call(t, c, p.URL(), "secretsmanager.PutSecretValue",
		`{"SecretId":"s","ClientRequestToken":"tok-1","SecretString":"hunter2-very-secret","VersionStages":["AWSPENDING"]}`)
	call(t, c, p.URL(), "secretsmanager.UpdateSecretVersionStage",
		`{"SecretId":"s","VersionStage":"AWSCURRENT","MoveToVersionId":"tok-1","RemoveFromVersionId":"tok-0"}`)
	calls := p.Calls()
	require.Len(t, calls, 2)
	require.Equal(t, "tok-1", calls[0].ClientToken)
	require.Equal(t, faultproxy.Call{Target: "secretsmanager.UpdateSecretVersionStage", SecretID: "s", Stage: "AWSCURRENT",
		MoveTo: "tok-1", RemoveFrom: "tok-0", Status: 200, At: calls[1].At}, calls[1])
	dump, err := json.Marshal(calls)
	require.NoError(t, err)
	require.NotContains(t, string(dump), "hunter2")
}

// Against moto, through the SDK: what the AWS store sees of each fault.
func TestAWSClientThroughTheProxy(t *testing.T) {
	t.Parallel()
	p := newProxy(t, mototest.Endpoint(t))
	cfg := mototest.Config(t)
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = awsv2.String(p.URL())
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = 4; so.MaxBackoff = 50 * time.Millisecond })
	})
	ctx := context.Background()
	name := mototest.Prefix(t) + "proxied"

	// Throttling and 5xx are retried by the SDK: the call succeeds.
	p.Add(faultproxy.Rule{Call: "secretsmanager.CreateSecret", Nth: 1, Kind: faultproxy.Throttle})
	p.Add(faultproxy.Rule{Call: "secretsmanager.CreateSecret", Nth: 1, Kind: faultproxy.Unavailable})
	_, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String(name)})
	require.NoError(t, err)

	// A lost PutSecretValue is retried with the same ClientRequestToken,
	// which AWS treats as the same write.
	token := "01900000-0000-7000-8000-000000000001"
	p.Add(faultproxy.Rule{Call: "secretsmanager.PutSecretValue", Nth: 1, Kind: faultproxy.Lost})
	out, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awsv2.String(name),
		ClientRequestToken: awsv2.String(token), SecretString: awsv2.String(`{"v":1}`)})
	require.NoError(t, err)
	require.Equal(t, token, awsv2.ToString(out.VersionId))
	puts := 0
	for _, c := range p.Calls() {
		if c.Target == "secretsmanager.PutSecretValue" {
			puts++
			require.Equal(t, token, c.ClientToken)
		}
	}
	require.Equal(t, 2, puts, "the lost call and the SDK's retry")

	// Another writer between two calls (straight to moto).
	var hookErr error
	p.Add(faultproxy.Rule{Call: "secretsmanager.DescribeSecret", Nth: 1, Kind: faultproxy.Hook, Hook: func() {
		direct := secretsmanager.NewFromConfig(cfg)
		_, hookErr = direct.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: awsv2.String(name),
			Description: awsv2.String("changed by another writer")})
	}})
	d, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(name)})
	require.NoError(t, err)
	require.NoError(t, hookErr)
	require.Equal(t, "changed by another writer", awsv2.ToString(d.Description))
}
