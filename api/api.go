// Package api is swarmkey's HTTP API: the runner side (take, heartbeat and
// end a lease on the policies a Locust run uses; read the current credential
// of a granted policy), health (/healthz, /readyz) and Prometheus metrics.
//
// Every request but /healthz and /readyz carries `Authorization: Bearer
// TOKEN`, a token made by `swarmkey tokens add` (stored as a hash, see
// state.AuthenticateToken), on the unix socket as well as over TCP: the
// socket's file mode is a second fence, not the only one. Scopes:
//
//   - runner: POST /v1/leases, POST /v1/leases/{id}/heartbeat,
//     DELETE /v1/leases/{id} (its own leases only), and
//     GET /v1/policies/{name}/credential for the policies it is granted
//     (by name, or by tag:NAME for every policy with that tag), and
//     POST /v1/credentials for several of them at once, all or none.
//   - admin: GET /metrics. An admin token reads no credential.
//
// Bodies are JSON; unknown request fields are refused. Errors are
// {"error": "<message>"} with 400 (bad request), 401 (no, unknown, expired
// or revoked token), 403 (scope or grant), 404 (unknown policy or lease,
// nothing current yet), 408 (a body not received in time), 410 (lease
// expired or ended), 413 (a body too large), 429 (credential reads over the
// token's limit, with Retry-After) or 503 (the database or a store is
// unreachable).
//
// Every credential read is recorded before the value is sent; when it
// cannot be, the value is not sent. The first read of a (token, lease,
// policy, version) appends an audit row (actor token:NAME, the policy, the
// version id, the lease; never the value); every read counts in
// credential_reads (state.RecordCredentialRead, RecordCredentialReads), and
// the lease.ended entry sums up the reads under the lease.
//
// The wire format is package api/wire and the client package api/client,
// which import nothing of this package, so that swarmkey-exec links them
// without the server.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// Entry is one configured policy as the API sees it.
type Entry struct {
	Name string
	Tags []string
	// Read returns the current version of the policy's secret (use
	// ReadCurrent, so that "nothing current yet" is ErrNothingCurrent).
	Read func(ctx context.Context) (providers.Version, error)
}

// Catalog is the configured policies by name.
type Catalog map[string]Entry

// expand turns one entry of a lease's uses (a policy name or tag:NAME) into
// policy names; ok is false for an unknown policy or a tag no policy has.
func (c Catalog) expand(use string) (names []string, ok bool) {
	tag, isTag := strings.CutPrefix(use, state.UsesTagPrefix)
	if !isTag {
		_, ok := c[use]
		return []string{use}, ok
	}
	for name, p := range c {
		if slices.Contains(p.Tags, tag) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, len(names) > 0
}

// checkUse says whether tok may lease use (a policy name or tag:NAME):
// status 0, or the status and message of the refusal. A refusal tells the
// token only what it may know: a name it is not granted is 403 whether or
// not such a policy exists, and a tag it is not granted, and whose policies
// it is not all granted by name (or by another tag), is 403 without naming
// any policy, whether the tag matches ungranted policies or none.
func checkUse(catalog Catalog, tok state.Token, use string) (int, string) {
	names, ok := catalog.expand(use)
	if !strings.HasPrefix(use, state.UsesTagPrefix) {
		switch {
		case !granted(tok, use, catalog[use].Tags):
			return http.StatusForbidden, fmt.Sprintf("token %q is not granted policy %q: a runner may lease only the policies it is granted", tok.Name, use)
		case !ok:
			return http.StatusNotFound, fmt.Sprintf("uses: %q: no such policy is configured", use)
		}
		return 0, ""
	}
	if slices.Contains(tok.Grants, use) {
		if !ok {
			return http.StatusNotFound, fmt.Sprintf("uses: %q: no policy has this tag", use)
		}
		return 0, ""
	}
	all := ok
	for _, name := range names {
		all = all && granted(tok, name, catalog[name].Tags)
	}
	if !all {
		return http.StatusForbidden, fmt.Sprintf(
			"uses: %q: token %q is not granted this tag, nor every policy that has it (which policies have it is not shown): ask an operator for a token that grants %s",
			use, tok.Name, use)
	}
	return 0, ""
}

// granted reports whether tok may read policy p: p is granted by name, or
// one of its tags is granted as tag:NAME.
func granted(tok state.Token, name string, tags []string) bool {
	for _, g := range tok.Grants {
		if g == name {
			return true
		}
		if tag, ok := strings.CutPrefix(g, state.UsesTagPrefix); ok && slices.Contains(tags, tag) {
			return true
		}
	}
	return false
}

// Options configure a Server.
type Options struct {
	// DB is the state database: tokens, leases, audit.
	DB *state.DB
	// Policies returns the policies configured now; it is called per
	// request, so a reload takes effect at once.
	Policies func() Catalog
	// Metrics serves /metrics (admin scope); nil answers 404.
	Metrics http.Handler
	// Registerer, if set, receives the API's own metrics.
	Registerer prometheus.Registerer
	// Ready reports whether the process can serve (/readyz); nil pings DB.
	Ready func(ctx context.Context) error
	// Logger logs refused requests (never a token or a value); nil discards.
	Logger *slog.Logger
	// ReadLimit is how many credential reads a second one token may make
	// on average, ReadBurst how many at once; beyond them a read gets 429
	// with Retry-After. Zero takes DefaultReadLimit and DefaultReadBurst;
	// rate.Inf lifts the limit.
	ReadLimit rate.Limit
	ReadBurst int
}

// Server is the API's http.Handler.
type Server struct {
	opts     Options
	limits   *limiters
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	reads    *prometheus.CounterVec
}

// New builds a Server. It fails only when its metrics cannot be registered
// (registered twice on one registry).
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func(ctx context.Context) error { return opts.DB.Ping(ctx) }
	}
	s := &Server{
		opts:   opts,
		limits: newLimiters(opts.ReadLimit, opts.ReadBurst),
		mux:    http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_api_requests_total", Help: "API requests, by route and HTTP status.",
		}, []string{"route", "code"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_api_credential_reads_total", Help: "Credentials handed out by the API, by policy.",
		}, []string{"policy"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.reads} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api metrics: %w", err)
			}
		}
	}
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /metrics", s.auth(state.ScopeAdmin, s.metrics))
	s.handle("POST /v1/leases", s.auth(state.ScopeRunner, s.startLease))
	s.handle("POST /v1/leases/{id}/heartbeat", s.auth(state.ScopeRunner, s.heartbeat))
	s.handle("DELETE /v1/leases/{id}", s.auth(state.ScopeRunner, s.endLease))
	s.handle("GET /v1/policies/{name}/credential", s.auth(state.ScopeRunner, s.credential))
	s.handle("POST /v1/credentials", s.auth(state.ScopeRunner, s.credentials))
	s.handle("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// statusWriter remembers the status for the requests metric.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	route := pattern
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		// Nothing here is for caches: credentials least of all.
		w.Header().Set("Cache-Control", "no-store")
		h(sw, r)
		s.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

type tokenHandler func(w http.ResponseWriter, r *http.Request, tok state.Token)

// auth admits requests whose bearer token is valid and has scope.
func (s *Server) auth(scope state.TokenScope, h tokenHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, reason, format string, args ...any) {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="swarmkey"`)
			}
			s.opts.Logger.Info("api request refused", "method", r.Method, "path", r.URL.Path, "status", status, "reason", reason)
			writeError(w, status, format, args...)
		}
		scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(presented) == "" {
			refuse(http.StatusUnauthorized, "no bearer token",
				"missing bearer token: send the header `Authorization: Bearer TOKEN` with a token from `swarmkey tokens add`")
			return
		}
		tok, err := s.opts.DB.AuthenticateToken(r.Context(), secret.FromString(strings.TrimSpace(presented)))
		switch {
		case errors.Is(err, state.ErrTokenUnknown):
			refuse(http.StatusUnauthorized, "unknown token",
				"unknown token: it was never issued here, or it was mistyped; ask an operator for a token (`swarmkey tokens add`)")
			return
		case errors.Is(err, state.ErrTokenRevoked):
			refuse(http.StatusUnauthorized, "revoked token",
				"token %q was revoked at %s: ask an operator for a new token (`swarmkey tokens add`)",
				tok.Name, tok.RevokedAt.Format(time.RFC3339))
			return
		case errors.Is(err, state.ErrTokenExpired):
			refuse(http.StatusUnauthorized, "expired token",
				"token %q expired at %s: ask an operator for a new token (`swarmkey tokens add --ttl …`)",
				tok.Name, tok.ExpiresAt.Format(time.RFC3339))
			return
		case err != nil:
			s.opts.Logger.Error("api: authenticate", "error", err)
			writeError(w, http.StatusServiceUnavailable, "the state database is unreachable; try again")
			return
		}
		if tok.Scope != scope {
			refuse(http.StatusForbidden, "scope",
				"token %q has scope %s; %s %s needs a %s token", tok.Name, tok.Scope, r.Method, r.URL.Path, scope)
			return
		}
		h(w, r, tok)
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not ready: the state database is unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ state.Token) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusNotFound, "metrics are not served by this process")
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

// decode reads a JSON body of at most MaxBodyBytes into v, refusing
// unknown fields. A body that does not arrive within its deadline (see
// HTTPServer) is 408, one over the cap 413.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			writeError(w, http.StatusRequestTimeout, "request body: not received in time: send the whole body at once")
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, "request body: larger than %d bytes", MaxBodyBytes)
		default:
			writeError(w, http.StatusBadRequest, "request body: %v (expected a JSON object, see the API documentation)", err)
		}
		return false
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeError(w, http.StatusBadRequest, "request body: one JSON object expected, found more")
		return false
	}
	return true
}

func (s *Server) startLease(w http.ResponseWriter, r *http.Request, tok state.Token) {
	var req wire.LeaseRequest
	if !decode(w, r, &req) {
		return
	}
	if req.TTLSeconds == 0 {
		req.TTLSeconds = int(wire.DefaultLeaseTTL / time.Second)
	}
	if req.TTLSeconds < 1 || req.TTLSeconds > int(wire.MaxLeaseTTL/time.Second) {
		writeError(w, http.StatusBadRequest, "ttl_seconds %d: give 1 to %d (default %d)",
			req.TTLSeconds, int(wire.MaxLeaseTTL/time.Second), int(wire.DefaultLeaseTTL/time.Second))
		return
	}
	if len(req.Uses) == 0 {
		writeError(w, http.StatusBadRequest, "uses: missing: name the policies (or tag:NAME) whose credentials the run uses")
		return
	}
	catalog := s.opts.Policies()
	for _, use := range req.Uses {
		if status, msg := checkUse(catalog, tok, use); status != 0 {
			writeError(w, status, "%s", msg)
			return
		}
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	l, err := s.opts.DB.StartTokenLease(r.Context(), tok.ID, state.LeaseRequest{
		RunName: req.Run, Uses: req.Uses, Holder: req.Holder, TTL: ttl})
	var inv *state.InvalidRunError
	switch {
	case errors.As(err, &inv):
		field := map[string]string{"name": "run", "uses": "uses", "holder": "holder", "ttl": "ttl_seconds"}[inv.Field]
		if field == "" {
			field = inv.Field
		}
		writeError(w, http.StatusBadRequest, "%s %q: %s", field, inv.Value, inv.Reason)
		return
	case err != nil:
		s.opts.Logger.Error("api: start lease", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the state database is unreachable; try again")
		return
	}
	s.audit(r.Context(), tok, "", "lease.started", map[string]any{
		"lease": l.ID, "run": l.RunName, "uses": l.Uses, "holder": l.Holder, "ttl_seconds": req.TTLSeconds})
	writeJSON(w, http.StatusCreated, wire.LeaseResponse{ID: l.ID, TTLSeconds: req.TTLSeconds, ExpiresAt: l.LastHeartbeat.Add(l.TTL)})
}

// ownLease answers 404 unless the lease exists and tok took it.
func (s *Server) ownLease(w http.ResponseWriter, r *http.Request, tok state.Token) (string, bool) {
	id := r.PathValue("id")
	owned, err := s.opts.DB.LeaseOwnedBy(r.Context(), id, tok.ID)
	switch {
	case errors.Is(err, state.ErrNotFound) || (err == nil && !owned):
		// Another token's lease is reported as missing: its id tells a
		// runner nothing it may act on.
		writeError(w, http.StatusNotFound, "lease %q: no such lease of token %q", id, tok.Name)
		return "", false
	case err != nil:
		s.opts.Logger.Error("api: lease", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the state database is unreachable; try again")
		return "", false
	}
	return id, true
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, tok state.Token) {
	id, ok := s.ownLease(w, r, tok)
	if !ok {
		return
	}
	l, err := s.opts.DB.HeartbeatLease(r.Context(), id)
	switch {
	case errors.Is(err, state.ErrLeaseExpired):
		writeError(w, http.StatusGone, "lease %s expired: no heartbeat within its TTL, so rotations may have run since; take a new lease and read the credential again", id)
	case errors.Is(err, state.ErrLeaseEnded):
		writeError(w, http.StatusGone, "lease %s has ended; take a new lease", id)
	case err != nil:
		s.opts.Logger.Error("api: heartbeat", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the state database is unreachable; try again")
	default:
		writeJSON(w, http.StatusOK, wire.LeaseResponse{ID: l.ID, ExpiresAt: l.LastHeartbeat.Add(l.TTL)})
	}
}

func (s *Server) endLease(w http.ResponseWriter, r *http.Request, tok state.Token) {
	id, ok := s.ownLease(w, r, tok)
	if !ok {
		return
	}
	l, err := s.opts.DB.EndLease(r.Context(), id)
	if err != nil {
		s.opts.Logger.Error("api: end lease", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the state database is unreachable; try again")
		return
	}
	detail := map[string]any{"lease": l.ID, "run": l.RunName}
	// What was read under the lease, with counts: the audit log has only
	// the first read of each version.
	if reads, err := s.opts.DB.LeaseReads(r.Context(), l.ID); err != nil {
		s.opts.Logger.Warn("api: reads of an ended lease", "lease", l.ID, "error", err)
	} else if len(reads) > 0 {
		detail["reads"] = reads
	}
	s.audit(r.Context(), tok, "", "lease.ended", detail)
	writeJSON(w, http.StatusOK, map[string]any{"id": l.ID, "ended_at": l.EndedAt})
}

func (s *Server) credential(w http.ResponseWriter, r *http.Request, tok state.Token) {
	if !s.allowReads(w, tok, 1) {
		return
	}
	name := r.PathValue("name")
	p, ok := s.readable(w, tok, name, s.opts.Policies())
	if !ok {
		return
	}
	got, err := readPolicy(r.Context(), name, p)
	if err != nil {
		s.refuseRead(w, name, err)
		return
	}
	// The record first: a value whose read is not recorded is not sent.
	if _, err := s.opts.DB.RecordCredentialRead(r.Context(), s.readRecord(r, tok, name, p, got.Version)); err != nil {
		s.opts.Logger.Error("api: audit credential read; the credential was not sent", "policy", name, "error", err)
		writeError(w, http.StatusServiceUnavailable, "the read of policy %q could not be audited, so the credential was not sent; try again", name)
		return
	}
	s.reads.WithLabelValues(name).Inc()
	writeJSON(w, http.StatusOK, got)
}

// credentials answers POST /v1/credentials: the credentials of several
// policies in one request, all or none. Each policy is checked as
// GET …/credential checks it, in the order asked, and the first refusal is
// the answer; the reads take as many from the token's read limit as there
// are policies; the stores are read concurrently; and the reads are
// recorded in one transaction before any value is sent.
func (s *Server) credentials(w http.ResponseWriter, r *http.Request, tok state.Token) {
	var req wire.CredentialsRequest
	if !decode(w, r, &req) {
		return
	}
	n := len(req.Policies)
	if n == 0 || n > wire.MaxCredentialsPerRequest {
		writeError(w, http.StatusBadRequest, "policies: give 1 to %d policy names (got %d)", wire.MaxCredentialsPerRequest, n)
		return
	}
	asked := make(map[string]bool, n)
	for _, name := range req.Policies {
		if asked[name] {
			writeError(w, http.StatusBadRequest, "policies: %q is asked twice: ask for each policy once", name)
			return
		}
		asked[name] = true
	}
	if n > s.limits.burst && s.limits.limit != rate.Inf {
		writeError(w, http.StatusBadRequest, "policies: %d at once is more than token %q may read at once (%d): ask in smaller requests",
			n, tok.Name, s.limits.burst)
		return
	}
	if !s.allowReads(w, tok, n) {
		return
	}
	// One catalog for the whole request, even if a reload swaps it.
	catalog := s.opts.Policies()
	entries := make([]Entry, n)
	for i, name := range req.Policies {
		p, ok := s.readable(w, tok, name, catalog)
		if !ok {
			return
		}
		entries[i] = p
	}
	got := make([]wire.CredentialBody, n)
	failed := make([]error, n)
	var g errgroup.Group
	g.SetLimit(storeReadsAtOnce)
	for i, name := range req.Policies {
		g.Go(func() error {
			got[i], failed[i] = readPolicy(r.Context(), name, entries[i])
			return nil
		})
	}
	_ = g.Wait() // every function returns nil: the failures are in order
	records := make([]state.CredentialRead, n)
	for i, name := range req.Policies {
		if failed[i] != nil {
			s.refuseRead(w, name, failed[i])
			return
		}
		records[i] = s.readRecord(r, tok, name, entries[i], got[i].Version)
	}
	// The records first: a value whose read is not recorded is not sent.
	if _, err := s.opts.DB.RecordCredentialReads(r.Context(), records); err != nil {
		s.opts.Logger.Error("api: audit credential reads; no credential was sent", "policies", req.Policies, "error", err)
		writeError(w, http.StatusServiceUnavailable, "the reads of %d policies could not be audited, so no credential was sent; try again", n)
		return
	}
	for _, name := range req.Policies {
		s.reads.WithLabelValues(name).Inc()
	}
	writeJSON(w, http.StatusOK, wire.CredentialsBody{Credentials: got})
}

// storeReadsAtOnce bounds the store reads one POST /v1/credentials has in
// flight: a cloud store's read takes tens of milliseconds.
const storeReadsAtOnce = 8

// allowReads takes n reads from tok's read limit; when the bucket has too
// few it answers 429 with Retry-After and returns false.
func (s *Server) allowReads(w http.ResponseWriter, tok state.Token, n int) bool {
	ok, wait := s.limits.allow(tok.ID, time.Now(), n)
	if ok {
		return true
	}
	secs := retryAfter(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.opts.Logger.Debug("api: credential read over the token's limit", "token", tok.Name)
	writeError(w, http.StatusTooManyRequests,
		"token %q reads credentials faster than its limit (%g a second, %d at once): retry after %ds; keep a credential until it is refused rather than reading it per request",
		tok.Name, float64(s.limits.limit), s.limits.burst, secs)
	return false
}

// readable returns the entry of policy name in catalog when tok may read
// it; else it answers the refusal (400 for a tag, 403 not granted, 404 not
// configured) and returns false.
func (s *Server) readable(w http.ResponseWriter, tok state.Token, name string, catalog Catalog) (Entry, bool) {
	if strings.HasPrefix(name, state.UsesTagPrefix) {
		// The same answer for every tag and token: it names no policy.
		writeError(w, http.StatusBadRequest, "%q is a tag: read each policy's credential by the policy's name", name)
		return Entry{}, false
	}
	p, known := catalog[name]
	if !granted(tok, name, p.Tags) {
		writeError(w, http.StatusForbidden, "token %q is not granted policy %q: ask an operator for a token that grants it (`swarmkey tokens add --grant %s`)",
			tok.Name, name, name)
		return Entry{}, false
	}
	if !known {
		writeError(w, http.StatusNotFound, "policy %q is not configured", name)
		return Entry{}, false
	}
	return p, true
}

// readPolicy reads p's current version as the answer's body. Its errors
// are for refuseRead.
func readPolicy(ctx context.Context, name string, p Entry) (wire.CredentialBody, error) {
	v, err := p.Read(ctx)
	if err != nil {
		return wire.CredentialBody{}, err
	}
	fields, err := wire.RawFields(v.Value)
	if err != nil {
		return wire.CredentialBody{}, &documentError{err}
	}
	return wire.CredentialBody{Policy: name, Version: v.ID, Fields: fields}, nil
}

// documentError: the policy's current version is not a document of fields.
type documentError struct{ err error }

func (e *documentError) Error() string { return e.err.Error() }

// refuseRead answers a failed read of policy name: 404 when nothing is
// current yet, else 503 (the store, or its document).
func (s *Server) refuseRead(w http.ResponseWriter, name string, err error) {
	var doc *documentError
	switch {
	case errors.Is(err, ErrNothingCurrent):
		writeError(w, http.StatusNotFound, "policy %q has no current credential yet: it has not been rotated (`swarmkey rotate %s`)", name, name)
	case errors.As(err, &doc):
		writeError(w, http.StatusServiceUnavailable, "policy %q: %v", name, err)
	default:
		s.opts.Logger.Error("api: read credential", "policy", name, "error", err)
		writeError(w, http.StatusServiceUnavailable, "policy %q: its store is unreachable: %v", name, err)
	}
}

// readRecord is the record of tok's read of version of policy name.
func (s *Server) readRecord(r *http.Request, tok state.Token, name string, p Entry, version string) state.CredentialRead {
	covers := []string{name}
	for _, tag := range p.Tags {
		covers = append(covers, state.UsesTagPrefix+tag)
	}
	return state.CredentialRead{
		TokenID: tok.ID, TokenName: tok.Name, Policy: name, Covers: covers, Version: version,
		Detail: map[string]any{"via": "api", "remote": r.RemoteAddr},
	}
}

func (s *Server) audit(ctx context.Context, tok state.Token, policy, action string, detail map[string]any) {
	err := s.opts.DB.AppendAudit(ctx, state.AuditEntry{Actor: "token:" + tok.Name, Policy: policy, Action: action, Detail: detail})
	if err != nil {
		s.opts.Logger.Warn("api: audit", "action", action, "error", err)
	}
}
