// Package keyservice is a small API-key service: an admin issues, lists,
// enables, disables and revokes keys, and clients prove a key on /v1/whoami.
// The http target's tests run against it (through httptest), and
// deploy/examples/keyservice serves it for the runnable example.
//
// It keeps keys in memory and can be told to misbehave the way real APIs
// do: answer 429 with Retry-After, answer 500, hang, return malformed JSON,
// echo the credentials it received in its error bodies, or issue keys that
// the canary rejects.
//
// Endpoints (admin ones need the admin bearer token or basic auth):
//
//	POST   /v1/keys              {"name": …, "enabled": true} → 201 {"id","key","name","enabled","expires_at"}
//	                             An Idempotency-Key header makes a retry return the same key.
//	GET    /v1/keys              → {"keys": [{"id","name","enabled"}]} (revoked keys are gone)
//	POST   /v1/keys/{id}/enable  → 204
//	POST   /v1/keys/{id}/disable → 204
//	DELETE /v1/keys/{id}         → 204; 404 when unknown or already revoked
//	GET    /v1/whoami            the key in X-API-Key, ?api_key= or basic auth (password) → 200 {"key_id","name"}; 401 otherwise
package keyservice

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Op names an endpoint, for fault injection and counters.
type Op string

// The operations of the service.
const (
	OpIssue   Op = "issue"
	OpList    Op = "list"
	OpEnable  Op = "enable"
	OpDisable Op = "disable"
	OpRevoke  Op = "revoke"
	OpWhoami  Op = "whoami"
)

// Fault is one way to misbehave on the next Count requests of an Op.
type Fault struct {
	// Status is answered instead of doing the work (429, 500, …); 0 means
	// none. A 429 or 503 carries RetryAfter when it is set.
	Status     int
	RetryAfter string
	// Hang waits this long (or until the client goes away) before
	// answering normally.
	Hang time.Duration
	// Malformed answers 200 with a body that is not JSON, without doing
	// the work.
	Malformed bool
	// Count is how many requests the fault applies to; 0 means every one.
	Count int
}

// Key is one key as the service holds it.
type Key struct {
	ID      string
	Name    string
	Value   string
	Enabled bool
	Revoked bool
	// Broken keys are live but the whoami endpoint rejects them: a canary
	// failure.
	Broken bool
}

// Service is the key service. The zero value is not usable: call New.
type Service struct {
	// AdminToken is the bearer token of the admin endpoints.
	AdminToken string
	// AdminUser and AdminPassword are the admin's basic-auth credentials;
	// empty means basic auth is refused.
	AdminUser, AdminPassword string

	mu     sync.Mutex
	keys   map[string]*Key
	order  []string
	idem   map[string][]byte
	faults map[Op][]Fault
	counts map[Op]int
	// echo makes every 4xx answer quote the credentials it received.
	echo bool
	// brokenNew makes new keys Broken.
	brokenNew bool
	// redirect answers whoami with a redirect to this URL when set.
	redirect string
}

// New returns a service whose admin token is adminToken.
func New(adminToken string) *Service {
	return &Service{AdminToken: adminToken, keys: map[string]*Key{}, idem: map[string][]byte{},
		faults: map[Op][]Fault{}, counts: map[Op]int{}}
}

// Inject queues a fault for op; faults apply in the order given.
func (s *Service) Inject(op Op, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], f)
}

// ClearFaults removes every queued fault.
func (s *Service) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[Op][]Fault{}
}

// EchoCredentials makes 4xx answers quote the Authorization header, the
// X-API-Key header, the api_key parameter and the request body: the worst
// case of an API that reflects what it got.
func (s *Service) EchoCredentials(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echo = on
}

// BreakNewKeys makes keys issued from now on fail whoami (on) or work (off).
func (s *Service) BreakNewKeys(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.brokenNew = on
}

// RedirectWhoami makes whoami answer 307 to url; "" stops it.
func (s *Service) RedirectWhoami(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirect = url
}

// Count is how many requests of op arrived, faults included.
func (s *Service) Count(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Keys returns a copy of every key ever issued, in issue order.
func (s *Service) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.keys[id])
	}
	return out
}

// Valid returns the ids of the keys whoami accepts, in issue order.
func (s *Service) Valid() []string {
	var ids []string
	for _, k := range s.Keys() {
		if k.Enabled && !k.Revoked && !k.Broken {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// Handler serves the API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/keys", s.admin(OpIssue, s.issue))
	mux.HandleFunc("GET /v1/keys", s.admin(OpList, s.list))
	mux.HandleFunc("POST /v1/keys/{id}/enable", s.admin(OpEnable, s.setEnabled(true)))
	mux.HandleFunc("POST /v1/keys/{id}/disable", s.admin(OpDisable, s.setEnabled(false)))
	mux.HandleFunc("DELETE /v1/keys/{id}", s.admin(OpRevoke, s.revoke))
	mux.HandleFunc("GET /v1/whoami", s.fault(OpWhoami, s.whoami))
	return mux
}

// fault counts the request and applies the next queued fault of op; it
// reports whether the handler should still run.
func (s *Service) fault(op Op, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[op]++
		var f *Fault
		if q := s.faults[op]; len(q) > 0 {
			cur := q[0]
			f = &cur
			if q[0].Count > 0 {
				q[0].Count--
				if q[0].Count == 0 {
					s.faults[op] = q[1:]
				}
			}
		}
		s.mu.Unlock()
		if f != nil {
			if f.Hang > 0 {
				select {
				case <-time.After(f.Hang):
				case <-r.Context().Done():
					return
				}
			}
			switch {
			case f.Malformed:
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"id": "k_broken", "key": `))
				return
			case f.Status != 0:
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				s.fail(w, r, f.Status, "injected fault")
				return
			}
		}
		next(w, r)
	}
}

func (s *Service) admin(op Op, next http.HandlerFunc) http.HandlerFunc {
	return s.fault(op, func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			s.fail(w, r, http.StatusUnauthorized, "admin credentials required")
			return
		}
		next(w, r)
	})
}

func (s *Service) isAdmin(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.AdminToken != "" {
		return equal(tok, s.AdminToken)
	}
	if u, p, ok := r.BasicAuth(); ok && s.AdminUser != "" {
		return equal(u, s.AdminUser) && equal(p, s.AdminPassword)
	}
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// fail answers an error; with echo on, it quotes what the client sent.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	body := map[string]any{"error": msg}
	s.mu.Lock()
	echo := s.echo
	s.mu.Unlock()
	if echo {
		u, p, _ := r.BasicAuth()
		body["received"] = map[string]string{
			"authorization": r.Header.Get("Authorization"),
			"x_api_key":     r.Header.Get("X-API-Key"),
			"api_key":       r.URL.Query().Get("api_key"),
			"basic_user":    u,
			"basic_pass":    p,
			"url":           r.URL.String(),
		}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) issue(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    string `json:"name"`
		Enabled *bool  `json:"enabled"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Name == "" {
		s.fail(w, r, http.StatusBadRequest, "want a JSON body with a name")
		return
	}
	idemKey := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	if body, ok := s.idem[idemKey]; ok && idemKey != "" {
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
		return
	}
	k := &Key{ID: "k_" + random(8), Name: req.Name, Value: "sk_" + random(24), Enabled: req.Enabled == nil || *req.Enabled, Broken: s.brokenNew}
	s.keys[k.ID] = k
	s.order = append(s.order, k.ID)
	body, _ := json.Marshal(map[string]any{
		"id": k.ID, "key": k.Value, "name": k.Name, "enabled": k.Enabled,
		"expires_at": time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339),
	})
	if idemKey != "" {
		s.idem[idemKey] = body
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

func (s *Service) list(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Enabled bool   `json:"enabled"`
	}
	s.mu.Lock()
	items := []item{}
	for _, id := range s.order {
		if k := s.keys[id]; !k.Revoked {
			items = append(items, item{k.ID, k.Name, k.Enabled})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"keys": items})
}

func (s *Service) live(id string) (*Key, bool) {
	k, ok := s.keys[id]
	if !ok || k.Revoked {
		return nil, false
	}
	return k, true
}

func (s *Service) setEnabled(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		k, ok := s.live(r.PathValue("id"))
		if ok {
			k.Enabled = on
		}
		s.mu.Unlock()
		if !ok {
			s.fail(w, r, http.StatusNotFound, "no such key")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Service) revoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	k, ok := s.live(r.PathValue("id"))
	if ok {
		k.Revoked = true
	}
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "no such key")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) whoami(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	redirect := s.redirect
	s.mu.Unlock()
	if redirect != "" {
		http.Redirect(w, r, redirect, http.StatusTemporaryRedirect)
		return
	}
	value := r.Header.Get("X-API-Key")
	if value == "" {
		value = r.URL.Query().Get("api_key")
	}
	if value == "" {
		_, value, _ = r.BasicAuth()
	}
	if value == "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			value = tok
		}
	}
	s.mu.Lock()
	var found *Key
	for _, k := range s.keys {
		if value != "" && equal(k.Value, value) && k.Enabled && !k.Revoked && !k.Broken {
			found = k
		}
	}
	s.mu.Unlock()
	if found == nil {
		s.fail(w, r, http.StatusUnauthorized, "invalid API key")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key_id": found.ID, "name": found.Name})
}

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// String summarises the keys for test failure messages: ids and states,
// never values.
func (s *Service) String() string {
	var b strings.Builder
	for _, k := range s.Keys() {
		b.WriteString(k.ID + "(" + k.Name + " enabled=" + strconv.FormatBool(k.Enabled) +
			" revoked=" + strconv.FormatBool(k.Revoked) + " broken=" + strconv.FormatBool(k.Broken) + ") ")
	}
	return b.String()
}
