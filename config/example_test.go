package config_test

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/secret"
)

func ExampleLoad() {
	cfg, err := config.Load("testdata/example.yaml")
	if err != nil {
		fmt.Println(err) // every problem, one "FILE:LINE: FIELD: MSG" per line
		return
	}
	from := time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC)
	for _, p := range cfg.Policies {
		fmt.Printf("%s: %s, %s/%s, next %s, window %s\n",
			p.Name, p.Strategy, p.Store, p.SecretID,
			p.Schedule.Next(from).In(p.Schedule.Location()).Format(time.RFC3339), p.Window)
	}
	// Output:
	// checkout-db: alternating, file/loadtest/checkout-db, next 2025-06-02T03:00:00+02:00, window 2h0m0s
	// search-db: alternating, file/search-db, next 2025-06-08T00:00:00Z, window 1h0m0s
	// reports-db: single, gcp/reports-db, next 2025-06-02T12:00:00Z, window 30m0s
}

func ExampleLoad_errors() {
	_, err := config.Load("testdata/errors/schedule.yaml")
	fmt.Println(err.(config.Errors)[5])
	// Output:
	// testdata/errors/schedule.yaml:28: policies[long-window].window: window 2h is not shorter than the schedule's period 1h
}

func ExampleReference_Resolve() {
	ref, err := config.ParseReference("store:file/loadtest/pg-admin#url")
	if err != nil {
		fmt.Println(err)
		return
	}
	read := func(_ context.Context, provider, id string) (secret.Secret, error) {
		return secret.FromString(`{"url":"postgres://admin:pw@db/app"}`), nil
	}
	s, err := ref.Resolve(context.Background(), read)
	fmt.Println(ref.Provider, ref.SecretID, ref.Field, s, err)

	_, err = config.ParseReference("postgres://admin:pw@db/app")
	fmt.Println(err)
	// Output:
	// file loadtest/pg-admin url [REDACTED] <nil>
	// plaintext credentials are not allowed here; give a reference: env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]
}
