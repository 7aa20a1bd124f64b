// Package client calls swarmkey's runner API as one token: it takes, renews
// and ends leases and reads credentials. It and package wire are all that
// swarmkey-exec links of the API, so it must not import the server's
// packages (api, state, the stores).
package client

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
	"time"

	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/secret"
)

// ErrUnreachable wraps every error of a request that got no HTTP answer
// (connection refused, DNS, TLS, timeout).
var ErrUnreachable = errors.New("API unreachable")

// Error is an answer of the API with an error status.
type Error struct {
	Status  int
	Message string
	// RetryAfter is how long a 429 asks to wait before the next read.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// Client calls the API as one token.
type Client struct {
	endpoint string
	base     string
	hc       *http.Client
	token    secret.Secret
}

// New returns a client of the API at endpoint: unix:/path/to.sock,
// https://HOST[:PORT], or http://HOST:PORT for a loopback HOST only (a token
// never crosses a network in clear text). https uses the system's roots
// (SSL_CERT_FILE adds others).
func New(endpoint string, token secret.Secret) (*Client, error) {
	if token.IsZero() {
		return nil, errors.New("the token is empty")
	}
	c := &Client{endpoint: endpoint, token: token, hc: &http.Client{Timeout: 15 * time.Second}}
	if path, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		c.base = "http://swarmkey"
		var d net.Dialer
		c.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}}
		return c, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q: use https://HOST[:PORT], http://127.0.0.1:PORT or unix:/path/to.sock", endpoint)
	}
	if u.Scheme == "http" && !wire.IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%q: plain http would send the token in clear text to a host that is not this machine: use https://", endpoint)
	}
	c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	return c, nil
}

// answerBytes caps an answer per credential it may carry (1 MiB; a secret
// document is a few hundred bytes, and AWS caps one at 64 KiB), so that a
// server that is not swarmkey's cannot make the client read without end.
const answerBytes = 1 << 20

// do sends one request and decodes a 2xx answer of at most limit bytes into
// out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any, limit int64) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token.RevealString())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error quotes the URL, never the header: no token here.
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, c.endpoint, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%w: %s: reading the answer: %w", ErrUnreachable, c.endpoint, err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes: is %s a swarmkey API?", method, path, limit, c.endpoint)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s answered %s", method, path, resp.Status)
		}
		apiErr := &Error{Status: resp.StatusCode, Message: e.Error}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			apiErr.RetryAfter = time.Duration(secs) * time.Second
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what this client expects (%s): is %s a swarmkey API?", method, path, resp.Header.Get("Content-Type"), c.endpoint)
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// StartLease takes a lease (POST /v1/leases); ttl is rounded up to seconds.
func (c *Client) StartLease(ctx context.Context, run string, uses []string, holder string, ttl time.Duration) (wire.LeaseResponse, error) {
	var out wire.LeaseResponse
	err := c.do(ctx, http.MethodPost, "/v1/leases", wire.LeaseRequest{Run: run, Uses: uses, Holder: holder, TTLSeconds: wire.TTLSeconds(ttl)}, &out, answerBytes)
	return out, err
}

// Heartbeat renews a lease; an expired or ended one is an *Error with
// status 410.
func (c *Client) Heartbeat(ctx context.Context, id string) (wire.LeaseResponse, error) {
	var out wire.LeaseResponse
	err := c.do(ctx, http.MethodPost, "/v1/leases/"+url.PathEscape(id)+"/heartbeat", nil, &out, answerBytes)
	return out, err
}

// EndLease ends a lease.
func (c *Client) EndLease(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/leases/"+url.PathEscape(id), nil, nil, answerBytes)
}

// Credential reads a policy's current credential. The fields are Secrets:
// they print as [REDACTED] wherever they go by mistake.
func (c *Client) Credential(ctx context.Context, policy string) (Credential, error) {
	var body wire.CredentialBody
	if err := c.do(ctx, http.MethodGet, "/v1/policies/"+url.PathEscape(policy)+"/credential", nil, &body, answerBytes); err != nil {
		return Credential{}, err
	}
	fields, err := wire.FieldTexts(body.Fields)
	if err != nil {
		return Credential{}, fmt.Errorf("policy %q: %w", policy, err)
	}
	return Credential{Policy: body.Policy, Version: body.Version, Fields: fields}, nil
}

// Credentials reads the current credentials of policies (at most
// wire.MaxCredentialsPerRequest) in one request (POST /v1/credentials), in
// the order asked: all of them, or an error and none. A server older than
// that endpoint answers 404 "no such endpoint" (see IsNoSuchEndpoint).
func (c *Client) Credentials(ctx context.Context, policies []string) ([]Credential, error) {
	var body wire.CredentialsBody
	if err := c.do(ctx, http.MethodPost, "/v1/credentials", wire.CredentialsRequest{Policies: policies}, &body, int64(max(len(policies), 1))*answerBytes); err != nil {
		return nil, err
	}
	if len(body.Credentials) != len(policies) {
		return nil, fmt.Errorf("POST /v1/credentials: %d credentials for %d policies: is %s a swarmkey API?", len(body.Credentials), len(policies), c.endpoint)
	}
	out := make([]Credential, len(policies))
	for i, b := range body.Credentials {
		if b.Policy != policies[i] {
			return nil, fmt.Errorf("POST /v1/credentials: credential %d is policy %q, asked %q: is %s a swarmkey API?", i+1, b.Policy, policies[i], c.endpoint)
		}
		fields, err := wire.FieldTexts(b.Fields)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", b.Policy, err)
		}
		out[i] = Credential{Policy: b.Policy, Version: b.Version, Fields: fields}
	}
	return out, nil
}

// IsNoSuchEndpoint reports whether err is the API's answer to a route it
// does not have: a server of an older swarmkey.
func IsNoSuchEndpoint(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound && strings.HasPrefix(e.Message, "no such endpoint")
}

// Credential is a policy's current credential as the API answers it, with
// the fields as environment-variable texts (see wire.FieldTexts).
type Credential struct {
	Policy  string
	Version string
	Fields  map[string]secret.Secret
}
