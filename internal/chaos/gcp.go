package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/providers"
	gcpstore "github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// GCP is the in-process part of a run: the rotator of this process, with
// its own state database, rotates policies whose store is Google Cloud
// Secret Manager (internal/gcpfake, an in-process gRPC fake; the binary
// cannot reach it, as it dials Google with TLS and real credentials) and
// whose target is the harness's server. Its faults are the fake's: the
// fault proxy's kinds, another writer's alias changes, and crashes after a
// step (rotator.ErrCrash: the lock goes with its session, nothing is
// undone, as after kill -9).
type GCP struct {
	h        *Harness
	fake     *gcpfake.Server
	pool     *pgxpool.Pool
	rot      *rotator.Rotator
	store    *gcpstore.Store // the rotator's
	reader   *gcpstore.Store // the checks' (used while no fault is armed)
	creds    map[string]rotator.Credential
	Policies []*Policy
	gen      int
}

// StartGCP sets up the in-process GCP part.
func (h *Harness) StartGCP() *GCP {
	t := h.t
	ctx := context.Background()
	g := &GCP{h: h, fake: gcpfake.Start(t), creds: map[string]rotator.Credential{}}
	var err error
	if g.pool, err = pgxpool.New(ctx, h.PG.URL(gcpDB)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.pool.Close)
	db := state.NewFromPool(g.pool, state.Options{})
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("chaos: migrate %s: %v", gcpDB, err)
	}
	g.rot = rotator.New(db, rotator.Config{})
	if g.store, err = gcpstore.New(ctx, gcpstore.Options{Project: gcpfake.Project}, g.fake.ClientOptions(t)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.store.Close() })
	if g.reader, err = gcpstore.New(ctx, gcpstore.Options{Project: gcpfake.Project}, g.fake.ClientOptions(t)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.reader.Close() })
	g.Policies = []*Policy{
		{Name: "gcp-alt", Strategy: Alternating, Store: StoreGCP, SecretID: "gcp-alt", Role: "chaos_gcp_alt"},
		{Name: "gcp-single", Strategy: Single, Store: StoreGCP, SecretID: "gcp-single", Role: "chaos_gcp_single"},
	}
	for _, p := range g.Policies {
		g.add(ctx, p)
	}
	h.gcp = g
	return g
}

// add sets up p: its role, its secret in the fake, its target, and a first
// rotation.
func (g *GCP) add(ctx context.Context, p *Policy) {
	h, t := g.h, g.h.t
	if err := h.PG.Exec(ctx, stateDB, "CREATE ROLE "+p.Role+" LOGIN"); err != nil {
		t.Fatalf("chaos: %v", err)
	}
	g.fake.Seed(p.SecretID)
	strategy := targets.Alternating
	groupRole := group
	if p.Strategy == Single {
		strategy, groupRole = targets.Single, ""
	}
	target, err := postgres.New(ctx, postgres.Options{Host: "127.0.0.1", Port: h.PG.Port, DBName: stateDB,
		SSLMode: "disable", Username: p.Role, GroupRole: groupRole, Admin: secret.FromString(h.PG.URL(stateDB))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	g.creds[p.Name] = rotator.Credential{Name: p.Name, Strategy: strategy, Store: g.store, SecretID: p.SecretID,
		Target: target, Canary: rotator.CanaryRetry{Attempts: 1, Interval: 10 * time.Millisecond}}
	if _, err := g.rot.Rotate(ctx, g.creds[p.Name], rotator.Options{Actor: "chaos"}); err != nil {
		t.Fatalf("chaos: first rotation of %s: %v", p.Name, err)
	}
	h.Stats.Track(p.Name)
}

// replace puts a fresh policy (new secret, new role) in the place of a
// stuck one, so that the run goes on injecting into GCP rotations.
func (g *GCP) replace(ctx context.Context, stuck *Policy) {
	g.gen++
	base, _, _ := strings.Cut(stuck.Name, "~")
	p := &Policy{Name: fmt.Sprintf("%s~%d", base, g.gen), Strategy: stuck.Strategy, Store: StoreGCP}
	p.SecretID = strings.ReplaceAll(p.Name, "~", "-")
	p.Role = "chaos_" + strings.ReplaceAll(p.SecretID, "-", "_")
	g.add(ctx, p)
	for i, q := range g.Policies {
		if q == stuck {
			g.Policies[i] = p
		}
	}
	g.h.Stats.Outcome("gcp: a stuck policy was replaced by a fresh one")
}

// gcpMethods are the calls the GCP store makes, with how many of each one
// rotation makes at most (for picking an occurrence).
var gcpMethods = []struct {
	name string
	max  int
}{
	{"GetSecret", 10},
	{"UpdateSecret", 4},
	{"AddSecretVersion", 1},
	{"AccessSecretVersion", 8},
	{"ListSecretVersions", 2},
	{"DisableSecretVersion", 1},
}

// Round rotates a GCP policy with one fault armed in the fake, or with a
// crash after a random step, then recovers and checks.
func (g *GCP) Round(ctx context.Context) {
	h := g.h
	p := g.Policies[h.intn(len(g.Policies))]
	var f GCPFault
	if h.intn(4) == 0 {
		f.CrashAfter = rotator.Steps[h.intn(len(rotator.Steps))]
	} else {
		kind := gcpfake.FaultKinds[h.intn(len(gcpfake.FaultKinds))]
		m := gcpMethods[h.intn(len(gcpMethods))]
		f.Fault = gcpfake.Fault{Method: m.name, Nth: 1 + h.intn(m.max), Kind: kind}
		switch kind {
		case gcpfake.FaultHold:
			// Held past the caller's deadline: the rotation is cut
			// where it is, as a River job's timeout cuts it.
			f.Fault.Hold, f.Deadline = 10*time.Second, h.duration(300*time.Millisecond, 3*time.Second)
		case gcpfake.FaultHook:
			actions := []string{WriterDropPending, WriterStrayPending, WriterForeignLabel}
			if p.Strategy == Alternating {
				actions = append(actions, WriterRollBack)
			}
			f.Writer = actions[h.intn(len(actions))]
		}
	}
	g.Inject(ctx, p, f)
}

// GCPFault is one fault of one in-process GCP rotation: a crash after a
// step, or a fault of the fake (with, for a hook, another writer's action).
type GCPFault struct {
	CrashAfter rotator.Step
	Fault      gcpfake.Fault
	Writer     string
	// Deadline of the rotation (default a minute).
	Deadline time.Duration
}

// Policy returns the GCP policy called name (as it is now: a stuck one
// is replaced by one with a suffix).
func (g *GCP) Policy(name string) *Policy {
	for _, p := range g.Policies {
		if p.Name == name || strings.HasPrefix(p.Name, name+"~") {
			return p
		}
	}
	return nil
}

// Inject rotates p with f, checks what clients see once it has ended,
// recovers, and checks again (a stuck policy is replaced by a fresh one).
// It is what Round does with random choices; a test repeats one case with
// it.
func (g *GCP) Inject(ctx context.Context, p *Policy, f GCPFault) {
	h := g.h
	opts := rotator.Options{Actor: "chaos"}
	limit := time.Minute
	if f.Deadline > 0 {
		limit = f.Deadline
	}
	var name, where string
	didCh := make(chan string, 1)
	fired := true
	if f.CrashAfter != "" {
		opts.AfterStep = func(s rotator.Step) error {
			if s == f.CrashAfter {
				return rotator.ErrCrash
			}
			return nil
		}
		name, where = GCPCrash, next[string(f.CrashAfter)]
	} else {
		fault := f.Fault
		name, where = GCPPrefix+string(fault.Kind), fmt.Sprintf("%s #%d", fault.Method, fault.Nth)
		switch fault.Kind {
		case gcpfake.FaultHold:
			where += fmt.Sprintf(" past a %s deadline", limit.Round(100*time.Millisecond))
		case gcpfake.FaultHook:
			fault.Hook = func() { didCh <- g.anotherWriter(p, f.Writer) }
		}
		g.fake.Inject(fault)
	}
	rctx, cancel := context.WithTimeout(ctx, limit)
	res, err := g.rot.Rotate(rctx, g.creds[p.Name], opts)
	cancel()
	if g.fake.PendingFaults() > 0 {
		fired = false
		g.fake.ClearFaults()
	}
	outcome := gcpOutcome(res, err)
	did := ""
	select {
	case did = <-didCh:
	default:
	}
	g.settle(&name, &fired, did)
	if !fired {
		h.Stats.Outcome("gcp fault: the call it waited for never came")
	} else {
		h.Stats.Inject(name, where, p.Name, "rotation: "+outcome)
		h.Stats.Outcome(name + ": " + outcome)
	}
	// What clients see once the faulty rotation has ended, before anyone
	// recovers (a crash leaves it unfinished; then single's current may
	// not work between set and promote).
	g.h.Check(ctx, p, true)
	if g.recover(ctx, p, name+" at "+where) {
		g.h.Check(ctx, p, false)
	} else {
		g.replace(ctx, p)
	}
}

// settle names a hook round after what the other writer did.
func (g *GCP) settle(name *string, fired *bool, did string) {
	if strings.HasPrefix(*name, GCPPrefix+string(gcpfake.FaultHook)) {
		*name = AnotherWrite + "gcp " + did
		if did == "" {
			*fired = false
		}
	}
}

func gcpOutcome(res rotator.Result, err error) string {
	var step *rotator.StepError
	switch {
	case err == nil && res.Resumed:
		return "resumed an unfinished rotation"
	case err == nil:
		return "rotated"
	case errors.Is(err, rotator.ErrCrash):
		return "crashed"
	case errors.As(err, &step):
		if step.RolledBack {
			return "failed, rolled back"
		}
		return string(step.Outcome)
	default:
		return "failed before a step"
	}
}

// Rotate rotates p once, without a fault, and says whether it succeeded.
func (g *GCP) Rotate(ctx context.Context, p *Policy) error {
	_, err := g.rot.Rotate(ctx, g.creds[p.Name], rotator.Options{Actor: "chaos"})
	return err
}

// recover rotates until a fresh rotation succeeds (stuck otherwise).
func (g *GCP) recover(ctx context.Context, p *Policy, cause string) bool {
	var errs []string
	busy := 0
	for try := 0; try < 4; try++ {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		res, err := g.rot.Rotate(rctx, g.creds[p.Name], rotator.Options{Actor: "chaos"})
		cancel()
		var inProgress *rotator.InProgressError
		switch {
		case err == nil && !res.Resumed:
			return true
		case err == nil:
			g.h.Stats.Outcome("recovery: resumed and finished the unfinished rotation")
			continue
		case errors.As(err, &inProgress) && busy < 50:
			// The crashed rotation's session has not ended yet (its lock
			// goes when the server sees the connection close).
			busy++
			try--
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if refusedForeign(err.Error()) && g.h.takeStray(p) {
			// What the refusal tells an operator to do about another
			// writer's pending version; then a fresh rotation is due.
			_, rerr := g.rot.Resolve(ctx, g.creds[p.Name], rotator.ResolveOptions{Actor: "operator:chaos", Action: rotator.ResolveDiscard})
			if rerr == nil {
				g.h.Stats.Outcome("recovery: refused another writer's pending version; the operator discarded it (resolve --discard-pending)")
				continue
			}
			errs = append(errs, "resolve --discard-pending: "+rerr.Error())
		}
		g.h.Stats.Outcome("recovery: gcp rotation " + gcpOutcome(res, err))
		errs = append(errs, err.Error())
	}
	g.h.Violate(ctx, Stuck, p, "after %s, 4 rotations did not give a fresh successful one: %s", cause, strings.Join(errs, " | "))
	return false
}

// stage reads p's version at stage through the checks' own client.
func (g *GCP) stage(ctx context.Context, p *Policy, stage providers.Stage) (Login, bool, error) {
	v, err := g.reader.Get(ctx, p.SecretID, stage)
	if errors.Is(err, providers.ErrNotFound) {
		return Login{}, false, nil
	}
	if err != nil {
		return Login{}, false, err
	}
	l := Login{ID: v.ID, Token: v.Token}
	var d struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if json.Unmarshal(v.Value.Reveal(), &d) != nil {
		return l, true, fmt.Errorf("version %s of %s is not a postgres document", v.ID, p.Name)
	}
	l.Username, l.password = d.Username, d.Password
	return l, true, nil
}

// Final rotates and checks every GCP policy once more.
func (g *GCP) Final(ctx context.Context) {
	g.fake.ClearFaults()
	for _, p := range append([]*Policy(nil), g.Policies...) {
		if g.recover(ctx, p, "the end of the run") {
			g.h.Check(ctx, p, false)
		}
	}
}

// anotherWriter changes p's secret in the fake behind the store's back
// (see the AWS writer's actions); it runs inside a call, so it uses the
// fake's direct methods.
func (g *GCP) anotherWriter(p *Policy, action string) string {
	t := g.h.t
	meta, _ := g.fake.Snapshot(t, p.SecretID)
	aliases := meta.GetVersionAliases()
	switch action {
	case WriterDropPending:
		if _, ok := aliases["pending"]; !ok {
			return ""
		}
		g.fake.Mutate(t, p.SecretID, func(m *secretmanagerpb.Secret) { delete(m.VersionAliases, "pending") })
		return "drop pending alias"
	case WriterStrayPending:
		role := p.Role
		if p.Strategy == Alternating {
			if cur, ok := aliases["current"]; ok && g.roleOf(meta, cur) == p.Role {
				role = p.Role + "_b"
			}
		}
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		doc, _ := json.Marshal(map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": g.h.PG.Port,
			"dbname": stateDB, "username": role, "password": hex.EncodeToString(pw)})
		n := g.fake.AddVersion(t, p.SecretID, doc)
		g.fake.Mutate(t, p.SecretID, func(m *secretmanagerpb.Secret) {
			if m.VersionAliases == nil {
				m.VersionAliases = map[string]int64{}
			}
			m.VersionAliases["pending"] = n
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations["swarmkey.token."+strconv.FormatInt(n, 10)] = uuid.NewString()
		})
		g.h.NoteStray(p)
		return "stray pending alias"
	case WriterRollBack:
		cur, cok := aliases["current"]
		prev, pok := aliases["previous"]
		if cok && pok {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if l, ok, err := g.stage(ctx, p, providers.StagePrevious); err == nil && ok && g.h.LogsIn(ctx, l) == nil {
				g.fake.Mutate(t, p.SecretID, func(m *secretmanagerpb.Secret) {
					m.VersionAliases["current"], m.VersionAliases["previous"] = prev, cur
				})
				g.h.NoteRollBack(p)
				return "roll current alias back"
			}
		}
		fallthrough
	case WriterForeignLabel:
		g.fake.Mutate(t, p.SecretID, func(m *secretmanagerpb.Secret) {
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels["other-tool"] = strconv.FormatInt(time.Now().UnixNano(), 36)
		})
		return "foreign label"
	}
	return ""
}

// roleOf is the role named by version n's document, read from the
// fake's store; "" when unknown.
func (g *GCP) roleOf(meta *secretmanagerpb.Secret, n int64) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range g.Policies {
		if strings.HasSuffix(meta.GetName(), "/"+p.SecretID) {
			if l, ok, err := g.stage(ctx, p, providers.StageCurrent); err == nil && ok && l.ID == strconv.FormatInt(n, 10) {
				return l.Username
			}
		}
	}
	return ""
}
