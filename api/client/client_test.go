package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/api/client"
	"github.com/swarmkey/swarmkey/secret"
)

// An answer may hold up to 1 MiB per credential it carries: a batch of two
// documents of 700 KiB each is read whole, while one credential's answer
// over 1 MiB is refused as such (not as broken JSON), so a server that is
// not swarmkey's cannot make the client read without end.
func TestAnswersAreCappedPerCredential(t *testing.T) {
	big := strings.Repeat("x", 700<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		doc := func(policy, note string) string {
			return fmt.Sprintf(`{"policy":%q,"version":"v1","fields":{"password":"pw-%s","note":%q}}`, policy, policy, note)
		}
		switch r.URL.Path {
		case "/v1/credentials":
			_, _ = fmt.Fprintf(w, `{"credentials":[%s,%s]}`, doc("a", big), doc("b", big))
		default:
			_, _ = fmt.Fprint(w, doc("huge", big+big))
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, secret.FromString("swk_token"))
	require.NoError(t, err)
	ctx := context.Background()

	creds, err := c.Credentials(ctx, []string{"a", "b"})
	require.NoError(t, err, "two credentials may take 2 MiB")
	require.Len(t, creds, 2)
	require.Equal(t, "pw-b", creds[1].Fields["password"].RevealString())

	_, err = c.Credential(ctx, "huge")
	require.ErrorContains(t, err, "GET /v1/policies/huge/credential: the answer is larger than 1048576 bytes")
}
