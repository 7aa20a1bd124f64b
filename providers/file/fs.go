package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock on path (created with mode 0600 if
// missing) and returns the function that releases it. It polls with a
// non-blocking flock so that a cancelled ctx stops the wait. Lock files are
// never deleted: deleting one while another process waits on it would let two
// processes hold "the" lock at once.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := openNoFollow("lock file", path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %q: %w", path, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("wait for lock %q: %w", path, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
	return func() {
		// Closing the descriptor releases the flock.
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

// openNoFollow opens path, the lock or state file called what, never
// through a symbolic link (O_NOFOLLOW: a link planted there could point at
// any file the process may read or write) and without blocking on a FIFO
// (O_NONBLOCK); what it opens must be a regular file. A missing file is
// returned as the *os.PathError of open, for errors.Is(err, fs.ErrNotExist).
func openNoFollow(what, path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK, perm)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s %q is a symbolic link, and the store never follows a link for its state and lock files: remove the link (and find out who could write in %s)",
			what, path, filepath.Dir(path))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat %s %q: %w", what, path, err)
	}
	if !info.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("%s %q is not a regular file (mode %s): remove it (and find out who could write in %s)", what, path, info.Mode(), filepath.Dir(path))
	}
	return f, nil
}

// writeSteps are the file system calls of a write that can fail half-way
// and leave a temp file behind. They are the os functions; tests replace
// them on a Store to fail a write at a chosen step (as root, a folder made
// read-only does not stop a write: root ignores permission bits).
type writeSteps struct {
	sync   func(*os.File) error
	rename func(oldpath, newpath string) error
	remove func(path string) error
}

var osSteps = writeSteps{sync: (*os.File).Sync, rename: os.Rename, remove: os.Remove}

// tempSuffix is what a temp file adds to the state file's name: ".tmp-"
// and random hex digits. tempOf recognises it, and nothing else: no state
// or lock file name ends in hex digits after ".json.tmp-" (a state file
// name ends in ".json", a lock file name in ".lock").
const tempSuffix = ".tmp-"

// tempOf reports whether the directory entry name is a temp file of a
// state file, and returns that state file's name.
func tempOf(name string) (stateName string, ok bool) {
	i := strings.LastIndex(name, tempSuffix)
	if i < 0 || !strings.HasSuffix(name[:i], ".json") {
		return "", false
	}
	digits := name[i+len(tempSuffix):]
	if digits == "" {
		return "", false
	}
	for _, c := range digits {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return name[:i], true
}

// writeFileAtomic replaces path with data so that a reader sees either the old
// or the new content, never a mix, and the new content survives a crash once
// it returns: write a temp file in the same directory (mode 0600), fsync it,
// rename it over path, fsync the directory. Neither step follows a link:
// the temp file is created exclusively, and rename replaces a link at path
// rather than writing through it.
//
// The temp file holds a whole sealed state, so it never outlives a failed
// write: it is emptied, then removed. When the removal fails too (a folder
// made read-only mid-way), the empty file is left for removeTemps, which
// the next write of the secret and Open run under the secret's lock.
func writeFileAtomic(path string, data []byte, steps writeSteps) (err error) {
	dir := filepath.Dir(path)
	tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if renamed {
			_ = tmp.Close()
			return
		}
		if err == nil {
			return
		}
		_ = tmp.Truncate(0)
		_ = tmp.Close()
		if rmErr := steps.remove(tmp.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = fmt.Errorf("%w; the temp file %q could not be removed (%v): it was emptied, and the next write of this secret or the next start removes it",
				err, tmp.Name(), rmErr)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := steps.sync(tmp); err != nil {
		return fmt.Errorf("fsync temp file: %w", err)
	}
	// Renamed while still open: were it closed first, a failed rename
	// could no longer empty it through this descriptor.
	if err := steps.rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename temp file over state file: %w", err)
	}
	renamed = true
	return syncDir(dir)
}

// createTemp creates path's temp file exclusively, mode 0600, never through
// a link.
func createTemp(path string) (*os.File, error) {
	for range 100 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("create temp file: %w", err)
		}
		name := path + tempSuffix + hex.EncodeToString(b[:])
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create temp file: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("create temp file next to %q: 100 names taken", path)
}

// removeTemps removes the temp files of the state file at statePath that a
// killed writer, or a failed write whose removal failed, left behind. The
// caller holds the secret's lock, so no writer is using them. Each is
// emptied before it is removed, so a removal that fails leaves nothing
// decryptable.
func removeTemps(statePath string, steps writeSteps) error {
	dir, base := filepath.Split(statePath)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return fmt.Errorf("read store directory: %w", err)
	}
	var errs []error
	removed := false
	for _, e := range entries {
		if stateName, ok := tempOf(e.Name()); !ok || stateName != base || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if f, err := os.OpenFile(name, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0); err == nil {
			_ = f.Truncate(0)
			_ = f.Close()
		}
		if err := steps.remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove leftover temp file %q: %w", name, err))
			continue
		}
		removed = true
	}
	if removed {
		errs = append(errs, syncDir(filepath.Clean(dir)))
	}
	return errors.Join(errs...)
}

// removeFile removes path (a missing file is fine) and fsyncs its directory.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a rename or create in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %q: %w", dir, err)
	}
	return nil
}
