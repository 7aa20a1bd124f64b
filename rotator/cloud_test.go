package rotator_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/azurefake"
	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/internal/vaulttest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/azure"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/providers/ssm"
	"github.com/swarmkey/swarmkey/providers/vault"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// The rotator's tests run moto (internal/mototest) for the AWS cases below;
// it starts only when one of them asks for it.
// internal/vaulttest serves the vault cases the same way.
func TestMain(m *testing.M) { os.Exit(vaulttest.Around(m, mototest.Run)) }

// cloud is one cloud store under test, with a way to act as another writer
// behind swarmkey's back.
type cloud struct {
	store    providers.Store
	secretID string
	// moveCurrent copies the current version's document into a new version
	// and makes that current, as another tool re-saving the secret would:
	// the credential still works, but current is no longer the version the
	// rotation started from.
	moveCurrent func(t *testing.T)
	// beforeFirstPromote checks the store's own view before the first
	// promote of a new secret (nothing is current).
	beforeFirstPromote func(t *testing.T)
}

func awsCloud(t *testing.T) cloud {
	t.Helper()
	s, err := aws.NewFromConfig(mototest.Config(t), aws.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	raw := secretsmanager.NewFromConfig(mototest.Config(t))
	id := mototest.Prefix(t) + "checkout-db"
	return cloud{
		store: s, secretID: id,
		moveCurrent: func(t *testing.T) {
			ctx := t.Context()
			cur, err := raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(id), VersionStage: awsv2.String("AWSCURRENT")})
			require.NoError(t, err)
			other := "0190b5a4-0000-7000-8000-00000000c0de"
			_, err = raw.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
				SecretId: awsv2.String(id), ClientRequestToken: awsv2.String(other),
				SecretString: cur.SecretString, VersionStages: []string{"OTHER_TOOL"},
			})
			require.NoError(t, err)
			_, err = raw.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
				SecretId: awsv2.String(id), VersionStage: awsv2.String("AWSCURRENT"),
				MoveToVersionId: awsv2.String(other), RemoveFromVersionId: cur.VersionId,
			})
			require.NoError(t, err)
		},
		beforeFirstPromote: func(t *testing.T) {
			// AWS made a version current at the first write: the store's
			// placeholder, never the untested pending credential.
			cur, err := raw.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(id), VersionStage: awsv2.String("AWSCURRENT")})
			require.NoError(t, err)
			require.JSONEq(t, `{"swarmkey":"no credential yet"}`, awsv2.ToString(cur.SecretString), "AWSCURRENT before the first promote")
		},
	}
}

func gcpCloud(t *testing.T) cloud {
	t.Helper()
	srv := gcpfake.Start(t)
	s, err := gcp.New(t.Context(), gcp.Options{Project: gcpfake.Project, Create: true}, srv.ClientOptions(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	const id = "checkout-db"
	return cloud{
		store: s, secretID: id,
		moveCurrent: func(t *testing.T) {
			meta, _ := srv.Snapshot(t, id)
			cur := meta.GetVersionAliases()["current"]
			v, err := s.Get(t.Context(), id, providers.StageCurrent)
			require.NoError(t, err)
			n := srv.AddVersion(t, id, v.Value.Reveal())
			aliases := map[string]int64{}
			for k, v := range meta.GetVersionAliases() {
				aliases[k] = v
			}
			aliases["current"], aliases["previous"] = n, cur
			srv.SetAliases(t, id, aliases)
		},
		beforeFirstPromote: func(t *testing.T) {
			meta, _ := srv.Snapshot(t, id)
			require.NotContains(t, meta.GetVersionAliases(), "current", "alias current before the first promote")
		},
	}
}

func vaultCloud(t *testing.T) cloud {
	t.Helper()
	srv := vaulttest.Start(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(srv.RootToken), 0o600))
	s, err := vault.New(t.Context(), vault.Options{Address: srv.Addr, Create: true, Auth: vault.Auth{TokenFile: tokenFile}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	kv := srv.Client(t).KVv2(vaulttest.Mount)
	id := vaulttest.Prefix(t) + "checkout-db"
	return cloud{
		store: s, secretID: id,
		moveCurrent: func(t *testing.T) {
			// Another tool's `vault kv put` of the same document.
			cur, err := kv.Get(t.Context(), id)
			require.NoError(t, err)
			_, err = kv.Put(t.Context(), id, cur.Data)
			require.NoError(t, err)
		},
		beforeFirstPromote: func(t *testing.T) {
			// A reader's `vault kv get` finds nothing: the pending
			// credential waits outside the secret's path.
			_, err := kv.Get(t.Context(), id)
			require.ErrorIs(t, err, vaultapi.ErrSecretNotFound, "a reader's read before the first promote")
		},
	}
}

func ssmCloud(t *testing.T) cloud {
	t.Helper()
	s, err := ssm.NewFromConfig(mototest.Config(t), ssm.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	raw := awsssm.NewFromConfig(mototest.Config(t))
	name := "/" + mototest.Prefix(t) + "checkout-db"
	return cloud{
		store: s, secretID: name,
		moveCurrent: func(t *testing.T) {
			// Another tool's `aws ssm put-parameter --overwrite` of the
			// same document.
			cur, err := raw.GetParameter(t.Context(), &awsssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
			require.NoError(t, err)
			_, err = raw.PutParameter(t.Context(), &awsssm.PutParameterInput{Name: awsv2.String(name), Value: cur.Parameter.Value, Type: "SecureString", Overwrite: awsv2.Bool(true)})
			require.NoError(t, err)
		},
		beforeFirstPromote: func(t *testing.T) {
			// A reader's GetParameter finds nothing: the pending
			// credential waits in its own parameter.
			_, err := raw.GetParameter(t.Context(), &awsssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
			require.Error(t, err, "a reader's read before the first promote")
			require.Contains(t, err.Error(), "ParameterNotFound")
		},
	}
}

func azureCloud(t *testing.T) cloud {
	t.Helper()
	vault := azurefake.New()
	s, err := azure.NewWithCredential(azure.Options{VaultURL: azurefake.URL, Create: true}, &azfake.TokenCredential{}, vault.ClientOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	raw := vault.Client(t)
	const id = "checkout-db"
	return cloud{
		store: s, secretID: id,
		moveCurrent: func(t *testing.T) {
			// Another tool's `az keyvault secret set` of the same value.
			cur, err := raw.GetSecret(t.Context(), id, "", nil)
			require.NoError(t, err)
			_, err = raw.SetSecret(t.Context(), id, azsecrets.SetSecretParameters{Value: cur.Value, ContentType: to.Ptr("application/json")}, nil)
			require.NoError(t, err)
		},
		beforeFirstPromote: func(t *testing.T) {
			// A reader's read by name finds nothing: the pending
			// credential waits in the staging secret.
			_, err := raw.GetSecret(t.Context(), id, "", nil)
			require.Error(t, err, "a reader's read before the first promote")
			require.Contains(t, err.Error(), azurefake.CodeSecretNotFound)
		},
	}
}

var clouds = []struct {
	name string
	open func(t *testing.T) cloud
}{
	{"aws", awsCloud},
	{"gcp", gcpCloud},
	{"vault", vaultCloud},
	{"ssm", ssmCloud},
	{"azure", azureCloud},
}

// cloudStage reads stage from the cloud store.
func (b *bundle) cloudStage(c cloud, stage providers.Stage) (login, bool) {
	b.t.Helper()
	v, err := c.store.Get(b.ctx, c.secretID, stage)
	if errors.Is(err, providers.ErrNotFound) {
		return login{}, false
	}
	require.NoError(b.t, err)
	var l login
	require.NoError(b.t, json.Unmarshal(v.Value.Reveal(), &l))
	return l, true
}

func (b *bundle) cloudPolicy(c cloud, strategy targets.Strategy) rotator.Credential {
	p := b.policy(strategy, "SELECT count(*) FROM orders")
	p.Store, p.SecretID = c.store, c.secretID
	return p
}

// requireNoLeak checks that no generated password is in the rotator's log
// or in texts (errors, step events).
func (b *bundle) requireNoLeak(passwords map[string]bool, texts []string) {
	b.t.Helper()
	require.NotEmpty(b.t, passwords)
	joined := strings.Join(texts, "\n")
	for password := range passwords {
		// Plain booleans: a failure must not print the value it found.
		require.False(b.t, strings.Contains(b.logs.String(), password), "a generated password is in the rotator log")
		require.False(b.t, strings.Contains(joined, password), "a generated password is in an error or step event")
	}
	require.Contains(b.t, b.logs.String(), "step completed", "the log was captured")
}

// TestCloudStoresAlternatingRotations rotates a postgres credential into
// each cloud store three times, from a secret that does not exist yet:
// current always logs in, and from the second rotation on so does previous,
// the other of the two roles.
//
// The two cloud tests are not parallel with the rest of the package: they
// run first, on their own, so that moto's CPU load does not land on the
// daemon tests' timing. Their subtests run in parallel with each other.
func TestCloudStoresAlternatingRotations(t *testing.T) {
	for _, cl := range clouds {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := cl.open(t)
			p := b.cloudPolicy(c, targets.Alternating)

			passwords := map[string]bool{}
			var texts []string
			var history []login
			for i := range 3 {
				res, err := b.rotate(p, rotator.Options{
					OnStep: func(e rotator.StepEvent) { texts = append(texts, fmt.Sprintf("%+v", e)) },
					AfterStep: func(s rotator.Step) error {
						if s == rotator.StepTest && i == 0 {
							c.beforeFirstPromote(t)
							_, current := b.cloudStage(c, providers.StageCurrent)
							require.False(t, current, "nothing is current before the first promote")
						}
						return nil
					},
				})
				require.NoError(t, err, "rotation %d", i)
				require.Equal(t, state.OutcomeSucceeded, res.Outcome)

				current, ok := b.cloudStage(c, providers.StageCurrent)
				require.True(t, ok)
				passwords[current.Password] = true
				require.True(t, b.logsIn(current), "rotation %d: current logs in", i)
				_, pending := b.cloudStage(c, providers.StagePending)
				require.False(t, pending, "rotation %d: no pending version is left", i)
				previous, hasPrevious := b.cloudStage(c, providers.StagePrevious)
				if i == 0 {
					require.False(t, hasPrevious, "the first rotation has no previous")
				} else {
					require.True(t, hasPrevious)
					require.Equal(t, history[i-1], previous)
					require.NotEqual(t, current.Username, previous.Username, "the two roles take turns")
					require.True(t, b.logsIn(previous), "rotation %d: previous still logs in", i)
				}
				if i > 1 {
					require.False(t, b.logsIn(history[i-2]), "the one before previous is refused")
				}
				history = append(history, current)
			}
			versions, err := c.store.List(b.ctx, c.secretID)
			require.NoError(t, err)
			require.Len(t, versions, 2, "current and previous")
			b.requireNoLeak(passwords, texts)
		})
	}
}

// TestCloudStoresPromoteConflictRollsBack moves the store's current version
// between test and promote, as another writer would: the promote's
// compare-and-swap fails, the rotation rolls back, the current credential
// still logs in and no pending version is left.
func TestCloudStoresPromoteConflictRollsBack(t *testing.T) {
	for _, cl := range clouds {
		for _, strategy := range []targets.Strategy{targets.Alternating, targets.Single} {
			t.Run(fmt.Sprintf("%s/%s", cl.name, strategy), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				c := cl.open(t)
				p := b.cloudPolicy(c, strategy)
				passwords := map[string]bool{}
				for range 2 {
					_, err := b.rotate(p, rotator.Options{})
					require.NoError(t, err)
					for _, stage := range []providers.Stage{providers.StageCurrent, providers.StagePrevious} {
						if l, ok := b.cloudStage(c, stage); ok {
							passwords[l.Password] = true
						}
					}
				}
				before, _ := b.cloudStage(c, providers.StageCurrent)

				res, rotErr := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == rotator.StepTest {
						pending, ok := b.cloudStage(c, providers.StagePending)
						require.True(t, ok)
						passwords[pending.Password] = true
						c.moveCurrent(t)
					}
					return nil
				}})
				require.Error(t, rotErr)
				var stepErr *rotator.StepError
				require.ErrorAs(t, rotErr, &stepErr)
				require.Equal(t, rotator.StepPromote, stepErr.Step)
				require.ErrorIs(t, rotErr, providers.ErrConflict)
				require.True(t, res.RolledBack)
				require.True(t, stepErr.RolledBack)
				require.Equal(t, state.OutcomeFailed, res.Outcome)

				after, ok := b.cloudStage(c, providers.StageCurrent)
				require.True(t, ok)
				require.Equal(t, before, after, "the other writer's current holds the same credential")
				require.True(t, b.logsIn(after), "the current credential still logs in")
				// (Not checked: the credential that was previous before the
				// conflict. With alternating, set gave its role the pending
				// password; rollback restores the role from what previous
				// holds now, and the other writer's move made the old
				// current previous, as AWS does for AWSPREVIOUS.)
				_, pending := b.cloudStage(c, providers.StagePending)
				require.False(t, pending, "no pending version is left")

				row, err := b.state.Rotation(b.ctx, res.Token)
				require.NoError(t, err)
				require.Equal(t, state.OutcomeFailed, row.Outcome)
				require.True(t, row.RolledBack)
				require.Contains(t, row.Error, "promote")

				b.requireNoLeak(passwords, []string{rotErr.Error(), fmt.Sprintf("%+v", rotErr), row.Error})
			})
		}
	}
}
