package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/api/wire"
)

// DefaultListen is where `swarmkey serve` serves the API unless told
// otherwise: the folder is the systemd unit's RuntimeDirectory.
const DefaultListen = "unix:/run/swarmkey/swarmkey.sock"

// ErrSocketFolderMissing: the folder of a unix socket does not exist. Listen
// never creates it: its owner and mode are the operator's (systemd's
// RuntimeDirectory= makes /run/swarmkey).
var ErrSocketFolderMissing = errors.New("the socket's folder does not exist")

// ErrSocketInUse: another process answers on the unix socket.
var ErrSocketInUse = errors.New("another process serves this socket")

// Listen opens the API's listener from spec:
//
//   - unix:/path — a unix socket, mode 0660 (owner and group may connect).
//     A socket file left by a process that died is replaced; one that
//     another process still answers on is ErrSocketInUse; a missing folder
//     is ErrSocketFolderMissing. The file is removed when the listener
//     closes.
//   - tcp:HOST:PORT — TCP. With certFile and keyFile it serves TLS (1.2 or
//     later). Without them HOST must be a loopback address (127.0.0.1, ::1,
//     localhost): bearer tokens do not cross a network in clear text.
//
// Errors say what was wrong and what to do; the caller adds the flag name.
func Listen(spec, certFile, keyFile string) (net.Listener, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("TLS needs both a certificate and its key (--api-tls-cert and --api-tls-key)")
	}
	kind, addr, ok := strings.Cut(spec, ":")
	switch {
	case ok && kind == "unix":
		if certFile != "" {
			return nil, errors.New("TLS is for tcp: listeners; a unix socket is protected by its file mode")
		}
		return listenUnix(addr)
	case ok && kind == "tcp":
		return listenTCP(addr, certFile, keyFile)
	}
	return nil, fmt.Errorf("%q: use unix:/path/to.sock or tcp:HOST:PORT", spec)
}

func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("unix socket %q: give an absolute path", path)
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("unix socket %s: %w: create %s (under systemd, RuntimeDirectory=swarmkey does)",
			path, ErrSocketFolderMissing, filepath.Dir(path))
	}
	if info, err := os.Lstat(path); err == nil {
		if info.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("unix socket %s: a file that is not a socket is in the way; remove it or choose another path", path)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("unix socket %s: %w (another swarmkey serve?): stop it or choose another --api-listen", path, ErrSocketInUse)
		}
		// Nobody answers: a socket left by a process that died.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("unix socket %s: remove the stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("unix socket %s: chmod 0660: %w", path, err)
	}
	return ln, nil
}

func listenTCP(addr, certFile, keyFile string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tcp:%s: %v: use tcp:HOST:PORT, such as tcp:127.0.0.1:8443", addr, err)
	}
	if certFile == "" && !wire.IsLoopback(host) {
		return nil, fmt.Errorf("tcp:%s is not a loopback address, so the API needs TLS: give --api-tls-cert and --api-tls-key (bearer tokens must not cross a network in clear text)", addr)
	}
	var cfg *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp:%s: %w", addr, err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}
