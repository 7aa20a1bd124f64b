package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/secret"
)

// APISource holds leases and reads credentials through the runner HTTP API,
// as one runner token: for machines without access to the database or the
// stores. The API audits the reads.
type APISource struct {
	client *api.Client
	url    string
}

// NewAPISource returns a source that calls the API at url (see
// api.NewClient) with token; a URL it cannot use is an InputError.
func NewAPISource(url string, token secret.Secret) (*APISource, error) {
	c, err := api.NewClient(url, token)
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
	var e *api.Error
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
	var e *api.Error
	if errors.As(err, &e) && e.Status == 410 {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}

// End ends the lease.
func (s *APISource) End(ctx context.Context, id string) error {
	return s.client.EndLease(ctx, id)
}

// Read reads the policies' current credentials, one request each, in order;
// the API records each read under the token before it answers, so the lease
// and run are not sent.
func (s *APISource) Read(ctx context.Context, names []string, _, _ string, each func(string, map[string]secret.Secret) error) error {
	for _, name := range names {
		c, err := s.client.Credential(ctx, name)
		if err != nil {
			return s.apiError(fmt.Sprintf("read policy %q", name), err)
		}
		if err := each(name, c.Fields); err != nil {
			return err
		}
	}
	return nil
}
