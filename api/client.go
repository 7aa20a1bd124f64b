package api

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

// NewClient returns a client of the API at endpoint: unix:/path/to.sock,
// https://HOST[:PORT], or http://HOST:PORT for a loopback HOST only (a token
// never crosses a network in clear text). https uses the system's roots
// (SSL_CERT_FILE adds others).
func NewClient(endpoint string, token secret.Secret) (*Client, error) {
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
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%q: plain http would send the token in clear text to a host that is not this machine: use https://", endpoint)
	}
	c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	return c, nil
}

// do sends one request and decodes a 2xx answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: reading the answer: %w", ErrUnreachable, c.endpoint, err)
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
func (c *Client) StartLease(ctx context.Context, run string, uses []string, holder string, ttl time.Duration) (LeaseResponse, error) {
	var out LeaseResponse
	err := c.do(ctx, http.MethodPost, "/v1/leases", LeaseRequest{Run: run, Uses: uses, Holder: holder, TTLSeconds: ttlSeconds(ttl)}, &out)
	return out, err
}

// Heartbeat renews a lease; an expired or ended one is an *Error with
// status 410.
func (c *Client) Heartbeat(ctx context.Context, id string) (LeaseResponse, error) {
	var out LeaseResponse
	err := c.do(ctx, http.MethodPost, "/v1/leases/"+url.PathEscape(id)+"/heartbeat", nil, &out)
	return out, err
}

// EndLease ends a lease.
func (c *Client) EndLease(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/leases/"+url.PathEscape(id), nil, nil)
}

// Credential reads a policy's current credential. The fields are Secrets:
// they print as [REDACTED] wherever they go by mistake.
func (c *Client) Credential(ctx context.Context, policy string) (Credential, error) {
	var body credentialBody
	if err := c.do(ctx, http.MethodGet, "/v1/policies/"+url.PathEscape(policy)+"/credential", nil, &body); err != nil {
		return Credential{}, err
	}
	fields, err := fieldTexts(body.Fields)
	if err != nil {
		return Credential{}, fmt.Errorf("policy %q: %w", policy, err)
	}
	return Credential{Policy: body.Policy, Version: body.Version, Fields: fields}, nil
}
