package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/swarmkey/swarmkey/api/client"
	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/secret"
)

// APISource holds leases and reads credentials through the runner HTTP API,
// as one runner token: for machines without access to the database or the
// stores. The API audits the reads.
type APISource struct {
	client *client.Client
	url    string
}

// NewAPISource returns a source that calls the API at url (see
// api.NewClient) with token; a URL it cannot use is an InputError.
func NewAPISource(url string, token secret.Secret) (*APISource, error) {
	c, err := client.New(url, token)
	if err != nil {
		return nil, Inputf("--api %v", err)
	}
	return &APISource{client: c, url: url}, nil
}

// ReadTokenFile reads a token from a file that only its owner may access,
// as the file store's key file: a token readable by others is no secret.
// Every problem is an InputError.
func ReadTokenFile(path string) (secret.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return secret.Secret{}, Inputf("--token-file %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return secret.Secret{}, Inputf("--token-file %s: %v", path, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return secret.Secret{}, Inputf("--token-file %s has mode %04o, which lets group or others read the token; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return secret.Secret{}, Inputf("--token-file %s: %v", path, err)
	}
	token := secret.New([]byte(strings.TrimSpace(string(data))))
	if token.IsZero() {
		return secret.Secret{}, Inputf("--token-file %s is empty: put the token `swarmkey tokens add` printed in it", path)
	}
	return token, nil
}

// Close does nothing: the API client holds nothing to close.
func (s *APISource) Close() {}

// apiError classifies an API failure: an answer 4xx means the input must
// change (an InputError), anything else (no answer, 5xx) does not.
func (s *APISource) apiError(what string, err error) error {
	var e *client.Error
	if errors.As(err, &e) && e.Status/100 == 4 {
		return Inputf("API %s: %s: %s", s.url, what, e.Message)
	}
	return fmt.Errorf("API %s: %s: %w", s.url, what, err)
}

// Start takes a lease (POST /v1/leases); the API refuses policies the token
// is not granted.
func (s *APISource) Start(ctx context.Context, req Request) (string, error) {
	l, err := s.client.StartLease(ctx, req.Run, req.Uses, req.Holder, req.TTL)
	if err != nil {
		return "", s.apiError("take the lease", err)
	}
	return l.ID, nil
}

// Heartbeat renews the lease; an answer 410 (expired or ended) is ErrGone.
func (s *APISource) Heartbeat(ctx context.Context, id string) error {
	_, err := s.client.Heartbeat(ctx, id)
	var e *client.Error
	if errors.As(err, &e) && e.Status == 410 {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}

// End ends the lease.
func (s *APISource) End(ctx context.Context, id string) error {
	return s.client.EndLease(ctx, id)
}

// Read reads the policies' current credentials in one request (POST
// /v1/credentials, wire.MaxCredentialsPerRequest policies a request), and
// gives them to each in the order of names; the API records the reads
// under the token before it answers, so the lease and run are not sent. A
// refusal names the first policy refused, and each is given nothing of its
// request. A server too old for that endpoint is read one request per
// policy (readEach).
func (s *APISource) Read(ctx context.Context, names []string, _, _ string, each func(string, map[string]secret.Secret) error) error {
	for start := 0; start < len(names); start += wire.MaxCredentialsPerRequest {
		chunk := names[start:min(start+wire.MaxCredentialsPerRequest, len(names))]
		creds, err := s.client.Credentials(ctx, chunk)
		if client.IsNoSuchEndpoint(err) {
			return s.readEach(ctx, names[start:], each)
		}
		if err != nil {
			return s.apiError(fmt.Sprintf("read %s", PolicyList(chunk)), err)
		}
		for _, c := range creds {
			if err := each(c.Policy, c.Fields); err != nil {
				return err
			}
		}
	}
	return nil
}

// readsAtOnce bounds the requests readEach has in flight.
const readsAtOnce = 8

// readEach reads the policies' credentials one request each (GET
// /v1/policies/NAME/credential), up to readsAtOnce at a time, and gives
// them to each in the order of names. It fails with the first failed read
// in that order, after every request has ended; then each is given nothing
// from that policy on.
func (s *APISource) readEach(ctx context.Context, names []string, each func(string, map[string]secret.Secret) error) error {
	answers := make([]client.Credential, len(names))
	failures := make([]error, len(names))
	var g errgroup.Group
	g.SetLimit(readsAtOnce)
	for i, name := range names {
		g.Go(func() error {
			answers[i], failures[i] = s.client.Credential(ctx, name)
			return nil
		})
	}
	_ = g.Wait() // every function returns nil: the failures are in order
	for i, name := range names {
		if failures[i] != nil {
			return s.apiError(fmt.Sprintf("read policy %q", name), failures[i])
		}
		if err := each(name, answers[i].Fields); err != nil {
			return err
		}
	}
	return nil
}

// PolicyList names policies in a message: policy "a", or policies "a", "b".
func PolicyList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	if len(quoted) == 1 {
		return "policy " + quoted[0]
	}
	return "policies " + strings.Join(quoted, ", ")
}
