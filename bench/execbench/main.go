// Command execbench measures the start-up overhead of `swarmkey exec` in
// both of its modes:
//
//   - state database: resolve the policies (config, file store, decrypt),
//     take the lease in PostgreSQL, audit the reads, spawn the child, end
//     the lease;
//   - runner API socket: through a real `swarmkey serve` on a unix socket in
//     a temporary folder, with a runner token (--api, --token-file): take
//     the lease, read each credential, spawn the child, end the lease. The
//     figure is swarmkey-exec's, the binary for load generators; the same
//     through `swarmkey exec --api` is printed beside it, to show what the
//     big binary's start costs.
//
// For 1 and 10 policies it runs `swarmkey exec --policy … -- /bin/true` in
// each mode beside spawning /bin/true directly, in the same run,
// alternating one of each so that drift on a shared machine hits all
// alike, and prints the medians and the milliseconds exec adds (median of
// exec minus median of direct). A further variant, `swarmkey --help`,
// shows how much of that is the binary's own start (loading and
// initialising every package of the one binary) rather than exec's work.
// Each headline figure is one mode and policy count (aim: < 12 ms added).
//
// Run it under scripts/with-postgres (make bench); it builds the binary
// unless -binary names one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// aimMS is issue 16's aim for the time exec adds, in either mode.
const aimMS = 12.0

func main() {
	var (
		runs   = flag.Int("runs", 30, "runs of each variant per policy count (at least 20)")
		binary = flag.String("binary", "", "the swarmkey binary (default: build ./cmd/swarmkey)")
		small  = flag.String("exec-binary", "", "the swarmkey-exec binary (default: swarmkey-exec beside -binary, else build ./cmd/swarmkey-exec)")
		child  = flag.String("child", "/bin/true", "the child every variant spawns")
		hold   = flag.Bool("hold", false, "set up, print each mode's command line and wait for a line on standard input (to profile exec by hand), then measure")
	)
	flag.Parse()
	if *runs < 20 {
		log.Fatal("-runs: at least 20, so that the medians mean something")
	}
	serverURL := os.Getenv("SWARMKEY_TEST_DATABASE_URL")
	if serverURL == "" {
		log.Fatal("run under scripts/with-postgres (make bench): SWARMKEY_TEST_DATABASE_URL is needed")
	}
	if err := run(*runs, *binary, *small, *child, serverURL, *hold); err != nil {
		log.Fatal(err)
	}
}

// mode is one way of running exec: the binary and the arguments that
// choose it; headline says whether it is one of the figures.
type mode struct {
	name     string
	binary   string
	args     []string
	headline bool
}

func run(runs int, binary, small, child, serverURL string, hold bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "swarmkey-execbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if small == "" && binary != "" {
		small = filepath.Join(filepath.Dir(binary), "swarmkey-exec")
	}
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&binary, "./cmd/swarmkey"}, {&small, "./cmd/swarmkey-exec"}} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(dir, filepath.Base(b.pkg))
		build := exec.Command("go", "build", "-o", *b.path, b.pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s (run from the module root, or give -binary and -exec-binary): %w", b.pkg, err)
		}
	}
	dbURL, drop, err := createDatabase(ctx, serverURL)
	if err != nil {
		return err
	}
	defer drop()
	const maxPolicies = 10
	config, err := prepare(ctx, dir, dbURL, maxPolicies)
	if err != nil {
		return err
	}
	tokenFile, err := addRunnerToken(binary, config, dir, maxPolicies)
	if err != nil {
		return err
	}
	socket := filepath.Join(dir, "api.sock")
	stop, err := startServe(binary, config, socket, filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	defer stop()
	api := []string{"--api", "unix:" + socket, "--token-file", tokenFile}
	modes := []mode{
		{name: "state database", binary: binary, args: []string{"--config", config, "exec"}, headline: true},
		{name: "runner API socket", binary: small, args: api, headline: true},
		{name: "API, swarmkey exec", binary: binary, args: append([]string{"exec"}, api...)},
	}

	if hold {
		for _, md := range modes {
			fmt.Printf("%s: SWARMKEY_BENCH_DATABASE_URL=%q %s %s --policy %s -- %s\n", md.name, os.Getenv("SWARMKEY_BENCH_DATABASE_URL"), md.binary, strings.Join(md.args, " "), policyName(1), child)
		}
		fmt.Println("press Enter to measure")
		_, _ = fmt.Scanln()
	}
	fmt.Printf("swarmkey exec start-up overhead, file store, child %s (medians of %d runs each, alternating)\n", child, runs)
	fmt.Printf("%-9s %-18s %10s %10s %10s %10s\n", "policies", "source", "direct ms", "exec ms", "added ms", "binary ms")
	var figures []headline.Figure
	for _, n := range []int{1, maxPolicies} {
		argv := make([][]string, len(modes))
		for m, md := range modes {
			argv[m] = slices.Clone(md.args)
			for i := 1; i <= n; i++ {
				argv[m] = append(argv[m], "--policy", policyName(i))
			}
			argv[m] = append(argv[m], "--", child)
			// One unmeasured run of each warms the page cache, the
			// database and the daemon.
			if _, err := timeRun(md.binary, argv[m]...); err != nil {
				return fmt.Errorf("exec through the %s: %w", md.name, err)
			}
		}
		direct, help, smallHelp := make([]float64, 0, runs), make([]float64, 0, runs), make([]float64, 0, runs)
		viaExec := make([][]float64, len(modes))
		for range runs {
			d, err := timeRun(child)
			if err != nil {
				return err
			}
			direct = append(direct, ms(d))
			for m := range modes {
				e, err := timeRun(modes[m].binary, argv[m]...)
				if err != nil {
					return fmt.Errorf("exec through the %s: %w", modes[m].name, err)
				}
				viaExec[m] = append(viaExec[m], ms(e))
			}
			h, err := timeRun(binary, "--help")
			if err != nil {
				return err
			}
			help = append(help, ms(h))
			h, err = timeRun(small, "--help")
			if err != nil {
				return err
			}
			smallHelp = append(smallHelp, ms(h))
		}
		for m, md := range modes {
			added := median(viaExec[m]) - median(direct)
			start := median(help)
			if md.binary == small {
				start = median(smallHelp)
			}
			fmt.Printf("%-9d %-18s %10.2f %10.2f %10.2f %10.2f\n", n, md.name, median(direct), median(viaExec[m]), added, start)
			if !md.headline {
				continue
			}
			figures = append(figures, headline.Figure{
				Name:     fmt.Sprintf("exec overhead, %s, %s", plural(n, "policy", "policies"), md.name),
				Aim:      fmt.Sprintf("< %g ms", aimMS),
				Measured: fmt.Sprintf("%.1f ms (%s start %.1f ms)", added, filepath.Base(md.binary), start),
				Pass:     added < aimMS,
			})
		}
	}
	fmt.Println("binary ms: `BINARY --help`, the start-up every run of the mode's binary pays, included in exec ms;")
	fmt.Println("the runner API socket's figure is swarmkey-exec's; \"API, swarmkey exec\" is the same through the big binary")
	for _, f := range figures {
		headline.Print(f)
	}
	return nil
}

func policyName(i int) string { return fmt.Sprintf("bench-%02d", i) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

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
	// an operator would: through the environment, which serve and every
	// exec inherit.
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
		// @yearly: the daemon of the socket mode has nothing to rotate
		// while the benchmark runs (these targets have no admin).
		fmt.Fprintf(&cfg, "  - name: %s\n    strategy: single\n    secret: %s\n    schedule: \"@yearly\"\n    target:\n      postgres: { host: 127.0.0.1, dbname: app, username: u%02d }\n", name, name, i)
	}
	path := filepath.Join(dir, "swarmkey.yaml")
	return path, os.WriteFile(path, []byte(cfg.String()), 0o600)
}

// addRunnerToken adds a runner token granted the first n policies with
// `swarmkey tokens add` and writes it to a file of mode 0600, as an operator
// would for exec --token-file; it returns the file's path.
func addRunnerToken(binary, config, dir string, n int) (string, error) {
	grants := make([]string, n)
	for i := range grants {
		grants[i] = policyName(i + 1)
	}
	cmd := exec.Command(binary, "--config", config, "tokens", "add", "--name", "execbench", "--scope", "runner", "--grant", strings.Join(grants, ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("swarmkey tokens add: %v: %s", err, stderr.String())
	}
	path := filepath.Join(dir, "runner.token")
	return path, os.WriteFile(path, out, 0o600)
}

// startServe starts `swarmkey serve` with the runner API on a unix socket
// and waits until the API answers there; stop ends it (SIGTERM, then SIGKILL
// after 30 s). Its log goes to logFile, quoted when it does not come up.
func startServe(binary, config, socket, logFile string) (stop func(), err error) {
	logOut, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	// The read limit is raised far above what the runs take: they read up
	// to 10 credentials per exec back to back, past the default 20 a second.
	cmd := exec.Command(binary, "--config", config, "--log-level", "warn", "serve", "--api-listen", "unix:"+socket,
		"--api-read-rate", "100000", "--api-read-burst", "100000")
	cmd.Stdout, cmd.Stderr = logOut, logOut
	if err := cmd.Start(); err != nil {
		logOut.Close()
		return nil, fmt.Errorf("start swarmkey serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logOut.Close()
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			logOut.Close()
			text, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("swarmkey serve exited before its API answered (%v): %s", err, text)
		default:
		}
		resp, err := client.Get("http://swarmkey/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			text, _ := os.ReadFile(logFile)
			return nil, errors.Join(fmt.Errorf("swarmkey serve: its API did not answer on %s within 60 s: %s", socket, text), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b32() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}
