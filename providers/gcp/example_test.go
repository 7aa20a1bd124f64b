package gcp_test

import (
	"context"
	"errors"
	"log"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/secret"
)

// One rotation of projects/perf-lab/secrets/checkout-db with Application
// Default Credentials. (Not run by go test: it needs a real project.)
func Example() {
	ctx := context.Background()
	store, err := gcp.New(ctx, gcp.Options{
		Project: "perf-lab",
		Create:  true, // create the secret on the first rotation
		Labels:  map[string]string{"managed-by": "swarmkey"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// What readers use now: versions/current. "" when there is none yet.
	expected := ""
	if cur, err := store.Get(ctx, "checkout-db", providers.StageCurrent); err == nil {
		expected = cur.ID
	} else if !errors.Is(err, providers.ErrNotFound) {
		log.Fatal(err)
	}

	token := "0190f5f2-7c3e-7d2a-9b1e-3f6c2a8d4e51" // the rotation's UUIDv7
	value := secret.FromString(`{"engine":"postgres","username":"loadtest_b","password":"…"}`)
	if _, err := store.PutPending(ctx, "checkout-db", token, value); err != nil {
		log.Fatal(err) // ErrConflict: another rotation's pending is in the way
	}
	// … set the credential on the target, run the canary against pending …
	if err := store.Promote(ctx, "checkout-db", providers.PromoteRequest{Token: token, ExpectedCurrentID: expected}); err != nil {
		log.Fatal(err) // ErrConflict: current moved underneath; re-read and decide
	}
}
