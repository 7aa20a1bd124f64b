package ssm

import (
	"context"
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// translate turns an SDK error of call op on parameter name into one that
// says which parameter, which call, what went wrong and what to check,
// wrapping providers.ErrNotFound / ErrConflict where they apply.
//
// The SDK error is not wrapped: its text repeats the service's message,
// which validation errors can fill with request fields (Parameter Store's
// allowed-pattern and length errors quote the value). For a call that
// carries a value the service message is left out, and any text that goes
// in has the values cut out as a last guard.
func (s *Store) translate(name, op string, err error, values ...*secret.Secret) error {
	region := s.client.Options().Region
	subject := fmt.Sprintf("ssm parameter %q: %s", name, op)
	var sc secret.Scrubber
	for _, v := range values {
		sc.Add(*v)
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", subject, ctxErr)
		}
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return errors.New(sc.Text(fmt.Sprintf("%s: Systems Manager in region %s did not answer: check the region, endpoint_url if set, and the network path: %v", subject, region, err)))
	}
	code := ae.ErrorCode()
	detail := code
	if msg := ae.ErrorMessage(); msg != "" && len(values) == 0 {
		detail += ": " + msg
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.ServiceRequestID() != "" {
		detail += " (request id " + re.ServiceRequestID() + ")"
	}
	detail = sc.Text(detail)
	switch code {
	case "ParameterNotFound", "ParameterVersionNotFound":
		return fmt.Errorf("%s: %w: no such parameter or version in region %s (check the name, the region and the account of the credentials): %s", subject, providers.ErrNotFound, region, detail)
	case "AccessDeniedException", "AccessDenied":
		return fmt.Errorf("%s: permission denied in region %s for the credentials swarmkey runs with (or kms:Decrypt/kms:Encrypt on the parameter's key): compare their IAM policy with deploy/aws/iam-ssm-rotator.json: %s", subject, region, detail)
	case "ParameterAlreadyExists":
		return fmt.Errorf("%s: %w: %s", subject, providers.ErrConflict, detail)
	case "ParameterMaxVersionLimitExceeded":
		return fmt.Errorf("%s: the parameter has 100 versions and its oldest carries a label, so Parameter Store keeps it: remove that label (swarmkey's RetireUnstaged removes its own): %s", subject, detail)
	case "ParameterLimitExceeded", "HierarchyLevelLimitExceededException", "ValidationException", "InvalidKeyId":
		return fmt.Errorf("%s: Parameter Store refused the request (a standard-tier value holds at most 4 KB, a name at most 15 levels; kms_key_id must name a key the credentials may use): %s", subject, detail)
	case "TooManyUpdates", "ThrottlingException":
		return fmt.Errorf("%s: throttled by Parameter Store after %d attempts with backoff; the step is retried later: %s", subject, retryMaxAttempts, detail)
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId":
		return fmt.Errorf("%s: AWS rejected the credentials in region %s: %s", subject, region, detail)
	}
	return fmt.Errorf("%s: %s", subject, detail)
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
