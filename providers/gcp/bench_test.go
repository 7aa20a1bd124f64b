package gcp

import (
	"fmt"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// The store's cost over the calls a hand-written client would make, against
// the same in-process fake in the same run (the ratio is what to read; the
// absolute numbers are loopback gRPC):
//
//	PutPending: GetSecret, ListSecretVersions(1), UpdateSecret (reservation),
//	            AddSecretVersion, UpdateSecret (alias)  vs  AddSecretVersion +
//	            UpdateSecret without etag
//	Promote:    GetSecret, UpdateSecret with etag  vs  UpdateSecret
//	Get:        GetSecret, then AccessSecretVersion ∥ GetSecretVersion  vs
//	            AccessSecretVersion
//
// Each PutPending and Promote iteration works on a secret of its own, seeded
// directly in the fake before the timer starts.

var benchValue = secret.FromString(`{"engine":"postgres","host":"db","port":5432,"dbname":"shop","username":"loadtest_a","password":"0123456789abcdef0123456789abcdef"}`)

func BenchmarkStore(b *testing.B) {
	b.Run("PutPending", func(b *testing.B) {
		f := newFake(b)
		s := f.open(b, Options{})
		for i := range b.N {
			f.seed(fmt.Sprintf("s%d", i))
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.PutPending(b.Context(), fmt.Sprintf("s%d", i), "t", benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Promote", func(b *testing.B) {
		f := newFake(b)
		s := f.open(b, Options{})
		for i := range b.N {
			f.seedPending(fmt.Sprintf("s%d", i), "t", benchValue.Reveal())
		}
		b.ResetTimer()
		for i := range b.N {
			if err := s.Promote(b.Context(), fmt.Sprintf("s%d", i), providers.PromoteRequest{Token: "t"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		f := newFake(b)
		s := f.open(b, Options{})
		f.seedPending("s", "t", benchValue.Reveal())
		if err := s.Promote(b.Context(), "s", providers.PromoteRequest{Token: "t"}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := s.Get(b.Context(), "s", providers.StageCurrent); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRawSDK(b *testing.B) {
	open := func(b *testing.B) (*fakeSM, *secretmanager.Client) {
		f := newFake(b)
		c, err := secretmanager.NewClient(b.Context(), f.clientOptions(b)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		return f, c
	}
	name := func(i int) string { return fmt.Sprintf("projects/%s/secrets/s%d", fakeProject, i) }
	aliases := func(c *secretmanager.Client, b *testing.B, secret string, m map[string]int64) {
		_, err := c.UpdateSecret(b.Context(), &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: secret, VersionAliases: m},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("PutPending", func(b *testing.B) {
		f, c := open(b)
		for i := range b.N {
			f.seed(fmt.Sprintf("s%d", i))
		}
		b.ResetTimer()
		for i := range b.N {
			_, err := c.AddSecretVersion(b.Context(), &secretmanagerpb.AddSecretVersionRequest{
				Parent: name(i), Payload: &secretmanagerpb.SecretPayload{Data: benchValue.Reveal()},
			})
			if err != nil {
				b.Fatal(err)
			}
			aliases(c, b, name(i), map[string]int64{"pending": 1})
		}
	})
	b.Run("Promote", func(b *testing.B) {
		f, c := open(b)
		for i := range b.N {
			f.seedPending(fmt.Sprintf("s%d", i), "t", benchValue.Reveal())
		}
		b.ResetTimer()
		for i := range b.N {
			aliases(c, b, name(i), map[string]int64{"current": 1})
		}
	})
	b.Run("Get", func(b *testing.B) {
		f, c := open(b)
		f.seedPending("s0", "t", benchValue.Reveal())
		aliases(c, b, name(0), map[string]int64{"current": 1})
		b.ResetTimer()
		for range b.N {
			if _, err := c.AccessSecretVersion(b.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: name(0) + "/versions/current"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
