package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// The operator's records (runs, tokens) are written with their audit entry:
// each operation below checks its input against the configuration, writes
// the row, then the audit row, and says plainly when the second failed.

// RunRequest is a Locust run to record: one-off from Start, or recurring at
// every fire of Every in Timezone (Start zero).
type RunRequest struct {
	Name     string
	Start    time.Time
	Every    string
	Timezone string
	Duration time.Duration
	// Uses are policy names or tag:NAME, checked against the configuration.
	Uses []string
	// Actor is who adds it ("operator:NAME").
	Actor string
}

// AddRun records a run and audits it as run.added. The state database's own
// refusals (*state.InvalidRunError, state.ErrRunExists) come back as they
// are, for the caller to name its flags.
func (s *Session) AddRun(ctx context.Context, req RunRequest) (state.Run, error) {
	uses, err := CheckUses("--uses", s.Config, req.Uses)
	if err != nil {
		return state.Run{}, err
	}
	var r state.Run
	if req.Every == "" {
		r, err = s.DB.AddOneOffRun(ctx, state.OneOffRunRequest{Name: req.Name, Start: req.Start, Duration: req.Duration, Uses: uses, CreatedBy: req.Actor})
	} else {
		r, err = s.DB.AddRecurringRun(ctx, state.RecurringRunRequest{Name: req.Name, Every: req.Every, Timezone: req.Timezone,
			Duration: req.Duration, Uses: uses, CreatedBy: req.Actor})
	}
	if err != nil {
		return state.Run{}, err
	}
	detail := map[string]any{"run": r.Name, "kind": string(r.Kind), "duration": r.Duration.String(), "uses": r.Uses}
	if r.Kind == state.RunOneOff {
		detail["start"] = r.Start.Format(time.RFC3339)
	} else {
		detail["every"], detail["timezone"] = r.Every, r.Timezone
	}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: req.Actor, Action: "run.added", Detail: detail}); err != nil {
		return r, fmt.Errorf("run %q was added, but its audit entry failed: %w", r.Name, err)
	}
	return r, nil
}

// CancelRun cancels the active run called name and audits it; state.ErrNotFound
// when no active run has the name.
func (s *Session) CancelRun(ctx context.Context, name, actor string) (state.Run, error) {
	r, err := s.DB.CancelRun(ctx, name, actor)
	if err != nil {
		return state.Run{}, err
	}
	err = s.DB.AppendAudit(ctx, state.AuditEntry{Actor: actor, Action: "run.cancelled",
		Detail: map[string]any{"run": r.Name, "kind": string(r.Kind), "uses": r.Uses}})
	if err != nil {
		return r, fmt.Errorf("run %q was cancelled, but its audit entry failed: %w", r.Name, err)
	}
	return r, nil
}

// AddToken creates a token whose grants are checked against the
// configuration and returns it with its value, which exists only here: the
// database keeps a hash. A token whose audit row cannot be written is
// revoked at once: it must not be usable unaudited.
func (s *Session) AddToken(ctx context.Context, req state.TokenRequest) (state.Token, secret.Secret, error) {
	if len(req.Grants) > 0 {
		grants, err := CheckUses("--grant", s.Config, req.Grants)
		if err != nil {
			return state.Token{}, secret.Secret{}, err
		}
		req.Grants = grants
	}
	row, token, err := s.DB.AddToken(ctx, req)
	if err != nil {
		return state.Token{}, secret.Secret{}, err
	}
	detail := map[string]any{"token": row.Name, "scope": string(row.Scope), "grants": row.Grants}
	if row.ExpiresAt != nil {
		detail["expires_at"] = row.ExpiresAt.Format(time.RFC3339)
	}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: req.CreatedBy, Action: "token.added", Detail: detail}); err != nil {
		_, _ = s.DB.RevokeToken(ctx, row.Name, req.CreatedBy)
		return state.Token{}, secret.Secret{}, fmt.Errorf("token %q was not issued: its audit entry failed: %w", row.Name, err)
	}
	return row, token, nil
}

// RevokeToken revokes the active token called name and audits it;
// state.ErrNotFound when no active token has the name.
func (s *Session) RevokeToken(ctx context.Context, name, actor string) (state.Token, error) {
	t, err := s.DB.RevokeToken(ctx, name, actor)
	if err != nil {
		return state.Token{}, err
	}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: actor, Action: "token.revoked",
		Detail: map[string]any{"token": t.Name, "scope": string(t.Scope)}}); err != nil {
		return t, fmt.Errorf("token %q was revoked, but its audit entry failed: %w", t.Name, err)
	}
	return t, nil
}

// CheckUses checks a list of policy names and tag:NAME entries (a run's
// --uses, a token's --grant) against the configuration: each names a policy,
// or a tag some policy has. Entries are trimmed; empty ones are dropped.
// Problems are InputErrors that start with flag.
func CheckUses(flag string, cfg *config.Config, uses []string) ([]string, error) {
	var out []string
	for _, u := range uses {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if tag, ok := strings.CutPrefix(u, state.UsesTagPrefix); ok {
			if !slices.ContainsFunc(cfg.Policies, func(p config.Policy) bool { return slices.Contains(p.Tags, tag) }) {
				var tags []string
				for _, p := range cfg.Policies {
					tags = append(tags, p.Tags...)
				}
				slices.Sort(tags)
				if tags = slices.Compact(tags); len(tags) == 0 {
					return nil, Inputf("%s: no policy has tag %q: no policy has any tag (tags: in the policy files)", flag, tag)
				}
				return nil, Inputf("%s: no policy has tag %q: known tags are %s", flag, tag, ListSome(tags))
			}
		} else if _, ok := cfg.Policy(u); !ok {
			names := make([]string, len(cfg.Policies))
			for i, p := range cfg.Policies {
				names[i] = p.Name
			}
			return nil, Inputf("%s: unknown policy %q: known policies are %s (or use tag:NAME)", flag, u, ListSome(names))
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, Inputf("%s is required: the policies (or tag:NAME) whose credentials the run uses", flag)
	}
	return out, nil
}

// ListSome joins up to ten names, then says how many more there are.
func ListSome(names []string) string {
	const most = 10
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
}
