package file

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
	"github.com/swarmkey/swarmkey/secret"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		NewBackend: func(t *testing.T) providertest.Backend {
			opts := newOptions(t)
			return providertest.Backend{
				Open: func(t *testing.T) providers.Store {
					return openStore(t, opts)
				},
				// A slash in every id, so the suite also runs through the
				// file name escaping.
				SecretID: func(name string) string { return "loadtest/" + name },
				// Only a hand edit of the state file can do this; the
				// store's own read-modify-write stands in for it.
				PendingOnCurrent: func(t *testing.T, id string) {
					s := openStore(t, opts)
					p, err := s.pathsFor(id)
					require.NoError(t, err)
					require.NoError(t, s.update(t.Context(), p, func(st *state) (bool, error) {
						if other := st.holding(providers.StagePending); other != nil {
							other.drop(providers.StagePending)
						}
						st.holding(providers.StageCurrent).add(providers.StagePending)
						return true, nil
					}))
				},
			}
		},
	})
}

// newOptions returns options for a store in a fresh temp dir with a fresh key.
func newOptions(t *testing.T) Options {
	t.Helper()
	root := t.TempDir()
	keyFile := filepath.Join(root, "store.key")
	require.NoError(t, GenerateKey(keyFile))
	return Options{Dir: filepath.Join(root, "secrets"), KeyFile: keyFile}
}

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func token(t *testing.T) string {
	t.Helper()
	u, err := uuid.NewV7()
	require.NoError(t, err)
	return u.String()
}

// value returns a credential document and its password.
func value(t *testing.T) (secret.Secret, string) {
	t.Helper()
	password := "pw-" + strings.ReplaceAll(token(t)+token(t), "-", "")
	doc, err := json.Marshal(map[string]string{"username": "loadtest", "password": password})
	require.NoError(t, err)
	return secret.New(doc), password
}

// rotate writes and promotes one version of a fresh token over expected.
func rotate(t *testing.T, s *Store, id, expected string) (string, secret.Secret, string) {
	t.Helper()
	tok := token(t)
	v, pw := value(t)
	_, err := s.PutPending(t.Context(), id, tok, v)
	require.NoError(t, err)
	require.NoError(t, s.Promote(t.Context(), id, providers.PromoteRequest{Token: tok, ExpectedCurrentID: expected}))
	return tok, v, pw
}

func TestOpenCreatesDirWithMode0700(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	opts.Dir = filepath.Join(opts.Dir, "nested")
	s := openStore(t, opts)
	require.Equal(t, "file", s.Name())

	info, err := os.Stat(opts.Dir)
	require.NoError(t, err)
	require.True(t, info.IsDir())
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())
}

func TestOpenRefusesADirOthersMayWrite(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777, 0o1777} {
		opts := newOptions(t)
		require.NoError(t, os.Mkdir(opts.Dir, 0o700))
		// Chmod, not Mkdir's mode: the umask would take the bits off.
		require.NoError(t, os.Chmod(opts.Dir, mode))
		_, err := Open(opts)
		require.Error(t, err, "mode %04o", mode)
		require.ErrorContains(t, err, opts.Dir)
		require.ErrorContains(t, err, fmt.Sprintf("%04o", mode.Perm()))
		require.ErrorContains(t, err, "chmod 700 "+opts.Dir)
	}
	// Readable is not writable: 0750 and 0755 open (the files are 0600 and
	// sealed; a listing shows secret ids, which are not secret).
	for _, mode := range []os.FileMode{0o700, 0o750, 0o755} {
		opts := newOptions(t)
		require.NoError(t, os.Mkdir(opts.Dir, 0o700))
		require.NoError(t, os.Chmod(opts.Dir, mode))
		openStore(t, opts)
	}
}

// A link planted where a state or lock file should be is an error: nothing
// is read through it, and nothing is written through it.
func TestStoreNeverFollowsALinkForItsFiles(t *testing.T) {
	t.Parallel()
	const id = "loadtest/checkout-db"
	name, err := escapeID(id)
	require.NoError(t, err)

	for _, file := range []string{"state", "lock"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			opts := newOptions(t)
			s := openStore(t, opts)
			// A valid state file of the same secret outside the store, so
			// a store that followed the link would read a version from it.
			other := openStore(t, Options{Dir: filepath.Join(t.TempDir(), "elsewhere"), KeyFile: opts.KeyFile})
			tok, _, _ := rotate(t, other, id, "")
			outside := filepath.Join(other.dir, name+"."+map[string]string{"state": "json", "lock": "lock"}[file])
			before, err := os.ReadFile(outside)
			require.NoError(t, err)

			link := filepath.Join(opts.Dir, name+"."+map[string]string{"state": "json", "lock": "lock"}[file])
			require.NoError(t, os.Symlink(outside, link))

			if file == "state" {
				_, err := s.Get(t.Context(), id, providers.StageCurrent)
				require.Error(t, err)
				require.NotErrorIs(t, err, providers.ErrNotFound)
				require.ErrorContains(t, err, link)
				require.ErrorContains(t, err, "symbolic link")
				_, err = s.List(t.Context(), id)
				require.ErrorContains(t, err, "symbolic link")
			}
			v, _ := value(t)
			_, err = s.PutPending(t.Context(), id, token(t), v)
			require.Error(t, err)
			require.ErrorContains(t, err, link)
			require.ErrorContains(t, err, "symbolic link")
			require.ErrorContains(t, s.Promote(t.Context(), id, providers.PromoteRequest{Token: tok}), "symbolic link")
			require.ErrorContains(t, s.DiscardPending(t.Context(), id, tok), "symbolic link")

			after, err := os.ReadFile(outside)
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing is written through the link")
			fi, err := os.Lstat(link)
			require.NoError(t, err)
			require.Equal(t, os.ModeSymlink, fi.Mode()&os.ModeSymlink, "the link is left for the operator to look at")
		})
	}

	// O_CREATE through a dangling link would create its target.
	t.Run("dangling lock link", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		s := openStore(t, opts)
		outside := filepath.Join(t.TempDir(), "planted")
		require.NoError(t, os.Symlink(outside, filepath.Join(opts.Dir, name+".lock")))
		v, _ := value(t)
		_, err := s.PutPending(t.Context(), id, token(t), v)
		require.ErrorContains(t, err, "symbolic link")
		require.NoFileExists(t, outside)
	})

	t.Run("a FIFO is refused without hanging", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		s := openStore(t, opts)
		require.NoError(t, unix.Mkfifo(filepath.Join(opts.Dir, name+".json"), 0o600))
		_, err := s.Get(t.Context(), id, providers.StageCurrent)
		require.ErrorContains(t, err, "not a regular file")
	})
}

func TestKeyFileChecks(t *testing.T) {
	t.Parallel()

	t.Run("loose permissions are refused", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		require.NoError(t, os.Chmod(opts.KeyFile, 0o644))
		_, err := Open(opts)
		require.Error(t, err)
		require.ErrorContains(t, err, opts.KeyFile)
		require.ErrorContains(t, err, "0644")
		require.ErrorContains(t, err, "chmod 600 "+opts.KeyFile)
	})

	t.Run("group-readable is refused", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		require.NoError(t, os.Chmod(opts.KeyFile, 0o640))
		_, err := Open(opts)
		require.ErrorContains(t, err, "chmod 600")
	})

	t.Run("0400 is accepted", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		require.NoError(t, os.Chmod(opts.KeyFile, 0o400))
		openStore(t, opts)
	})

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		opts.KeyFile += ".missing"
		_, err := Open(opts)
		require.ErrorContains(t, err, opts.KeyFile)
		require.ErrorContains(t, err, "does not exist")
		require.ErrorContains(t, err, "swarmkey keygen "+opts.KeyFile)
	})

	for name, content := range map[string]string{
		"bad encoding": "not base64 at all!\n",
		"too short":    base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n",
		"too long":     base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\n",
		"empty":        "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := newOptions(t)
			require.NoError(t, os.WriteFile(opts.KeyFile, []byte(content), 0o600))
			_, err := Open(opts)
			require.ErrorContains(t, err, opts.KeyFile)
			require.ErrorContains(t, err, "swarmkey keygen")
		})
	}

	// A Kubernetes secret volume: key -> ..data/key, ..data -> ..2026_…/.
	t.Run("a link to a good key file is accepted", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		mount := filepath.Join(t.TempDir(), "mount")
		require.NoError(t, os.MkdirAll(filepath.Join(mount, "..2026_01_01"), 0o700))
		require.NoError(t, os.Rename(opts.KeyFile, filepath.Join(mount, "..2026_01_01", "key")))
		require.NoError(t, os.Symlink("..2026_01_01", filepath.Join(mount, "..data")))
		require.NoError(t, os.Symlink(filepath.Join("..data", "key"), filepath.Join(mount, "key")))
		opts.KeyFile = filepath.Join(mount, "key")
		require.NoError(t, os.Chmod(opts.KeyFile, 0o400))
		openStore(t, opts)

		// The mode that counts is the target's, and the message names it.
		target := filepath.Join(mount, "..2026_01_01", "key")
		require.NoError(t, os.Chmod(target, 0o644))
		_, err := Open(opts)
		require.ErrorContains(t, err, opts.KeyFile)
		require.ErrorContains(t, err, "a link to")
		require.ErrorContains(t, err, "0644")
		require.ErrorContains(t, err, "chmod 600 "+target)
	})

	t.Run("a link to something other than a regular file is refused", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		fifo := filepath.Join(t.TempDir(), "fifo")
		require.NoError(t, unix.Mkfifo(fifo, 0o600))
		require.NoError(t, os.Remove(opts.KeyFile))
		require.NoError(t, os.Symlink(fifo, opts.KeyFile))
		_, err := Open(opts)
		require.ErrorContains(t, err, "not a regular file")
		require.ErrorContains(t, err, opts.KeyFile)
	})

	t.Run("no trailing newline is fine", func(t *testing.T) {
		t.Parallel()
		opts := newOptions(t)
		raw, err := os.ReadFile(opts.KeyFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(opts.KeyFile, bytes.TrimSpace(raw), 0o600))
		openStore(t, opts)
	})
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k")
	require.NoError(t, GenerateKey(path))

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(first, []byte("\n")))
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(first)))
	require.NoError(t, err)
	require.Len(t, key, 32)

	err = GenerateKey(path)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "refusing to overwrite")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, first, after, "the existing key must be untouched")

	other := filepath.Join(t.TempDir(), "k")
	require.NoError(t, GenerateKey(other))
	second, err := os.ReadFile(other)
	require.NoError(t, err)
	require.NotEqual(t, first, second, "keys must be random")
}

func TestWrongKeyFailsClearly(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	const id = "loadtest/checkout-db"
	_, _, pw := rotate(t, s, id, "")

	wrong := opts
	wrong.KeyFile = filepath.Join(t.TempDir(), "other.key")
	require.NoError(t, GenerateKey(wrong.KeyFile))
	other := openStore(t, wrong)

	_, err := other.Get(t.Context(), id, providers.StageCurrent)
	require.Error(t, err)
	require.ErrorContains(t, err, "does not match the store")
	require.ErrorContains(t, err, wrong.KeyFile)
	require.NotContains(t, err.Error(), pw)
	require.False(t, errors.Is(err, providers.ErrNotFound))

	// Metadata stays readable without the right key.
	vs, err := other.List(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, vs, 1)
}

func TestStateFileNeverHoldsPlaintext(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	const id = "loadtest/checkout-db"

	var passwords []string
	tok1, _, pw1 := rotate(t, s, id, "")
	passwords = append(passwords, pw1)
	_, _, pw2 := rotate(t, s, id, tok1)
	passwords = append(passwords, pw2)
	v3, pw3 := value(t)
	passwords = append(passwords, pw3)
	_, err := s.PutPending(t.Context(), id, token(t), v3)
	require.NoError(t, err)

	entries, err := os.ReadDir(opts.Dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(opts.Dir, e.Name()))
		require.NoError(t, err)
		for _, pw := range passwords {
			require.False(t, bytes.Contains(raw, []byte(pw)), "file %s holds a plaintext password", e.Name())
			require.False(t, bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(pw)))), "file %s holds a base64 password", e.Name())
		}
		info, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode of %s", e.Name())
		require.False(t, strings.Contains(e.Name(), ".tmp-"), "temp file %s left behind", e.Name())
	}
}

// rawState reads the state file of id.
func rawState(t *testing.T, s *Store, id string) (string, *state) {
	t.Helper()
	p, err := s.pathsFor(id)
	require.NoError(t, err)
	data, err := os.ReadFile(p.state)
	require.NoError(t, err)
	var st state
	require.NoError(t, json.Unmarshal(data, &st))
	return p.state, &st
}

func writeState(t *testing.T, path string, st *state) {
	t.Helper()
	data, err := json.Marshal(st)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

func TestTamperingIsDetected(t *testing.T) {
	t.Parallel()

	t.Run("flipped ciphertext byte", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, newOptions(t))
		const id = "loadtest/checkout-db"
		rotate(t, s, id, "")
		path, st := rawState(t, s, id)
		st.Versions[0].Ciphertext[0] ^= 0x01
		writeState(t, path, st)

		_, err := s.Get(t.Context(), id, providers.StageCurrent)
		require.ErrorContains(t, err, "cannot decrypt")
	})

	t.Run("version moved into another secret", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, newOptions(t))
		const a, b = "loadtest/a", "loadtest/b"
		rotate(t, s, a, "")
		rotate(t, s, b, "")
		_, stA := rawState(t, s, a)
		pathB, stB := rawState(t, s, b)
		stB.Versions[0] = stA.Versions[0]
		writeState(t, pathB, stB)

		_, err := s.Get(t.Context(), b, providers.StageCurrent)
		require.ErrorContains(t, err, "cannot decrypt")
	})

	t.Run("version id changed", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, newOptions(t))
		const id = "loadtest/checkout-db"
		rotate(t, s, id, "")
		path, st := rawState(t, s, id)
		st.Versions[0].ID = token(t)
		writeState(t, path, st)

		_, err := s.Get(t.Context(), id, providers.StageCurrent)
		require.ErrorContains(t, err, "cannot decrypt")
	})

	t.Run("whole state file copied to another secret", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, newOptions(t))
		const a, b = "loadtest/a", "loadtest/b"
		rotate(t, s, a, "")
		pathA, _ := rawState(t, s, a)
		pb, err := s.pathsFor(b)
		require.NoError(t, err)
		data, err := os.ReadFile(pathA)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(pb.state, data, 0o600))

		_, err = s.Get(t.Context(), b, providers.StageCurrent)
		require.ErrorContains(t, err, `belongs to secret "loadtest/a"`)
	})
}

func TestSecretIDsCannotEscapeDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	opts := newOptions(t)
	opts.Dir = filepath.Join(root, "store", "secrets")
	s := openStore(t, opts)

	ids := []string{"../escape", "../../escape", "a/../../b", "/etc/passwd", "./x", "..\\x", "x/..", "%2e%2e", "a\x00b", "..."}
	for _, id := range ids {
		rotate(t, s, id, "")
	}
	// Everything landed directly in Dir, nothing above or below it.
	entries, err := os.ReadDir(opts.Dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, e.IsDir(), "directory %s created in the store", e.Name())
	}
	// Each id got its own state file and a lock file.
	require.Len(t, entries, 2*len(ids))
	above, err := os.ReadDir(filepath.Dir(opts.Dir))
	require.NoError(t, err)
	require.Len(t, above, 1, "only the store dir itself is above it")
	for _, id := range ids {
		vs, err := s.List(t.Context(), id)
		require.NoError(t, err, id)
		require.Len(t, vs, 1, id)
	}

	for _, id := range []string{"", ".", ".."} {
		_, err := s.PutPending(t.Context(), id, token(t), secret.FromString(`{"password":"x"}`))
		require.Error(t, err, "id %q", id)
		require.False(t, errors.Is(err, providers.ErrNotFound) || errors.Is(err, providers.ErrConflict), "id %q: %v", id, err)
		_, err = s.Get(t.Context(), id, providers.StageCurrent)
		require.Error(t, err)
	}
}

func TestEscapeIDIsOneToOne(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, id := range []string{"a/b", "a%2Fb", "a_b", "a-b", "a.b", "a b", "A/B", "a//b", "a%b", "é"} {
		name, err := escapeID(id)
		require.NoError(t, err)
		require.NotContains(t, name, "/")
		prev, dup := seen[name]
		require.False(t, dup, "%q and %q share file name %q", id, prev, name)
		seen[name] = id
	}
}

func TestConcurrentWritersFromTwoStores(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	stores := []*Store{openStore(t, opts), openStore(t, opts)}
	const id = "loadtest/checkout-db"
	const rotationsPerWorker = 15
	const workers = 6

	// Workers run whole rotations against either store: read current,
	// write pending, promote with CAS, discard the pending version on a lost
	// CAS. Two successful promotes must never start from the same current,
	// so the successes form one chain from "" to the final current.
	var (
		mu   sync.Mutex
		next = map[string]string{} // expected current id -> promoted token
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := stores[w%2]
			ctx := t.Context()
			for range rotationsPerWorker {
				expected := ""
				if cur, err := s.Get(ctx, id, providers.StageCurrent); err == nil {
					expected = cur.ID
				} else if !errors.Is(err, providers.ErrNotFound) {
					t.Errorf("get current: %v", err)
					return
				}
				tok := token(t)
				v, _ := value(t)
				if _, err := s.PutPending(ctx, id, tok, v); err != nil {
					if !errors.Is(err, providers.ErrConflict) {
						t.Errorf("put pending: %v", err)
						return
					}
					continue
				}
				err := s.Promote(ctx, id, providers.PromoteRequest{Token: tok, ExpectedCurrentID: expected})
				if err == nil {
					mu.Lock()
					if other, dup := next[expected]; dup {
						t.Errorf("tokens %s and %s were both promoted over %q", other, tok, expected)
					}
					next[expected] = tok
					mu.Unlock()
					continue
				}
				if !errors.Is(err, providers.ErrConflict) {
					t.Errorf("promote: %v", err)
					return
				}
				if err := s.DiscardPending(ctx, id, tok); err != nil {
					t.Errorf("discard: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NotEmpty(t, next)

	var chain []string
	for at := ""; ; {
		tok, ok := next[at]
		if !ok {
			break
		}
		chain = append(chain, tok)
		at = tok
	}
	require.Len(t, chain, len(next), "successful promotes do not form one chain")

	for _, s := range stores {
		cur, err := s.Get(t.Context(), id, providers.StageCurrent)
		require.NoError(t, err)
		require.Equal(t, chain[len(chain)-1], cur.Token)
		if len(chain) > 1 {
			prev, err := s.Get(t.Context(), id, providers.StagePrevious)
			require.NoError(t, err)
			require.Equal(t, chain[len(chain)-2], prev.Token)
		}
		_, err = s.Get(t.Context(), id, providers.StagePending)
		require.ErrorIs(t, err, providers.ErrNotFound)
	}
	_, st := rawState(t, stores[0], id)
	require.LessOrEqual(t, len(st.Versions), 2, "unstaged versions were kept")
}

func TestCreatedUsesOptionsNow(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	at := time.Date(2031, 3, 4, 5, 6, 7, 8, time.UTC)
	opts.Now = func() time.Time { return at }
	s := openStore(t, opts)

	v, _ := value(t)
	put, err := s.PutPending(t.Context(), "x", token(t), v)
	require.NoError(t, err)
	require.True(t, at.Equal(put.Created))
	got, err := s.Get(t.Context(), "x", providers.StagePending)
	require.NoError(t, err)
	require.True(t, at.Equal(got.Created))
}

func TestDiscardOfOnlyVersionRemovesSecret(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	tok := token(t)
	v, _ := value(t)
	_, err := s.PutPending(t.Context(), "x", tok, v)
	require.NoError(t, err)
	require.NoError(t, s.DiscardPending(t.Context(), "x", tok))

	_, err = s.List(t.Context(), "x")
	require.ErrorIs(t, err, providers.ErrNotFound)
	p, err := s.pathsFor("x")
	require.NoError(t, err)
	_, err = os.Stat(p.state)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	t.Parallel()
	s, err := Open(newOptions(t))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.Get(t.Context(), "x", providers.StageCurrent)
	require.ErrorContains(t, err, "closed")
}

func TestCancelledContextStopsLockWait(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	p, err := s.pathsFor("x")
	require.NoError(t, err)

	// Another "process" holds the lock.
	unlock, err := lockFile(t.Context(), p.lock)
	require.NoError(t, err)
	defer unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	v, _ := value(t)
	_, err = s.PutPending(ctx, "x", token(t), v)
	require.ErrorContains(t, err, "wait for lock")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestErrorsNameSubject(t *testing.T) {
	t.Parallel()
	s := openStore(t, newOptions(t))
	_, err := s.Get(t.Context(), "loadtest/checkout-db", providers.StageCurrent)
	require.EqualError(t, err, fmt.Sprintf("file: secret %q does not exist: not found", "loadtest/checkout-db"))
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Options{Dir: "d", KeyFile: "k"}.Validate())
	_, err := Open(Options{Dir: " "})
	require.EqualError(t, err, "file store: dir: required: the directory that holds one file per secret; "+
		"key_file: required: the file that holds the AES-256 key (swarmkey keygen writes one)")
}
