package aws

import (
	"context"
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// translate is translate with the store's region.
func (s *Store) translate(secretID, op string, err error, value *secret.Secret) error {
	return translate(secretID, s.client.Options().Region, op, err, value)
}

// translate turns an SDK error of call op on secretID in region into one
// that says which secret, which call, what went wrong and what to check
// (permission, region, a missing secret), and wraps providers.ErrNotFound /
// ErrConflict where they apply.
//
// The SDK error itself is not wrapped: its text repeats the service's
// message, which validation errors can fill with request fields. For a call
// that carries a value (value != nil) the service message is left out
// altogether, and any text that does go in has the value cut out as a last
// guard. Context cancellation and deadlines stay reachable with errors.Is.
func translate(secretID, region, op string, err error, value *secret.Secret) error {
	subject := fmt.Sprintf("aws secret %q: %s", secretID, op)
	// Only texts go through the scrubber, never the errors built here:
	// they wrap providers.ErrNotFound / ErrConflict, which a scrubbed error
	// would no longer unwrap to.
	var sc secret.Scrubber
	if value != nil {
		sc.Add(*value)
	}

	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", subject, ctxErr)
		}
	}

	var ae smithy.APIError
	if !errors.As(err, &ae) {
		// Transport errors (DNS, TCP, TLS, retries exhausted on them): their
		// text names the endpoint, never the request body.
		return errors.New(sc.Text(fmt.Sprintf("%s: Secrets Manager in region %s did not answer: check the region, endpoint_url if set, and the network path (proxy, VPC endpoint): %v", subject, region, err)))
	}
	code := ae.ErrorCode()
	detail := code
	if msg := ae.ErrorMessage(); msg != "" && value == nil {
		detail += ": " + msg
	}
	if id := requestID(err); id != "" {
		detail += " (request id " + id + ")"
	}
	detail = sc.Text(detail)

	switch code {
	case "ResourceNotFoundException":
		what := "no such secret"
		if op == "GetSecretValue" {
			what = "no such secret, or no version holds the stage asked for"
		}
		return fmt.Errorf("%s: %w: %s in region %s (if the secret should exist, check its name, the region and the account of the credentials): %s", subject, providers.ErrNotFound, what, region, detail)
	case "AccessDeniedException", "AccessDenied":
		return fmt.Errorf("%s: permission secretsmanager:%s denied in region %s for the credentials swarmkey runs with (or a KMS permission on the secret's key): compare their IAM policy with deploy/aws/iam-rotator.json and check the secret's resource policy: %s", subject, op, region, detail)
	case "LimitExceededException":
		return fmt.Errorf("%s: too many versions or requests: Secrets Manager keeps about 100 versions plus every version of the last 24 hours, so rotating more often than every few minutes fills the quota; wait for unlabelled versions to be deprecated and deleted, or rotate less often: %s", subject, detail)
	case "ResourceExistsException":
		return fmt.Errorf("%s: %w: %s", subject, providers.ErrConflict, detail)
	case "DecryptionFailure", "EncryptionFailure":
		return fmt.Errorf("%s: KMS refused the secret's key: grant kms:Decrypt and kms:GenerateDataKey on the key to the credentials swarmkey runs with, and check the key is enabled: %s", subject, detail)
	case "ThrottlingException", "Throttling", "TooManyRequestsException":
		return fmt.Errorf("%s: throttled by AWS after %d attempts with backoff; the step is retried later: %s", subject, retryMaxAttempts, detail)
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId":
		return fmt.Errorf("%s: AWS rejected the credentials in region %s (expired, wrong account, or a region the account has not enabled?): %s", subject, region, detail)
	}
	return fmt.Errorf("%s: %s", subject, detail)
}

// requestID is the AWS request id of a failed call, for AWS support and
// CloudTrail.
func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

// isCode reports whether err is an AWS API error with one of codes.
func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}
