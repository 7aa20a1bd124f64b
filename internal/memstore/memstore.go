// Package memstore is a secret store that lives in the process's memory: for
// tests and benchmarks that measure everything but a store's I/O (the
// daemon's scheduling lag, for one). It keeps the interface's semantics —
// stages, idempotent writes by token, compare-and-swap promote — and is
// checked by the same conformance suite as the real stores. It is not
// selectable in a config file: its values die with the process.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// Backend is the shared memory several Store values may use, as several
// processes share one real store.
type Backend struct {
	mu      sync.Mutex
	secrets map[string][]*version
}

type version struct {
	id      string
	stages  []providers.Stage
	created time.Time
	value   secret.Secret
}

// NewBackend returns an empty backend.
func NewBackend() *Backend { return &Backend{secrets: map[string][]*version{}} }

// PendingOnCurrent puts the pending stage on the version that holds current,
// as another writer would behind the stores' back (the conformance suite's
// PendingOnCurrentIsNoPending).
func (b *Backend) PendingOnCurrent(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs := b.secrets[id]
	if other := holding(vs, providers.StagePending); other != nil {
		other.stages = slices.DeleteFunc(other.stages, func(s providers.Stage) bool { return s == providers.StagePending })
	}
	if cur := holding(vs, providers.StageCurrent); cur != nil {
		cur.stages = append(cur.stages, providers.StagePending)
	}
}

// Store is a client of a Backend.
type Store struct{ b *Backend }

// New returns a store on b.
func New(b *Backend) *Store { return &Store{b: b} }

// Name implements providers.Store.
func (*Store) Name() string { return "memory" }

// Close implements providers.Store.
func (*Store) Close() error { return nil }

func holding(vs []*version, s providers.Stage) *version {
	for _, v := range vs {
		if slices.Contains(v.stages, s) {
			return v
		}
	}
	return nil
}

func byID(vs []*version, id string) *version {
	for _, v := range vs {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (v *version) public(withValue bool) providers.Version {
	out := providers.Version{ID: v.id, Token: v.id, Stages: slices.Clone(v.stages), Created: v.created}
	if withValue {
		out.Value = v.value
	}
	return out
}

// Get implements providers.Store.
func (s *Store) Get(_ context.Context, id string, stage providers.Stage) (providers.Version, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	vs, ok := s.b.secrets[id]
	if !ok {
		return providers.Version{}, fmt.Errorf("memory: secret %q: %w", id, providers.ErrNotFound)
	}
	v := holding(vs, stage)
	if v == nil || (stage == providers.StagePending && slices.Contains(v.stages, providers.StageCurrent)) {
		return providers.Version{}, fmt.Errorf("memory: secret %q: no %s version: %w", id, stage, providers.ErrNotFound)
	}
	return v.public(true), nil
}

// List implements providers.Store: newest first.
func (s *Store) List(_ context.Context, id string) ([]providers.Version, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	vs, ok := s.b.secrets[id]
	if !ok {
		return nil, fmt.Errorf("memory: secret %q: %w", id, providers.ErrNotFound)
	}
	out := make([]providers.Version, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i].public(false))
	}
	return out, nil
}

// PutPending implements providers.Store.
func (s *Store) PutPending(_ context.Context, id, token string, value secret.Secret) (providers.Version, error) {
	if token == "" || value.IsZero() {
		return providers.Version{}, fmt.Errorf("memory: secret %q: write pending: empty token or value", id)
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	vs := s.b.secrets[id]
	if v := byID(vs, token); v != nil {
		if !v.value.Equal(value) {
			return providers.Version{}, fmt.Errorf("memory: secret %q: token %q already wrote another value: %w", id, token, providers.ErrConflict)
		}
		return v.public(false), nil
	}
	if other := holding(vs, providers.StagePending); other != nil {
		if !slices.Contains(other.stages, providers.StageCurrent) {
			return providers.Version{}, fmt.Errorf("memory: secret %q: pending version %q is in the way: %w", id, other.id, providers.ErrConflict)
		}
		other.stages = slices.DeleteFunc(other.stages, func(s providers.Stage) bool { return s == providers.StagePending })
	}
	v := &version{id: token, stages: []providers.Stage{providers.StagePending}, created: time.Now().UTC(), value: value}
	s.b.secrets[id] = append(vs, v)
	return v.public(false), nil
}

// Promote implements providers.Store.
func (s *Store) Promote(_ context.Context, id string, req providers.PromoteRequest) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	vs, ok := s.b.secrets[id]
	if !ok {
		return fmt.Errorf("memory: secret %q: %w", id, providers.ErrNotFound)
	}
	vid := req.PendingID
	if vid == "" {
		vid = req.Token
	}
	v := byID(vs, vid)
	if v == nil {
		return fmt.Errorf("memory: secret %q: version %q does not exist: %w", id, vid, providers.ErrNotFound)
	}
	if req.Token != "" && v.id != req.Token {
		return fmt.Errorf("memory: secret %q: version %q is not token %q's: %w", id, vid, req.Token, providers.ErrConflict)
	}
	if slices.Contains(v.stages, providers.StageCurrent) {
		v.stages = slices.DeleteFunc(v.stages, func(s providers.Stage) bool { return s == providers.StagePending })
		return nil
	}
	if !slices.Contains(v.stages, providers.StagePending) {
		return fmt.Errorf("memory: secret %q: token %q is not pending: %w", id, req.Token, providers.ErrConflict)
	}
	cur := holding(vs, providers.StageCurrent)
	curID := ""
	if cur != nil {
		curID = cur.id
	}
	if curID != req.ExpectedCurrentID {
		return fmt.Errorf("memory: secret %q: current is %q, expected %q: %w", id, curID, req.ExpectedCurrentID, providers.ErrConflict)
	}
	if prev := holding(vs, providers.StagePrevious); prev != nil {
		prev.stages = nil
	}
	if cur != nil {
		cur.stages = []providers.Stage{providers.StagePrevious}
	}
	v.stages = []providers.Stage{providers.StageCurrent}
	s.b.secrets[id] = slices.DeleteFunc(vs, func(v *version) bool { return len(v.stages) == 0 })
	return nil
}

// DiscardPending implements providers.Store.
func (s *Store) DiscardPending(_ context.Context, id, token string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.discard(id, token)
	return nil
}

// DiscardPendingVersion implements providers.Store; the version id is the
// token here. A version that is also current is left as it is.
func (s *Store) DiscardPendingVersion(_ context.Context, id, versionID string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if v := byID(s.b.secrets[id], versionID); v != nil && slices.Contains(v.stages, providers.StageCurrent) {
		return nil
	}
	s.discard(id, versionID)
	return nil
}

// discard drops the pending version vid; the caller holds the lock.
func (s *Store) discard(id, vid string) {
	vs := s.b.secrets[id]
	v := byID(vs, vid)
	if v == nil || !slices.Contains(v.stages, providers.StagePending) {
		return
	}
	v.stages = slices.DeleteFunc(v.stages, func(s providers.Stage) bool { return s == providers.StagePending })
	vs = slices.DeleteFunc(vs, func(v *version) bool { return len(v.stages) == 0 })
	if len(vs) == 0 {
		delete(s.b.secrets, id)
	} else {
		s.b.secrets[id] = vs
	}
}

// RetireUnstaged implements providers.Store: unstaged versions are dropped
// at once, so there is nothing to retire.
func (s *Store) RetireUnstaged(context.Context, string, providers.RetireRequest) error { return nil }
