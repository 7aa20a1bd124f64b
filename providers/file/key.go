package file

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// keySize is the AES-256 key length in bytes.
const keySize = 32

// GenerateKey writes a fresh random 32-byte key to path as standard base64
// text with a trailing newline, with mode 0600. It refuses to overwrite an
// existing file: replacing the key of a store makes every sealed value in it
// unreadable, so an operator who means to do that must remove the old file
// first.
func GenerateKey(path string) error {
	if path == "" {
		return errors.New("file: generate key: no key file path given")
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("file: generate key %q: read random bytes: %w", path, err)
	}
	text := base64.StdEncoding.AppendEncode(nil, key)
	text = append(text, '\n')
	clear(key)
	defer clear(text)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("file: key file %q already exists; refusing to overwrite it, since values sealed with it could no longer be read (remove it first if you really mean to replace it)", path)
	}
	if err != nil {
		return fmt.Errorf("file: generate key %q: %w", path, err)
	}
	if _, err := f.Write(text); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("file: generate key %q: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("file: generate key %q: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("file: generate key %q: close: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("file: generate key %q: %w", path, err)
	}
	return nil
}

// readKey loads the key file at path. It refuses a file that group or others
// may read or write (mode 0600 and 0400 are fine), a missing file, anything
// but a regular file, and content that is not base64 of exactly 32 bytes.
// path may be a symbolic link (a Kubernetes secret volume mounts each key as
// a chain of links): the file it ends at is what is checked and read, and
// the errors name it. Errors name the file and what to do, and never contain
// key material.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("file: no key file configured: set the key file path (create one with: swarmkey keygen PATH)")
	}
	// O_NONBLOCK: a FIFO planted as the key file must not hang the open.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file: key file %q does not exist: create one with: swarmkey keygen %s", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("file: open key file %q: %w", path, err)
	}
	defer f.Close()

	// Name the file a link ends at: that is the file whose mode counts, and
	// the one to chmod.
	name, real := fmt.Sprintf("%q", path), path
	if li, err := os.Lstat(path); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		if target, err := filepath.EvalSymlinks(path); err == nil {
			name, real = fmt.Sprintf("%q (a link to %q)", path, target), target
		}
	}
	// Stat the open file, not the path, so the mode checked is the mode of
	// the bytes read.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file: stat key file %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("file: key file %s is not a regular file (mode %s): point the key file setting at a key created with: swarmkey keygen PATH", name, info.Mode())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("file: key file %s has mode %04o, which lets group or others access it; it must be 0600 or 0400: run: chmod 600 %s (a Kubernetes secret volume: set defaultMode: 0400)", name, perm, real)
	}

	// A key file is 45 bytes; reading a bounded prefix is enough to reject
	// anything that is not one.
	raw, err := io.ReadAll(io.LimitReader(f, 4096))
	defer clear(raw)
	if err != nil {
		return nil, fmt.Errorf("file: read key file %q: %w", path, err)
	}
	text := bytes.TrimSpace(raw)

	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	m, err := base64.StdEncoding.Decode(key, text)
	if err != nil {
		// The decoder's error holds only an offset, but say nothing of the
		// content anyway.
		return nil, fmt.Errorf("file: key file %q is not base64 text of a %d-byte key: restore the right key file, or create one with: swarmkey keygen PATH", path, keySize)
	}
	key = key[:m]
	if len(key) != keySize {
		clear(key)
		return nil, fmt.Errorf("file: key file %q holds a %d-byte key, want %d bytes (base64): restore the right key file, or create one with: swarmkey keygen PATH", path, m, keySize)
	}
	return key, nil
}
