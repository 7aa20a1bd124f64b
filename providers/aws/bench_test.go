package aws

import (
	"context"
	"fmt"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// The benchmarks compare the store with the minimal raw SDK calls a
// hand-written client would make for the same step, against the same moto:
//
//	PutPending  store: DescribeSecret + PutSecretValue      raw: PutSecretValue
//	Promote     store: DescribeSecret + 2 × UpdateSecret…   raw: UpdateSecretVersionStage
//	Get         store: GetSecretValue                       raw: GetSecretValue
//
// Every iteration gets a fresh secret, made and force-deleted with the timer
// stopped, so moto holds the same number of secrets throughout (its lookups
// scan all secrets) and both sides see the same server state.

const benchValue = `{"engine":"postgres","host":"db.internal","port":5432,"dbname":"checkout","username":"loadtest_a","password":"0123456789abcdef0123456789abcdef"}`

type benchFixture struct {
	ctx   context.Context
	raw   *secretsmanager.Client
	store *Store
}

func newBenchFixture(b *testing.B) benchFixture {
	return benchFixture{ctx: context.Background(), raw: rawClient(), store: newStore(b, Options{})}
}

// secretWithCurrent makes a fresh secret with a current version.
func (f benchFixture) secretWithCurrent(b *testing.B) (name, current string) {
	name = prefix(b) + "bench"
	return name, createSecret(b, name, benchValue)
}

// secretWithPending makes a fresh secret with a current and a pending version.
func (f benchFixture) secretWithPending(b *testing.B) (name, current, token string) {
	name, current = f.secretWithCurrent(b)
	token = newToken(b)
	_, err := f.raw.PutSecretValue(f.ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awsv2.String(name), ClientRequestToken: awsv2.String(token),
		SecretString: awsv2.String(benchValue), VersionStages: []string{labelPending},
	})
	if err != nil {
		b.Fatal(err)
	}
	return name, current, token
}

func (f benchFixture) drop(b *testing.B, name string) {
	_, err := f.raw.DeleteSecret(f.ctx, &secretsmanager.DeleteSecretInput{
		SecretId: awsv2.String(name), ForceDeleteWithoutRecovery: awsv2.Bool(true),
	})
	if err != nil {
		b.Fatal(err)
	}
}

// perSecret runs step once per iteration on a fresh secret from setup,
// timing step alone.
func perSecret[T any](b *testing.B, f benchFixture, setup func() (string, T), step func(name string, arg T) error) {
	b.Helper()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name, arg := setup()
		b.StartTimer()
		if err := step(name, arg); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.drop(b, name)
		b.StartTimer()
	}
}

type promoteArgs struct{ current, token string }

func BenchmarkStore(b *testing.B) {
	f := newBenchFixture(b)
	value := secret.FromString(benchValue)

	b.Run("PutPending", func(b *testing.B) {
		perSecret(b, f, func() (string, string) {
			name, _ := f.secretWithCurrent(b)
			return name, newToken(b)
		}, func(name, token string) error {
			_, err := f.store.PutPending(f.ctx, name, token, value)
			return err
		})
	})
	b.Run("Promote", func(b *testing.B) {
		perSecret(b, f, func() (string, promoteArgs) {
			name, cur, tok := f.secretWithPending(b)
			return name, promoteArgs{cur, tok}
		}, func(name string, a promoteArgs) error {
			return f.store.Promote(f.ctx, name, providers.PromoteRequest{Token: a.token, ExpectedCurrentID: a.current})
		})
	})
	b.Run("Get", func(b *testing.B) {
		perSecret(b, f, func() (string, struct{}) {
			name, _ := f.secretWithCurrent(b)
			return name, struct{}{}
		}, func(name string, _ struct{}) error {
			v, err := f.store.Get(f.ctx, name, providers.StageCurrent)
			if err == nil && v.Value.Len() != len(benchValue) {
				err = fmt.Errorf("read %d bytes", v.Value.Len())
			}
			return err
		})
	})
}

func BenchmarkRawSDK(b *testing.B) {
	f := newBenchFixture(b)

	b.Run("PutPending", func(b *testing.B) {
		perSecret(b, f, func() (string, string) {
			name, _ := f.secretWithCurrent(b)
			return name, newToken(b)
		}, func(name, token string) error {
			_, err := f.raw.PutSecretValue(f.ctx, &secretsmanager.PutSecretValueInput{
				SecretId: awsv2.String(name), ClientRequestToken: awsv2.String(token),
				SecretString: awsv2.String(benchValue), VersionStages: []string{labelPending},
			})
			return err
		})
	})
	b.Run("Promote", func(b *testing.B) {
		perSecret(b, f, func() (string, promoteArgs) {
			name, cur, tok := f.secretWithPending(b)
			return name, promoteArgs{cur, tok}
		}, func(name string, a promoteArgs) error {
			_, err := f.raw.UpdateSecretVersionStage(f.ctx, &secretsmanager.UpdateSecretVersionStageInput{
				SecretId: awsv2.String(name), VersionStage: awsv2.String(labelCurrent),
				MoveToVersionId: awsv2.String(a.token), RemoveFromVersionId: awsv2.String(a.current),
			})
			return err
		})
	})
	b.Run("Get", func(b *testing.B) {
		perSecret(b, f, func() (string, struct{}) {
			name, _ := f.secretWithCurrent(b)
			return name, struct{}{}
		}, func(name string, _ struct{}) error {
			out, err := f.raw.GetSecretValue(f.ctx, &secretsmanager.GetSecretValueInput{
				SecretId: awsv2.String(name), VersionStage: awsv2.String(labelCurrent),
			})
			if err == nil && len(awsv2.ToString(out.SecretString)) != len(benchValue) {
				err = fmt.Errorf("read %d bytes", len(awsv2.ToString(out.SecretString)))
			}
			return err
		})
	})
}
