package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// translate turns a client error of op on path into one that names the
// secret, the call, the path and what to check, wrapping
// providers.ErrNotFound where it applies. The client's error is not
// wrapped: its text is rebuilt from the status and the server's messages
// (which never echo request data), with value cut out as a last guard.
func (s *Store) translate(secretID, op, path string, err error, value *secret.Secret) error {
	subject := fmt.Sprintf("vault secret %q: %s (%s/data/%s)", secretID, op, s.opts.mount(), path)
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", subject, ctxErr)
		}
	}
	var sc secret.Scrubber
	if value != nil {
		sc.Add(*value)
	}
	detail := describe(err)
	if rl := (*reloginError)(nil); errors.As(err, &rl) {
		detail += "; logging in again failed: " + rl.login.Error()
	}
	detail = sc.Text(detail)
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: the server at %s did not answer: check address (or VAULT_ADDR), ca_cert and the network path: %s", subject, s.client.Address(), detail)
	}
	switch re.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w: %s", subject, providers.ErrNotFound, detail)
	case http.StatusForbidden:
		return fmt.Errorf("%s: permission denied for swarmkey's token: compare its policy with deploy/vault/rotator.hcl (the secret's path and the pending path under %s/ need it), or the token expired: %s", subject, s.opts.pendingPrefix(), detail)
	case http.StatusBadRequest:
		return fmt.Errorf("%s: the server refused the request (is %s a KV version 2 mount?): %s", subject, s.opts.mount(), detail)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%s: the server is sealed or in maintenance: %s", subject, detail)
	}
	return fmt.Errorf("%s: %s", subject, detail)
}

// describe is the status and the server's messages of a client error, or
// the transport error's text (which names the address, never a body).
func describe(err error) string {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("HTTP %d", re.StatusCode)
		if len(re.Errors) > 0 && !re.RawError {
			msg += ": " + strings.Join(re.Errors, "; ")
		}
		return msg
	}
	return err.Error()
}

// isCASMismatch reports whether err is KV v2's answer to a write whose
// check-and-set version is not the current one.
func isCASMismatch(err error) bool {
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "check-and-set") {
			return true
		}
	}
	return false
}
