package config

import (
	"path/filepath"
	"strings"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
)

// httpTarget checks target.http. The target package owns the rules
// (httpkey.Options.Validate): this converts the raw block, lets it judge,
// and reports each problem at its field and line. Templates are parsed
// with missingkey=error and rendered against sample data here, so a
// misspelt field fails at load, not at the first rotation.
func (c check) httpTarget(cfg *Config, r *rawPolicy) *HTTPTarget {
	h := r.Target.HTTP
	if h == nil {
		h = &rawHTTP{}
	}
	const pre = "target.http."
	dir := filepath.Dir(c.src.file)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	req := func(r rawRequest) httpkey.Request {
		return httpkey.Request{Method: strings.ToUpper(r.Method), URL: r.URL, Headers: r.Headers, Body: r.Body}
	}
	o := httpkey.Options{
		Policy:        r.Name,
		Vars:          h.Vars,
		KeyNamePrefix: h.KeyNamePrefix,
		Auth: httpkey.Auth{Type: h.Auth.Type, Header: h.Auth.Header, Prefix: h.Auth.Prefix,
			Username: h.Auth.Username},
		Issue: httpkey.IssueRequest{
			Request: req(rawRequest{Method: h.Issue.Method, URL: h.Issue.URL, Headers: h.Issue.Headers, Body: h.Issue.Body}),
			Key:     h.Issue.Key, ID: h.Issue.ID, Expiry: h.Issue.Expiry, Fields: h.Issue.Fields,
		},
		Verify: httpkey.VerifyRequest{
			Request: req(rawRequest{Method: h.Verify.Method, URL: h.Verify.URL, Headers: h.Verify.Headers, Body: h.Verify.Body}),
			KeyIn:   h.Verify.KeyIn, KeyName: h.Verify.KeyName, KeyPrefix: h.Verify.KeyPrefix,
			Status:      c.count(pre+"verify.status", h.Verify.Status, 200, 100, 599),
			JSONPointer: h.Verify.JSONPointer, Expect: h.Verify.Expect,
		},
		Revoke:            req(h.Revoke),
		IdempotencyHeader: h.IdempotencyHeader,
		Timeout:           c.positive(pre+"timeout", h.Timeout, httpkey.DefaultTimeout),
		MaxAttempts:       c.count(pre+"max_attempts", h.MaxAttempts, httpkey.DefaultMaxAttempts, 1, 20),
		MaxBackoff:        c.positive(pre+"max_backoff", h.MaxBackoff, httpkey.DefaultMaxBackoff),
		MaxRetryAfter:     c.positive(pre+"max_retry_after", h.MaxRetryAfter, httpkey.DefaultMaxRetryAfter),
		MaxResponseBytes:  httpkey.DefaultMaxResponseBytes,
		TLS: httpkey.TLSOptions{CAFile: abs(h.TLS.CAFile), CertFile: abs(h.TLS.CertFile), KeyFile: abs(h.TLS.KeyFile),
			MinVersion: h.TLS.MinVersion},
		AllowInsecure: h.AllowInsecure,
	}
	if h.MaxResponseBytes != nil {
		if *h.MaxResponseBytes < 1024 || *h.MaxResponseBytes > 64<<20 {
			c.errf(pre+"max_response_bytes", "must be between 1024 and %d (64 MiB)", 64<<20)
		} else {
			o.MaxResponseBytes = *h.MaxResponseBytes
		}
	}
	if h.Enable != nil {
		e := req(*h.Enable)
		o.Enable = &e
	}
	if h.Disable != nil {
		d := req(*h.Disable)
		o.Disable = &d
	}
	if h.List != nil {
		o.List = &httpkey.ListRequest{
			Request: req(rawRequest{Method: h.List.Method, URL: h.List.URL, Headers: h.List.Headers, Body: h.List.Body}),
			Items:   h.List.Items, ID: h.List.ID, Name: h.List.Name,
		}
	}

	t := &HTTPTarget{}
	t.AuthSecret = c.reference(cfg, pre+"auth.secret", h.Auth.Secret, h.Auth.Type != "", "the admin token, header value or password")

	o = o.WithDefaults()
	check := o
	if !t.AuthSecret.IsZero() {
		// Validate wants a value where a secret is configured; the value is
		// resolved only when the target is built.
		check.Auth.Secret = secret.FromString("reference-not-resolved")
	}
	if err := check.Validate(); err != nil {
		if ve, ok := err.(*httpkey.ValidationError); ok {
			for _, p := range ve.Problems {
				switch p.Field {
				case "policy", "auth.secret":
					continue // reported as the policy's name and by reference above
				}
				c.errf(pre+p.Field, "%s", p.Msg)
			}
		} else {
			c.errf("target.http", "%v", err)
		}
	}
	t.Options = o
	return t
}

// generatedTarget checks target.generated.
func (c check) generatedTarget(r *rawPolicy) *GeneratedTarget {
	g := r.Target.Generated
	if g == nil {
		g = &rawGenerated{}
	}
	t := &GeneratedTarget{Field: g.Field}
	if t.Field == "" {
		t.Field = generated.DefaultField
	} else if !generated.ValidField(t.Field) {
		c.errf("target.generated.field", "%q is not a valid field name: use lower case letters, digits and _, starting with a letter", t.Field)
	}
	return t
}
