package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/secret"
)

// One rotation against the file store: write pending, promote over the
// current version that was read before, read current.
func Example() {
	root, err := os.MkdirTemp("", "swarmkey-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)

	keyFile := filepath.Join(root, "store.key")
	if err := file.GenerateKey(keyFile); err != nil {
		panic(err)
	}
	store, err := file.Open(file.Options{Dir: filepath.Join(root, "secrets"), KeyFile: keyFile})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	ctx := context.Background()
	const id = "loadtest/checkout-db"
	const token = "0190b6f4-8d3e-7c2a-9f1e-2b4c6d8e0a1b"
	value := secret.FromString(`{"username":"loadtest_a","password":"s3cret-example"}`)

	// A new secret has no current version, so the expected current id is "".
	if _, err := store.PutPending(ctx, id, token, value); err != nil {
		panic(err)
	}
	if err := store.Promote(ctx, id, providers.PromoteRequest{Token: token, ExpectedCurrentID: ""}); err != nil {
		panic(err)
	}

	cur, err := store.Get(ctx, id, providers.StageCurrent)
	if err != nil {
		panic(err)
	}
	fmt.Println(cur.Token, cur.Stages, cur.Value)
	// Output: 0190b6f4-8d3e-7c2a-9f1e-2b4c6d8e0a1b [current] [REDACTED]
}
