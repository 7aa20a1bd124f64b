// Package chaos is swarmkey's fault-injection suite: it runs the real
// `swarmkey` binary (`rotate --local` and `serve` replicas) against a
// PostgreSQL server of its own, the encrypted file store and AWS Secrets
// Manager (moto behind internal/faultproxy), and the rotator in process
// against Google Cloud Secret Manager (internal/gcpfake), and injects
// faults: kill -9 of `rotate --local` and of `serve` replicas at chosen
// steps, restarts of PostgreSQL, a read-only store folder, throttling, 5xx,
// lost and held answers and another writer's label changes in the cloud
// stores. After each injection it recovers as an operator would (run
// `rotate --local`, or let the replicas go on) and checks the invariants
// with real logins:
//
//   - lockout: every policy's current credential logs in, and previous too
//     for alternating (pgx over TCP on 127.0.0.1, SCRAM);
//   - foreign promotion: every current version belongs to a rotation of
//     that policy that completed its test step (the canary); a version
//     that swarmkey did not write is never current;
//   - stuck: a new rotation succeeds after the fault is gone;
//   - double rotation: no request key (a schedule fire) succeeded twice.
//
// chaos_test.go runs it: a few injections of each kind in `make test`, and
// the long run of `make chaos` (flags -chaos.*). Everything listens on
// 127.0.0.1, every child is killed when the test ends, and no secret value
// is printed: the harness reads values only to log in with them.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/internal/faultproxy"
	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
)

// Strategies and stores of the policies.
const (
	Alternating = "alternating"
	Single      = "single"
	StoreFile   = "file"
	StoreAWS    = "aws"
	StoreGCP    = "gcp"
)

// Database names on the harness's server.
const (
	stateDB = "chaos"     // swarmkey's state and the target's logins
	gcpDB   = "chaos_gcp" // the in-process GCP rotations' state
	group   = "chaos_group"
)

// Policy is one policy of the harness's config.
type Policy struct {
	Name     string
	Strategy string
	Store    string
	SecretID string
	Role     string
	// Serve: rotated by the serve replicas on a schedule (@every 2s);
	// otherwise by `rotate --local` only.
	Serve bool
}

// Alternate is the second login role of an alternating policy.
func (p *Policy) Alternate() string { return p.Role + "_b" }

// Harness is one installation under test.
type Harness struct {
	t    testing.TB
	opts Options

	Dir      string
	bin      string
	config   string
	env      []string
	cred     *syscall.Credential // the children's user, when we are root
	childUID int

	PG         *PGServer
	pool       *pgxpool.Pool // state database, as superuser
	Proxy      *faultproxy.Proxy
	moto       string
	aws        *secretsmanager.Client // straight to moto: the harness's reads and another writer
	files      *file.Store            // the harness's reads of the file store
	secretsDir string                 // the file store's folder
	gcp        *GCP                   // the in-process GCP part, once started

	polMu    sync.RWMutex
	policies []*Policy // under polMu; grows when a stuck policy is replaced
	awsPre   string    // prefix of the AWS secrets of this run
	gen      int       // replacements so far
	kids     children
	Stats    *Stats

	rngMu sync.Mutex
	rng   *rand.Rand

	// stuck holds the policies found stuck: they get no more injections
	// (one stuck policy is one violation, not one per later round).
	stuckMu sync.Mutex
	stuck   map[string]bool
	// reported holds the findings already counted (CheckOutcome,
	// CheckTempFiles).
	reported map[string]bool
	// stray holds the policies whose secret another writer gave a pending
	// version of its own since swarmkey last rotated them: a refusal
	// naming such a version is the documented rule, and the harness then
	// does what the refusal tells an operator to do (see Resolve).
	stray map[string]bool
	// rolledBack holds when another writer last rolled p's current back
	// to its previous version (the version that was current becomes
	// previous: see CheckOutcome).
	rolledBack map[string]time.Time
}

// Options bound a run.
type Options struct {
	Seed     uint64
	Replicas int
	// Logf prints progress; nil is quiet.
	Logf func(format string, args ...any)
	// Extra policies beside the default ones (Name, Strategy, Store and
	// Serve are read), e.g. one fresh policy per case of a test.
	Extra []Policy
}

// New builds the binary and sets up the installation: the server, moto and
// the proxy, the config, the roles, the migrations, and a first rotation of
// every local policy. Everything it starts is stopped when the test ends.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	h := &Harness{t: t, opts: opts, Stats: NewStats(), stuck: map[string]bool{}, reported: map[string]bool{}, stray: map[string]bool{}, rolledBack: map[string]time.Time{}, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed))}
	dir, err := os.MkdirTemp("", "swarmkey-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the folder goes after the processes
	// and the server that use it.
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.Dir = dir
	t.Cleanup(h.kids.killAll)

	h.bin = filepath.Join(dir, "swarmkey")
	build := exec.Command("go", "build", "-o", h.bin, "github.com/swarmkey/swarmkey/cmd/swarmkey")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("chaos: build swarmkey: %v\n%s", err, out)
	}

	h.PG = StartPG(t, dir)
	ctx := context.Background()
	for _, db := range []string{stateDB, gcpDB} {
		if err := h.PG.Exec(ctx, "postgres", "CREATE DATABASE "+db); err != nil {
			t.Fatalf("chaos: %v", err)
		}
	}
	h.pool, err = pgxpool.New(ctx, h.PG.URL(stateDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.pool.Close)

	h.moto = mototest.Endpoint(t)
	h.Proxy, err = faultproxy.New(h.moto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Proxy.Close() })
	h.aws = secretsmanager.NewFromConfig(mototest.Config(t))

	h.childUser()
	h.awsPre = strings.TrimSuffix(mototest.Prefix(t), "/")
	h.policies = []*Policy{
		{Name: "alt-file", Strategy: Alternating, Store: StoreFile},
		{Name: "single-file", Strategy: Single, Store: StoreFile},
		{Name: "alt-aws", Strategy: Alternating, Store: StoreAWS},
		{Name: "single-aws", Strategy: Single, Store: StoreAWS},
		{Name: "svc-alt-file", Strategy: Alternating, Store: StoreFile, Serve: true},
		{Name: "svc-alt-file2", Strategy: Alternating, Store: StoreFile, Serve: true},
		{Name: "svc-single-file", Strategy: Single, Store: StoreFile, Serve: true},
		{Name: "svc-single-file2", Strategy: Single, Store: StoreFile, Serve: true},
		{Name: "svc-alt-aws", Strategy: Alternating, Store: StoreAWS, Serve: true},
		{Name: "svc-single-aws", Strategy: Single, Store: StoreAWS, Serve: true},
	}
	for _, p := range opts.Extra {
		h.policies = append(h.policies, &Policy{Name: p.Name, Strategy: p.Strategy, Store: p.Store, Serve: p.Serve})
	}
	stmts := []string{"CREATE ROLE " + group + " NOLOGIN"}
	for _, p := range h.policies {
		h.name(p)
		stmts = append(stmts, "CREATE ROLE "+p.Role+" LOGIN")
	}
	if err := h.PG.Exec(ctx, stateDB, stmts...); err != nil {
		t.Fatalf("chaos: %v", err)
	}

	h.env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"SWARMKEY_CONFIG=",
		"SWARMKEY_DATABASE_URL=" + h.PG.URL(stateDB),
		"PG_ADMIN_URL=" + h.PG.URL(stateDB),
		// moto takes any credentials; nothing of a developer's own AWS
		// set-up is read.
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=" + mototest.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"),
	}
	h.mustRun("keygen", "secrets.key")
	h.config = filepath.Join(dir, "swarmkey.yaml")
	h.writeConfig()
	h.mustRun("--config", h.config, "migrate")

	// The store's folder belongs to the children's user; the harness
	// only reads it (file.Open would create it as root otherwise).
	secrets := filepath.Join(dir, "secrets")
	h.secretsDir = secrets
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secrets, h.childUID, -1); err != nil {
		t.Fatal(err)
	}
	h.files, err = file.Open(file.Options{Dir: secrets, KeyFile: filepath.Join(dir, "secrets.key")})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range h.Local() {
		r := h.RotateLocal(p, nil, 2*time.Minute)
		if r.Code != 0 {
			t.Fatalf("chaos: first rotation of %s: exit %d\n%s", p.Name, r.Code, r.Output)
		}
	}
	return h
}

// childUser picks who the children run as. As root that is "nobody": root
// writes into a read-only folder, so the read-only store fault needs an
// unprivileged swarmkey, as in production (deploy/systemd runs it as its
// own user).
func (h *Harness) childUser() {
	h.childUID = os.Getuid()
	if os.Getuid() != 0 {
		return
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		h.t.Fatalf("chaos: as root the children run as user nobody, which does not exist: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	h.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	h.childUID = uid
	if err := os.Chown(h.Dir, uid, gid); err != nil {
		h.t.Fatal(err)
	}
}

// name sets p's role and secret from its name.
func (h *Harness) name(p *Policy) {
	p.Role = "chaos_" + strings.NewReplacer("-", "_", ".", "_").Replace(p.Name)
	p.SecretID = "chaos/" + p.Name
	if p.Store == StoreAWS {
		p.SecretID = h.awsPre + "/" + p.Name
	}
}

// writeConfig writes the config file whole (a new file renamed over the
// old one: a process that reads it meanwhile reads one or the other).
func (h *Harness) writeConfig() {
	tmp := h.config + ".new"
	if err := os.WriteFile(tmp, []byte(h.configYAML()), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.config); err != nil {
		h.t.Fatal(err)
	}
}

// Replace puts a fresh local policy (its own role and secret, same
// strategy and store) beside a stuck one, so that the run goes on
// injecting into that kind of policy; the stuck one stays quarantined.
func (h *Harness) Replace(ctx context.Context, stuck *Policy) *Policy {
	h.polMu.Lock()
	h.gen++
	base, _, _ := strings.Cut(stuck.Name, ".r")
	p := &Policy{Name: fmt.Sprintf("%s.r%d", base, h.gen), Strategy: stuck.Strategy, Store: stuck.Store}
	h.name(p)
	h.policies = append(h.policies, p)
	h.polMu.Unlock()
	if err := h.PG.Exec(ctx, stateDB, "CREATE ROLE "+p.Role+" LOGIN"); err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	h.writeConfig()
	h.Stats.Track(p.Name)
	if r := h.RotateLocal(p, nil, 2*time.Minute); r.Code != 0 {
		h.t.Fatalf("chaos: first rotation of %s: exit %d\n%s", p.Name, r.Code, r.Output)
	}
	h.Stats.Outcome("a stuck policy was replaced by a fresh one")
	return p
}

// All returns every policy of the config, the stuck ones included.
func (h *Harness) All() []*Policy {
	h.polMu.RLock()
	defer h.polMu.RUnlock()
	return append([]*Policy(nil), h.policies...)
}

func (h *Harness) configYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `database: env:SWARMKEY_DATABASE_URL
stores:
  file:
    dir: secrets
    key_file: secrets.key
  aws:
    region: %s
    endpoint_url: %s
    create: true
policies:
`, mototest.Region, h.Proxy.URL())
	for _, p := range h.All() {
		// Not served: a yearly fire half a year away, so that no replica
		// finds its window open (@yearly's would be, from 00:00 to 01:00
		// on the first of January).
		schedule := fmt.Sprintf(`schedule: "0 0 1 %d *"`, (int(time.Now().UTC().Month())+5)%12+1)
		if p.Serve {
			// A fire every 2s whose window is most of the period, as the
			// CLI test of three replicas does.
			schedule = fmt.Sprintf("schedule: \"@every 2s\"\n    window: %dms", servedWindow.Milliseconds())
		}
		groupRole := ""
		if p.Strategy == Alternating {
			groupRole = "\n        group_role: " + group
		}
		fmt.Fprintf(&b, `  - name: %s
    strategy: %s
    store: %s
    secret: %s
    %s
    canary: { attempts: 1, interval: 10ms }
    target:
      postgres:
        host: 127.0.0.1
        port: %d
        dbname: %s
        sslmode: disable
        username: %s
        admin: env:PG_ADMIN_URL%s
`, p.Name, p.Strategy, p.Store, p.SecretID, schedule, h.PG.Port, stateDB, p.Role, groupRole)
	}
	return b.String()
}

// Quarantine marks p stuck: it gets no more injections.
func (h *Harness) Quarantine(p *Policy) {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	h.stuck[p.Name] = true
}

// NoteStray records that another writer put a pending version of its own
// into p's secret.
func (h *Harness) NoteStray(p *Policy) {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	h.stray[p.Name] = true
}

// takeStray reports whether another writer left a pending version in p's
// secret that no operator has resolved yet, and forgets it.
func (h *Harness) takeStray(p *Policy) bool {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	had := h.stray[p.Name]
	delete(h.stray, p.Name)
	return had
}

// refusedForeign reports whether a rotation's output (or error) is the
// refusal of a pending version swarmkey did not write.
func refusedForeign(output string) bool {
	return strings.Contains(output, "that swarmkey did not write")
}

// Quarantined reports whether p was found stuck.
func (h *Harness) Quarantined(p *Policy) bool {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	return h.stuck[p.Name]
}

// Local returns the policies rotated by `rotate --local` only.
func (h *Harness) Local() []*Policy {
	var out []*Policy
	for _, p := range h.All() {
		if !p.Serve {
			out = append(out, p)
		}
	}
	return out
}

// Served returns the policies the serve replicas rotate.
func (h *Harness) Served() []*Policy {
	var out []*Policy
	for _, p := range h.All() {
		if p.Serve {
			out = append(out, p)
		}
	}
	return out
}

// Policy returns the policy called name.
func (h *Harness) Policy(name string) *Policy {
	for _, p := range h.All() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (h *Harness) intn(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.rng.IntN(n)
}

func (h *Harness) duration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(h.intn(int(hi-lo)))
}

// command is a swarmkey child of the harness's installation.
func (h *Harness) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	cmd.Dir = h.Dir
	if h.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	}
	return cmd
}

// servedWindow is the window of the served policies' fires (every 2s).
const servedWindow = 1900 * time.Millisecond

// Start starts swarmkey with args (after --config) as the children's user.
func (h *Harness) Start(name string, onLine func(string), args ...string) *Proc {
	h.t.Helper()
	return h.StartEnv(name, onLine, nil, args...)
}

// StartEnv is Start with env added to the children's environment (a later
// entry wins).
func (h *Harness) StartEnv(name string, onLine func(string), env []string, args ...string) *Proc {
	h.t.Helper()
	cmd := h.command(append([]string{"--config", h.config}, args...)...)
	cmd.Env = append(append([]string(nil), cmd.Env...), env...)
	p, err := h.kids.start(name, cmd, onLine)
	if err != nil {
		h.t.Fatalf("chaos: start %s: %v", name, err)
	}
	return p
}

func (h *Harness) mustRun(args ...string) {
	h.t.Helper()
	p, err := h.kids.start(args[0], h.command(args...), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	code, ok := p.Wait(2 * time.Minute)
	if !ok || code != 0 {
		p.Kill()
		h.t.Fatalf("chaos: swarmkey %s: exit %d (finished %v)\n%s", strings.Join(args, " "), code, ok, p.Output())
	}
}

// Login is a stored credential: the version that holds a stage, and the
// document's user and password (kept only to log in).
type Login struct {
	ID, Token string
	Username  string
	password  string
}

// placeholder is the AWS store's stand-in current version (docs/design.md,
// "AWS").
const placeholder = "swarmkey-placeholder-no-credential-yet"

// Stage reads p's version at stage straight from its store (moto without
// the proxy, the file store's folder): ok is false when no version holds it.
func (h *Harness) Stage(ctx context.Context, p *Policy, stage providers.Stage) (Login, bool, error) {
	var (
		l   Login
		doc []byte
	)
	switch p.Store {
	case StoreFile:
		v, err := h.files.Get(ctx, p.SecretID, stage)
		if errors.Is(err, providers.ErrNotFound) {
			return Login{}, false, nil
		}
		if err != nil {
			return Login{}, false, err
		}
		l.ID, l.Token, doc = v.ID, v.Token, v.Value.Reveal()
	case StoreAWS:
		label := map[providers.Stage]string{providers.StageCurrent: "AWSCURRENT", providers.StagePending: "AWSPENDING",
			providers.StagePrevious: "AWSPREVIOUS"}[stage]
		out, err := h.aws.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(p.SecretID),
			VersionStage: awsv2.String(label)})
		if err != nil {
			if strings.Contains(err.Error(), "ResourceNotFoundException") {
				return Login{}, false, nil
			}
			return Login{}, false, err
		}
		if awsv2.ToString(out.VersionId) == placeholder {
			return Login{}, false, nil
		}
		l.ID, l.Token, doc = awsv2.ToString(out.VersionId), awsv2.ToString(out.VersionId), []byte(awsv2.ToString(out.SecretString))
	default:
		return Login{}, false, fmt.Errorf("chaos: no reader for store %q", p.Store)
	}
	var d struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		// A document another writer put there need not be ours; the
		// error must not quote it.
		return l, true, fmt.Errorf("version %s of %s is not a postgres document", l.ID, p.Name)
	}
	l.Username, l.password = d.Username, d.Password
	return l, true, nil
}

// LogsIn reports whether l logs in to the target database.
func (h *Harness) LogsIn(ctx context.Context, l Login) error {
	if l.Username == "" {
		return errors.New("the document names no user")
	}
	// A server that is restarting is not a lockout: try again for a
	// while; a refused password is one at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := h.PG.LogsIn(ctx, stateDB, l.Username, l.password)
		if err == nil || strings.Contains(err.Error(), "28P01") || strings.Contains(err.Error(), "28000") ||
			!transient(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
