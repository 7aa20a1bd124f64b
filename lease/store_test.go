package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

func TestStoreSourceLeasesReadsAndAudits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := rotationtest.State(t)

	st := memstore.New(memstore.NewBackend())
	token := uuid.NewString()
	pending, err := st.PutPending(ctx, "loadtest/checkout-db", token, secret.FromString(`{"username":"u","password":"pw-store-1","port":5432}`))
	require.NoError(t, err)
	require.NoError(t, st.Promote(ctx, "loadtest/checkout-db", providers.PromoteRequest{Token: token}))
	closed := false
	src := &lease.StoreSource{
		DB: db,
		Secrets: map[string]lease.StoredSecret{
			"checkout-db": {Store: st, SecretID: "loadtest/checkout-db"},
			"fresh":       {Store: st, SecretID: "loadtest/fresh"},
		},
		Actor:  "operator:tester",
		Closer: func() { closed = true },
	}

	id, err := src.Start(ctx, lease.Request{Run: "soak-1", Uses: []string{"checkout-db"}, Holder: "tester@host:1", TTL: time.Minute})
	require.NoError(t, err)
	require.NoError(t, src.Heartbeat(ctx, id))

	fields, err := src.Read(ctx, "checkout-db", id, "soak-1")
	require.NoError(t, err)
	require.Equal(t, "pw-store-1", fields["password"].RevealString())
	require.Equal(t, "5432", fields["port"].RevealString(), "a number as its JSON text")
	entries, err := db.Audit(ctx, "checkout-db", 10)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "operator:tester", entries[0].Actor)
	require.Equal(t, "credential.read", entries[0].Action)
	require.Equal(t, map[string]any{"version": pending.ID, "via": "exec", "lease": id, "run": "soak-1"}, entries[0].Detail)

	var input *lease.InputError
	_, err = src.Read(ctx, "fresh", id, "soak-1")
	require.ErrorAs(t, err, &input)
	require.EqualError(t, err, "policy \"fresh\": no current credential yet in store \"memory\" (secret \"loadtest/fresh\"): it has not been rotated; rotate it first (`swarmkey rotate fresh`)")

	require.NoError(t, src.End(ctx, id))
	require.ErrorIs(t, src.Heartbeat(ctx, id), lease.ErrGone, "an ended lease is gone")

	_, err = src.Start(ctx, lease.Request{Run: "", Uses: []string{"checkout-db"}, Holder: "tester@host:1", TTL: time.Minute})
	require.ErrorAs(t, err, &input)
	require.Contains(t, err.Error(), `--run ""`)

	src.Close()
	require.True(t, closed)
}
