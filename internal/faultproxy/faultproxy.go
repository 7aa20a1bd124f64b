// Package faultproxy is an HTTP proxy on 127.0.0.1 that stands between an
// AWS client and its endpoint (moto in the tests) and injects faults into
// chosen calls: throttling, 5xx answers, lost responses, answers held open,
// and another writer's changes between two calls.
//
// A call is named by its X-Amz-Target header (AWS's JSON protocol, e.g.
// "secretsmanager.UpdateSecretVersionStage"). A Rule picks the Nth call that
// matches it after the rule was added, or every matching call, and does one
// thing to it:
//
//   - Throttle: answer 400 ThrottlingException without forwarding (AWS's
//     answer to a request rate above the quota; the SDK retries it).
//   - ServerError, Unavailable: answer 500 InternalServiceError or 503
//     ServiceUnavailable without forwarding.
//   - Lost: forward the call, let the server apply it, then reset the
//     client's connection instead of answering: the client cannot tell
//     whether the call landed.
//   - Hold: forward the call and hold the answer for Rule.Hold before
//     delivering it (a client whose deadline is shorter has given up by
//     then; the change is made either way).
//   - Hook: run Rule.Hook before forwarding the call: another writer acting
//     between the previous call and this one.
//
// A forwarded call always completes upstream, even when the client goes
// away meanwhile, as a request that reached a real server would.
//
// The proxy keeps a log of the calls it saw with the fields that name
// versions and labels (SecretId, VersionStage, MoveToVersionId,
// RemoveFromVersionId, ClientRequestToken), never a request or response
// body, so the log holds no secret value.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what a rule does to the call it picks.
type Kind string

// The kinds of fault.
const (
	Throttle    Kind = "throttle"
	ServerError Kind = "server-error"
	Unavailable Kind = "unavailable"
	Lost        Kind = "lost"
	Hold        Kind = "hold"
	Hook        Kind = "hook"
)

// Kinds lists every kind, in a fixed order for reports.
var Kinds = []Kind{Throttle, ServerError, Unavailable, Lost, Hold, Hook}

// Rule picks calls and says what to do to them.
type Rule struct {
	// Call is the X-Amz-Target to match ("secretsmanager.PutSecretValue");
	// "" matches every call.
	Call string
	// Match, if set, must also accept the call (its logged fields, never
	// its body), e.g. only the UpdateSecretVersionStage that moves
	// AWSCURRENT.
	Match func(Call) bool
	// Nth picks the Nth matching call after the rule was added (1 is the
	// next one); the rule is spent after it fired. 0 picks every matching
	// call until the rule is removed.
	Nth int
	// Kind is what happens to the picked call.
	Kind Kind
	// Hold is how long a Hold rule holds the answer.
	Hold time.Duration
	// Hook runs before a Hook rule's call is forwarded.
	Hook func()
	// OnFire, if set, runs when the rule picks a call (for Hold: once the
	// upstream answer is in and while it is held; for Lost: after the
	// server applied the call, before the connection is reset).
	OnFire func(Call)
}

// Call is one call the proxy saw: its target, the version and label fields
// of its request, what the proxy did and the upstream status.
type Call struct {
	Target      string
	SecretID    string
	Stage       string // VersionStage
	MoveTo      string // MoveToVersionId
	RemoveFrom  string // RemoveFromVersionId
	ClientToken string // ClientRequestToken
	// Fault is the kind injected into this call, "" if none.
	Fault Kind
	// Status is the upstream's HTTP status, 0 when the call was not
	// forwarded (or the upstream did not answer).
	Status int
	At     time.Time
}

type armed struct {
	id   int
	rule Rule
	seen int
}

// Proxy is one fault-injecting proxy. It is safe for concurrent use.
type Proxy struct {
	upstream *url.URL
	srv      *http.Server
	lis      net.Listener
	client   *http.Client

	mu     sync.Mutex
	rules  []*armed
	nextID int
	calls  []Call
	fired  map[Kind]int
}

// New starts a proxy on 127.0.0.1 in front of upstream (http://host:port).
func New(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q: want http://host:port", upstream)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		upstream: u,
		lis:      lis,
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		}},
		fired: map[Kind]int{},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// URL is the proxy's address, to give a client as its endpoint.
func (p *Proxy) URL() string { return "http://" + p.lis.Addr().String() }

// Close stops the proxy and drops open connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.client.CloseIdleConnections()
	return err
}

// Add arms a rule and returns its id, for Remove.
func (p *Proxy) Add(r Rule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	p.rules = append(p.rules, &armed{id: p.nextID, rule: r})
	return p.nextID
}

// Remove disarms the rule with id (a spent rule is already gone).
func (p *Proxy) Remove(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range p.rules {
		if a.id == id {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			return
		}
	}
}

// Clear disarms every rule.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Armed reports whether the rule with id is still armed (a one-shot rule
// that fired is not).
func (p *Proxy) Armed(id int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.rules {
		if a.id == id {
			return true
		}
	}
	return false
}

// Calls returns the calls seen so far, oldest first.
func (p *Proxy) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// Fired returns how many calls each kind of fault was injected into.
func (p *Proxy) Fired() map[Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Kind]int, len(p.fired))
	for k, n := range p.fired {
		out[k] = n
	}
	return out
}

// pick finds the rule that takes call c, counting c against every rule it
// matches; a one-shot rule that fires is removed.
func (p *Proxy) pick(c Call) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range p.rules {
		if a.rule.Call != "" && a.rule.Call != c.Target {
			continue
		}
		if a.rule.Match != nil && !a.rule.Match(c) {
			continue
		}
		a.seen++
		switch {
		case a.rule.Nth == 0:
			p.fired[a.rule.Kind]++
			return a.rule, true
		case a.seen == a.rule.Nth:
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			p.fired[a.rule.Kind]++
			return a.rule, true
		}
	}
	return Rule{}, false
}

func (p *Proxy) record(c Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
}

// fields are the request fields the log keeps; SecretString and
// SecretBinary are never decoded.
type fields struct {
	SecretID           string `json:"SecretId"`
	VersionStage       string `json:"VersionStage"`
	MoveToVersionID    string `json:"MoveToVersionId"`
	RemoveFromVersion  string `json:"RemoveFromVersionId"`
	ClientRequestToken string `json:"ClientRequestToken"`
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "faultproxy: read request: "+err.Error(), http.StatusBadGateway)
		return
	}
	var f fields
	_ = json.Unmarshal(body, &f)
	c := Call{
		Target: r.Header.Get("X-Amz-Target"), SecretID: f.SecretID, Stage: f.VersionStage,
		MoveTo: f.MoveToVersionID, RemoveFrom: f.RemoveFromVersion, ClientToken: f.ClientRequestToken,
		At: time.Now(),
	}
	rule, ok := p.pick(c)
	if ok {
		c.Fault = rule.Kind
	}
	defer func() { p.record(c) }()

	switch {
	case ok && rule.Kind == Throttle:
		fire(rule, c)
		awsError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded (injected by faultproxy)")
		return
	case ok && rule.Kind == ServerError:
		fire(rule, c)
		awsError(w, http.StatusInternalServerError, "InternalServiceError", "injected by faultproxy")
		return
	case ok && rule.Kind == Unavailable:
		fire(rule, c)
		awsError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "injected by faultproxy")
		return
	case ok && rule.Kind == Hook:
		if rule.Hook != nil {
			rule.Hook()
		}
		fire(rule, c)
	}

	resp, respBody, err := p.forward(r, body)
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	c.Status = resp.StatusCode

	if ok && rule.Kind == Lost {
		fire(rule, c)
		reset(w)
		return
	}
	if ok && rule.Kind == Hold {
		fire(rule, c)
		t := time.NewTimer(rule.Hold)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client gave up; nothing to deliver
		}
	}
	for k, vs := range resp.Header {
		switch strings.ToLower(k) {
		case "connection", "transfer-encoding", "content-length", "keep-alive":
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(respBody)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

func fire(r Rule, c Call) {
	if r.OnFire != nil {
		r.OnFire(c)
	}
}

// forward sends the call upstream and reads the whole answer. It does not
// follow the client's context: a call that left for the server completes
// there whatever the client does.
func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	u := *p.upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range r.Header {
		switch strings.ToLower(k) {
		case "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade":
			continue
		}
		out.Header[k] = append([]string(nil), vs...)
	}
	// The client signed its Host header; keep it.
	out.Host = r.Host
	resp, err := p.client.Do(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// awsError answers in AWS's JSON protocol error shape.
func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// reset closes the client's connection with a TCP reset and no answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(errors.New("faultproxy: the response writer cannot be hijacked"))
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
