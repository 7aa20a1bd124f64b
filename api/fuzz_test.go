package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
)

// FuzzLeaseRequest sends arbitrary bodies to POST /v1/leases, the handler
// that decodes a JSON body, with a valid runner token. The server must not
// panic, must answer 201 only to a body that is one LeaseRequest (unknown
// fields refused), and must answer anything else with a 4xx and a JSON
// {"error": …}: never a 5xx, which would blame the server for a bad body.
func FuzzLeaseRequest(f *testing.F) {
	ctx := context.Background()
	pg := pgtest.New(f)
	db, err := state.Open(ctx, pg.URL)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	st := memstore.New(memstore.NewBackend())
	entry := func(name string, tags ...string) api.Entry {
		return api.Entry{Name: name, Tags: tags, Read: func(ctx context.Context) (providers.Version, error) {
			return api.ReadCurrent(ctx, st, name)
		}}
	}
	catalog := api.Catalog{"checkout-db": entry("checkout-db", "perf"), "reports-api": entry("reports-api", "perf"), "billing": entry("billing")}
	srv, err := api.New(api.Options{DB: db, Policies: func() api.Catalog { return catalog }})
	if err != nil {
		f.Fatal(err)
	}
	_, token, err := db.AddToken(ctx, state.TokenRequest{Name: "fuzz", Scope: state.ScopeRunner,
		Grants: []string{"checkout-db", "tag:perf"}, CreatedBy: "test"})
	if err != nil {
		f.Fatal(err)
	}

	for _, seed := range []string{
		`{"run":"nightly","uses":["checkout-db"],"holder":"locust-1:4242","ttl_seconds":30}`,
		`{"run":"nightly","uses":["tag:perf"],"holder":"h"}`,
		`{"run":"nightly","uses":["billing"],"holder":"h"}`,
		`{"run":"nightly","uses":["nope"],"holder":"h"}`,
		`{"run":"nightly","uses":["checkout-db"],"holder":"h","ttl_seconds":3601}`,
		`{"run":"nightly","uses":["checkout-db"],"holder":"h","ttl_seconds":1.5}`,
		`{"run":"nightly","uses":["checkout-db"],"holder":"h","extra":1}`,
		`{"run":"night ly","uses":["checkout-db"],"holder":"h"}`,
		`{"run":"nightly","uses":["checkout-db"],"holder":" "} {}`,
		`{"run":"nightly","uses":[],"holder":"h"}`, `[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/leases", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token.RevealString())
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)

		var strict wire.LeaseRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		oneRequest := dec.Decode(&strict) == nil && !dec.More()
		switch code := rec.Code; {
		case code == http.StatusCreated:
			var resp wire.LeaseResponse
			if !oneRequest || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.ID == "" {
				t.Fatalf("201 to %q: %s", body, rec.Body)
			}
		case code >= 400 && code < 500:
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%d without a JSON error to %q: %s", code, body, rec.Body)
			}
		default:
			t.Fatalf("%d to %q: %s", code, body, rec.Body)
		}
	})
}
