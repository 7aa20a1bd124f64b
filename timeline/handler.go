package timeline

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// MaxDays bounds ?days=: the page plans every policy over the period.
const MaxDays = 31

// HandlerOptions configure Handler.
type HandlerOptions struct {
	// DB is the state database: plans, runs, leases, outcomes, tokens.
	DB *state.DB
	// Policies returns the policies configured now (called per request, so
	// a reload shows at once).
	Policies func() *daemon.PolicySet
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Location is the zone the pages show times in; nil means UTC.
	Location *time.Location
	// Logger logs refused requests and failures (never a token); nil
	// discards.
	Logger *slog.Logger
}

// Handler serves the pages, read-only: GET / (and /timeline) the overview,
// GET /policies/{name} one policy; ?days=N (1 to MaxDays, default 3) sets
// the period. A client on a loopback address is served as it is; any other
// client, and any request relayed by a proxy (a Forwarded or
// X-Forwarded-For header: a proxy on this host would make every client
// look local), must present an admin token from `swarmkey tokens add
// --scope admin`: as `Authorization: Bearer TOKEN`, or as the password of
// HTTP Basic authentication (any user name), which a browser asks for by
// itself.
func Handler(o HandlerOptions) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.admit(h.overview))
	mux.HandleFunc("GET /timeline", h.admit(h.overview))
	mux.HandleFunc("GET /policies/{name}", h.admit(h.policy))
	return mux
}

type handler struct{ o HandlerOptions }

func (h *handler) admit(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		header := w.Header()
		header.Set("Cache-Control", "no-store")
		header.Set("Content-Security-Policy", ContentSecurityPolicy+"; frame-ancestors 'none'")
		header.Set("X-Content-Type-Options", "nosniff")
		header.Set("Referrer-Policy", "no-referrer")
		if FromLoopback(r) {
			next(w, r)
			return
		}
		refuse := func(status int, reason, format string, args ...any) {
			if status == http.StatusUnauthorized {
				header.Add("WWW-Authenticate", `Basic realm="swarmkey timeline", charset="UTF-8"`)
				header.Add("WWW-Authenticate", `Bearer realm="swarmkey timeline"`)
			}
			h.o.Logger.Info("timeline request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "reason", reason)
			http.Error(w, fmt.Sprintf(format, args...), status)
		}
		presented := presentedToken(r)
		if presented == "" {
			refuse(http.StatusUnauthorized, "no token",
				"the timeline is served to loopback clients only, or with an admin token: send `Authorization: Bearer TOKEN`, or the token as the password of HTTP Basic authentication (any user name), with a token from `swarmkey tokens add --scope admin`")
			return
		}
		tok, err := h.o.DB.AuthenticateToken(r.Context(), secret.FromString(presented))
		switch {
		case errors.Is(err, state.ErrTokenUnknown), errors.Is(err, state.ErrTokenRevoked), errors.Is(err, state.ErrTokenExpired):
			refuse(http.StatusUnauthorized, "token refused", "the token was refused (%v): ask an operator for an admin token (`swarmkey tokens add --scope admin`)", err)
			return
		case err != nil:
			h.o.Logger.Error("timeline: authenticate", "error", err)
			http.Error(w, "the state database is unreachable; try again", http.StatusServiceUnavailable)
			return
		}
		if tok.Scope != state.ScopeAdmin {
			refuse(http.StatusForbidden, "scope", "token %q has scope %s; the timeline needs an admin token", tok.Name, tok.Scope)
			return
		}
		next(w, r)
	}
}

// FromLoopback reports whether r comes straight from a loopback address:
// not relayed by a proxy (no Forwarded or X-Forwarded-For header).
func FromLoopback(r *http.Request) bool {
	if r.Header.Get("Forwarded") != "" || r.Header.Get("X-Forwarded-For") != "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// presentedToken is the bearer token, or the password of Basic
// authentication; "" when neither is sent.
func presentedToken(r *http.Request) string {
	if _, password, ok := r.BasicAuth(); ok {
		return strings.TrimSpace(password)
	}
	scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(presented)
}

// options reads ?days= into gathering options.
func (h *handler) options(r *http.Request) (Options, error) {
	now := h.o.Now().UTC()
	span := DefaultSpan
	if d := r.URL.Query().Get("days"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > MaxDays {
			return Options{}, fmt.Errorf("?days=%q: give a whole number of days from 1 to %d", d, MaxDays)
		}
		span = time.Duration(n) * 24 * time.Hour
	}
	return Options{Now: now, From: now, To: now.Add(span), Location: h.o.Location}, nil
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	o, err := h.options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t, err := Gather(r.Context(), h.o.DB, h.o.Policies(), o)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.write(w, func(b *bytes.Buffer) error { return Render(b, t) })
}

func (h *handler) policy(w http.ResponseWriter, r *http.Request) {
	o, err := h.options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	set := h.o.Policies()
	if _, ok := set.Policies[name]; !ok {
		http.Error(w, fmt.Sprintf("no policy %q is configured", name), http.StatusNotFound)
		return
	}
	p, err := GatherPolicy(r.Context(), h.o.DB, set, name, o)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.write(w, func(b *bytes.Buffer) error { return RenderPolicy(b, p) })
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	h.o.Logger.Error("timeline: gather", "error", err)
	http.Error(w, "the timeline could not be built (the state database did not answer, or a run in it is broken); the daemon's log says why", http.StatusServiceUnavailable)
}

// write renders into a buffer first, so a template failure is a clean 500
// rather than half a page.
func (h *handler) write(w http.ResponseWriter, render func(*bytes.Buffer) error) {
	var b bytes.Buffer
	if err := render(&b); err != nil {
		h.o.Logger.Error("timeline: render", "error", err)
		http.Error(w, "the timeline could not be rendered; the daemon's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}
