package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// MaxFileSize is the largest policy file Load reads: 8 MiB. A file laid out
// in blocks is decoded a batch of policies at a time (split.go), but one
// that is not (a flow-style list, anchors shared between policies) is
// decoded as one tree, and yaml.v3's node tree and the index of it take
// many times the file's size: a 52 MB file took 2.4 GB, one at the cap
// (about 30,000 PostgreSQL policies) about 630 MiB. More policies go in
// more files, reached through include:; the cap holds for each file.
const MaxFileSize = 8 << 20

// tooLargeError is a policy file over MaxFileSize.
type tooLargeError struct {
	// size is the file's size, or -1 when only the read found it too large
	// (not a regular file, or one that grew while it was read).
	size int64
}

func (e *tooLargeError) Error() string {
	const what = "; split it into files that a main file reaches through include: (the limit holds for each file)"
	if e.size < 0 {
		return fmt.Sprintf("more than %s, the limit of a policy file%s", formatSize(MaxFileSize), what)
	}
	return fmt.Sprintf("the file is %s, over the limit of a policy file, %s%s", formatSize(e.size), formatSize(MaxFileSize), what)
}

// readPolicyFile reads a policy file of at most MaxFileSize bytes. It checks
// the size before reading, and reads no more than the cap and a byte
// whatever the size said: a device or a pipe has none, and a file may grow.
func readPolicyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if fi.Mode().IsRegular() {
		if fi.Size() > MaxFileSize {
			return nil, &tooLargeError{size: fi.Size()}
		}
		buf.Grow(int(fi.Size()) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, &os.PathError{Op: "read", Path: name, Err: err}
	}
	if buf.Len() > MaxFileSize {
		return nil, &tooLargeError{size: -1}
	}
	return buf.Bytes(), nil
}

// formatSize prints a byte count in MiB, the unit of the cap, and in bytes:
// "52 MiB (54525952 bytes)", "8.0 MiB (8388609 bytes)".
func formatSize(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	}
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}
