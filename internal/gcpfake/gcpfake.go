// Package gcpfake is an in-process Google Cloud Secret Manager for tests: a
// gRPC server on 127.0.0.1:0, built on
// secretmanagerpb.UnimplementedSecretManagerServiceServer, implementing the
// calls swarmkey's gcp store makes with the semantics the Secret Manager API
// reference documents. Each behaviour cites what it models; where the
// reference is silent the comment says so and the fake picks the strictest
// plausible answer.
//
// A test starts one with Start and dials it with ClientOptions:
//
//	srv := gcpfake.Start(t)
//	store, err := gcp.New(ctx, gcp.Options{Project: gcpfake.Project}, srv.ClientOptions(t)...)
//
// The methods below the RPCs (Seed, AddVersion, Mutate, SetHooks …) change
// or inspect the fake directly, as another writer or a fault would, without
// going through the API. Inject arms faults of the kinds the fault proxy
// injects into AWS calls (internal/faultproxy): throttling, server errors,
// lost and held answers, another writer's hook.
//
// References (cloud.google.com/secret-manager/docs):
//   - reference/rpc/google.cloud.secretmanager.v1 (Secret, SecretVersion,
//     the request messages; mirrored in the Go types' comments in
//     cloud.google.com/go/secretmanager/apiv1/secretmanagerpb)
//   - etags ("Use entity tags for optimistic concurrency control")
//   - assign-alias-to-secret-version, creating-and-managing-annotations
package gcpfake

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// Project is the one project the fake serves; any other project is
	// PERMISSION_DENIED, as the service answers for a project the caller
	// cannot see.
	Project = "swarmkey-test"
	// Responses name resources by project number, whatever the request
	// used (the service's resource names in responses carry the number), so
	// the store must not compare returned names with the ones it built.
	ProjectNumber = "123456789012"
)

type fakeVersion struct {
	meta    *secretmanagerpb.SecretVersion
	payload []byte
}

type fakeSecret struct {
	meta     *secretmanagerpb.Secret
	versions []*fakeVersion // versions[i] is version i+1
}

// Hook runs around one call: before the handler (an error is returned
// instead of calling it) or after it (an error replaces the response, the
// change stays made: a lost response).
type Hook func(method string, req proto.Message) error

// Server is one fake Secret Manager, with its own secrets. It is safe for
// concurrent use.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	addr string

	mu      sync.Mutex
	secrets map[string]*fakeSecret // by secret id
	seq     int64                  // etags and the clock
	calls   map[string]int
	before  Hook
	after   Hook
	faults  []*armedFault
	fired   map[FaultKind]int
}

// Start starts a fake and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	f := &Server{secrets: map[string]*fakeSecret{}, calls: map[string]int{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.intercept))
	secretmanagerpb.RegisterSecretManagerServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

// ClientOptions dials the fake on a connection of its own, without
// authentication; each client closes only the connection it was given.
func (f *Server) ClientOptions(tb testing.TB) []option.ClientOption {
	tb.Helper()
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	return []option.ClientOption{option.WithGRPCConn(conn), option.WithoutAuthentication()}
}

// Addr is the fake's host:port.
func (f *Server) Addr() string { return f.addr }

// SetHooks installs hooks that run around every call (nil removes one).
func (f *Server) SetHooks(before, after Hook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before, f.after = before, after
}

// Calls returns how many times method (e.g. "AddSecretVersion") was called.
func (f *Server) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	f.mu.Lock()
	f.calls[method]++
	before, after := f.before, f.after
	fault, faulty := f.pickFault(method)
	f.mu.Unlock()
	msg, _ := req.(proto.Message)
	call := func() (any, error) {
		if before != nil {
			if err := before(method, msg); err != nil {
				return nil, err
			}
		}
		resp, err := handler(ctx, req)
		if err == nil && after != nil {
			if err := after(method, msg); err != nil {
				return nil, err
			}
		}
		return resp, err
	}
	if faulty {
		return applyFault(ctx, method, fault, call)
	}
	return call()
}

// next advances the fake's clock and etag counter. Called with mu held.
func (f *Server) next() int64 { f.seq++; return f.seq }

func (f *Server) now() *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(f.next()) * time.Second))
}

// newEtag: etags are opaque and, per AIP-154 as the etag guide notes,
// include their quotes ("123", not 123). A new one is generated at creation
// and on every modification of that resource, even one that changes nothing
// ("Even when an update doesn't change a resource's state, it still updates
// the resource ETag"). Called with mu held.
func (f *Server) newEtag() string { return fmt.Sprintf("%q", strconv.FormatInt(f.next(), 16)) }

// crcTable is CRC32C (Castagnoli), the checksum of SecretPayload.data_crc32c.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// CreateSecretRequest.secret_id: "a string with a maximum length of
	// 255 characters and can contain uppercase and lowercase letters,
	// numerals, and the hyphen (-) and underscore (_) characters."
	fakeSecretIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	// Secret.version_aliases: "maximum length of 63 characters and can
	// contain uppercase and lowercase letters, numerals, and the hyphen
	// (-) and underscore ('_') characters. An alias string must start with
	// a letter and cannot be the string 'latest' or 'NEW'."
	fakeAliasRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	// Secret.annotations: keys "between 1 and 63 characters long … begin
	// and end with an alphanumeric character ([a-z0-9A-Z]), and may have
	// dashes (-), underscores (_), dots (.), and alphanumerics in between".
	fakeAnnotationKeyRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
)

// parseSecretName accepts projects/<id or number>/secrets/<secret>.
func parseSecretName(name string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "secrets" {
		return "", status.Errorf(codes.InvalidArgument, "invalid resource name %q", name)
	}
	if parts[1] != Project && parts[1] != ProjectNumber {
		// A project the caller cannot see: the service answers
		// PERMISSION_DENIED rather than revealing whether it exists.
		return "", status.Errorf(codes.PermissionDenied, "Permission denied on resource project %s.", parts[1])
	}
	return parts[3], nil
}

func outSecretName(id string) string { return "projects/" + ProjectNumber + "/secrets/" + id }

// secret returns the secret named, or NOT_FOUND. Called with mu held.
func (f *Server) secret(name string) (*fakeSecret, error) {
	id, err := parseSecretName(name)
	if err != nil {
		return nil, err
	}
	s, ok := f.secrets[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", outSecretName(id))
	}
	return s, nil
}

// version resolves projects/*/secrets/*/versions/<v>, where v is a number,
// "latest" or an alias. Called with mu held.
func (f *Server) version(name string) (*fakeSecret, *fakeVersion, error) {
	i := strings.LastIndex(name, "/versions/")
	if i < 0 {
		return nil, nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q", name)
	}
	s, err := f.secret(name[:i])
	if err != nil {
		return nil, nil, err
	}
	v := name[i+len("/versions/"):]
	var n int64
	switch {
	case v == "latest":
		// AccessSecretVersionRequest.name: "projects/*/secrets/*/versions/
		// latest is an alias to the most recently created SecretVersion":
		// the newest by creation, whatever its state. A disabled newest
		// version therefore makes latest unreadable; nothing skips to an
		// older enabled one.
		n = int64(len(s.versions))
	case v != "" && v[0] >= '0' && v[0] <= '9':
		n, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "invalid version %q", v)
		}
	default:
		// Secret.version_aliases: "Access by alias is only be supported on
		// GetSecretVersion and AccessSecretVersion" (and, in this fake, on
		// the other version calls: the store never uses that).
		var ok bool
		n, ok = s.meta.GetVersionAliases()[v]
		if !ok {
			return nil, nil, status.Errorf(codes.NotFound, "Secret Version alias [%s] not found.", v)
		}
	}
	if n < 1 || n > int64(len(s.versions)) {
		return nil, nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", outSecretName(s.id()), v)
	}
	return s, s.versions[n-1], nil
}

func (s *fakeSecret) id() string {
	return s.meta.GetName()[strings.LastIndexByte(s.meta.GetName(), '/')+1:]
}

// CreateSecret: "Creates a new Secret containing no SecretVersions."
// replication is required and immutable; an existing id is ALREADY_EXISTS.
func (f *Server) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := parseSecretName(req.GetParent() + "/secrets/x"); err != nil {
		return nil, err
	}
	if !fakeSecretIDRe.MatchString(req.GetSecretId()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret id %q", req.GetSecretId())
	}
	if req.GetSecret().GetReplication().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "Secret.replication is required")
	}
	if _, ok := f.secrets[req.GetSecretId()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", outSecretName(req.GetSecretId()))
	}
	if len(req.GetSecret().GetVersionAliases()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "a new secret has no versions to alias")
	}
	if err := checkAnnotations(req.GetSecret().GetAnnotations()); err != nil {
		return nil, err
	}
	meta := proto.Clone(req.GetSecret()).(*secretmanagerpb.Secret)
	meta.Name = outSecretName(req.GetSecretId())
	meta.CreateTime = f.now()
	meta.Etag = f.newEtag()
	f.secrets[req.GetSecretId()] = &fakeSecret{meta: meta}
	return proto.Clone(meta).(*secretmanagerpb.Secret), nil
}

// GetSecret returns the metadata, aliases, annotations and etag included.
func (f *Server) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.secret(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(s.meta).(*secretmanagerpb.Secret), nil
}

// UpdateSecret: "update_mask: Required. Specifies the fields to be updated."
// Only the masked fields change, and a masked map field is replaced whole (the
// annotation samples delete a key by sending the map without it). "In a
// secrets.patch request, the request ETag is embedded in the Secret data …
// If an ETag is provided and matches the current resource ETag, the request
// succeeds; otherwise, it fails with a FAILED_PRECONDITION error" (etag
// guide; AIP-154 would say ABORTED, the service says FAILED_PRECONDITION).
// The fake models the fields the store writes (version_aliases,
// annotations) plus labels; any other path is INVALID_ARGUMENT here.
func (f *Server) UpdateSecret(_ context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := req.GetSecret()
	s, err := f.secret(in.GetName())
	if err != nil {
		return nil, err
	}
	if in.GetEtag() != "" && in.GetEtag() != s.meta.GetEtag() {
		return nil, status.Errorf(codes.FailedPrecondition, "The etag provided in the request does not match the etag of secret [%s].", s.meta.GetName())
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, status.Error(codes.InvalidArgument, "update_mask is required")
	}
	next := proto.Clone(s.meta).(*secretmanagerpb.Secret)
	for _, p := range paths {
		switch p {
		case "version_aliases":
			// At most 50 aliases, names as above, each naming an existing
			// version. (What the service answers for an alias to a version
			// number that does not exist is not documented; the fake says
			// INVALID_ARGUMENT. The store never does it.)
			if len(in.GetVersionAliases()) > 50 {
				return nil, status.Error(codes.InvalidArgument, "no more than 50 aliases")
			}
			for alias, n := range in.GetVersionAliases() {
				if !fakeAliasRe.MatchString(alias) || strings.EqualFold(alias, "latest") || strings.EqualFold(alias, "new") {
					return nil, status.Errorf(codes.InvalidArgument, "invalid alias %q", alias)
				}
				if n < 1 || n > int64(len(s.versions)) {
					return nil, status.Errorf(codes.InvalidArgument, "alias %q names version %d, which does not exist", alias, n)
				}
			}
			next.VersionAliases = in.GetVersionAliases()
		case "annotations":
			if err := checkAnnotations(in.GetAnnotations()); err != nil {
				return nil, err
			}
			next.Annotations = in.GetAnnotations()
		case "labels":
			next.Labels = in.GetLabels()
		default:
			return nil, status.Errorf(codes.InvalidArgument, "the fake does not model update of %q", p)
		}
	}
	next.Etag = f.newEtag()
	s.meta = next
	return proto.Clone(next).(*secretmanagerpb.Secret), nil
}

// checkAnnotations: key syntax as above; "The total size of annotation keys
// and values must be less than 16KiB."
func checkAnnotations(m map[string]string) error {
	size := 0
	for k, v := range m {
		if !fakeAnnotationKeyRe.MatchString(k) {
			return status.Errorf(codes.InvalidArgument, "invalid annotation key %q", k)
		}
		size += len(k) + len(v)
	}
	if size >= 16<<10 {
		return status.Error(codes.InvalidArgument, "annotations must total less than 16KiB")
	}
	return nil
}

// AddSecretVersion: "Creates a new SecretVersion containing secret data and
// attaches it to an existing Secret." Version ids "start at 1 and are
// incremented for each subsequent version"; a new version is ENABLED.
// SecretPayload.data "must be no larger than 64KiB"; with data_crc32c the
// service verifies the data and stores the checksum for later
// AccessSecretVersion responses. Calling it twice makes two versions: it is
// not idempotent. It changes the version's etag, not the secret's ("A
// modification request only updates the ETag of the resource to which it
// applies").
func (f *Server) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.secret(req.GetParent())
	if err != nil {
		return nil, err
	}
	data := req.GetPayload().GetData()
	if req.GetPayload() == nil {
		return nil, status.Error(codes.InvalidArgument, "payload is required")
	}
	if len(data) > 64<<10 {
		return nil, status.Error(codes.InvalidArgument, "payload must be no larger than 64KiB")
	}
	if sum := req.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crcTable)) != *sum {
		return nil, status.Error(codes.InvalidArgument, "Checksum mismatch: data_crc32c does not match the payload.")
	}
	n := int64(len(s.versions)) + 1
	v := &fakeVersion{
		meta: &secretmanagerpb.SecretVersion{
			Name:                           fmt.Sprintf("%s/versions/%d", s.meta.GetName(), n),
			CreateTime:                     f.now(),
			State:                          secretmanagerpb.SecretVersion_ENABLED,
			Etag:                           f.newEtag(),
			ClientSpecifiedPayloadChecksum: req.GetPayload().DataCrc32C != nil,
		},
		payload: append([]byte(nil), data...),
	}
	s.versions = append(s.versions, v)
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// GetSecretVersion returns a version's metadata in any state.
func (f *Server) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// AccessSecretVersion returns the data of an ENABLED version. SecretVersion.
// State: DISABLED "may not be accessed", DESTROYED has no data; the service
// answers FAILED_PRECONDITION "Secret Version [...] is in DISABLED state."
// (as users report it). The response names the version by number, also when
// it was asked for by alias or latest, and carries the data's CRC32C.
func (f *Server) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if v.meta.GetState() != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", v.meta.GetName(), v.meta.GetState())
	}
	sum := int64(crc32.Checksum(v.payload, crcTable))
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    v.meta.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: append([]byte(nil), v.payload...), DataCrc32C: &sum},
	}, nil
}

// ListSecretVersions: versions "sorted in reverse by create_time (newest
// first)", in every state; page_size 0 lets the server choose, above 25000
// it is capped. The fake's page tokens are offsets. Filters are not modelled
// (INVALID_ARGUMENT): the store does not use them.
func (f *Server) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.secret(req.GetParent())
	if err != nil {
		return nil, err
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.InvalidArgument, "the fake does not model filters")
	}
	all := make([]*fakeVersion, len(s.versions))
	copy(all, s.versions)
	sort.SliceStable(all, func(i, j int) bool {
		return all[i].meta.GetCreateTime().AsTime().After(all[j].meta.GetCreateTime().AsTime())
	})
	start := 0
	if t := req.GetPageToken(); t != "" {
		if start, err = strconv.Atoi(t); err != nil || start < 0 || start > len(all) {
			return nil, status.Error(codes.InvalidArgument, "invalid page token")
		}
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 25000 {
		size = 25000
	}
	end := min(start+size, len(all))
	resp := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(len(all))}
	for _, v := range all[start:end] {
		resp.Versions = append(resp.Versions, proto.Clone(v.meta).(*secretmanagerpb.SecretVersion))
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// checkVersionEtag: DisableSecretVersionRequest.etag and the destroy one:
// "The request succeeds if it matches the etag of the currently stored
// secret version object. If the etag is omitted, the request succeeds."
func checkVersionEtag(v *fakeVersion, etag string) error {
	if etag != "" && etag != v.meta.GetEtag() {
		return status.Errorf(codes.FailedPrecondition, "The etag provided in the request does not match the etag of secret version [%s].", v.meta.GetName())
	}
	return nil
}

// DisableSecretVersion: "Sets the state of the SecretVersion to DISABLED."
// Disabling a disabled version succeeds and only renews its etag (the etag
// guide's example of a no-op request). DESTROYED is final ("A version may not
// leave this state once entered"): FAILED_PRECONDITION.
func (f *Server) DisableSecretVersion(_ context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := checkVersionEtag(v, req.GetEtag()); err != nil {
		return nil, err
	}
	if v.meta.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", v.meta.GetName())
	}
	v.meta.State = secretmanagerpb.SecretVersion_DISABLED
	v.meta.Etag = f.newEtag()
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// DestroySecretVersion: "Sets the state of the SecretVersion to DESTROYED
// and irrevocably destroys the secret data." (Without a version_destroy_ttl
// on the secret, which the fake does not model.) Destroying twice is
// FAILED_PRECONDITION.
func (f *Server) DestroySecretVersion(_ context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := checkVersionEtag(v, req.GetEtag()); err != nil {
		return nil, err
	}
	if v.meta.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is already in DESTROYED state.", v.meta.GetName())
	}
	v.meta.State = secretmanagerpb.SecretVersion_DESTROYED
	v.meta.DestroyTime = f.now()
	v.meta.Etag = f.newEtag()
	v.payload = nil
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// --- direct access for tests and benchmarks (no RPC) ---

// Seed creates secret id directly, with automatic replication and no
// versions, as an operator would have.
func (f *Server) Seed(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[id] = &fakeSecret{meta: &secretmanagerpb.Secret{
		Name:        outSecretName(id),
		CreateTime:  f.now(),
		Etag:        f.newEtag(),
		Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}},
	}}
}

// AddVersion adds an ENABLED version holding data to secret id and returns
// its number, as AddSecretVersion would (the secret's etag stays).
func (f *Server) AddVersion(tb testing.TB, id string, data []byte) int64 {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.mustSecret(tb, id)
	n := int64(len(s.versions)) + 1
	s.versions = append(s.versions, &fakeVersion{
		meta: &secretmanagerpb.SecretVersion{
			Name:       fmt.Sprintf("%s/versions/%d", s.meta.GetName(), n),
			CreateTime: f.now(),
			State:      secretmanagerpb.SecretVersion_ENABLED,
			Etag:       f.newEtag(),
		},
		payload: append([]byte(nil), data...),
	})
	return n
}

// Mutate changes secret id's metadata (aliases, annotations, labels) behind
// the client's back and renews its etag, as any update does: another writer.
// fn gets the stored message itself; it must not keep it.
func (f *Server) Mutate(tb testing.TB, id string, fn func(*secretmanagerpb.Secret)) {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.mustSecret(tb, id)
	fn(s.meta)
	s.meta.Etag = f.newEtag()
}

// SetAliases replaces secret id's aliases behind the client's back (see
// Mutate).
func (f *Server) SetAliases(tb testing.TB, id string, aliases map[string]int64) {
	tb.Helper()
	f.Mutate(tb, id, func(m *secretmanagerpb.Secret) { m.VersionAliases = aliases })
}

// Snapshot returns a copy of secret id's metadata and the states of its
// versions (index i is version i+1).
func (f *Server) Snapshot(tb testing.TB, id string) (*secretmanagerpb.Secret, []secretmanagerpb.SecretVersion_State) {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.mustSecret(tb, id)
	var states []secretmanagerpb.SecretVersion_State
	for _, v := range s.versions {
		states = append(states, v.meta.GetState())
	}
	return proto.Clone(s.meta).(*secretmanagerpb.Secret), states
}

// mustSecret is called with mu held.
func (f *Server) mustSecret(tb testing.TB, id string) *fakeSecret {
	tb.Helper()
	s, ok := f.secrets[id]
	if !ok {
		tb.Fatalf("gcpfake: no secret %q", id)
	}
	return s
}
