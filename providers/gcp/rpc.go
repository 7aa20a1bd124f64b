package gcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// permissions names the IAM permission each call needs, for the message of a
// PERMISSION_DENIED error (deploy/gcp/roles.md lists them all).
var permissions = map[string]string{
	"GetSecret":            "secretmanager.secrets.get",
	"CreateSecret":         "secretmanager.secrets.create",
	"UpdateSecret":         "secretmanager.secrets.update",
	"AddSecretVersion":     "secretmanager.versions.add",
	"AccessSecretVersion":  "secretmanager.versions.access",
	"GetSecretVersion":     "secretmanager.versions.get",
	"ListSecretVersions":   "secretmanager.versions.list",
	"DisableSecretVersion": "secretmanager.versions.disable",
	"DestroySecretVersion": "secretmanager.versions.destroy",
}

// errEtagMoved marks an UpdateSecret refused because the secret changed since
// it was read. It wraps providers.ErrConflict, so a caller that does not
// retry reports a conflict.
var errEtagMoved = fmt.Errorf("the secret changed since it was read (etag mismatch): %w", providers.ErrConflict)

// callError is an error from one Secret Manager call. It keeps the status
// code and, only for calls that carry no secret value, the server's message:
// the message of a failed AddSecretVersion or AccessSecretVersion could echo
// the payload, so it is dropped, and any message that contains the value
// being written is dropped as well. The original gRPC error is not kept, so
// nothing downstream can reach its text through errors.As.
type callError struct {
	call string
	code codes.Code
	msg  string
	kind error // providers.ErrNotFound, providers.ErrConflict or nil
}

func (e *callError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: ", e.call)
	switch e.code {
	case codes.NotFound:
		b.WriteString("not found")
		switch e.call {
		case "GetSecret", "UpdateSecret", "AddSecretVersion", "ListSecretVersions":
			b.WriteString(": no such secret (if it should exist, check the secret id and the project in its name)")
		}
	case codes.PermissionDenied:
		fmt.Fprintf(&b, "permission denied: the daemon's identity needs %s on the secret (a role in deploy/gcp/roles.md); "+
			"check the project too: Secret Manager answers PERMISSION_DENIED for a project the identity cannot see", permissions[e.call])
	case codes.Unauthenticated:
		b.WriteString("unauthenticated: no valid credentials (Application Default Credentials: run `gcloud auth application-default login` or attach a service account)")
	case codes.FailedPrecondition:
		b.WriteString("FailedPrecondition")
		if e.call == "AccessSecretVersion" {
			b.WriteString(": the version is disabled or destroyed")
		}
	case codes.Unavailable:
		b.WriteString("Unavailable: Secret Manager did not answer (check the endpoint if one is set, and the network path: proxy, firewall, Private Service Connect)")
	default:
		b.WriteString(e.code.String())
	}
	if e.msg != "" {
		fmt.Fprintf(&b, " (%s)", e.msg)
	}
	return b.String()
}

func (e *callError) Unwrap() error { return e.kind }

// wrapCall translates err from call. value, if not zero, is the
// value the call carried or returned; a server message containing it is
// dropped.
func wrapCall(call string, err error, value secret.Secret) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", call, err)
	}
	st, _ := status.FromError(err)
	e := &callError{call: call, code: st.Code()}
	switch call {
	case "AddSecretVersion", "AccessSecretVersion":
	default:
		e.msg = st.Message()
		if !value.IsZero() && bytes.Contains([]byte(e.msg), value.Reveal()) {
			e.msg = ""
		}
	}
	switch st.Code() {
	case codes.NotFound:
		e.kind = providers.ErrNotFound
	case codes.Canceled:
		return fmt.Errorf("%s: %w", call, context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", call, context.DeadlineExceeded)
	}
	return e
}

func (s *Store) getSecret(ctx context.Context, name string) (*secretmanagerpb.Secret, error) {
	sec, err := s.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	return sec, wrapCall("GetSecret", err, secret.Secret{})
}

// updateSecret writes the aliases and/or annotations (nil = leave alone)
// under etag. A stale etag is errEtagMoved: the Secret Manager etag guide says
// FAILED_PRECONDITION; ABORTED (what AIP-154 prescribes) is accepted too.
func (s *Store) updateSecret(ctx context.Context, name, etag string, aliases map[string]int64, annotations map[string]string) (*secretmanagerpb.Secret, error) {
	req := &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: name, Etag: etag},
		UpdateMask: &fieldmaskpb.FieldMask{},
	}
	if aliases != nil {
		req.Secret.VersionAliases = aliases
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "version_aliases")
	}
	if annotations != nil {
		req.Secret.Annotations = annotations
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "annotations")
	}
	sec, err := s.client.UpdateSecret(ctx, req)
	if c := status.Code(err); c == codes.FailedPrecondition || c == codes.Aborted {
		return nil, fmt.Errorf("UpdateSecret: %w", errEtagMoved)
	}
	return sec, wrapCall("UpdateSecret", err, secret.Secret{})
}

func (s *Store) createSecret(ctx context.Context, name, secretID string) (*secretmanagerpb.Secret, error) {
	sec, err := s.client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   "projects/" + s.opts.Project,
		SecretId: secretID,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			},
			Labels: s.opts.Labels,
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		// Another writer created it between our read and now.
		return s.getSecret(ctx, name)
	}
	return sec, wrapCall("CreateSecret", err, secret.Secret{})
}

// crcTable is made on first use: crc32 builds its Castagnoli tables then.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// addVersion writes value as a new version, with its CRC32C so that the
// service rejects a payload damaged on the way.
func (s *Store) addVersion(ctx context.Context, name string, value secret.Secret) (*secretmanagerpb.SecretVersion, error) {
	data := value.Reveal()
	sum := int64(crc32.Checksum(data, crcTable()))
	v, err := s.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  name,
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
	})
	clear(data)
	return v, wrapCall("AddSecretVersion", err, value)
}

// access reads version ("3" or an alias) and checks the payload's CRC32C
// when the service sent one.
func (s *Store) access(ctx context.Context, name, version string) (int64, secret.Secret, error) {
	resp, err := s.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name + "/versions/" + version})
	if err != nil {
		return 0, secret.Secret{}, fmt.Errorf("version %s: %w", version, wrapCall("AccessSecretVersion", err, secret.Secret{}))
	}
	data := resp.GetPayload().GetData()
	defer clear(data)
	if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crcTable())) != *sum {
		return 0, secret.Secret{}, fmt.Errorf("AccessSecretVersion %s: payload checksum mismatch", version)
	}
	n, err := versionNumber(resp.GetName())
	if err != nil {
		return 0, secret.Secret{}, fmt.Errorf("AccessSecretVersion %s: %w", version, err)
	}
	return n, secret.New(data), nil
}

func (s *Store) getVersion(ctx context.Context, name string, n int64) (*secretmanagerpb.SecretVersion, error) {
	v, err := s.client.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: versionName(name, n)})
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", n, wrapCall("GetSecretVersion", err, secret.Secret{}))
	}
	return v, nil
}

// disable disables version n. A version already destroyed is left alone:
// its value is gone, which is all that disabling wants.
func (s *Store) disable(ctx context.Context, name string, n int64) error {
	_, err := s.client.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: versionName(name, n)})
	if status.Code(err) == codes.FailedPrecondition {
		return nil
	}
	if err != nil {
		return fmt.Errorf("version %d: %w", n, wrapCall("DisableSecretVersion", err, secret.Secret{}))
	}
	return nil
}

func (s *Store) destroy(ctx context.Context, name string, n int64) error {
	_, err := s.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: versionName(name, n)})
	if status.Code(err) == codes.FailedPrecondition {
		return nil // already destroyed
	}
	if err != nil {
		return fmt.Errorf("version %d: %w", n, wrapCall("DestroySecretVersion", err, secret.Secret{}))
	}
	return nil
}

// eachVersion calls fn for the secret's versions, newest first, until fn
// returns false.
func (s *Store) eachVersion(ctx context.Context, name string, fn func(*secretmanagerpb.SecretVersion) (bool, error)) error {
	it := s.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: name})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return wrapCall("ListSecretVersions", err, secret.Secret{})
		}
		more, err := fn(v)
		if err != nil || !more {
			return err
		}
	}
}

// newestVersion returns the highest version number, 0 when there is none.
// ListSecretVersions returns versions newest first, so one entry of one page
// is enough.
func (s *Store) newestVersion(ctx context.Context, name string) (int64, error) {
	it := s.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: name, PageSize: 1})
	v, err := it.Next()
	if errors.Is(err, iterator.Done) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapCall("ListSecretVersions", err, secret.Secret{})
	}
	n, err := versionNumber(v.GetName())
	if err != nil {
		return 0, fmt.Errorf("ListSecretVersions: %w", err)
	}
	return n, nil
}
