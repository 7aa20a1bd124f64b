package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/api"
)

// serve runs api.HTTPServer(h, t) on a loopback port and returns its address.
func serve(t *testing.T, h http.Handler, timeouts api.Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := api.HTTPServer(h, timeouts)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// trickle connects to addr, sends head at once, then body one byte per
// second (until the server stops taking it). It returns the connection,
// bounded to 15 s in all, and the time head was sent.
func trickle(t *testing.T, addr, head, body string) (net.Conn, time.Time) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(15*time.Second)))
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	sent := time.Now()
	go func() {
		for i := range len(body) {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	return conn, sent
}

// closedWithin reads what is left on conn and requires the server to close
// it no later than bound after since.
func closedWithin(t *testing.T, r io.Reader, since time.Time, bound time.Duration) {
	t.Helper()
	_, err := io.Copy(io.Discard, r)
	elapsed := time.Since(since)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after %s (bound %s)", elapsed.Round(time.Millisecond), bound)
	}
	require.Less(t, elapsed, bound, "the connection was closed, but late")
}

var short = api.Timeouts{ReadHeader: time.Second, Read: time.Second, Write: 5 * time.Second, Idle: 10 * time.Second}

// A runner that sends its headers, then trickles the body of a lease
// request one byte per second, gets 408 and its connection closed about
// Timeouts.Read after it started, however much body it still has to send.
func TestSlowBodyIsCutOffAtItsDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr := serve(t, b.handler, short)

	body := `{"run":"slow","uses":["checkout-db"],"holder":"h:1","ttl_seconds":30}`
	conn, sent := trickle(t, addr, fmt.Sprintf("POST /v1/leases HTTP/1.1\r\nHost: swarmkey\r\n"+
		"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		b.tokens["ci"].RevealString(), len(body)), body)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	msg, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(msg))
	require.Contains(t, string(msg), "not received in time")
	require.True(t, resp.Close, "the answer says the connection closes")
	answered := time.Since(sent)
	require.GreaterOrEqual(t, answered, 900*time.Millisecond, "cut off by the read deadline, not before")
	// Closed now, not after the idle timeout (10 s).
	closedWithin(t, br, sent, 2500*time.Millisecond)

	entries, err := b.db.Audit(context.Background(), "", 10)
	require.NoError(t, err)
	require.Empty(t, entries, "no lease was taken")
}

// A client that trickles its headers is cut off at Timeouts.ReadHeader.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), short)
	conn, sent := trickle(t, addr, "GET /healthz HTTP/1.1\r\n", "Host: swarmkey\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")
	closedWithin(t, conn, sent, 2500*time.Millisecond)
}

// A handler that ignores a trickled body answers at once; the connection is
// still closed at the read deadline rather than held while the server
// drains the rest.
func TestUnreadSlowBodyDoesNotHoldTheConnection(t *testing.T) {
	t.Parallel()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), short)
	conn, sent := trickle(t, addr, "POST /healthz HTTP/1.1\r\nHost: swarmkey\r\nContent-Length: 50\r\n\r\n", strings.Repeat("x", 50))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode)
	closedWithin(t, br, sent, 2500*time.Millisecond)
}

// The read deadline is lifted once the body is read: a handler slower than
// Timeouts.Read (a slow store) keeps its request's context and answers.
func TestSlowHandlerAfterTheBodyIsNotCancelled(t *testing.T) {
	t.Parallel()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled: "+context.Cause(r.Context()).Error(), http.StatusServiceUnavailable)
		case <-time.After(1500 * time.Millisecond):
			_, _ = fmt.Fprintf(w, "read %d bytes", len(body))
		}
	}), short)
	for _, method := range []string{"POST", "GET"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"a":1}`)
		}
		req, err := http.NewRequest(method, "http://"+addr+"/", body)
		require.NoError(t, err)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		require.NoError(t, err)
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "%s: %s", method, msg)
	}
}

// Bodies over MaxBodyBytes are refused.
func TestLargeBodyIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr := serve(t, b.handler, short)
	big := `{"run":"` + strings.Repeat("r", api.MaxBodyBytes) + `"}`
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/leases", strings.NewReader(big))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.tokens["ci"].RevealString())
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(msg))
}
