package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/providers"
)

// canaryPassed says whether the version token of policy was written by a
// rotation of that policy that completed its test step. why says what is
// wrong otherwise.
func canaryPassed(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, policy, token, versionID string) (ok bool, why string, err error) {
	var owner, step, outcome string
	err = q.QueryRow(ctx, `SELECT policy, step, outcome FROM rotations WHERE token::text = $1`, token).Scan(&owner, &step, &outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Sprintf("version %s was written by no rotation of swarmkey", versionID), nil
	}
	if err != nil {
		return false, "", err
	}
	if owner != policy {
		return false, fmt.Sprintf("version %s belongs to a rotation of policy %s", versionID, owner), nil
	}
	switch step {
	case "test", "promote", "finish":
		return true, "", nil
	}
	var reconciled bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_log WHERE policy = $1 AND action = 'rotation.reconciled'
		AND detail->>'action' = 'promoted' AND detail->>'stale_pending' = $2)`, policy, versionID).Scan(&reconciled); err != nil {
		return false, "", err
	}
	if reconciled {
		return false, fmt.Sprintf("version %s (rotation %s, last step %q, %s) was promoted by the reconcile of a stale pending version, which logs in with it but runs no canary",
			versionID, token, step, outcome), nil
	}
	return false, fmt.Sprintf("version %s is current but its rotation %s stopped after step %q (%s): it never passed its canary",
		versionID, token, step, outcome), nil
}

// Check checks one policy's invariants against its store and the server:
// current logs in, previous too for alternating, current passed its canary.
// With relaxed (a serve policy that a rotation may be in the middle of,
// checked under the policy's lock) an unfinished single rotation past set
// may have left current not working: then pending must log in instead.
func (h *Harness) Check(ctx context.Context, p *Policy, relaxed bool) {
	logins := 0
	defer func() { h.Stats.Checked(logins) }()
	defer h.CheckOutcome(ctx, p)
	if !relaxed && p.Store == StoreFile {
		// Nothing writes p's secret now: a temp file is a leftover.
		defer h.CheckTempFiles(ctx, p)
	}
	var running struct {
		token, step string
	}
	pool := h.poolOf(p)
	if relaxed {
		err := h.query(ctx, func(ctx context.Context) error {
			return pool.QueryRow(ctx, `SELECT token::text, step FROM rotations WHERE policy = $1 AND outcome = 'running'`, p.Name).
				Scan(&running.token, &running.step)
		})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			h.Stats.Outcome("check: state unreadable")
			return
		}
	}
	cur, ok, err := h.stageOf(ctx, p, providers.StageCurrent)
	if err != nil && !ok {
		h.Stats.Outcome("check: store unreadable")
		h.opts.Logf("check %s: read current: %v", p.Name, err)
		return
	}
	if !ok {
		var promoted bool
		if err := h.query(ctx, func(ctx context.Context) error {
			return pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rotations WHERE policy = $1 AND step IN ('promote', 'finish'))`,
				p.Name).Scan(&promoted)
		}); err != nil {
			h.Stats.Outcome("check: state unreadable")
			return
		}
		if promoted {
			h.Violate(ctx, Lockout, p, "no current version, although a rotation was promoted")
		} else {
			h.Stats.Outcome("check: not rotated yet")
		}
		return
	}
	if err == nil {
		logins++
		if lerr := h.LogsIn(ctx, cur); lerr != nil {
			excused := false
			if relaxed && p.Strategy == Single && running.token != "" && running.step != "" {
				// Between set and promote single's current does not work
				// by design; clients retry with pending. (A rotation that
				// completed create may have applied set without recording
				// it: its process died in between.)
				pend, pok, perr := h.stageOf(ctx, p, providers.StagePending)
				logins++
				excused = pok && perr == nil && h.LogsIn(ctx, pend) == nil
				if excused {
					h.Stats.Outcome("check: single between set and promote, pending logs in")
				}
			}
			if !excused {
				h.Violate(ctx, Lockout, p, "current version %s (%s) does not log in: %s", cur.ID, cur.Username, scrub(lerr, cur))
			}
		}
	}
	ok2, why, qerr := false, "", error(nil)
	qerr = h.query(ctx, func(ctx context.Context) error {
		var e error
		ok2, why, e = canaryPassed(ctx, pool, p.Name, cur.Token, cur.ID)
		return e
	})
	switch {
	case qerr != nil:
		h.Stats.Outcome("check: state unreadable")
	case !ok2:
		h.Violate(ctx, ForeignPromotion, p, "%s", why)
	}
	if p.Strategy != Alternating {
		return
	}
	prev, ok, err := h.stageOf(ctx, p, providers.StagePrevious)
	if err != nil && !ok {
		h.Stats.Outcome("check: store unreadable")
		return
	}
	if ok && err == nil {
		logins++
		if lerr := h.LogsIn(ctx, prev); lerr != nil {
			if relaxed && running.token != "" && running.step != "" {
				// The unfinished rotation's set changed previous's role,
				// as alternating does; its pending credential works.
				pend, pok, perr := h.stageOf(ctx, p, providers.StagePending)
				logins++
				if pok && perr == nil && h.LogsIn(ctx, pend) == nil {
					h.Stats.Outcome("check: alternating past set, previous replaced by pending")
					return
				}
			}
			h.Violate(ctx, Lockout, p, "previous version %s (%s) of alternating does not log in: %s", prev.ID, prev.Username, scrub(lerr, prev))
		}
	}
}

// scrub keeps a login error's text free of the password it tried.
func scrub(err error, l Login) string {
	s := err.Error()
	if l.password != "" {
		s = strings.ReplaceAll(s, l.password, "[REDACTED]")
	}
	return s
}

// CheckDoubleRotations counts request keys that succeeded more than once,
// by the rotations' rows and by the append-only audit log.
func (h *Harness) CheckDoubleRotations(ctx context.Context, seen map[string]bool) {
	var keys []string
	err := h.query(ctx, func(ctx context.Context) error {
		rows, err := h.pool.Query(ctx, `
			SELECT request_key, count(*) FROM rotations
			WHERE outcome = 'succeeded' AND request_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1
			UNION
			SELECT r.request_key, count(DISTINCT a.rotation) FROM audit_log a JOIN rotations r ON r.token = a.rotation
			WHERE a.action = 'rotation.succeeded' AND r.request_key IS NOT NULL GROUP BY 1 HAVING count(DISTINCT a.rotation) > 1`)
		if err != nil {
			return err
		}
		keys = keys[:0]
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				return err
			}
			keys = append(keys, fmt.Sprintf("%s\x00%d", k, n))
		}
		return rows.Err()
	})
	if err != nil {
		h.Stats.Outcome("check: state unreadable")
		return
	}
	for _, kn := range keys {
		k, n, _ := strings.Cut(kn, "\x00")
		if seen[k] {
			continue
		}
		seen[k] = true
		policy := strings.SplitN(strings.TrimPrefix(k, "fire:"), ":", 2)[0]
		h.Stats.Violate(DoubleRotation, policy, "request key %s succeeded %s times", k, n)
	}
}

// CheckProxyPromotions checks every AWSCURRENT move the proxy forwarded with
// success: each must name a version whose rotation passed its canary, so a
// promotion that a later one replaced before a check is judged too.
func (h *Harness) CheckProxyPromotions(ctx context.Context) {
	byName := map[string]*Policy{}
	for _, p := range h.All() {
		if p.Store == StoreAWS {
			byName[p.SecretID] = p
		}
	}
	judged := map[string]bool{}
	for _, c := range h.Proxy.Calls() {
		if c.Target != "secretsmanager.UpdateSecretVersionStage" || c.Stage != "AWSCURRENT" || c.MoveTo == "" ||
			c.Status != 200 || c.MoveTo == placeholder || judged[c.MoveTo] {
			continue
		}
		judged[c.MoveTo] = true
		p := byName[c.SecretID]
		if p == nil {
			continue
		}
		h.Stats.Outcome("promotions seen by the proxy")
		var ok bool
		var why string
		err := h.query(ctx, func(ctx context.Context) error {
			var e error
			ok, why, e = canaryPassed(ctx, h.pool, p.Name, c.MoveTo, c.MoveTo)
			return e
		})
		if err == nil && !ok {
			h.Violate(ctx, ForeignPromotion, p, "the proxy forwarded a promote at %s: %s", c.At.Format(time.RFC3339Nano), why)
		}
	}
}

// LockPolicy takes policy's advisory lock (the one every rotation holds) on
// a connection of its own, waiting up to limit; release gives it back.
func (h *Harness) LockPolicy(ctx context.Context, policy string, limit time.Duration) (release func(), err error) {
	deadline := time.Now().Add(limit)
	for {
		conn, err := h.pool.Acquire(ctx)
		if err == nil {
			var ok bool
			err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, "swarmkey/policy/"+policy).Scan(&ok)
			if err == nil && ok {
				return func() {
					rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					var released bool
					if conn.QueryRow(rctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, "swarmkey/policy/"+policy).Scan(&released) != nil || !released {
						_ = conn.Conn().Close(rctx)
					}
					conn.Release()
				}, nil
			}
			conn.Release()
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("policy %s stayed locked for %s", policy, limit)
			}
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolOf is the state database of p's rotations.
func (h *Harness) poolOf(p *Policy) *pgxpool.Pool {
	if p.Store == StoreGCP && h.gcp != nil {
		return h.gcp.pool
	}
	return h.pool
}

// stageOf reads p's version at stage from its store.
func (h *Harness) stageOf(ctx context.Context, p *Policy, stage providers.Stage) (Login, bool, error) {
	if p.Store == StoreGCP && h.gcp != nil {
		return h.gcp.stage(ctx, p, stage)
	}
	return h.Stage(ctx, p, stage)
}

// Violate records a violation of invariant by p with the policy's last
// rotations, as the state database has them, for whoever reads the report.
func (h *Harness) Violate(ctx context.Context, invariant string, p *Policy, format string, args ...any) {
	pool := h.poolOf(p)
	h.Stats.Violate(invariant, p.Name, "%s\n%s", fmt.Sprintf(format, args...), history(ctx, pool, p.Name))
}

// history lists the last rotations of policy, oldest first.
func history(ctx context.Context, pool *pgxpool.Pool, policy string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT * FROM (
		SELECT started_at, token::text, actor, coalesce(request_key, ''), step, outcome, resumes, coalesce(error, '')
		FROM rotations WHERE policy = $1 ORDER BY started_at DESC LIMIT 8) r ORDER BY 1`, policy)
	if err != nil {
		return "    (history unreadable: " + err.Error() + ")"
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("    last rotations (started, token, actor, key, last step, outcome, resumes, error):")
	for rows.Next() {
		var (
			at                               time.Time
			token, actor, key, step, outcome string
			resumes                          int
			errText                          string
		)
		if rows.Scan(&at, &token, &actor, &key, &step, &outcome, &resumes, &errText) != nil {
			continue
		}
		if len(errText) > 300 {
			errText = errText[:300] + "…"
		}
		fmt.Fprintf(&b, "\n      %s %s %s %s %q %s %d %s", at.UTC().Format("15:04:05.000"), token, actor, key, step, outcome, resumes, errText)
	}
	return b.String()
}
