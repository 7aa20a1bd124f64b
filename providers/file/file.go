// Package file is swarmkey's embedded default secret store: one state file
// per secret in a directory, values sealed with AES-256-GCM under a key file
// that must be mode 0600.
//
// A state file is JSON. Version metadata (version id, which is the rotation
// token, stages, created time) is in clear text so operators can inspect it;
// each value is sealed with a random 12-byte nonce and additional data that
// binds the ciphertext to its secret id and version id, so a sealed value
// copied into another secret or version fails to open.
//
// Every change is a read-modify-write done under an exclusive flock on a
// per-secret lock file (and a mutex within the process), and lands by
// write-temp + fsync + rename + fsync(dir): two processes racing get the
// compare-and-swap semantics of providers.Store, and a reader never sees a
// half-written file. A temp file never outlives its write: a failed write
// empties and removes it, and the temp files of a writer killed mid-write
// are removed under the secret's lock at the next Open (each holds a whole
// sealed state). The store keeps no unstaged versions: a version that
// falls off previous at promote, and a discarded pending version, are deleted
// from the file.
package file

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/validation"
)

// Name is the provider name policies use for this store.
const Name = "file"

// Options configures Open. The yaml tags are the keys of a policy file's
// stores.file block, which package config decodes into Options.
type Options struct {
	// Dir holds one state file and one lock file per secret. Open creates it
	// with mode 0700 when it is missing and refuses it when group or others
	// may write in it.
	Dir string `yaml:"dir"`
	// KeyFile holds the 32-byte AES-256 key as base64 text (see GenerateKey).
	// It must be a regular file, or a link to one, that group and others
	// cannot access (mode 0600 or 0400).
	KeyFile string `yaml:"key_file"`
	// Now is the clock of a version's Created; nil means time.Now().UTC().
	Now func() time.Time `yaml:"-"`
}

// Validate checks that Dir and KeyFile are given; it returns a
// *validation.Error. What the files hold is Open's to check.
func (o Options) Validate() error {
	ve := &validation.Error{Subject: "file store"}
	if strings.TrimSpace(o.Dir) == "" {
		ve.Add("dir", "required: the directory that holds one file per secret")
	}
	if strings.TrimSpace(o.KeyFile) == "" {
		ve.Add("key_file", "required: the file that holds the AES-256 key (swarmkey keygen writes one)")
	}
	return ve.Err()
}

// Store is the file secret store. It is safe for concurrent use, and several
// Store values (in one process or many) may share one Dir.
type Store struct {
	dir     string
	keyFile string
	aead    cipher.AEAD
	now     func() time.Time

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex // by state file name

	// steps are the file system calls of a write (tests fail them).
	steps writeSteps
	// leftBehind holds the state file names (stems) of secrets whose failed
	// write could not remove its temp file: their next write removes it.
	leftBehind sync.Map

	closed atomic.Bool
}

var _ providers.Store = (*Store)(nil)

// Open checks opts (see Validate), loads the key file, checks its mode, and
// creates Dir (mode 0700) if it does not exist. It fails with an error naming
// the key file and what to do when the key file is missing, not a regular
// file (or a link to one), accessible to group or others, or does not hold
// a base64 32-byte key; and with an error naming Dir, its mode and the chmod
// to run when group or others may write in Dir. A key that does not match
// the values already in Dir is only noticed when a value is read.
//
// The store never follows a symbolic link for a state or lock file: a link
// found where one should be is an error, and nothing is read or written
// through it. The key file may be a link (a Kubernetes secret volume
// mounts each key as a chain of links); the file it ends at is checked.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	key, err := readKey(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("file: key file %q: %w", opts.KeyFile, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("file: key file %q: %w", opts.KeyFile, err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("file: create store directory %q: %w", opts.Dir, err)
	}
	info, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("file: store directory %q: %w", opts.Dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("file: store directory %q is not a directory", opts.Dir)
	}
	// Whoever may write in the directory may replace a state file (rename
	// is atomic for them too) or plant a link where one should be.
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("file: store directory %q has mode %04o, which lets group or others create, replace and delete its files; it must be writable by its owner only: run: chmod 700 %s",
			opts.Dir, perm, opts.Dir)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	s := &Store{
		dir:     opts.Dir,
		keyFile: opts.KeyFile,
		aead:    aead,
		now:     opts.Now,
		locks:   map[string]*sync.Mutex{},
		steps:   osSteps,
	}
	s.removeLeftovers()
	return s, nil
}

// removeLeftovers removes the temp files that writers killed mid-write
// (kill -9, a lost node) left in Dir: each holds a whole sealed state,
// possibly of versions the store has since deleted. Each secret's are
// removed under its lock, so a live writer's temp file is never touched.
// It is best effort: a temp file that cannot be removed (a read-only
// folder) is emptied, and the next write of its secret removes it.
func (s *Store) removeLeftovers() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	stems := map[string]bool{}
	for _, e := range entries {
		if stateName, ok := tempOf(e.Name()); ok {
			stems[strings.TrimSuffix(stateName, ".json")] = true
		}
	}
	for stem := range stems {
		p := paths{name: stem, state: filepath.Join(s.dir, stem+".json"), lock: filepath.Join(s.dir, stem+".lock")}
		ctx, cancel := context.WithTimeout(context.Background(), leftoverLockWait)
		unlock, err := lockFile(ctx, p.lock)
		cancel()
		if err != nil {
			continue
		}
		_ = removeTemps(p.state, s.steps)
		unlock()
	}
}

// leftoverLockWait bounds how long Open waits for a secret's lock (held by
// a live writer in another process) to remove its leftover temp files.
const leftoverLockWait = 5 * time.Second

// Name returns "file".
func (*Store) Name() string { return Name }

// Close marks the store closed; later calls fail. It holds no open files
// between calls, so there is nothing else to release.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Get returns the version that holds stage, with its value. It returns
// providers.ErrNotFound when the secret has no state file or no version holds
// stage, and an error saying the key file does not match the store when the
// value fails to open (wrong key, or a modified state file).
func (s *Store) Get(ctx context.Context, secretID string, stage providers.Stage) (providers.Version, error) {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return providers.Version{}, err
	}
	if !validStage(stage) {
		return providers.Version{}, fmt.Errorf("file: secret %q: unknown stage %q (want current, pending or previous)", secretID, stage)
	}
	st, err := s.load(p)
	if err != nil {
		return providers.Version{}, err
	}
	rec := st.holding(stage)
	if rec == nil {
		return providers.Version{}, fmt.Errorf("file: secret %q: no version holds stage %q: %w", secretID, stage, providers.ErrNotFound)
	}
	if stage == providers.StagePending && rec.has(providers.StageCurrent) {
		return providers.Version{}, fmt.Errorf("file: secret %q: the pending stage is on current version %q, which is no pending version: %w", secretID, rec.ID, providers.ErrNotFound)
	}
	value, err := s.open(p, rec)
	if err != nil {
		return providers.Version{}, err
	}
	v := rec.version()
	v.Value = value
	return v, nil
}

// List returns the metadata of the secret's versions, newest first (by the
// order they were written, not by clock). Every version the file store keeps
// holds a stage. It returns providers.ErrNotFound when the secret has no
// state file.
func (s *Store) List(ctx context.Context, secretID string) ([]providers.Version, error) {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return nil, err
	}
	st, err := s.load(p)
	if err != nil {
		return nil, err
	}
	out := make([]providers.Version, 0, len(st.Versions))
	for i := len(st.Versions) - 1; i >= 0; i-- {
		if len(st.Versions[i].Stages) > 0 {
			out = append(out, st.Versions[i].version())
		}
	}
	return out, nil
}

// PutPending seals value as a new version whose id is token and makes it
// pending, creating the secret's state file if needed.
//
// If a version of token already exists with the same value, PutPending
// changes nothing and returns that version as it is now (pending, or current
// or previous if it was promoted since). If it exists with another value, or
// a pending version of another token exists, it fails with
// providers.ErrConflict and changes nothing. A pending stage on the current
// version is no pending version: it moves to the new one.
func (s *Store) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return providers.Version{}, err
	}
	if token == "" {
		return providers.Version{}, fmt.Errorf("file: secret %q: write pending: empty rotation token", secretID)
	}
	if value.IsZero() {
		return providers.Version{}, fmt.Errorf("file: secret %q: write pending for token %q: empty value", secretID, token)
	}
	var out providers.Version
	err = s.update(ctx, p, func(st *state) (bool, error) {
		if rec := st.byID(token); rec != nil {
			stored, err := s.open(p, rec)
			if err != nil {
				return false, err
			}
			if !stored.Equal(value) {
				return false, fmt.Errorf("file: secret %q: token %q already wrote another value (a token is used for one value only): %w", secretID, token, providers.ErrConflict)
			}
			out = rec.version()
			return false, nil
		}
		if other := st.holding(providers.StagePending); other != nil {
			if !other.has(providers.StageCurrent) {
				return false, fmt.Errorf("file: secret %q: a pending version of token %q is in the way of token %q (promote or discard it first): %w", secretID, other.ID, token, providers.ErrConflict)
			}
			other.drop(providers.StagePending)
		}
		rec := &record{
			ID:      token,
			Token:   token,
			Stages:  []providers.Stage{providers.StagePending},
			Created: s.now(),
		}
		if err := s.seal(p, rec, value); err != nil {
			return false, err
		}
		st.Versions = append(st.Versions, rec)
		out = rec.version()
		return true, nil
	})
	if err != nil {
		return providers.Version{}, err
	}
	return out, nil
}

// Promote makes the pending version of req.Token current and the old current
// previous, in one atomic rename of the state file; the version that was
// previous is deleted from the file.
//
// The version is the one of req.PendingID when that is set (its token must
// then be req.Token, unless req.Token is ""), else the one of req.Token. If
// it is already current, Promote returns nil whatever req.ExpectedCurrentID
// says (a retry after a crash), after dropping a pending stage it still
// holds. Otherwise, if the current version is not req.ExpectedCurrentID ("":
// no current version) because another rotation moved it, Promote fails with
// providers.ErrConflict. If the version does not exist it fails with
// providers.ErrNotFound, and if it is not pending (it is previous,
// superseded by a later rotation) with providers.ErrConflict. A failing
// Promote changes nothing.
func (s *Store) Promote(ctx context.Context, secretID string, req providers.PromoteRequest) error {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return err
	}
	if req.Token == "" && req.PendingID == "" {
		return fmt.Errorf("file: secret %q: promote: empty rotation token", secretID)
	}
	id := req.PendingID
	if id == "" {
		id = req.Token
	}
	return s.update(ctx, p, func(st *state) (bool, error) {
		if st.isNew() {
			return false, fmt.Errorf("file: secret %q: promote version %q: secret does not exist: %w", secretID, id, providers.ErrNotFound)
		}
		rec := st.byID(id)
		if rec == nil {
			return false, fmt.Errorf("file: secret %q: promote: version %q does not exist: %w", secretID, id, providers.ErrNotFound)
		}
		if req.Token != "" && rec.Token != req.Token {
			return false, fmt.Errorf("file: secret %q: promote: version %q belongs to token %q, not %q: %w", secretID, id, rec.Token, req.Token, providers.ErrConflict)
		}
		if rec.has(providers.StageCurrent) {
			if !rec.has(providers.StagePending) {
				return false, nil
			}
			rec.drop(providers.StagePending)
			return true, nil
		}
		if !rec.has(providers.StagePending) {
			return false, fmt.Errorf("file: secret %q: promote: version %q is no longer pending (a later rotation superseded it, or it was discarded): %w", secretID, id, providers.ErrConflict)
		}
		cur := st.holding(providers.StageCurrent)
		curID := ""
		if cur != nil {
			curID = cur.ID
		}
		if curID != req.ExpectedCurrentID {
			return false, fmt.Errorf("file: secret %q: promote version %q: current version is %q, caller expected %q (another rotation moved it): %w",
				secretID, id, curID, req.ExpectedCurrentID, providers.ErrConflict)
		}
		if prev := st.holding(providers.StagePrevious); prev != nil {
			prev.drop(providers.StagePrevious)
		}
		if cur != nil {
			cur.drop(providers.StageCurrent)
			cur.add(providers.StagePrevious)
		}
		rec.drop(providers.StagePending)
		rec.add(providers.StageCurrent)
		st.pruneUnstaged()
		return true, nil
	})
}

// DiscardPending deletes the pending version of token from the state file, so
// its value can no longer be read. It returns nil and changes nothing when
// token holds no pending version: already discarded, never written, or
// promoted (a current or previous version is never touched here).
func (s *Store) DiscardPending(ctx context.Context, secretID, token string) error {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return err
	}
	return s.update(ctx, p, func(st *state) (bool, error) {
		rec := st.byID(token)
		if rec == nil || !rec.has(providers.StagePending) {
			return false, nil
		}
		rec.drop(providers.StagePending)
		st.pruneUnstaged()
		return true, nil
	})
}

// DiscardPendingVersion deletes the pending version whose id is versionID
// from the state file, whoever wrote it. It returns nil and changes nothing
// when versionID holds no pending stage, or is also current (that is no
// pending version).
func (s *Store) DiscardPendingVersion(ctx context.Context, secretID, versionID string) error {
	p, err := s.begin(ctx, secretID)
	if err != nil {
		return err
	}
	return s.update(ctx, p, func(st *state) (bool, error) {
		rec := st.byID(versionID)
		if rec == nil || !rec.has(providers.StagePending) || rec.has(providers.StageCurrent) {
			return false, nil
		}
		rec.drop(providers.StagePending)
		st.pruneUnstaged()
		return true, nil
	})
}

// RetireUnstaged is a no-op that returns nil: the file store deletes a
// version as soon as no stage names it (at promote and at discard), so there
// is never an unstaged version to disable or destroy.
func (s *Store) RetireUnstaged(ctx context.Context, secretID string, _ providers.RetireRequest) error {
	_, err := s.begin(ctx, secretID)
	return err
}

// begin checks the common preconditions of every call and returns the paths
// of the secret's files.
func (s *Store) begin(ctx context.Context, secretID string) (paths, error) {
	if s.closed.Load() {
		return paths{}, fmt.Errorf("file: secret %q: store is closed", secretID)
	}
	if err := ctx.Err(); err != nil {
		return paths{}, fmt.Errorf("file: secret %q: %w", secretID, err)
	}
	return s.pathsFor(secretID)
}

// update runs fn on the secret's state under the in-process mutex and the
// cross-process flock. When fn reports a change, the new state is written
// atomically (or the state file removed when no version is left).
func (s *Store) update(ctx context.Context, p paths, fn func(*state) (bool, error)) error {
	mu := s.mutexFor(p.name)
	mu.Lock()
	defer mu.Unlock()

	unlock, err := lockFile(ctx, p.lock)
	if err != nil {
		return fmt.Errorf("file: secret %q: %w", p.id, err)
	}
	defer unlock()
	if _, ok := s.leftBehind.Load(p.name); ok {
		if removeTemps(p.state, s.steps) == nil {
			s.leftBehind.Delete(p.name)
		}
	}

	st, err := s.load(p)
	if errors.Is(err, providers.ErrNotFound) {
		st = &state{Format: formatVersion, SecretID: p.id}
	} else if err != nil {
		return err
	}
	changed, err := fn(st)
	if err != nil || !changed {
		return err
	}
	if len(st.Versions) == 0 {
		// A secret exists while it has a version; with none left it is gone.
		if err := removeFile(p.state); err != nil {
			return fmt.Errorf("file: secret %q: %w", p.id, err)
		}
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("file: secret %q: encode state: %w", p.id, err)
	}
	if err := writeFileAtomic(p.state, data, s.steps); err != nil {
		// Still under the lock: remove this write's temp file if its own
		// removal failed, and any a killed writer left.
		if removeTemps(p.state, s.steps) != nil {
			s.leftBehind.Store(p.name, true)
		}
		return fmt.Errorf("file: secret %q: %w", p.id, err)
	}
	return nil
}

func (s *Store) mutexFor(name string) *sync.Mutex {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	mu, ok := s.locks[name]
	if !ok {
		mu = &sync.Mutex{}
		s.locks[name] = mu
	}
	return mu
}

// load reads and checks the state file. A missing file is
// providers.ErrNotFound.
func (s *Store) load(p paths) (*state, error) {
	f, err := openNoFollow("state file", p.state, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file: secret %q does not exist: %w", p.id, providers.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("file: secret %q: %w", p.id, err)
	}
	data, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("file: secret %q: read state file %q: %w", p.id, p.state, err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("file: secret %q: state file %q is not valid JSON (restore it from a backup): %w", p.id, p.state, err)
	}
	if st.Format != formatVersion {
		return nil, fmt.Errorf("file: secret %q: state file %q has format %d, this swarmkey reads format %d", p.id, p.state, st.Format, formatVersion)
	}
	if st.SecretID != p.id {
		return nil, fmt.Errorf("file: secret %q: state file %q belongs to secret %q (was it copied or renamed?)", p.id, p.state, st.SecretID)
	}
	for i, rec := range st.Versions {
		if rec == nil || rec.ID == "" {
			return nil, fmt.Errorf("file: secret %q: state file %q: version %d has no id", p.id, p.state, i)
		}
	}
	return &st, nil
}

// seal encrypts value into rec under a fresh random nonce, binding it to the
// secret id and rec.ID.
func (s *Store) seal(p paths, rec *record, value secret.Secret) error {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("file: secret %q: seal version %q: read random nonce: %w", p.id, rec.ID, err)
	}
	plain := value.Reveal()
	defer clear(plain)
	rec.Nonce = nonce
	rec.Ciphertext = s.aead.Seal(nil, nonce, plain, additionalData(p.id, rec.ID))
	return nil
}

// open decrypts the value of rec. Any failure is reported as a key mismatch
// or a modified file; GCM cannot tell the two apart.
func (s *Store) open(p paths, rec *record) (secret.Secret, error) {
	if len(rec.Nonce) != s.aead.NonceSize() {
		return secret.Secret{}, fmt.Errorf("file: secret %q version %q: state file %q has a malformed nonce (was it modified?)", p.id, rec.ID, p.state)
	}
	plain, err := s.aead.Open(nil, rec.Nonce, rec.Ciphertext, additionalData(p.id, rec.ID))
	if err != nil {
		return secret.Secret{}, fmt.Errorf("file: secret %q version %q: cannot decrypt: the key file %q does not match the store, or the state file %q was modified", p.id, rec.ID, s.keyFile, p.state)
	}
	defer clear(plain)
	return secret.New(plain), nil
}

// additionalData binds a ciphertext to its secret and version. Each part is
// length-prefixed so that no two (secret, version) pairs give the same bytes.
func additionalData(secretID, versionID string) []byte {
	const label = "swarmkey/file/v1"
	b := make([]byte, 0, len(label)+len(secretID)+len(versionID)+3*binary.MaxVarintLen64)
	for _, part := range []string{label, secretID, versionID} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

func validStage(s providers.Stage) bool {
	return slices.Contains(providers.Stages, s)
}

// formatVersion is the state file format this code reads and writes.
const formatVersion = 1

// state is the content of one state file.
type state struct {
	Format   int    `json:"format"`
	SecretID string `json:"secret_id"`
	// Versions in the order they were written, oldest first.
	Versions []*record `json:"versions"`
}

// record is one version in a state file. Everything but Ciphertext is in
// clear text.
type record struct {
	ID         string            `json:"id"`
	Token      string            `json:"token"`
	Stages     []providers.Stage `json:"stages"`
	Created    time.Time         `json:"created"`
	Nonce      []byte            `json:"nonce"`
	Ciphertext []byte            `json:"ciphertext"`
}

func (st *state) isNew() bool { return len(st.Versions) == 0 }

func (st *state) byID(id string) *record {
	for _, rec := range st.Versions {
		if rec.ID == id {
			return rec
		}
	}
	return nil
}

func (st *state) holding(stage providers.Stage) *record {
	for _, rec := range st.Versions {
		if rec.has(stage) {
			return rec
		}
	}
	return nil
}

// pruneUnstaged deletes the versions that no stage names.
func (st *state) pruneUnstaged() {
	st.Versions = slices.DeleteFunc(st.Versions, func(rec *record) bool { return len(rec.Stages) == 0 })
}

func (r *record) has(stage providers.Stage) bool { return slices.Contains(r.Stages, stage) }

func (r *record) drop(stage providers.Stage) {
	r.Stages = slices.DeleteFunc(r.Stages, func(s providers.Stage) bool { return s == stage })
}

// add adds stage, keeping stages in the order of providers.Stages.
func (r *record) add(stage providers.Stage) {
	if r.has(stage) {
		return
	}
	r.Stages = append(r.Stages, stage)
	slices.SortFunc(r.Stages, func(a, b providers.Stage) int {
		return slices.Index(providers.Stages, a) - slices.Index(providers.Stages, b)
	})
}

// version returns rec's metadata, without a value.
func (r *record) version() providers.Version {
	return providers.Version{
		ID:      r.ID,
		Token:   r.Token,
		Stages:  slices.Clone(r.Stages),
		Created: r.Created,
	}
}

// paths names the files of one secret.
type paths struct {
	id    string // the secret id as callers spell it
	name  string // the escaped file name stem
	state string // Dir/name.json
	lock  string // Dir/name.lock
}

func (s *Store) pathsFor(secretID string) (paths, error) {
	name, err := escapeID(secretID)
	if err != nil {
		return paths{}, err
	}
	return paths{
		id:    secretID,
		name:  name,
		state: filepath.Join(s.dir, name+".json"),
		lock:  filepath.Join(s.dir, name+".lock"),
	}, nil
}

// maxNameLen keeps "name.json" and the temp files next to it under the
// common 255-byte file name limit.
const maxNameLen = 200

// escapeID turns a secret id into a file name stem that cannot leave the
// store directory: bytes in [A-Za-z0-9._-] stay, every other byte (including
// "/" and "%") becomes %XX. The mapping is one-to-one, so two ids never share
// a file. Empty, "." and ".." ids are refused.
func escapeID(id string) (string, error) {
	switch id {
	case "":
		return "", errors.New("file: empty secret id")
	case ".", "..":
		return "", fmt.Errorf("file: secret id %q is not allowed: use a name such as loadtest/checkout-db", id)
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			b = append(b, c)
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	if len(b) > maxNameLen {
		return "", fmt.Errorf("file: secret id %q is too long for a file name (%d bytes escaped, at most %d)", id, len(b), maxNameLen)
	}
	return string(b), nil
}
