package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ensureKeyFolder creates the folder of keyFile (and its missing parents)
// mode 0700 when it does not exist, and returns it then; "" when it
// existed. A new user's first `keygen /etc/swarmkey/secrets.key` should not
// end in "no such file or directory".
func ensureKeyFolder(keyFile string) (string, error) {
	dir := filepath.Dir(keyFile)
	if _, err := os.Stat(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return "", nil // there, or GenerateKey reports what is wrong with it
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("keygen: the folder %s does not exist and could not be created: %w", dir, err)
	}
	return dir, nil
}
