package gcp

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/swarmkey/swarmkey/providers"
)

func validStage(stage providers.Stage) error {
	for _, s := range providers.Stages {
		if s == stage {
			return nil
		}
	}
	return fmt.Errorf("gcp: unknown stage %q (want current, pending or previous)", stage)
}

// Get implements providers.Store. It reads the secret (aliases and tokens),
// then in parallel the value through the alias,
// AccessSecretVersion(…/versions/<stage>), and the version's creation time.
// If the alias moved between the two reads, it reads again, so the value,
// the version id and the token always belong together. A disabled or
// destroyed version under the stage is an error that says so. The pending
// alias on the version that is current is no pending version:
// providers.ErrNotFound.
func (s *Store) Get(ctx context.Context, secretID string, stage providers.Stage) (providers.Version, error) {
	if err := validStage(stage); err != nil {
		return providers.Version{}, err
	}
	name, err := s.secretName(secretID)
	if err != nil {
		return providers.Version{}, err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		v, err := s.getOnce(ctx, name, stage)
		if errors.Is(err, errAliasMoved) {
			continue
		}
		if err != nil {
			return providers.Version{}, fmt.Errorf("gcp: secret %q: get %s: %w", name, stage, err)
		}
		return v, nil
	}
	return providers.Version{}, fmt.Errorf("gcp: secret %q: get %s: the alias kept moving while it was read: %w", name, stage, providers.ErrConflict)
}

var errAliasMoved = errors.New("alias moved")

func (s *Store) getOnce(ctx context.Context, name string, stage providers.Stage) (providers.Version, error) {
	sec, err := s.getSecret(ctx, name)
	if err != nil {
		return providers.Version{}, err
	}
	st := readState(sec)
	want, ok := st.stageVersion(stage)
	if !ok {
		return providers.Version{}, fmt.Errorf("no version holds stage %s (no alias %q): %w", stage, stage, providers.ErrNotFound)
	}
	if cur, hasCur := st.stageVersion(providers.StageCurrent); stage == providers.StagePending && hasCur && cur == want {
		return providers.Version{}, fmt.Errorf("alias pending is on current version %d, which is no pending version: %w", want, providers.ErrNotFound)
	}
	type meta struct {
		v   *secretmanagerpb.SecretVersion
		err error
	}
	metaC := make(chan meta, 1)
	go func() {
		v, err := s.getVersion(ctx, name, want)
		metaC <- meta{v, err}
	}()
	n, value, err := s.access(ctx, name, string(stage))
	m := <-metaC
	if errors.Is(err, providers.ErrNotFound) {
		return providers.Version{}, errAliasMoved // removed since GetSecret
	}
	if err != nil {
		return providers.Version{}, err
	}
	if n != want {
		return providers.Version{}, errAliasMoved
	}
	if m.err != nil {
		return providers.Version{}, m.err
	}
	v := st.version(n, m.v.GetCreateTime().AsTime())
	v.Value = value
	return v, nil
}

// Promote implements providers.Store with one UpdateSecret under the etag
// read just before: alias current → the pending version of req.Token (the
// version req.PendingID when set), previous → the old current (dropped when
// there was none), pending removed, and the token annotation of the version
// that was previous removed with its last stage. Before writing it checks,
// in this order: the version is current already → nil (a retry after a
// crash; a pending alias left on it is removed first); current is not
// req.ExpectedCurrentID ("" = no current alias) → ErrConflict; no pending
// alias → ErrNotFound; pending is another version than req.PendingID, or
// its token annotation is not req.Token (when given) → ErrConflict. If
// anyone changed the secret between the read and the write, the etag no
// longer matches, nothing is written, and Promote returns ErrConflict: the
// caller re-reads and decides, as it would for a moved current.
func (s *Store) Promote(ctx context.Context, secretID string, req providers.PromoteRequest) error {
	name, err := s.secretName(secretID)
	if err != nil {
		return err
	}
	if err := s.promote(ctx, name, req); err != nil {
		return fmt.Errorf("gcp: secret %q: promote (token %s): %w", name, req.Token, err)
	}
	return nil
}

func (s *Store) promote(ctx context.Context, name string, req providers.PromoteRequest) error {
	if req.Token == "" && req.PendingID == "" {
		return errors.New("empty rotation token")
	}
	var want int64
	if req.PendingID != "" {
		n, err := strconv.ParseInt(req.PendingID, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("pending version id %q is not a version number: %w", req.PendingID, providers.ErrNotFound)
		}
		want = n
	}
	sec, err := s.getSecret(ctx, name)
	if err != nil {
		return err
	}
	st := readState(sec)
	cur, hasCur := st.stageVersion(providers.StageCurrent)
	if hasCur && cur == want && req.Token != "" && st.tokens[cur] != req.Token {
		return fmt.Errorf("version %d is current and %s, not token %q's: %w", cur, st.writer(cur), req.Token, providers.ErrConflict)
	}
	if hasCur && (cur == want || (want == 0 && st.tokens[cur] == req.Token)) {
		if p, ok := st.stageVersion(providers.StagePending); !ok || p != cur {
			return nil
		}
		// A pending alias left on the promoted version: the promote is
		// complete once it goes.
		aliases := st.cloneAliases()
		delete(aliases, string(providers.StagePending))
		if _, err := s.updateSecret(ctx, name, st.etag, aliases, nil); err != nil {
			if errors.Is(err, errEtagMoved) {
				return fmt.Errorf("the secret changed between read and write, the pending alias on current version %d stays: %w", cur, err)
			}
			return err
		}
		return nil
	}
	curID := ""
	if hasCur {
		curID = strconv.FormatInt(cur, 10)
	}
	if curID != req.ExpectedCurrentID {
		have := "no version is current"
		if hasCur {
			have = "current is version " + curID
		}
		return fmt.Errorf("%s, the caller expected %q: %w", have, req.ExpectedCurrentID, providers.ErrConflict)
	}
	pend, ok := st.stageVersion(providers.StagePending)
	if !ok {
		return fmt.Errorf("no pending version: %w", providers.ErrNotFound)
	}
	if want != 0 && pend != want {
		return fmt.Errorf("pending is version %d (it %s), not version %d: %w", pend, st.writer(pend), want, providers.ErrConflict)
	}
	if req.Token != "" && st.tokens[pend] != req.Token {
		return fmt.Errorf("pending version %d %s: %w", pend, st.writer(pend), providers.ErrConflict)
	}

	aliases := st.cloneAliases()
	oldPrev, hadPrev := aliases[string(providers.StagePrevious)]
	aliases[string(providers.StageCurrent)] = pend
	delete(aliases, string(providers.StagePending))
	if hasCur {
		aliases[string(providers.StagePrevious)] = cur
	} else {
		delete(aliases, string(providers.StagePrevious))
	}
	var ann map[string]string
	if _, tagged := st.tokens[oldPrev]; hadPrev && tagged && !namedBy(aliases, oldPrev) {
		ann = st.cloneAnnotations()
		delete(ann, tokenKey(oldPrev))
	}
	if _, err := s.updateSecret(ctx, name, st.etag, aliases, ann); err != nil {
		if errors.Is(err, errEtagMoved) {
			return fmt.Errorf("the secret changed between read and write, nothing was promoted: %w", err)
		}
		return err
	}
	return nil
}

func namedBy(aliases map[string]int64, n int64) bool {
	for _, v := range aliases {
		if v == n {
			return true
		}
	}
	return false
}

// DiscardPending implements providers.Store. It removes the pending alias
// first (UpdateSecret under the etag, so a concurrent Promote of the same
// version makes it fail instead of disabling what just became current), then
// disables the version, then drops the version's token annotation. The
// annotation outlives the alias on purpose: a retry after a crash between
// the alias removal and the disable finds the token on a version no alias
// names and disables it then. A reservation left by a PutPending of token
// that crashed (see PutPending) is cleared too, and the versions it may have
// added are disabled. It returns nil when token holds no pending version and
// nothing of it is left over, and when the secret does not exist.
func (s *Store) DiscardPending(ctx context.Context, secretID, token string) error {
	name, err := s.secretName(secretID)
	if err != nil {
		return err
	}
	if token == "" {
		return fmt.Errorf("gcp: secret %q: discard pending: empty rotation token", name)
	}
	for attempt := 0; ; attempt++ {
		err := s.discardOnce(ctx, name, token)
		if errors.Is(err, errEtagMoved) && attempt+1 < maxAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("gcp: secret %q: discard pending (token %s): %w", name, token, err)
		}
		return nil
	}
}

func (s *Store) discardOnce(ctx context.Context, name, token string) error {
	sec, err := s.getSecret(ctx, name)
	if errors.Is(err, providers.ErrNotFound) {
		return nil // no secret, so nothing of token's to discard
	}
	if err != nil {
		return err
	}
	st := readState(sec)
	etag := st.etag
	var victims []int64
	if p, ok := st.stageVersion(providers.StagePending); ok && st.tokens[p] == token {
		aliases := st.cloneAliases()
		delete(aliases, string(providers.StagePending))
		sec, err := s.updateSecret(ctx, name, etag, aliases, nil)
		if err != nil {
			return err
		}
		etag = sec.GetEtag()
		st.aliases = aliases
	}
	for n, t := range st.tokens {
		if t == token && !st.aliased(n) {
			victims = append(victims, n)
		}
	}
	reserved := st.reserved == token
	if reserved {
		err := s.eachOrphan(ctx, name, st, func(_ *secretmanagerpb.SecretVersion, n int64) error {
			victims = append(victims, n)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(victims) == 0 && !reserved {
		return nil
	}
	for _, n := range victims {
		if err := s.disable(ctx, name, n); err != nil {
			return err
		}
	}
	ann := st.cloneAnnotations()
	for _, n := range victims {
		delete(ann, tokenKey(n))
	}
	if reserved {
		delete(ann, annReserved)
		delete(ann, annReservedAfter)
	}
	_, err = s.updateSecret(ctx, name, etag, nil, ann)
	return err
}

// DiscardPendingVersion implements providers.Store for the pending version
// numbered versionID, whoever wrote it: the pending alias is removed under
// the etag (unless it is also the current alias: that is no pending
// version, and nothing changes), then the version is disabled and its token
// annotation, if any, dropped. It returns nil when versionID holds no
// pending alias. A crash between the alias removal and the disable leaves an
// enabled version that no alias names, which RetireUnstaged disables.
func (s *Store) DiscardPendingVersion(ctx context.Context, secretID, versionID string) error {
	name, err := s.secretName(secretID)
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(versionID, 10, 64)
	if err != nil || n < 1 {
		return fmt.Errorf("gcp: secret %q: discard pending version %q: not a version number", name, versionID)
	}
	for attempt := 0; ; attempt++ {
		err := s.discardVersionOnce(ctx, name, n)
		if errors.Is(err, errEtagMoved) && attempt+1 < maxAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("gcp: secret %q: discard pending version %d: %w", name, n, err)
		}
		return nil
	}
}

func (s *Store) discardVersionOnce(ctx context.Context, name string, n int64) error {
	sec, err := s.getSecret(ctx, name)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	st := readState(sec)
	p, ok := st.stageVersion(providers.StagePending)
	if !ok || p != n {
		return nil
	}
	if cur, hasCur := st.stageVersion(providers.StageCurrent); hasCur && cur == n {
		return nil
	}
	aliases := st.cloneAliases()
	delete(aliases, string(providers.StagePending))
	var ann map[string]string
	if _, tagged := st.tokens[n]; tagged {
		ann = st.cloneAnnotations()
		delete(ann, tokenKey(n))
	}
	if _, err := s.updateSecret(ctx, name, st.etag, aliases, ann); err != nil {
		return err
	}
	if !namedBy(aliases, n) {
		return s.disable(ctx, name, n)
	}
	return nil
}

// RetireUnstaged implements providers.Store: every version that no alias
// names (swarmkey's or another's) is disabled, or destroyed with req.Destroy
// or Options.DestroyRetired (destroying also covers versions disabled
// before). Versions above a live reservation's reserved-after are left
// alone: they may belong to a PutPending between AddSecretVersion and its
// alias update. The versions are listed before the secret is read, so a
// version that a concurrent PutPending adds is either missing from the list
// or covered by its reservation or pending alias in the later read. Token
// annotations of versions that no alias names are dropped afterwards when
// the etag still matches (they matter only to DiscardPending's retry, which
// this makes unnecessary).
func (s *Store) RetireUnstaged(ctx context.Context, secretID string, req providers.RetireRequest) error {
	name, err := s.secretName(secretID)
	if err != nil {
		return err
	}
	if err := s.retire(ctx, name, req.Destroy || s.opts.DestroyRetired); err != nil {
		return fmt.Errorf("gcp: secret %q: retire unstaged: %w", name, err)
	}
	return nil
}

func (s *Store) retire(ctx context.Context, name string, destroy bool) error {
	type listed struct {
		n     int64
		state secretmanagerpb.SecretVersion_State
	}
	var all []listed
	err := s.eachVersion(ctx, name, func(v *secretmanagerpb.SecretVersion) (bool, error) {
		n, err := versionNumber(v.GetName())
		if err != nil {
			return false, err
		}
		all = append(all, listed{n, v.GetState()})
		return true, nil
	})
	if err != nil {
		return err
	}
	sec, err := s.getSecret(ctx, name)
	if err != nil {
		return err
	}
	st := readState(sec)
	for _, v := range all {
		if st.aliased(v.n) || (st.reserved != "" && v.n > st.reservedAt) {
			continue
		}
		switch {
		case destroy && v.state != secretmanagerpb.SecretVersion_DESTROYED:
			err = s.destroy(ctx, name, v.n)
		case !destroy && v.state == secretmanagerpb.SecretVersion_ENABLED:
			err = s.disable(ctx, name, v.n)
		}
		if err != nil {
			return err
		}
	}
	ann := st.cloneAnnotations()
	for n := range st.tokens {
		if !st.aliased(n) {
			delete(ann, tokenKey(n))
		}
	}
	if len(ann) == len(st.annotations) {
		return nil
	}
	if _, err := s.updateSecret(ctx, name, st.etag, nil, ann); err != nil && !errors.Is(err, errEtagMoved) {
		return err
	}
	return nil
}
