package postgres

import (
	"crypto/subtle"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/secret"
)

// derivationTTL bounds how long a derived verifier waits for its Apply: a
// rotation that failed between create and set never takes it.
const derivationTTL = 10 * time.Minute

// verifierDerivations holds the SCRAM verifiers that Create began to derive,
// in the background, for the passwords it was given, by rotation token.
//
// A verifier costs a PBKDF2 of 4,096 rounds, about a millisecond of CPU,
// and Apply needs it at once. Between Create and Apply the rotator writes
// the pending version durably and records the step, which is waiting on
// the disk and the state database: deriving meanwhile takes the
// millisecond off every rotation. Apply uses a derivation only for the
// same token and the same password (compared in constant time), and
// derives one itself otherwise, so a resumed rotation, or a process other
// than the one that ran Create, is served as before.
type verifierDerivations struct {
	mu      sync.Mutex
	byToken map[string]*derivation
}

type derivation struct {
	password secret.Secret
	started  time.Time
	done     chan struct{}
	verifier string
	err      error
}

// start begins deriving the verifier of password for token.
func (v *verifierDerivations) start(token string, password secret.Secret) {
	if token == "" || password.IsZero() {
		return
	}
	d := &derivation{password: password, started: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.verifier, d.err = SCRAMVerifier(password)
	}()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byToken == nil {
		v.byToken = map[string]*derivation{}
	}
	for t, old := range v.byToken {
		if time.Since(old.started) > derivationTTL {
			delete(v.byToken, t)
		}
	}
	v.byToken[token] = d
}

// take returns the verifier of password derived for token, waiting for it,
// or derives one now when there is none for this token and password.
func (v *verifierDerivations) take(token string, password secret.Secret) (string, error) {
	v.mu.Lock()
	d := v.byToken[token]
	delete(v.byToken, token)
	v.mu.Unlock()
	if d == nil || subtle.ConstantTimeCompare(d.password.Reveal(), password.Reveal()) != 1 {
		return SCRAMVerifier(password)
	}
	<-d.done
	if d.err != nil {
		return SCRAMVerifier(password)
	}
	return d.verifier, nil
}

// forget drops token's derivation (a rotation that ended without Apply).
func (v *verifierDerivations) forget(token string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.byToken, token)
}

// clear drops every derivation.
func (v *verifierDerivations) clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byToken = nil
}
