package httpkey

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/secret"
)

// maxRedirects bounds a chain of same-host redirects.
const maxRedirects = 5

// client sends the target's requests: per-request timeout, bounded retries
// with exponential backoff that honours Retry-After, redirects only within
// one host and never from https to http, a response size limit.
type client struct {
	opts   Options
	hc     *http.Client
	logger *slog.Logger
}

func newClient(o Options) (*client, error) {
	rt := o.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		cfg, err := tlsConfig(o.TLS)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
		rt = tr
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &client{opts: o, logger: logger}
	c.hc = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	return c, nil
}

// checkRedirect follows a redirect only to the same host (a key in a
// custom header would otherwise go along to whoever the API points at: Go
// strips only Authorization and cookies) and never from https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) >= maxRedirects:
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	case req.URL.Host != first.Host:
		return fmt.Errorf("redirect to another host (%s) refused", req.URL.Host)
	case first.Scheme == "https" && req.URL.Scheme != "https":
		return errors.New("redirect from https to http refused")
	}
	return nil
}

func tlsConfig(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tlsVersions[o.MinVersion]}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			// LoadX509KeyPair's errors name files and formats, not key bytes.
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// call is one request to send.
type call struct {
	// name is the request's field in the policy ("issue", "verify").
	name   string
	method string
	url    string
	header http.Header
	body   []byte
	// idempotent requests are retried on 5xx and network errors too.
	idempotent bool
	scrub      *secret.Scrubber
}

// where names the request in errors and logs: method and URL without
// query or fragment, scrubbed.
func (k call) where() string {
	u, err := url.Parse(k.url)
	if err != nil {
		return k.name + " request"
	}
	return fmt.Sprintf("%s request %s %s", k.name, k.method, k.scrub.Text(u.Scheme+"://"+u.Host+u.EscapedPath()))
}

type response struct {
	status   int
	body     []byte
	attempts int
}

// statusText is "HTTP 429 Too Many Requests": the response's body is never
// shown, since APIs echo credentials in error bodies.
func (r response) statusText() string {
	return fmt.Sprintf("HTTP %d %s (body of %d bytes not shown)", r.status, http.StatusText(r.status), len(r.body))
}

// do sends k, retrying up to MaxAttempts times: on 429 always, on 5xx and
// network errors when k is idempotent. The wait is Retry-After when the
// answer has one (seconds or an HTTP date; longer than MaxRetryAfter ends
// the retries), otherwise 0.5 s, 1 s, 2 s … capped at MaxBackoff, with
// jitter. Any final status is returned for the caller to judge; an error
// means no usable answer.
func (c *client) do(ctx context.Context, k call) (response, error) {
	if msg := c.opts.urlProblem(k.url); msg != "" {
		return response{}, fmt.Errorf("%s: %s", k.where(), msg)
	}
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := c.once(ctx, k)
		resp.attempts = attempt
		if ctx.Err() != nil {
			return resp, fmt.Errorf("%s: %w", k.where(), ctx.Err())
		}
		var retry bool
		var why string
		switch {
		case err != nil:
			retry, why = k.idempotent, err.Error()
		case resp.status == http.StatusTooManyRequests:
			retry, why = true, resp.statusText()
		case resp.status >= 500:
			retry, why = k.idempotent, resp.statusText()
		}
		if !retry || attempt >= c.opts.MaxAttempts {
			if err != nil {
				if attempt > 1 {
					return resp, fmt.Errorf("%s: %s (after %d attempts)", k.where(), err, attempt)
				}
				return resp, fmt.Errorf("%s: %s", k.where(), err)
			}
			return resp, nil
		}
		wait := c.backoff(attempt)
		if retryAfter >= 0 {
			if retryAfter > c.opts.MaxRetryAfter {
				c.logger.Warn("not retrying: Retry-After is longer than max_retry_after", "policy", c.opts.Policy,
					"request", k.where(), "retry_after", retryAfter, "max_retry_after", c.opts.MaxRetryAfter)
				return resp, nil
			}
			wait = retryAfter
		}
		c.logger.Warn("retrying request", "policy", c.opts.Policy, "request", k.where(),
			"attempt", attempt, "reason", k.scrub.Text(why), "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, fmt.Errorf("%s: %w", k.where(), ctx.Err())
		case <-t.C:
		}
	}
}

// once sends k once. retryAfter is the answer's Retry-After, -1 when none.
func (c *client) once(ctx context.Context, k call) (resp response, retryAfter time.Duration, err error) {
	retryAfter = -1
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(rctx, k.method, k.url, body)
	if err != nil {
		return resp, retryAfter, errors.New("cannot build the request")
	}
	for name, vs := range k.header {
		req.Header[name] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "swarmkey")
	}
	r, err := c.hc.Do(req)
	if err != nil {
		return resp, retryAfter, c.transportError(rctx, ctx, k, err)
	}
	defer func() { _ = r.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(r.Body, c.opts.MaxResponseBytes+1))
	if err != nil {
		return resp, retryAfter, c.transportError(rctx, ctx, k, err)
	}
	if int64(len(data)) > c.opts.MaxResponseBytes {
		return resp, retryAfter, fmt.Errorf("HTTP %d: the response is larger than max_response_bytes (%d)", r.StatusCode, c.opts.MaxResponseBytes)
	}
	if d, ok := parseRetryAfter(r.Header.Get("Retry-After"), time.Now()); ok {
		retryAfter = d
	}
	return response{status: r.StatusCode, body: data}, retryAfter, nil
}

// transportError describes a failed exchange without net/http's text,
// which quotes the whole URL (a key may be in its query).
func (c *client) transportError(rctx, ctx context.Context, k call, err error) error {
	if ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s (timeout)", c.opts.Timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errors.New(k.scrub.Text(err.Error()))
}

func (c *client) backoff(attempt int) time.Duration {
	d := initialBackoff << min(attempt-1, 20)
	if d > c.opts.MaxBackoff || d <= 0 {
		d = c.opts.MaxBackoff
	}
	// Full jitter on the upper half: many targets retrying at once spread out.
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date; a
// date in the past means now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
