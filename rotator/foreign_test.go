package rotator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// The tests of this file put a cloud store into the states other writers
// leave it in (another tool's pending version, AWS's finished rotation, a
// rotation Lambda mid-way, a promote cut between its two calls) and check
// what swarmkey does about them (docs/design.md, "Whose version is it",
// "Promote is all or nothing", "Another rotator").

// otherWriter is a cloud store with the means of another writer: the SDK
// or the fake, behind the store's back.
type otherWriter struct {
	cloud
	// putPending writes doc as a new version that holds pending, as another
	// tool would, claiming token (AWS: its version id; GCP: the token
	// annotation, none when ""), and returns its version id.
	putPending func(t *testing.T, token string, doc string) string
	// pendingOnCurrent puts the pending stage on the current version, as
	// AWS's own rotation functions leave a secret when they finish.
	pendingOnCurrent func(t *testing.T)
	// snapshot describes everything the store holds on the secret (stages,
	// annotations, version states), to show that nothing changed.
	snapshot func(t *testing.T) string
}

func awsWriter(t *testing.T, cfg awsv2.Config) otherWriter {
	t.Helper()
	s, err := aws.NewFromConfig(cfg, aws.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	raw := secretsmanager.NewFromConfig(mototest.Config(t))
	id := mototest.Prefix(t) + "checkout-db"
	describe := func(t *testing.T) *secretsmanager.DescribeSecretOutput {
		d, err := raw.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(id)})
		require.NoError(t, err)
		return d
	}
	holder := func(t *testing.T, label string) *string {
		for version, labels := range describe(t).VersionIdsToStages {
			for _, l := range labels {
				if l == label {
					return awsv2.String(version)
				}
			}
		}
		return nil
	}
	return otherWriter{
		cloud: cloud{store: s, secretID: id},
		putPending: func(t *testing.T, token, doc string) string {
			if token == "" {
				token = uuid.NewString()
			}
			_, err := raw.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
				SecretId: awsv2.String(id), ClientRequestToken: awsv2.String(token),
				SecretString: awsv2.String(doc), VersionStages: []string{"AWSPENDING"},
			})
			require.NoError(t, err)
			return token
		},
		pendingOnCurrent: func(t *testing.T) {
			_, err := raw.UpdateSecretVersionStage(t.Context(), &secretsmanager.UpdateSecretVersionStageInput{
				SecretId: awsv2.String(id), VersionStage: awsv2.String("AWSPENDING"),
				MoveToVersionId: holder(t, "AWSCURRENT"), RemoveFromVersionId: holder(t, "AWSPENDING"),
			})
			require.NoError(t, err)
		},
		snapshot: func(t *testing.T) string {
			var out []string
			for version, labels := range describe(t).VersionIdsToStages {
				sort.Strings(labels)
				out = append(out, version+"="+strings.Join(labels, "+"))
			}
			sort.Strings(out)
			return strings.Join(out, " ")
		},
	}
}

func gcpWriter(t *testing.T) otherWriter {
	t.Helper()
	srv := gcpfake.Start(t)
	s, err := gcp.New(t.Context(), gcp.Options{Project: gcpfake.Project, Create: true}, srv.ClientOptions(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	const id = "checkout-db"
	return otherWriter{
		cloud: cloud{store: s, secretID: id},
		putPending: func(t *testing.T, token, doc string) string {
			n := srv.AddVersion(t, id, []byte(doc))
			srv.Mutate(t, id, func(m *secretmanagerpb.Secret) {
				m.VersionAliases["pending"] = n
				if m.Annotations == nil {
					m.Annotations = map[string]string{}
				}
				if token != "" {
					m.Annotations[fmt.Sprintf("swarmkey.token.%d", n)] = token
				}
			})
			return fmt.Sprint(n)
		},
		pendingOnCurrent: func(t *testing.T) {
			srv.Mutate(t, id, func(m *secretmanagerpb.Secret) { m.VersionAliases["pending"] = m.VersionAliases["current"] })
		},
		snapshot: func(t *testing.T) string {
			meta, states := srv.Snapshot(t, id)
			return fmt.Sprint(meta.GetVersionAliases(), meta.GetAnnotations(), states)
		},
	}
}

var writers = []struct {
	name string
	open func(t *testing.T) otherWriter
}{
	{"aws", func(t *testing.T) otherWriter { return awsWriter(t, mototest.Config(t)) }},
	{"gcp", gcpWriter},
}

// foreignDoc is a postgres document for the policy's role with password.
func (b *bundle) foreignDoc(password string) string {
	return fmt.Sprintf(`{"engine":"postgres","username":%q,"password":%q}`, b.username, password)
}

func (b *bundle) setPassword(password string) {
	b.exec(`ALTER ROLE ` + ident(b.username) + ` PASSWORD '` + password + `'`)
}

// audit returns the audit log of the policy as "action key=value… by
// actor" lines, with the detail keys asked for.
func (b *bundle) audit(keys ...string) []string {
	b.t.Helper()
	entries, err := b.state.Audit(b.ctx, "checkout-db", 1000)
	require.NoError(b.t, err)
	var out []string
	for _, e := range entries {
		line := e.Action
		for _, k := range keys {
			if v, ok := e.Detail[k]; ok {
				line += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		out = append(out, line+" by "+e.Actor)
	}
	return out
}

func (b *bundle) historyLen() int {
	b.t.Helper()
	rows, err := b.state.History(b.ctx, "checkout-db", 1000)
	require.NoError(b.t, err)
	return len(rows)
}

// TestForeignPendingIsRefusedThenResolved: another tool wrote a pending
// version of the policy's credential. Whether or not that tool applied it
// to the role, the rotation refuses it, names it and what to run, and
// changes nothing (store, role, rotations); the operator's resolve then
// promotes it only if its canary passes, or discards it, and rotations go
// on.
func TestForeignPendingIsRefusedThenResolved(t *testing.T) {
	for _, w := range writers {
		for _, applied := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/applied=%v", w.name, applied), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				c := w.open(t)
				p := b.cloudPolicy(c.cloud, targets.Single)
				_, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)
				before, _ := b.cloudStage(c.cloud, providers.StageCurrent)

				foreignPassword := "foreign-" + uuid.NewString()
				version := c.putPending(t, "", b.foreignDoc(foreignPassword))
				if applied {
					// The other tool changed the role too: only its pending
					// credential logs in now (what swarmkey used to promote).
					b.setPassword(foreignPassword)
				}
				stored, rows := c.snapshot(t), b.historyLen()

				_, err = b.rotate(p, rotator.Options{Actor: "daemon"})
				texts := []string{err.Error()}
				var foreign *rotator.ForeignPendingError
				require.ErrorAs(t, err, &foreign)
				require.Equal(t, version, foreign.VersionID)
				for _, want := range []string{c.secretID, version, "did not write", "swarmkey resolve checkout-db --promote-pending", "--discard-pending"} {
					require.Contains(t, err.Error(), want)
				}
				require.Equal(t, stored, c.snapshot(t), "the store is unchanged")
				require.Equal(t, rows, b.historyLen(), "no rotation was recorded")
				require.Equal(t, applied, b.logsIn(login{b.username, foreignPassword}), "the role is unchanged")
				require.Equal(t, !applied, b.logsIn(before), "the role is unchanged")
				require.Contains(t, b.audit("pending_version"), "rotation.refused pending_version="+version+" by daemon")
				st, err := b.state.PolicyState(b.ctx, "checkout-db")
				require.NoError(t, err)
				require.Equal(t, "refused", st.LastOutcome)

				resolve := func(action rotator.ResolveAction) (rotator.Resolution, error) {
					return b.rot.Resolve(b.ctx, p, rotator.ResolveOptions{Actor: "operator:test", Action: action})
				}
				if applied {
					res, err := resolve(rotator.ResolvePromote)
					require.NoError(t, err)
					require.Equal(t, version, res.VersionID)
					require.Empty(t, res.Owner, "swarmkey did not write it")
					current, ok := b.cloudStage(c.cloud, providers.StageCurrent)
					require.True(t, ok)
					require.Equal(t, foreignPassword, current.Password, "promoted after its canary passed")
					previous, _ := b.cloudStage(c.cloud, providers.StagePrevious)
					require.Equal(t, before, previous)
				} else {
					// Its credential does not log in: the canary refuses it
					// and nothing changes.
					_, err := resolve(rotator.ResolvePromote)
					var refused *rotator.ResolveRefusedError
					require.ErrorAs(t, err, &refused)
					texts = append(texts, err.Error())
					require.ErrorContains(t, err, "canary")
					require.Equal(t, stored, c.snapshot(t))
					_, err = resolve(rotator.ResolveDiscard)
					require.NoError(t, err)
					_, pending := b.cloudStage(c.cloud, providers.StagePending)
					require.False(t, pending, "discarded")
					current, _ := b.cloudStage(c.cloud, providers.StageCurrent)
					require.Equal(t, before, current)
				}
				action := map[bool]string{false: "discard-pending", true: "promote-pending"}[applied]
				require.Contains(t, b.audit("action", "pending_version"), "rotation.resolved action="+action+" pending_version="+version+" by operator:test")
				_, err = resolve(rotator.ResolveDiscard)
				require.ErrorIs(t, err, rotator.ErrNothingToResolve)

				res, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)
				require.Equal(t, state.OutcomeSucceeded, res.Outcome)
				current, _ := b.cloudStage(c.cloud, providers.StageCurrent)
				require.True(t, b.logsIn(current))
				require.False(t, b.logsIn(login{b.username, foreignPassword}), "the single role has the new password")
				texts = append(texts, b.audit("reason", "pending_version", "claimed_token")...)
				b.requireNoLeak(map[string]bool{foreignPassword: true, before.Password: true, current.Password: true}, texts)
			})
		}
	}
}

// TestTokenClaimsAreNotOwnership: on GCP a version's token is an annotation
// that any writer can set. A pending version claiming the token of one of
// swarmkey's rotations is still not swarmkey's: its version id is not the
// one that rotation recorded. Before a rotation it is refused; swapped in
// between test and promote it is never promoted.
func TestTokenClaimsAreNotOwnership(t *testing.T) {
	t.Run("stale", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := gcpWriter(t)
		p := b.cloudPolicy(c.cloud, targets.Single)
		first, err := b.rotate(p, rotator.Options{})
		require.NoError(t, err)

		version := c.putPending(t, first.Token, b.foreignDoc("forged-"+uuid.NewString()))
		stored := c.snapshot(t)
		_, err = b.rotate(p, rotator.Options{})
		var foreign *rotator.ForeignPendingError
		require.ErrorAs(t, err, &foreign)
		require.Equal(t, version, foreign.VersionID)
		require.Equal(t, first.Token, foreign.Token, "the claim is reported, not believed")
		require.Equal(t, stored, c.snapshot(t))
	})
	t.Run("swapped before promote", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := gcpWriter(t)
		p := b.cloudPolicy(c.cloud, targets.Alternating)
		_, err := b.rotate(p, rotator.Options{})
		require.NoError(t, err)
		before, err := c.store.Get(b.ctx, c.secretID, providers.StageCurrent)
		require.NoError(t, err)

		forged := "forged-" + uuid.NewString()
		var swapped string
		res, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
			if s == rotator.StepTest {
				row, err := b.state.RunningRotation(b.ctx, "checkout-db")
				require.NoError(t, err)
				require.NotEmpty(t, row.PendingVersion, "the version PutPending produced is recorded")
				swapped = c.putPending(t, row.Token, b.foreignDoc(forged))
			}
			return nil
		}})
		require.Error(t, err)
		require.ErrorIs(t, err, providers.ErrConflict)
		require.NotEqual(t, state.OutcomeSucceeded, res.Outcome)
		after, err := c.store.Get(b.ctx, c.secretID, providers.StageCurrent)
		require.NoError(t, err)
		require.Equal(t, before.ID, after.ID, "current is unchanged")
		require.NotEqual(t, swapped, after.ID, "the swapped-in version was not promoted")
	})
}

// TestFinishedRotationStateIsNoPending: AWSPENDING on the AWSCURRENT
// version, how AWS's own rotation functions leave a secret (and a GCP
// secret with both aliases on one version), is no pending version. Nothing
// is reconciled, resolve has nothing to do, and the next rotation proceeds
// and leaves exactly current and previous, both logging in.
func TestFinishedRotationStateIsNoPending(t *testing.T) {
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := w.open(t)
			p := b.cloudPolicy(c.cloud, targets.Alternating)
			for range 2 {
				_, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)
			}
			c.pendingOnCurrent(t)
			before, _ := b.cloudStage(c.cloud, providers.StageCurrent)

			_, err := b.rot.Resolve(b.ctx, p, rotator.ResolveOptions{Actor: "operator:test", Action: rotator.ResolveDiscard})
			require.ErrorIs(t, err, rotator.ErrNothingToResolve)

			res, err := b.rotate(p, rotator.Options{})
			require.NoError(t, err)
			require.Equal(t, state.OutcomeSucceeded, res.Outcome)
			current, _ := b.cloudStage(c.cloud, providers.StageCurrent)
			previous, _ := b.cloudStage(c.cloud, providers.StagePrevious)
			require.Equal(t, before, previous)
			require.True(t, b.logsIn(current), "current logs in")
			require.True(t, b.logsIn(previous), "previous still logs in: nothing restored it")
			versions, err := c.store.List(b.ctx, c.secretID)
			require.NoError(t, err)
			require.Len(t, versions, 2)
			require.Equal(t, []providers.Stage{providers.StageCurrent}, versions[0].Stages)
			require.Equal(t, []providers.Stage{providers.StagePrevious}, versions[1].Stages)
			for _, line := range b.audit() {
				require.NotContains(t, line, "rotation.reconciled")
			}
		})
	}
}

// promoteFault fails, while armed, every UpdateSecretVersionStage call but
// the first: the first of a promote moves AWSCURRENT, the others remove
// AWSPENDING. The failure is an AccessDeniedException, which AWS does not
// retry (an IAM policy that may move AWSCURRENT but not AWSPENDING, say).
type promoteFault struct {
	armed atomic.Bool
	calls atomic.Int32
}

func (f *promoteFault) RoundTrip(r *http.Request) (*http.Response, error) {
	if !f.armed.Load() || r.Header.Get("X-Amz-Target") != "secretsmanager.UpdateSecretVersionStage" || f.calls.Add(1) == 1 {
		return http.DefaultTransport.RoundTrip(r)
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	const body = `{"__type":"AccessDeniedException","message":"injected: may not remove AWSPENDING"}`
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// TestPromoteCutBetweenItsTwoCallsIsNotSuccess: AWS's promote moved
// AWSCURRENT, then could not remove AWSPENDING. The rotation is not
// succeeded: it stays unfinished, and the next rotate resumes it, completes
// the promote and succeeds, with exactly the intended labels.
func TestPromoteCutBetweenItsTwoCallsIsNotSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fault := &promoteFault{}
	cfg := mototest.Config(t)
	cfg.HTTPClient = &http.Client{Transport: fault}
	c := awsWriter(t, cfg)
	p := b.cloudPolicy(c.cloud, targets.Alternating)
	_, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	old, err := c.store.Get(b.ctx, c.secretID, providers.StageCurrent)
	require.NoError(t, err)

	res, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
		if s == rotator.StepTest {
			fault.armed.Store(true)
		}
		return nil
	}})
	require.Error(t, err, "a half-done promote is no success")
	var incomplete *rotator.PromoteIncompleteError
	require.ErrorAs(t, err, &incomplete)
	require.True(t, incomplete.Resumable)
	var stepErr *rotator.StepError
	require.ErrorAs(t, err, &stepErr)
	require.Equal(t, state.OutcomeRunning, stepErr.Outcome)
	require.False(t, res.RolledBack)
	row, err := b.state.RunningRotation(b.ctx, "checkout-db")
	require.NoError(t, err, "the rotation stays unfinished")
	require.Equal(t, res.Token, row.Token)
	require.Equal(t, string(rotator.StepTest), row.Step, "promote is not recorded as done")
	require.Contains(t, c.snapshot(t), res.Token+"=AWSCURRENT+AWSPENDING")
	current, _ := b.cloudStage(c.cloud, providers.StageCurrent)
	require.True(t, b.logsIn(current), "the new credential is current and works")
	require.Contains(t, b.audit(), "rotation.promote_incomplete by test")

	fault.armed.Store(false)
	resumed, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	require.True(t, resumed.Resumed)
	require.Equal(t, res.Token, resumed.Token)
	require.Equal(t, state.OutcomeSucceeded, resumed.Outcome)
	require.Equal(t, labelled(old.ID+"=AWSPREVIOUS", res.Token+"=AWSCURRENT"), labelled(strings.Fields(c.snapshot(t))...),
		"exactly current and previous")
	current, _ = b.cloudStage(c.cloud, providers.StageCurrent)
	previous, _ := b.cloudStage(c.cloud, providers.StagePrevious)
	require.True(t, b.logsIn(current))
	require.True(t, b.logsIn(previous))
}

// labelled keeps the "version=LABELS" entries of an AWS snapshot that hold
// a label, without the store's placeholder, sorted.
func labelled(entries ...string) []string {
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e, "swarmkey-placeholder") && !strings.HasSuffix(e, "=") {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// TestAnotherRotatorsSecretIsLeftAlone: AWS rotates the secret with a
// Lambda that is mid-rotation (its AWSPENDING version written). swarmkey
// changes no label and writes no version, rotating or resolving, and names
// the Lambda. Once rotation is cancelled the Lambda's pending version is
// another writer's: refused the same way, the Lambda named as its likely
// writer.
func TestAnotherRotatorsSecretIsLeftAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := awsWriter(t, mototest.Config(t))
	raw := secretsmanager.NewFromConfig(mototest.Config(t))
	// single: restoring the role to the current credential succeeds, so a
	// reconcile of the Lambda's version as if swarmkey's would get as far
	// as removing its label.
	p := b.cloudPolicy(c.cloud, targets.Single)
	_, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	before, _ := b.cloudStage(c.cloud, providers.StageCurrent)

	arn := mototest.RotationLambda(t)
	_, err = raw.RotateSecret(b.ctx, &secretsmanager.RotateSecretInput{
		SecretId: awsv2.String(c.secretID), RotationLambdaARN: awsv2.String(arn),
		RotationRules:     &types.RotationRulesType{AutomaticallyAfterDays: awsv2.Int64(30)},
		RotateImmediately: awsv2.Bool(false),
	})
	require.NoError(t, err)
	lambdaCreateSecret(t, raw, c.secretID, b.foreignDoc("lambda-"+uuid.NewString()))
	stored, rows := c.snapshot(t), b.historyLen()
	require.Contains(t, stored, "=AWSPENDING", "the Lambda's createSecret step wrote a pending version")

	_, err = b.rotate(p, rotator.Options{})
	var native *rotator.NativeRotationError
	require.ErrorAs(t, err, &native)
	require.ErrorIs(t, err, providers.ErrNativeRotation)
	require.ErrorContains(t, err, arn)
	require.Equal(t, stored, c.snapshot(t), "no label removed, no version written")
	require.Equal(t, rows, b.historyLen())
	require.True(t, b.logsIn(before), "the role is untouched")

	for _, action := range []rotator.ResolveAction{rotator.ResolveDiscard, rotator.ResolvePromote} {
		_, err = b.rot.Resolve(b.ctx, p, rotator.ResolveOptions{Actor: "operator:test", Action: action})
		var refused *rotator.ResolveRefusedError
		require.ErrorAs(t, err, &refused, action)
		require.ErrorIs(t, err, providers.ErrNativeRotation)
		require.Equal(t, stored, c.snapshot(t), action)
	}

	_, err = raw.CancelRotateSecret(b.ctx, &secretsmanager.CancelRotateSecretInput{SecretId: awsv2.String(c.secretID)})
	require.NoError(t, err)
	_, err = b.rotate(p, rotator.Options{})
	var foreign *rotator.ForeignPendingError
	require.ErrorAs(t, err, &foreign)
	require.Contains(t, foreign.Rotator, arn)
	require.ErrorContains(t, err, arn)
	require.Equal(t, stored, c.snapshot(t), "no label removed, no version written")
	require.True(t, b.logsIn(before))
}

// lambdaCreateSecret plays a rotation Lambda's createSecret step (moto's
// Lambda does nothing): it writes the new value under the version id that
// RotateSecret handed it as ClientRequestToken, labelled AWSPENDING.
func lambdaCreateSecret(t *testing.T, raw *secretsmanager.Client, id, doc string) {
	t.Helper()
	d, err := raw.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(id)})
	require.NoError(t, err)
	for version, labels := range d.VersionIdsToStages {
		if len(labels) == 1 && labels[0] == "AWSPENDING" {
			_, err := raw.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
				SecretId: awsv2.String(id), ClientRequestToken: awsv2.String(version),
				SecretString: awsv2.String(doc), VersionStages: []string{"AWSPENDING"},
			})
			require.NoError(t, err)
			return
		}
	}
	t.Fatal("RotateSecret left no AWSPENDING version for the Lambda to write")
}

// failingDiscard is a store whose discards fail, so that a rollback cannot
// finish and leaves its pending version behind.
type failingDiscard struct{ providers.Store }

var errInjected = errors.New("injected: discard failed")

func (failingDiscard) DiscardPending(context.Context, string, string) error { return errInjected }
func (failingDiscard) DiscardPendingVersion(context.Context, string, string) error {
	return errInjected
}

// TestOwnStalePendingIsReconciled: a rotation whose rollback failed left its
// pending version (recorded as its own). The next rotation reconciles it
// as before: the current credential works, so it is restored and
// discarded, and the rotation proceeds. A pending version that no rotation
// recorded, in the same store, is refused instead.
func TestOwnStalePendingIsReconciled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Alternating, "")
	_, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)

	broken := p
	broken.Store = failingDiscard{p.Store}
	res, err := b.rotate(broken, rotator.Options{AfterStep: func(s rotator.Step) error {
		if s == rotator.StepSet {
			return errors.New("injected failure")
		}
		return nil
	}})
	require.Error(t, err)
	require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)
	stale, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StagePending)
	require.NoError(t, err, "the failed rollback left its pending version")
	row, err := b.state.Rotation(b.ctx, res.Token)
	require.NoError(t, err)
	require.Equal(t, stale.ID, row.PendingVersion)

	_, err = b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	current, _ := b.stage(providers.StageCurrent)
	require.True(t, b.logsIn(current))
	require.Contains(t, b.audit("action", "stale_rotation"), "rotation.reconciled action=discarded stale_rotation="+res.Token+" by test")

	// A pending version no rotation recorded (a process of another
	// installation, or by hand).
	unknown := "0190b5a4-0000-7000-8000-0000000000aa"
	_, err = b.store.PutPending(b.ctx, "loadtest/checkout-db", unknown,
		secret.FromString(`{"engine":"postgres","username":"`+b.username+`_b","password":"never-applied-password"}`))
	require.NoError(t, err)
	_, err = b.rotate(p, rotator.Options{})
	var foreign *rotator.ForeignPendingError
	require.ErrorAs(t, err, &foreign)
	require.Equal(t, unknown, foreign.VersionID)
	pending, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StagePending)
	require.NoError(t, err)
	require.Equal(t, unknown, pending.ID, "left where it was")
}

// TestResumedRotationRecordsItsUnrecordedPending: a process killed between
// its PutPending and the record of the version id leaves a running rotation
// with no version recorded. The rotation that resumes it finds the version
// by its token (trusted while the rotation runs) and records it, so that
// when the resumed rotation then fails and cannot discard it, the next
// rotation reconciles it as its own instead of refusing it as another
// writer's (found by `make chaos`: a served policy refused every fire for
// 24 minutes).
func TestResumedRotationRecordsItsUnrecordedPending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Alternating, "")
	_, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	crashed, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
		if s == rotator.StepCreate {
			return rotator.ErrCrash
		}
		return nil
	}})
	require.ErrorIs(t, err, rotator.ErrCrash)
	// The kill came before the record of the version id.
	b.exec(`UPDATE rotations SET pending_version = NULL, step = '' WHERE token = '` + crashed.Token + `'`)

	broken := p
	broken.Store = failingDiscard{p.Store}
	var res rotator.Result
	require.Eventually(t, func() bool { // the crashed session's lock goes once the server notices
		res, err = b.rotate(broken, rotator.Options{AfterStep: func(s rotator.Step) error {
			if s == rotator.StepSet {
				return errors.New("injected failure")
			}
			return nil
		}})
		var inProgress *rotator.InProgressError
		return !errors.As(err, &inProgress)
	}, 30*time.Second, 50*time.Millisecond)
	require.Error(t, err)
	require.True(t, res.Resumed, "the crashed rotation was resumed: %v", err)
	require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)

	_, err = b.rotate(p, rotator.Options{})
	require.NoError(t, err, "the resumed rotation's pending version is swarmkey's own")
	require.Contains(t, b.audit("action", "stale_rotation"), "rotation.reconciled action=discarded stale_rotation="+crashed.Token+" by test")
}

// TestResolveRefusesWhileARotationRuns: resolve takes the policy's lock,
// and leaves an unfinished rotation's pending version to that rotation.
func TestResolveRefusesWhileARotationRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Single, "")
	_, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
		if s == rotator.StepCreate {
			return rotator.ErrCrash
		}
		return nil
	}})
	require.ErrorIs(t, err, rotator.ErrCrash)
	resolve := func() error {
		_, err := b.rot.Resolve(b.ctx, p, rotator.ResolveOptions{Actor: "operator:test", Action: rotator.ResolveDiscard})
		return err
	}
	// The crashed session's lock goes once the server notices.
	var refused *rotator.ResolveRefusedError
	require.Eventually(t, func() bool { return errors.As(resolve(), &refused) }, 10*time.Second, 50*time.Millisecond)
	require.ErrorContains(t, refused, "swarmkey rotate checkout-db --local")
	_, pending := b.stage(providers.StagePending)
	require.True(t, pending, "the unfinished rotation's pending version is left to it")

	lock, err := b.state.TryLockPolicy(b.ctx, "checkout-db")
	require.NoError(t, err)
	var inProgress *rotator.InProgressError
	require.ErrorAs(t, resolve(), &inProgress)
	lock.Release()

	_, err = b.rot.Resolve(b.ctx, p, rotator.ResolveOptions{Action: "promote"})
	require.ErrorIs(t, err, rotator.ErrUnknownResolveAction)
}

// TestForeignPendingStopsEvenTheRetiring: with a pending version of
// another writer in the secret, a rotation changes nothing at all, not even
// the retiring that an earlier rotation's grace made due.
func TestForeignPendingStopsEvenTheRetiring(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy(targets.Alternating, "")
	p.Grace = time.Millisecond
	first, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)

	_, err = b.store.PutPending(b.ctx, "loadtest/checkout-db", uuid.NewString(),
		secret.FromString(`{"engine":"postgres","username":"`+b.username+`","password":"another-writers-password"}`))
	require.NoError(t, err)
	_, err = b.rotate(p, rotator.Options{})
	var foreign *rotator.ForeignPendingError
	require.ErrorAs(t, err, &foreign)
	row, err := b.state.Rotation(b.ctx, first.Token)
	require.NoError(t, err)
	require.Nil(t, row.RetiredAt, "the earlier rotation's retiring waits")
}
