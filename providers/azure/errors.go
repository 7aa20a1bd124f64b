package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/swarmkey/swarmkey/providers"
)

// codeSecretDisabled is Key Vault's inner error code for a read of a
// disabled version (403, "Operation get is not allowed on a disabled
// secret.").
const codeSecretDisabled = "SecretDisabled"

func isNotFound(err error) bool {
	re, ok := responseError(err)
	return ok && re.StatusCode == http.StatusNotFound
}

// isDisabled reports whether err is Key Vault's refusal to read a disabled
// version: 403 with the code SecretDisabled, which the service gives as the
// inner error code of its body (top-level code "Forbidden", as for a
// missing permission) and the SDK's fake server as the error code.
func isDisabled(err error) bool {
	re, ok := responseError(err)
	if !ok || re.StatusCode != http.StatusForbidden {
		return false
	}
	if re.ErrorCode == codeSecretDisabled {
		return true
	}
	if re.RawResponse == nil {
		return false
	}
	body, perr := runtime.Payload(re.RawResponse)
	if perr != nil {
		return false
	}
	var doc struct {
		Error struct {
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &doc) == nil && doc.Error.InnerError.Code == codeSecretDisabled
}

// translate turns a client error of op on the Key Vault secret name into
// one that names the secret, the call and what to check, wrapping
// providers.ErrNotFound where it applies. The SDK's error is not wrapped:
// its text holds the response body; the message is rebuilt from the status
// and error code, which never hold request data.
func (s *Store) translate(secretID, op, name string, err error) error {
	subject := fmt.Sprintf("azure secret %q: %s (%s in %s)", secretID, op, name, s.opts.VaultURL)
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", subject, ctxErr)
		}
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return fmt.Errorf("%s: authentication failed: check the identity DefaultAzureCredential found (AZURE_CLIENT_ID, AZURE_TENANT_ID, the managed identity, or `az login`) and tenant_id", subject)
	}
	re, ok := responseError(err)
	if !ok {
		// A transport error or a credential that found no identity: its
		// text names the host or the credentials tried, never a value.
		return fmt.Errorf("%s: %s", subject, err.Error())
	}
	detail := fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
	switch re.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w: %s", subject, providers.ErrNotFound, detail)
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: the vault did not accept swarmkey's token (wrong tenant?): %s", subject, detail)
	case http.StatusForbidden:
		return fmt.Errorf("%s: permission denied: swarmkey's identity needs the role Key Vault Secrets Officer on %s and its staging secret %s (or get, set and list in the vault's access policy), and the vault's firewall must admit it: %s", subject, secretID, s.stagingName(secretID), detail)
	case http.StatusConflict:
		return fmt.Errorf("%s: the secret is deleted but recoverable: recover it (az keyvault secret recover) or purge it before swarmkey writes it again: %s", subject, detail)
	case http.StatusBadRequest:
		return fmt.Errorf("%s: Key Vault refused the request: a value over 25 KB, or a rotation token over the 256 characters of a tag value: %s", subject, detail)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%s: Key Vault throttled the request after the client's retries: %s", subject, detail)
	}
	return fmt.Errorf("%s: %s", subject, detail)
}
