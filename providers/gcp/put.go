package gcp

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// PutPending implements providers.Store.
//
// AddSecretVersion is not idempotent (every call makes a new version), so a
// crash between adding the version and aliasing it as pending would leave an
// orphan that a retry cannot recognise by itself. PutPending therefore works
// in four steps, each of which a retry can resume from:
//
//  1. GetSecret (etag, aliases, annotations). If an alias already names a
//     version whose token annotation is token, the value is compared
//     (AccessSecretVersion): equal is a no-op returning that version,
//     different is ErrConflict. A pending alias on another token's (or an
//     unknown writer's) version is ErrConflict, unless that version is also
//     current (no pending version: step 4 moves the alias), and so is
//     another token's reservation (step 2): pending versions are never
//     stacked.
//  2. Reserve: one UpdateSecret with the etag writes the annotations
//     swarmkey.reserved-token = token and swarmkey.reserved-after = the
//     newest version number (ListSecretVersions, one entry).
//  3. AddSecretVersion with the value and its CRC32C. The secret's etag does
//     not change: version writes touch only the version's own etag.
//  4. One UpdateSecret with the etag from step 2 sets alias pending to the
//     new version, writes swarmkey.token.<n> = token and drops the
//     reservation.
//
// A retry that finds its own reservation (a crash after 2 or 3) lists the
// versions above reserved-after that no alias names and that are enabled:
// the first whose value equals value is adopted (step 4 without a new
// version); the others are disabled, since only this rotation added versions
// while it held the reservation and none of them was ever visible under a
// stage. If none matches, steps 3 and 4 run again. A token that crashed with
// one value and retries with another thus gets a fresh pending version, and
// the unseen first value is disabled; this differs from the rule for a
// version that a stage names, which is never replaced.
//
// When the etag moved under step 2 or 4 (another writer changed the secret),
// PutPending starts again from step 1, a few times at most, then reports
// ErrConflict; step 1 of the next round sees what the other writer did, and
// after a lost step-4 response it adopts its own version. A missing secret is
// created first with Options.Create, and is ErrNotFound otherwise.
func (s *Store) PutPending(ctx context.Context, secretID, token string, value secret.Secret) (providers.Version, error) {
	name, err := s.secretName(secretID)
	if err != nil {
		return providers.Version{}, err
	}
	if token == "" {
		return providers.Version{}, fmt.Errorf("gcp: secret %q: put pending: empty rotation token", name)
	}
	if value.IsZero() {
		return providers.Version{}, fmt.Errorf("gcp: secret %q: put pending: empty value", name)
	}
	for attempt := 0; ; attempt++ {
		v, err := s.putPendingOnce(ctx, name, secretID, token, value)
		if errors.Is(err, errEtagMoved) && attempt+1 < maxAttempts {
			continue
		}
		if err != nil {
			return providers.Version{}, fmt.Errorf("gcp: secret %q: put pending (token %s): %w", name, token, err)
		}
		return v, nil
	}
}

func (s *Store) putPendingOnce(ctx context.Context, name, secretID, token string, value secret.Secret) (providers.Version, error) {
	// Step 1.
	sec, err := s.getSecret(ctx, name)
	if errors.Is(err, providers.ErrNotFound) {
		if !s.opts.Create {
			return providers.Version{}, fmt.Errorf("the secret does not exist: create it (gcloud secrets create %s --replication-policy=automatic) or set create: true on the gcp provider: %w", secretID, providers.ErrNotFound)
		}
		sec, err = s.createSecret(ctx, name, secretID)
	}
	if err != nil {
		return providers.Version{}, err
	}
	st := readState(sec)

	if n, ok := st.tokenVersion(token); ok {
		return s.samePending(ctx, name, st, n, value)
	}
	if p, ok := st.stageVersion(providers.StagePending); ok {
		// A pending alias on the current version is no pending version:
		// step 4 moves it to the new one.
		if cur, hasCur := st.stageVersion(providers.StageCurrent); !hasCur || cur != p {
			return providers.Version{}, fmt.Errorf("pending version %d %s: finish or discard that rotation first: %w", p, st.writer(p), providers.ErrConflict)
		}
	}
	if st.reserved != "" && st.reserved != token {
		return providers.Version{}, fmt.Errorf("rotation token %q is writing a pending version (reservation annotation %s): resume or discard that rotation first: %w", st.reserved, annReserved, providers.ErrConflict)
	}

	etag := st.etag
	if st.reserved == token {
		adopted, err := s.recoverOrphans(ctx, name, st, value)
		if err != nil {
			return providers.Version{}, err
		}
		if adopted != nil {
			return s.aliasPending(ctx, name, st, etag, token, adopted)
		}
	} else {
		// Step 2.
		newest, err := s.newestVersion(ctx, name)
		if err != nil {
			return providers.Version{}, err
		}
		ann := st.cloneAnnotations()
		ann[annReserved] = token
		ann[annReservedAfter] = strconv.FormatInt(newest, 10)
		sec, err := s.updateSecret(ctx, name, etag, nil, ann)
		if err != nil {
			return providers.Version{}, err
		}
		// Only the etag is taken from the response; the aliases and
		// annotations are what was read and written.
		etag = sec.GetEtag()
		st.annotations = ann
	}

	// Step 3.
	v, err := s.addVersion(ctx, name, value)
	if err != nil {
		return providers.Version{}, err
	}
	// Step 4.
	return s.aliasPending(ctx, name, st, etag, token, v)
}

// samePending is step 1's answer when token already has version n under a
// stage: the same value is a no-op, another value a conflict.
func (s *Store) samePending(ctx context.Context, name string, st state, n int64, value secret.Secret) (providers.Version, error) {
	_, have, err := s.access(ctx, name, strconv.FormatInt(n, 10))
	if err != nil {
		return providers.Version{}, err
	}
	if !have.Equal(value) {
		return providers.Version{}, fmt.Errorf("rotation token %q already wrote version %d with another value: %w", st.tokens[n], n, providers.ErrConflict)
	}
	meta, err := s.getVersion(ctx, name, n)
	if err != nil {
		return providers.Version{}, err
	}
	return st.version(n, meta.GetCreateTime().AsTime()), nil
}

// recoverOrphans looks at the versions added since the reservation (see
// PutPending) and returns the one holding value, disabling the others.
func (s *Store) recoverOrphans(ctx context.Context, name string, st state, value secret.Secret) (*secretmanagerpb.SecretVersion, error) {
	var adopted *secretmanagerpb.SecretVersion
	var stray []int64
	err := s.eachOrphan(ctx, name, st, func(v *secretmanagerpb.SecretVersion, n int64) error {
		if adopted != nil {
			stray = append(stray, n)
			return nil
		}
		_, have, err := s.access(ctx, name, strconv.FormatInt(n, 10))
		if err != nil {
			return err
		}
		if have.Equal(value) {
			adopted = v
		} else {
			stray = append(stray, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range stray {
		if err := s.disable(ctx, name, n); err != nil {
			return nil, err
		}
	}
	return adopted, nil
}

// eachOrphan calls fn, oldest first, for the enabled versions above the
// reservation's reserved-after that no alias names.
func (s *Store) eachOrphan(ctx context.Context, name string, st state, fn func(*secretmanagerpb.SecretVersion, int64) error) error {
	type orphan struct {
		v *secretmanagerpb.SecretVersion
		n int64
	}
	var found []orphan
	err := s.eachVersion(ctx, name, func(v *secretmanagerpb.SecretVersion) (bool, error) {
		n, err := versionNumber(v.GetName())
		if err != nil {
			return false, err
		}
		if n <= st.reservedAt {
			return false, nil // newest first: nothing older can be an orphan
		}
		if v.GetState() == secretmanagerpb.SecretVersion_ENABLED && !st.aliased(n) {
			found = append(found, orphan{v, n})
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for i := len(found) - 1; i >= 0; i-- {
		if err := fn(found[i].v, found[i].n); err != nil {
			return err
		}
	}
	return nil
}

// aliasPending is step 4: alias pending → v, token annotation, reservation
// dropped, in one UpdateSecret under etag.
func (s *Store) aliasPending(ctx context.Context, name string, st state, etag, token string, v *secretmanagerpb.SecretVersion) (providers.Version, error) {
	n, err := versionNumber(v.GetName())
	if err != nil {
		return providers.Version{}, fmt.Errorf("AddSecretVersion: %w", err)
	}
	aliases := st.cloneAliases()
	aliases[string(providers.StagePending)] = n
	ann := st.cloneAnnotations()
	ann[tokenKey(n)] = token
	delete(ann, annReserved)
	delete(ann, annReservedAfter)
	if _, err := s.updateSecret(ctx, name, etag, aliases, ann); err != nil {
		return providers.Version{}, err
	}
	st.aliases = aliases
	st.tokens[n] = token
	return st.version(n, v.GetCreateTime().AsTime()), nil
}
