package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/config"
)

// The health server has the API's limits: a trickled header block or body
// does not hold its connection past the timeouts it was given.
func TestHealthServerCutsOffSlowClients(t *testing.T) {
	t.Parallel()
	s := &Session{Runtime: NewRuntime(&config.Config{}, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	stop, err := s.ServeHealth(addr, api.Timeouts{ReadHeader: time.Second, Read: time.Second, Write: 5 * time.Second, Idle: 10 * time.Second},
		prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(stop)

	for _, tc := range []struct {
		name, head, rest string
		answered         bool
	}{
		{"headers", "GET /healthz HTTP/1.1\r\n", "Host: swarmkey\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", false},
		{"body", "POST /healthz HTTP/1.1\r\nHost: swarmkey\r\nContent-Length: 40\r\n\r\n", "0123456789012345678901234567890123456789", true},
	} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(15*time.Second)))
		_, err = io.WriteString(conn, tc.head)
		require.NoError(t, err)
		sent := time.Now()
		go func() {
			for i := range len(tc.rest) {
				if _, err := conn.Write([]byte{tc.rest[i]}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		br := bufio.NewReader(conn)
		if tc.answered {
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, tc.name)
			_, _ = io.ReadAll(resp.Body)
			require.Equal(t, 200, resp.StatusCode, tc.name)
		}
		_, err = io.Copy(io.Discard, br)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: the connection was still open after %s", tc.name, time.Since(sent))
		require.Less(t, time.Since(sent), 2500*time.Millisecond, "%s: closed, but late", tc.name)
	}
}
