package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fake is an in-process model of the KV version 2 secrets engine of
// Vault's HTTP API, mounted at "secret/", for machines without a real
// server. It models what the store relies on, as Vault's documentation
// describes it (https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2):
//
//   - Every write to secret/data/PATH makes a new version, numbered from 1;
//     a read without ?version= returns the latest. "Read Secret Version":
//     a deleted or destroyed version answers 404 with its metadata and
//     "data": null.
//   - options.cas on a write: "If set, the write will only be allowed if the
//     key's current version matches the version specified in the cas
//     parameter"; 0 allows the write only when the key does not exist. A
//     mismatch answers 400 "check-and-set parameter did not match the
//     current version".
//   - max_versions (mount default 10): "If a secret exceeds the configured
//     number of versions, the oldest version is permanently deleted."
//   - custom_metadata on secret/metadata/PATH: POST replaces the metadata,
//     PATCH is a JSON merge patch (a key set to null is removed). Reads of
//     data return the secret's custom_metadata beside the version metadata.
//     At most 64 keys, keys of at most 128 bytes, values of at most 512.
//   - secret/delete/PATH (soft delete: the data is unreadable, undelete
//     restores it), secret/undelete/PATH, secret/destroy/PATH (for good).
//   - auth/approle/login and auth/kubernetes/login return a client token
//     ("AppRole auth method", "Kubernetes auth method" API pages) for the
//     role ids and secret ids, or roles and service account tokens, added
//     with AddAppRole and AddKubernetesRole.
//   - auth/token/revoke ("Token auth method" API page) revokes the token in
//     its body: later requests with it get 403, as an expired one does.
//
// Every request needs X-Vault-Token: the root token or one that a login
// issued; otherwise 403 "permission denied", as Vault answers.
type Fake struct {
	srv       *httptest.Server
	rootToken string

	mu      sync.Mutex
	secrets map[string]*fakeSecret
	tokens  map[string]bool
	approle map[string]string // role id → secret id
	k8s     map[string]string // role → service account token
}

type fakeSecret struct {
	created, updated time.Time
	current          int
	oldest           int
	maxVersions      int
	casRequired      bool
	custom           map[string]string
	versions         map[int]*fakeVersion
}

type fakeVersion struct {
	data      json.RawMessage
	created   time.Time
	deleted   time.Time
	destroyed bool
}

const defaultMaxVersions = 10

// NewFake starts a fake on a loopback port.
func NewFake() *Fake {
	f := &Fake{
		rootToken: "root-" + randomHex(),
		secrets:   map[string]*fakeSecret{},
		tokens:    map[string]bool{},
		approle:   map[string]string{},
		k8s:       map[string]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the fake's address.
func (f *Fake) URL() string { return f.srv.URL }

// RootToken is a token the fake accepts for everything.
func (f *Fake) RootToken() string { return f.rootToken }

// Close stops the fake.
func (f *Fake) Close() { f.srv.Close() }

// AddAppRole lets auth/approle/login accept roleID with secretID.
func (f *Fake) AddAppRole(roleID, secretID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.approle[roleID] = secretID
}

// AddKubernetesRole lets auth/kubernetes/login accept role with the service
// account token jwt.
func (f *Fake) AddKubernetesRole(role, jwt string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.k8s[role] = jwt
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	var body map[string]json.RawMessage
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			fail(w, http.StatusBadRequest, "invalid request body: "+err.Error())
			return
		}
	}
	switch path {
	case "auth/approle/login":
		var roleID, secretID string
		_ = json.Unmarshal(body["role_id"], &roleID)
		_ = json.Unmarshal(body["secret_id"], &secretID)
		if want, ok := f.approle[roleID]; !ok || want != secretID {
			fail(w, http.StatusBadRequest, "invalid role or secret ID")
			return
		}
		f.login(w)
		return
	case "auth/kubernetes/login":
		var role, jwt string
		_ = json.Unmarshal(body["role"], &role)
		_ = json.Unmarshal(body["jwt"], &jwt)
		if want, ok := f.k8s[role]; !ok || want != jwt {
			fail(w, http.StatusForbidden, "permission denied")
			return
		}
		f.login(w)
		return
	}
	if tok := r.Header.Get("X-Vault-Token"); tok != f.rootToken && !f.tokens[tok] {
		fail(w, http.StatusForbidden, "permission denied")
		return
	}
	if path == "auth/token/revoke" {
		// As Vault's: the token in the body stops working at once.
		var tok string
		_ = json.Unmarshal(body["token"], &tok)
		delete(f.tokens, tok)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	op, name, ok := strings.Cut(strings.TrimPrefix(path, Mount+"/"), "/")
	if !ok || !strings.HasPrefix(path, Mount+"/") || name == "" {
		fail(w, http.StatusNotFound, "no handler for route \""+path+"\"")
		return
	}
	switch op {
	case "data":
		switch r.Method {
		case http.MethodGet:
			f.readData(w, r, name)
		case http.MethodPost, http.MethodPut:
			f.writeData(w, name, body)
		default:
			fail(w, http.StatusMethodNotAllowed, "unsupported operation")
		}
	case "metadata":
		switch r.Method {
		case http.MethodGet:
			f.readMetadata(w, name)
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			f.writeMetadata(w, name, body, r.Method == http.MethodPatch)
		case http.MethodDelete:
			delete(f.secrets, name)
			w.WriteHeader(http.StatusNoContent)
		default:
			fail(w, http.StatusMethodNotAllowed, "unsupported operation")
		}
	case "delete", "undelete", "destroy":
		f.changeVersions(w, op, name, body)
	default:
		fail(w, http.StatusNotFound, "no handler for route \""+path+"\"")
	}
}

func (f *Fake) login(w http.ResponseWriter) {
	tok := "s." + randomHex()
	f.tokens[tok] = true
	reply(w, http.StatusOK, map[string]any{"auth": map[string]any{"client_token": tok, "renewable": true, "lease_duration": 3600}})
}

func fail(w http.ResponseWriter, code int, msg string) {
	reply(w, code, map[string]any{"errors": []string{msg}})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *fakeSecret) customJSON() any {
	if len(s.custom) == 0 {
		return nil
	}
	return s.custom
}

func (s *fakeSecret) versionMeta(n int) map[string]any {
	v := s.versions[n]
	return map[string]any{"version": n, "created_time": stamp(v.created), "deletion_time": stamp(v.deleted),
		"destroyed": v.destroyed, "custom_metadata": s.customJSON()}
}

func (f *Fake) readData(w http.ResponseWriter, r *http.Request, name string) {
	s := f.secrets[name]
	if s == nil || s.current == 0 {
		fail(w, http.StatusNotFound, "")
		return
	}
	n := s.current
	if q := r.URL.Query().Get("version"); q != "" && q != "0" {
		var err error
		if n, err = strconv.Atoi(q); err != nil {
			fail(w, http.StatusBadRequest, "invalid version")
			return
		}
	}
	v := s.versions[n]
	if v == nil {
		fail(w, http.StatusNotFound, "")
		return
	}
	if v.destroyed || !v.deleted.IsZero() {
		// Vault answers a deleted or destroyed version with 404, its
		// metadata and no data.
		reply(w, http.StatusNotFound, map[string]any{"data": map[string]any{"data": nil, "metadata": s.versionMeta(n)}})
		return
	}
	reply(w, http.StatusOK, map[string]any{"data": map[string]any{"data": v.data, "metadata": s.versionMeta(n)}})
}

func (f *Fake) writeData(w http.ResponseWriter, name string, body map[string]json.RawMessage) {
	var opts struct {
		CAS *int `json:"cas"`
	}
	if raw, ok := body["options"]; ok {
		_ = json.Unmarshal(raw, &opts)
	}
	var probe map[string]any
	if err := json.Unmarshal(body["data"], &probe); err != nil || probe == nil {
		fail(w, http.StatusBadRequest, "no data provided")
		return
	}
	s := f.secrets[name]
	if opts.CAS == nil && s != nil && s.casRequired {
		fail(w, http.StatusBadRequest, "check-and-set parameter required for this call")
		return
	}
	current := 0
	if s != nil {
		current = s.current
	}
	if opts.CAS != nil && *opts.CAS != current {
		fail(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
		return
	}
	now := time.Now()
	if s == nil {
		s = &fakeSecret{created: now, versions: map[int]*fakeVersion{}, custom: map[string]string{}}
		f.secrets[name] = s
	}
	s.current++
	s.updated = now
	s.versions[s.current] = &fakeVersion{data: body["data"], created: now}
	if s.oldest == 0 {
		s.oldest = 1
	}
	max := s.maxVersions
	if max == 0 {
		max = defaultMaxVersions
	}
	for s.current-s.oldest+1 > max {
		delete(s.versions, s.oldest)
		s.oldest++
	}
	reply(w, http.StatusOK, map[string]any{"data": s.versionMeta(s.current)})
}

func (f *Fake) readMetadata(w http.ResponseWriter, name string) {
	s := f.secrets[name]
	if s == nil {
		fail(w, http.StatusNotFound, "")
		return
	}
	versions := map[string]any{}
	for n, v := range s.versions {
		versions[strconv.Itoa(n)] = map[string]any{"created_time": stamp(v.created), "deletion_time": stamp(v.deleted), "destroyed": v.destroyed}
	}
	reply(w, http.StatusOK, map[string]any{"data": map[string]any{
		"cas_required": s.casRequired, "created_time": stamp(s.created), "current_version": s.current,
		"custom_metadata": s.customJSON(), "delete_version_after": "0s", "max_versions": s.maxVersions,
		"oldest_version": s.oldest, "updated_time": stamp(s.updated), "versions": versions,
	}})
}

func (f *Fake) writeMetadata(w http.ResponseWriter, name string, body map[string]json.RawMessage, patch bool) {
	s := f.secrets[name]
	if s == nil {
		if patch {
			fail(w, http.StatusNotFound, "")
			return
		}
		now := time.Now()
		s = &fakeSecret{created: now, updated: now, versions: map[int]*fakeVersion{}, custom: map[string]string{}}
		defer func() { f.secrets[name] = s }()
	}
	next := map[string]string{}
	if patch {
		for k, v := range s.custom {
			next[k] = v
		}
	}
	if raw, ok := body["custom_metadata"]; ok {
		var m map[string]*string
		if err := json.Unmarshal(raw, &m); err != nil {
			fail(w, http.StatusBadRequest, "custom_metadata: "+err.Error())
			return
		}
		if m == nil && patch {
			next = map[string]string{}
		}
		for k, v := range m {
			if v == nil {
				delete(next, k)
			} else {
				next[k] = *v
			}
		}
	}
	if len(next) > 64 {
		fail(w, http.StatusBadRequest, fmt.Sprintf("custom_metadata: %d keys, at most 64", len(next)))
		return
	}
	for k, v := range next {
		if len(k) > 128 || len(v) > 512 {
			fail(w, http.StatusBadRequest, "custom_metadata: key or value too long")
			return
		}
	}
	if raw, ok := body["max_versions"]; ok {
		_ = json.Unmarshal(raw, &s.maxVersions)
	} else if !patch {
		s.maxVersions = 0
	}
	if raw, ok := body["cas_required"]; ok {
		_ = json.Unmarshal(raw, &s.casRequired)
	} else if !patch {
		s.casRequired = false
	}
	s.custom = next
	s.updated = time.Now()
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) changeVersions(w http.ResponseWriter, op, name string, body map[string]json.RawMessage) {
	// "versions" is a list of integers; Vault also takes them as strings
	// (its field type is a comma-separated int slice), as the Go client
	// sends them for a delete.
	var raw []any
	_ = json.Unmarshal(body["versions"], &raw)
	var versions []int
	for _, r := range raw {
		switch v := r.(type) {
		case float64:
			versions = append(versions, int(v))
		case string:
			if n, err := strconv.Atoi(v); err == nil {
				versions = append(versions, n)
			}
		}
	}
	if len(versions) == 0 {
		fail(w, http.StatusBadRequest, "no version number provided")
		return
	}
	s := f.secrets[name]
	if s == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	now := time.Now()
	for _, n := range versions {
		v := s.versions[n]
		if v == nil {
			continue
		}
		switch op {
		case "delete":
			if v.deleted.IsZero() {
				v.deleted = now
			}
		case "undelete":
			if !v.destroyed {
				v.deleted = time.Time{}
			}
		case "destroy":
			v.destroyed, v.data = true, nil
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
