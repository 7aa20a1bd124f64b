package rotator

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUnavailableRefusesToRetryARefusedCertificate: every error of an HTTP
// client is a *url.Error, which is a net.Error; a rollback asked that alone
// tried a certificate the client refuses eight times over some 16 s, as if
// the server were restarting. A refused connection and a server that does
// not answer in time are still worth another try.
func TestUnavailableRefusesToRetryARefusedCertificate(t *testing.T) {
	t.Parallel()
	client := &http.Client{Timeout: 200 * time.Millisecond}

	tlsServer := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsServer.Close)
	_, err := client.Get(tlsServer.URL) // the test server's certificate is not trusted
	require.Error(t, err)
	require.False(t, unavailable(err), "a refused certificate is an answer, not an outage: %v", err)

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + listener.Addr().String()
	require.NoError(t, listener.Close())
	_, err = client.Get(closed)
	require.Error(t, err)
	require.True(t, unavailable(err), "a refused connection: %v", err)

	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	_, err = client.Get(slow.URL)
	require.Error(t, err)
	require.True(t, unavailable(err), "a server that does not answer in time: %v", err)
}
