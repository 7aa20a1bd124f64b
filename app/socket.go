package app

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/swarmkey/swarmkey/api"
)

// privateSocketDir is where serve puts the API's socket when the default
// folder (/run/swarmkey, made by the systemd unit) is missing, as it is for
// a daemon started by hand: $XDG_RUNTIME_DIR/swarmkey when the session has
// one, else swarmkey-UID in the temporary folder. Either is the user's own,
// mode 0700, so only the user (who runs exec and Locust) can connect.
func privateSocketDir() string {
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "swarmkey")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("swarmkey-%d", os.Getuid()))
}

// listenPrivateSocket serves the API on the private socket instead of the
// default one, whose folder is missing (missing is that error); it returns
// the listener and its address, logged so that `exec --api` and the plugin's
// SWARMKEY_API can be given it. A folder there that another user owns or
// others may enter is refused: in /tmp anyone could have made it first.
func (s *Session) listenPrivateSocket(missing error) (net.Listener, string, error) {
	dir := privateSocketDir()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, "", fmt.Errorf("%w; and the private socket folder %s: %w", missing, dir, err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w; and the private socket folder %s: %w", missing, dir, err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !info.IsDir() || info.Mode().Perm()&0o077 != 0 || !ok || int(st.Uid) != os.Getuid() {
		return nil, "", fmt.Errorf("%w; and %s is not a folder of yours with mode 0700, so it is not used: remove it, or give --api-listen", missing, dir)
	}
	address := "unix:" + filepath.Join(dir, "swarmkey.sock")
	ln, err := api.Listen(address, "", "")
	if err != nil {
		return nil, "", err
	}
	s.Logger.Warn("the default API socket's folder is missing; serving the HTTP API on a private socket instead: give its address to exec --api and the plugin's SWARMKEY_API (or create /run/swarmkey, as the systemd unit does)",
		"listen", address, "default", api.DefaultListen)
	return ln, address, nil
}
