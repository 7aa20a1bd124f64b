// Command execbench measures the start-up overhead of `swarmkey exec`:
// resolve the policies (config, file store, decrypt), take the lease in
// PostgreSQL, audit the reads, spawn the child, end the lease. It runs
// `swarmkey exec --policy … -- /bin/true` for 1 and 10 policies beside
// spawning /bin/true directly, in the same run, alternating one of each so
// that drift on a shared machine hits both, and prints the medians and the
// milliseconds exec adds (median of exec minus median of direct). A third
// variant, `swarmkey --help`, shows how much of that is the binary's own
// start (loading and initialising every package of the one binary) rather
// than exec's work.
//
// Run it under scripts/with-postgres (make bench); it builds the binary
// unless -binary names one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

func main() {
	var (
		runs   = flag.Int("runs", 30, "runs of each variant per policy count (at least 20)")
		binary = flag.String("binary", "", "the swarmkey binary (default: build ./cmd/swarmkey)")
		child  = flag.String("child", "/bin/true", "the child both variants spawn")
	)
	flag.Parse()
	if *runs < 20 {
		log.Fatal("-runs: at least 20, so that the medians mean something")
	}
	serverURL := os.Getenv("SWARMKEY_TEST_DATABASE_URL")
	if serverURL == "" {
		log.Fatal("run under scripts/with-postgres (make bench): SWARMKEY_TEST_DATABASE_URL is needed")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "swarmkey-execbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if *binary == "" {
		*binary = filepath.Join(dir, "swarmkey")
		build := exec.Command("go", "build", "-o", *binary, "./cmd/swarmkey")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build swarmkey (run from the module root, or give -binary): %v", err)
		}
	}
	dbURL, drop, err := createDatabase(ctx, serverURL)
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	config, err := prepare(ctx, dir, dbURL, 10)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Printf("swarmkey exec start-up overhead, file store, child %s (medians of %d runs each, alternating)\n", *child, *runs)
	fmt.Printf("%-9s %10s %10s %10s %12s\n", "policies", "direct ms", "exec ms", "added ms", "binary ms")
	defer fmt.Println("binary ms: `swarmkey --help`, the start-up every swarmkey command pays, included in exec ms")
	for _, n := range []int{1, 10} {
		args := []string{"--config", config, "exec"}
		for i := 1; i <= n; i++ {
			args = append(args, "--policy", policyName(i))
		}
		args = append(args, "--", *child)
		// One unmeasured run of each warms the page cache and the server.
		if _, err := timeRun(*binary, args...); err != nil {
			log.Fatal(err)
		}
		var direct, viaExec, help []float64
		for range *runs {
			d, err := timeRun(*child)
			if err != nil {
				log.Fatal(err)
			}
			e, err := timeRun(*binary, args...)
			if err != nil {
				log.Fatal(err)
			}
			h, err := timeRun(*binary, "--help")
			if err != nil {
				log.Fatal(err)
			}
			direct, viaExec, help = append(direct, ms(d)), append(viaExec, ms(e)), append(help, ms(h))
		}
		fmt.Printf("%-9d %10.2f %10.2f %10.2f %12.2f\n", n, median(direct), median(viaExec), median(viaExec)-median(direct), median(help))
	}
}

func policyName(i int) string { return fmt.Sprintf("bench-%02d", i) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// timeRun runs one process to its end and returns the wall time from
// before the fork to after the wait.
func timeRun(name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", name, err, stderr.String())
	}
	return elapsed, nil
}

func createDatabase(ctx context.Context, serverURL string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(ctx)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "swarmkey_execbench_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		if conn, err := pgx.Connect(ctx, serverURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// prepare migrates the database, writes a key, n current secrets in a file
// store and a config naming them, and returns the config's path.
func prepare(ctx context.Context, dir, dbURL string, n int) (string, error) {
	db, err := state.Open(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return "", err
	}
	key := filepath.Join(dir, "secrets.key")
	if err := file.GenerateKey(key); err != nil {
		return "", err
	}
	files, err := file.Open(file.Options{Dir: filepath.Join(dir, "secrets"), KeyFile: key})
	if err != nil {
		return "", err
	}
	defer files.Close()
	var cfg strings.Builder
	// The URL is written into the config as an env: reference's target, as
	// an operator would: through the environment.
	if err := os.Setenv("SWARMKEY_BENCH_DATABASE_URL", dbURL); err != nil {
		return "", err
	}
	fmt.Fprintf(&cfg, "database: env:SWARMKEY_BENCH_DATABASE_URL\nstores:\n  file:\n    dir: secrets\n    key_file: secrets.key\npolicies:\n")
	for i := 1; i <= n; i++ {
		name := policyName(i)
		token := uuid.Must(uuid.NewV7()).String()
		doc := fmt.Sprintf(`{"engine":"postgres","host":"127.0.0.1","port":5432,"dbname":"app","username":"u%02d","password":"%s"}`, i, hex.EncodeToString(b32()))
		if _, err := files.PutPending(ctx, name, token, secret.FromString(doc)); err != nil {
			return "", err
		}
		if err := files.Promote(ctx, name, providers.PromoteRequest{Token: token}); err != nil {
			return "", err
		}
		fmt.Fprintf(&cfg, "  - name: %s\n    strategy: single\n    secret: %s\n    schedule: \"@daily\"\n    target:\n      postgres: { host: 127.0.0.1, dbname: app, username: u%02d }\n", name, name, i)
	}
	path := filepath.Join(dir, "swarmkey.yaml")
	return path, os.WriteFile(path, []byte(cfg.String()), 0o600)
}

func b32() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}
