package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/internal/faultproxy"
	"github.com/swarmkey/swarmkey/providers"
)

// CheckOutcome checks that p's recorded outcomes agree with its store: a
// rotation recorded as rolled back ("the current credential is unchanged")
// must not have its version current, nor previous. One that is was in fact
// promoted: the record lies, and a retry of the same fire would promote
// again and retire the credential it had just made previous. The one
// exception is another writer's roll-back of current after the rotation
// began: it makes the version it moved current away from previous, and the
// rotation, finding its version not current after promote, rolls back
// truthfully (current is what it was before).
func (h *Harness) CheckOutcome(ctx context.Context, p *Policy) {
	cur, curOK, _ := h.stageOf(ctx, p, providers.StageCurrent)
	prev, prevOK, _ := h.stageOf(ctx, p, providers.StagePrevious)
	var ids []string
	if curOK && cur.ID != "" {
		ids = append(ids, cur.ID)
	}
	if prevOK && prev.ID != "" {
		ids = append(ids, prev.ID)
	}
	if len(ids) == 0 {
		return
	}
	var token, version string
	var started time.Time
	err := h.query(ctx, func(ctx context.Context) error {
		return h.poolOf(p).QueryRow(ctx, `SELECT token::text, pending_version, started_at FROM rotations
			WHERE policy = $1 AND rolled_back AND pending_version = ANY($2) ORDER BY started_at DESC LIMIT 1`, p.Name, ids).
			Scan(&token, &version, &started)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		h.Stats.Outcome("check: state unreadable")
	case version != cur.ID && h.rolledBackSince(p, started):
		h.Stats.Outcome("check: a rolled-back rotation's version is previous after another writer rolled current back")
	case h.firstReport("untrue:" + token):
		h.Violate(ctx, UntrueOutcome, p, "rotation %s is recorded as rolled back, yet its version %s holds a stage in the store", token, version)
	}
}

// NoteRollBack records that another writer rolled p's current back to its
// previous version.
func (h *Harness) NoteRollBack(p *Policy) {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	h.rolledBack[p.Name] = time.Now()
}

// rolledBackSince reports whether another writer rolled p's current back
// after t.
func (h *Harness) rolledBackSince(p *Policy, t time.Time) bool {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	at, ok := h.rolledBack[p.Name]
	return ok && at.After(t)
}

// CheckTempFiles looks in the file store's folder for temp files of p's
// secret (all secrets' when p is nil): each is a complete sealed version
// that a write left behind. It runs when no process writes p's secret.
func (h *Harness) CheckTempFiles(ctx context.Context, p *Policy) {
	entries, err := os.ReadDir(h.secretsDir)
	if err != nil {
		h.Stats.Outcome("check: store folder unreadable")
		return
	}
	prefix := ".json.tmp-"
	if p != nil {
		// The file store's name for a secret id: "/" escaped as %2F (the
		// harness's ids hold no other byte it escapes).
		prefix = strings.ReplaceAll(p.SecretID, "/", "%2F") + prefix
	}
	for _, e := range entries {
		match := (p != nil && strings.HasPrefix(e.Name(), prefix)) || (p == nil && strings.Contains(e.Name(), prefix))
		if match && h.firstReport("temp:"+e.Name()) {
			owner := p
			if owner == nil {
				owner = h.ownerOfFile(e.Name())
			}
			h.Violate(ctx, TempFileLeft, owner, "%s is left in the store folder", e.Name())
		}
	}
}

// ownerOfFile finds the policy whose secret a store file belongs to.
func (h *Harness) ownerOfFile(name string) *Policy {
	for _, p := range h.All() {
		if p.Store == StoreFile && strings.HasPrefix(name, strings.ReplaceAll(p.SecretID, "/", "%2F")+".json") {
			return p
		}
	}
	return &Policy{Name: "(unknown)", Store: StoreFile}
}

// StateDown names the injection that makes the state database fail just
// before one of a rotation's store calls, so that the call lands and the
// record of its step that follows fails.
const StateDown = "state database fault before "

// stateDownCalls are the store calls after which a step is recorded: the
// version id create wrote, promote's move of AWSCURRENT, and its removal
// of AWSPENDING (after which promote is recorded).
var stateDownCalls = []struct {
	call string
	nth  int
}{
	{"secretsmanager.PutSecretValue", 1},
	{"secretsmanager.UpdateSecretVersionStage", 1},
	{"secretsmanager.UpdateSecretVersionStage", 2},
}

// StateDownRound makes the state database fail just before a chosen store
// call of a `rotate --local` of an AWS policy, so that the call lands and
// the record of its step fails: either every session is cut (the next
// statement of each fails, later ones reconnect) or the server is stopped
// (-m immediate) and started again after a moment. The outcome swarmkey
// then records must agree with the store (CheckOutcome, in Check). The
// replicas meet the fault too, so it runs with them paused like a restart
// round.
func (h *Harness) StateDownRound(ctx context.Context, rs *Replicas) {
	p := h.pickLocal(StoreAWS)
	if p == nil {
		return
	}
	c := stateDownCalls[h.intn(len(stateDownCalls))]
	down := time.Duration(0)
	if h.intn(2) == 0 {
		down = h.duration(500*time.Millisecond, 5*time.Second)
	}
	h.InjectStateDown(ctx, p, c.call, c.nth, down)
	h.RecoverAll(ctx, rs, "a state database fault")
}

// InjectStateDown is StateDownRound's injection on p with its choices made:
// just before the nth call of call, the database's sessions are cut (down
// 0) or the server is stopped for down.
func (h *Harness) InjectStateDown(ctx context.Context, p *Policy, call string, nth int, down time.Duration) {
	recovered := make(chan error, 1)
	hooked := false
	rule := faultproxy.Rule{Call: call, Nth: nth, Kind: faultproxy.Hook,
		Match: func(c faultproxy.Call) bool { return c.SecretID == p.SecretID },
		Hook: func() {
			hooked = true
			if down == 0 {
				recovered <- h.PG.Exec(context.Background(), stateDB, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`)
				return
			}
			if err := h.PG.Stop(); err != nil {
				recovered <- err
				return
			}
			time.AfterFunc(down, func() { recovered <- h.PG.Start() })
		}}
	id := h.Proxy.Add(rule)
	r := h.RotateLocal(p, nil, 3*time.Minute)
	h.Proxy.Remove(id)
	if hooked {
		if err := <-recovered; err != nil {
			h.t.Fatalf("chaos: %v", err)
		}
	}
	where := fmt.Sprintf("%s #%d", strings.TrimPrefix(call, "secretsmanager."), nth)
	how := "sessions cut"
	if down > 0 {
		how = fmt.Sprintf("server down %s", down.Round(100*time.Millisecond))
	}
	if !hooked {
		h.Stats.Outcome("state database fault: the call it waited for never came")
	} else {
		h.Stats.Inject(StateDown+"a store call", where+", "+how, p.Name, "rotate --local: "+outcomeOf(r))
		h.Stats.Outcome(StateDown + "a store call (" + how + "): " + outcomeOf(r))
	}
	h.Check(ctx, p, true)
	if h.RecoverLocal(ctx, p, "a state database fault ("+how+") before "+where) {
		h.Check(ctx, p, false)
	}
}

// LeftTempFile names the injection that leaves a temp file in the store
// folder as a write killed between its fsync and its rename does.
const LeftTempFile = "temp file of a killed write"

// LeaveTempFile copies p's sealed secret file to a temp file beside it (the
// name the store's writes use), as a kill -9 during a write leaves it: a
// complete, decryptable copy. The next process that opens the store must
// remove it.
func (h *Harness) LeaveTempFile(p *Policy) {
	stem := filepath.Join(h.secretsDir, strings.ReplaceAll(p.SecretID, "/", "%2F")+".json")
	b, err := os.ReadFile(stem)
	if err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	tmp := stem + ".tmp-" + strconv.Itoa(h.intn(1_000_000_000))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	if err := os.Chown(tmp, h.childUID, -1); err != nil {
		h.t.Fatalf("chaos: %v", err)
	}
	h.Stats.Inject(LeftTempFile, "beside "+filepath.Base(stem), p.Name, "")
}

// firstReport reports whether what names a finding not reported before (a
// finding seen by several checks is one violation).
func (h *Harness) firstReport(what string) bool {
	h.stuckMu.Lock()
	defer h.stuckMu.Unlock()
	if h.reported[what] {
		return false
	}
	h.reported[what] = true
	return true
}
