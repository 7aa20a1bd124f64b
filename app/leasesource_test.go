package app_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

func TestStoreSourceLeasesReadsAndAudits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, pg := rotationtest.State(t)

	st := memstore.New(memstore.NewBackend())
	token := uuid.NewString()
	pending, err := st.PutPending(ctx, "loadtest/checkout-db", token, secret.FromString(`{"username":"u","password":"pw-store-1","port":5432}`))
	require.NoError(t, err)
	require.NoError(t, st.Promote(ctx, "loadtest/checkout-db", providers.PromoteRequest{Token: token}))
	closed := false
	src := &app.StoreSource{
		DB: db,
		Secrets: map[string]app.StoredSecret{
			"checkout-db": {Store: st, SecretID: "loadtest/checkout-db"},
			"fresh":       {Store: st, SecretID: "loadtest/fresh"},
		},
		Actor:  "operator:tester",
		Closer: func() { closed = true },
	}

	id, err := src.Start(ctx, lease.Request{Run: "soak-1", Uses: []string{"checkout-db"}, Holder: "tester@host:1", TTL: time.Minute})
	require.NoError(t, err)
	require.NoError(t, src.Heartbeat(ctx, id))

	read := func(names ...string) (map[string]map[string]secret.Secret, error) {
		got := map[string]map[string]secret.Secret{}
		err := src.Read(ctx, names, id, "soak-1", func(name string, fields map[string]secret.Secret) error {
			got[name] = fields
			return nil
		})
		return got, err
	}
	got, err := read("checkout-db")
	require.NoError(t, err)
	require.Equal(t, "pw-store-1", got["checkout-db"]["password"].RevealString())
	require.Equal(t, "5432", got["checkout-db"]["port"].RevealString(), "a number as its JSON text")
	entries, err := db.Audit(ctx, "checkout-db", 10)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "operator:tester", entries[0].Actor)
	require.Equal(t, "credential.read", entries[0].Action)
	require.Equal(t, map[string]any{"version": pending.ID, "via": "exec", "lease": id, "run": "soak-1"}, entries[0].Detail)

	// A policy never rotated stops the reads; the read before it is
	// audited all the same (its value was read, though not handed on), and
	// none after it is made.
	var input *lease.InputError
	got, err = read("checkout-db", "fresh", "never-reached")
	require.ErrorAs(t, err, &input)
	require.EqualError(t, err, "policy \"fresh\": no current credential yet in store \"memory\" (secret \"loadtest/fresh\"): it has not been rotated; rotate it first (`swarmkey rotate fresh`)")
	require.Equal(t, []string{"checkout-db"}, slices.Collect(maps.Keys(got)))
	entries, err = db.Audit(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the read of checkout-db before the refusal is audited")

	// A refusal of each (a variable set twice) stops the reads as well.
	stop := errors.New("two fields would set one variable")
	var given []string
	err = src.Read(ctx, []string{"checkout-db", "never-reached"}, id, "soak-1", func(name string, _ map[string]secret.Secret) error {
		given = append(given, name)
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, []string{"checkout-db"}, given)

	// A read that cannot be audited fails the call: the values must not be
	// handed on. (The source's database is closed under it.)
	pool, err := state.Connect(ctx, pg.URL)
	require.NoError(t, err)
	closedDB := state.NewFromPool(pool, state.Options{})
	closedDB.Close()
	unaudited := &app.StoreSource{DB: closedDB, Secrets: src.Secrets, Actor: "operator:tester"}
	err = unaudited.Read(ctx, []string{"checkout-db"}, id, "soak-1", func(string, map[string]secret.Secret) error { return nil })
	require.ErrorContains(t, err, `policy "checkout-db": the reads could not be audited, so the command does not start`)
	require.NotContains(t, err.Error(), "pw-store-1")

	require.NoError(t, src.End(ctx, id))
	require.ErrorIs(t, src.Heartbeat(ctx, id), lease.ErrGone, "an ended lease is gone")

	_, err = src.Start(ctx, lease.Request{Run: "", Uses: []string{"checkout-db"}, Holder: "tester@host:1", TTL: time.Minute})
	require.ErrorAs(t, err, &input)
	require.Contains(t, err.Error(), `--run ""`)

	src.Close()
	require.True(t, closed)
}
