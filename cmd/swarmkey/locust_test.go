package main_test

// Acceptance tests of the Locust integration with a real headless Locust
// (Debian's python3-locust, /usr/bin/locust) against a local HTTP service
// that accepts only the policy's key, while `swarmkey serve` rotates the key
// every few seconds.
//
// The policy's target is `generated`: swarmkey makes the key and stores it;
// the test's key service is the system that accepts it, reading the file
// store on every request. For `single` (one key changed in place) it accepts
// only the current version; for `alternating` (two keys taking turns, the
// previous one valid until the next rotation) the current or the previous.
//
// Each Locust user reads the key through the plugin on every request: from
// the environment under `swarmkey exec`, else from the API with a 1s cache,
// and does not retry a refused request, so every refusal is a Locust
// failure.

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/state"
)

const (
	locustBinary = "/usr/bin/locust"
	locustPolicy = "load-api"
	// How long each Locust run lasts: long enough for several rotations at
	// @every 3s, short enough to keep the file within a few minutes (the
	// tests run in parallel).
	locustRunTime = 20 * time.Second
	guardAfter    = 3 * time.Second
)

// The locustfile every run uses. Each request reads the key anew (the
// plugin caches API reads for SWARMKEY_CACHE_TTL) and names the process,
// so the key service can tell the workers of a distributed run apart.
const locustfile = `import os

import swarmkey_locust
from locust import HttpUser, constant, task

PID = str(os.getpid())


class KeyUser(HttpUser):
    wait_time = constant(0.1)

    @task
    def work(self):
        key = swarmkey_locust.credential("load-api")["api_key"]
        self.client.get("/work", headers={"Authorization": "Bearer " + key, "X-Worker-Pid": PID})
`

func requireLocust(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(locustBinary); err != nil {
		t.Fatalf("%s is missing: install Debian's Locust (apt-get install -y python3-locust); the Locust acceptance tests need it and never skip", locustBinary)
	}
}

// locustRig is one test's installation: a state database, a file store, a
// policy rotated every 3s by `swarmkey serve` with its API on loopback, a
// runner token, and the key service.
type locustRig struct {
	*cli
	strategy string
	token    string
	apiURL   string
	daemon   *daemonProcess
	keys     *keyService
	file     string // the locustfile
	plugin   string // the folder of swarmkey_locust.py
	state    *state.DB
}

func newLocustRig(t *testing.T, strategy string) *locustRig {
	t.Helper()
	requireLocust(t)
	c := &cli{t: t, dir: t.TempDir(), db: pgtest.New(t)}
	c.env = append(os.Environ(), "SWARMKEY_DATABASE_URL="+c.db.URL, "SWARMKEY_CONFIG=")
	r := c.run("keygen", filepath.Join(c.dir, "secrets.key"))
	require.Equal(t, 0, r.code, r.stderr)
	c.config = filepath.Join(c.dir, "swarmkey.yaml")
	c.write(c.config, fmt.Sprintf(`database: env:SWARMKEY_DATABASE_URL
stores:
  file:
    dir: secrets
    key_file: secrets.key
policies:
  - name: %s
    strategy: %s
    secret: loadtest/%s
    schedule: "@every 3s"
    window: 2s
    expected_duration: 500ms
    guard_after: %s
    canary: { attempts: 1, interval: 10ms }
    target:
      generated: { field: api_key }
`, locustPolicy, strategy, locustPolicy, guardAfter))
	r = c.run("migrate")
	require.Equal(t, 0, r.code, r.stderr)
	// A first version, so there is a current key before the daemon runs.
	r = c.run("rotate", locustPolicy, "--local")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	r = c.run("tokens", "add", "--name", "locust", "--scope", "runner", "--grant", locustPolicy)
	require.Equal(t, 0, r.code, r.stderr)
	token := strings.TrimSpace(r.stdout)
	require.NotEmpty(t, token)
	require.NotContains(t, token, "\n", "add prints the token alone on one line")

	port := freePort(t)
	d := c.serve(t, "--api-listen", "tcp:127.0.0.1:"+port)

	plugin, err := filepath.Abs(filepath.Join("..", "..", "locust"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(plugin, "swarmkey_locust.py"))
	require.NoError(t, err)

	rig := &locustRig{cli: c, strategy: strategy, token: token, apiURL: "http://127.0.0.1:" + port, daemon: d,
		file: filepath.Join(c.dir, "locustfile.py"), plugin: plugin, state: c.stateDB(t).DB}
	c.write(rig.file, locustfile)
	rig.keys = &keyService{t: t, store: c.fileStore(), secretID: "loadtest/" + locustPolicy,
		acceptPrevious: strategy == "alternating", pids: map[string]int{}, seen: map[string]bool{}}
	srv := httptest.NewServer(rig.keys)
	t.Cleanup(srv.Close)
	rig.keys.url = srv.URL
	return rig
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// keyService answers 200 to a request that carries the policy's current key
// (or, when acceptPrevious, its previous key) as a bearer token, 401
// otherwise. It reads the store on every request.
type keyService struct {
	t              *testing.T
	url            string
	store          *file.Store
	secretID       string
	acceptPrevious bool

	mu       sync.Mutex
	accepted int
	refused  int
	pids     map[string]int  // X-Worker-Pid of accepted requests
	seen     map[string]bool // every key read from the store, for leak checks
}

func (k *keyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ok := key != "" && k.accepts(r.Context(), key)
	k.mu.Lock()
	if ok {
		k.accepted++
		k.pids[r.Header.Get("X-Worker-Pid")]++
	} else {
		k.refused++
	}
	k.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"unknown key"}`, http.StatusUnauthorized)
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (k *keyService) accepts(ctx context.Context, key string) bool {
	stages := []providers.Stage{providers.StageCurrent}
	if k.acceptPrevious {
		stages = append(stages, providers.StagePrevious)
	}
	good := false
	for _, stage := range stages {
		v, err := k.store.Get(ctx, k.secretID, stage)
		if err != nil {
			continue
		}
		var doc struct {
			APIKey string `json:"api_key"`
		}
		if json.Unmarshal(v.Value.Reveal(), &doc) != nil || doc.APIKey == "" {
			continue
		}
		k.mu.Lock()
		k.seen[doc.APIKey] = true
		k.mu.Unlock()
		if subtle.ConstantTimeCompare([]byte(doc.APIKey), []byte(key)) == 1 {
			good = true
		}
	}
	return good
}

func (k *keyService) counts() (accepted, refused int, pids map[string]int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pids = map[string]int{}
	for p, n := range k.pids {
		pids[p] = n
	}
	return k.accepted, k.refused, pids
}

func (k *keyService) keysSeen() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key := range k.seen {
		out = append(out, key)
	}
	return out
}

// locustEnv is the environment of a Locust process: the plugin on
// PYTHONPATH and the given SWARMKEY_* settings.
func (rig *locustRig) locustEnv(extra ...string) []string {
	env := []string{}
	for _, kv := range rig.env {
		if !strings.HasPrefix(kv, "SWARMKEY_") && !strings.HasPrefix(kv, "PYTHONPATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PYTHONPATH="+rig.plugin, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	return append(env, extra...)
}

// apiEnv is how a Locust process reaches the API.
func (rig *locustRig) apiEnv(extra ...string) []string {
	return rig.locustEnv(append([]string{"SWARMKEY_API=" + rig.apiURL, "SWARMKEY_TOKEN=" + rig.token, "SWARMKEY_CACHE_TTL=1s"}, extra...)...)
}

func (rig *locustRig) headlessArgs(csvPrefix string) []string {
	return []string{"--headless", "-f", rig.file, "--host", rig.keys.url, "-u", "4", "-r", "4",
		"-t", fmt.Sprintf("%ds", int(locustRunTime.Seconds())), "--only-summary", "--csv", csvPrefix}
}

// locustRun is one finished run: its totals from the CSV, its output, and
// when it started and ended.
type locustRun struct {
	code               int
	requests, failures int
	output             string
	start, end         time.Time
}

func (rig *locustRig) runLocust(cmd *exec.Cmd, csvPrefix string) locustRun {
	t := rig.t
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = rig.dir
	run := locustRun{start: time.Now()}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(locustRunTime + 60*time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("Locust did not finish within %s:\n%s", locustRunTime+60*time.Second, out.String())
	}
	run.end = time.Now()
	run.output = out.String()
	if exitErr, ok := err.(*exec.ExitError); ok {
		run.code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, run.output)
	}
	run.requests, run.failures = locustTotals(t, csvPrefix, run.output)
	rig.mu.Lock()
	rig.printed.WriteString(run.output)
	rig.mu.Unlock()
	return run
}

// locustTotals reads the Aggregated row of Locust's PREFIX_stats.csv.
func locustTotals(t *testing.T, prefix, output string) (requests, failures int) {
	t.Helper()
	f, err := os.Open(prefix + "_stats.csv")
	require.NoError(t, err, "Locust wrote no stats CSV:\n%s", output)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range []string{"Name", "Request Count", "Failure Count"} {
		require.Contains(t, col, name, "the stats CSV's header: %v", rows[0])
	}
	for _, row := range rows[1:] {
		if row[col["Name"]] != "Aggregated" {
			continue
		}
		requests, err = strconv.Atoi(row[col["Request Count"]])
		require.NoError(t, err)
		failures, err = strconv.Atoi(row[col["Failure Count"]])
		require.NoError(t, err)
		return requests, failures
	}
	t.Fatalf("no Aggregated row in %s_stats.csv:\n%s", prefix, output)
	return 0, 0
}

// rotationStarts are the start times of the policy's rotations, oldest first.
func (rig *locustRig) rotationStarts() []time.Time {
	t := rig.t
	t.Helper()
	rows, err := rig.state.History(context.Background(), locustPolicy, 10000)
	require.NoError(t, err)
	var out []time.Time
	for _, r := range rows {
		out = append(out, r.StartedAt)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

func startsIn(starts []time.Time, from, to time.Time) int {
	n := 0
	for _, s := range starts {
		if !s.Before(from) && s.Before(to) {
			n++
		}
	}
	return n
}

// afterNextRotation waits until the daemon has rotated once more, so a run
// started now is seconds away from the next fire.
func (rig *locustRig) afterNextRotation() {
	t := rig.t
	t.Helper()
	since := time.Now()
	require.Eventually(t, func() bool {
		rows, err := rig.state.History(context.Background(), locustPolicy, 1)
		return err == nil && len(rows) == 1 && rows[0].StartedAt.After(since) && rows[0].Outcome == state.OutcomeSucceeded
	}, 30*time.Second, 50*time.Millisecond, "the daemon rotates %s every 3s", locustPolicy)
}

type leaseRow struct {
	ID, Run, Holder string
	Uses            []string
	Start           time.Time
	End             *time.Time
}

func (rig *locustRig) leases() []leaseRow {
	t := rig.t
	t.Helper()
	rows, err := rig.db.Pool.Query(context.Background(), `SELECT id::text, run_name, holder, uses, started_at, ended_at FROM leases ORDER BY started_at`)
	require.NoError(t, err)
	defer rows.Close()
	var out []leaseRow
	for rows.Next() {
		var l leaseRow
		require.NoError(t, rows.Scan(&l.ID, &l.Run, &l.Holder, &l.Uses, &l.Start, &l.End))
		out = append(out, l)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireLeasedRun checks what a leased `single` run promises: one lease,
// ended; no rotation starts from its start to its end plus guard_after;
// zero failed requests; and the next rotation after the guard.
func (rig *locustRig) requireLeasedRun(run locustRun, runName string) leaseRow {
	t := rig.t
	t.Helper()
	require.Zero(t, run.failures, "a leased run sees no rotation, so no refused key:\n%s", run.output)
	require.Greater(t, run.requests, 100, run.output)
	require.Equal(t, 0, run.code, run.output)
	accepted, refused, _ := rig.keys.counts()
	require.Zero(t, refused)
	// Locust's CSV leaves out requests in flight when it stopped.
	require.GreaterOrEqual(t, accepted, run.requests)

	leases := rig.leases()
	require.Len(t, leases, 1, "one lease for the run")
	l := leases[0]
	require.Equal(t, runName, l.Run)
	require.Equal(t, []string{locustPolicy}, l.Uses)
	require.NotNil(t, l.End, "the lease ended with the run")
	require.False(t, l.Start.After(run.start.Add(15*time.Second)), "the lease started with the run")
	require.GreaterOrEqual(t, l.End.Sub(l.Start), locustRunTime-time.Second, "the lease spans the run")

	guardEnd := l.End.Add(guardAfter)
	require.Eventually(t, func() bool {
		return startsIn(rig.rotationStarts(), guardEnd, guardEnd.Add(time.Hour)) > 0
	}, 30*time.Second, 250*time.Millisecond, "the daemon rotates again after the run plus its guard")
	starts := rig.rotationStarts()
	require.Zero(t, startsIn(starts, l.Start, guardEnd), "no rotation starts from the lease's start (%s) to its end plus guard_after (%s): %v",
		l.Start, guardEnd, starts)
	require.Positive(t, startsIn(starts, l.Start.Add(-8*time.Second), l.Start), "the policy was rotating before the run")
	return l
}

// requireNoValueLeaked checks that no key the store held appears in what
// swarmkey and Locust printed.
func (rig *locustRig) requireNoValueLeaked() {
	rig.t.Helper()
	keys := rig.keys.keysSeen()
	require.NotEmpty(rig.t, keys)
	rig.requireNoLeak(keys...)
}

func TestLocustUnderExecHoldsALease(t *testing.T) {
	t.Parallel()
	rig := newLocustRig(t, "single")
	rig.afterNextRotation()

	csvPrefix := filepath.Join(rig.dir, "exec")
	args := append([]string{"--config", rig.config, "exec", "--policy", locustPolicy, "--run", "locust-exec", "--", locustBinary}, rig.headlessArgs(csvPrefix)...)
	cmd := exec.Command(binary, args...)
	// swarmkey exec reads the store and takes the lease itself; Locust
	// gets no API address, so the plugin can only read the environment.
	cmd.Env = append(rig.locustEnv(), "SWARMKEY_DATABASE_URL="+rig.db.URL)
	run := rig.runLocust(cmd, csvPrefix)
	require.Contains(t, run.output, "running under swarmkey exec, which holds the lease")
	rig.requireLeasedRun(run, "locust-exec")
	rig.requireNoValueLeaked()
}

func TestLocustPluginHoldsALease(t *testing.T) {
	t.Parallel()
	rig := newLocustRig(t, "single")
	rig.afterNextRotation()

	csvPrefix := filepath.Join(rig.dir, "plugin")
	cmd := exec.Command(locustBinary, rig.headlessArgs(csvPrefix)...)
	cmd.Env = rig.apiEnv("SWARMKEY_RUN=locust-plugin", "SWARMKEY_USES="+locustPolicy, "SWARMKEY_LEASE_TTL=10s")
	run := rig.runLocust(cmd, csvPrefix)
	l := rig.requireLeasedRun(run, "locust-plugin")
	require.Contains(t, run.output, "took lease "+l.ID)
	require.Contains(t, run.output, "ended lease "+l.ID)
	require.Regexp(t, `:`+strconv.Itoa(cmd.Process.Pid)+`$`, l.Holder, "the holder is the Locust process (host:pid)")
	require.Equal(t, 1, rig.apiRequests("POST /v1/credentials", 200), "the init check read SWARMKEY_USES in one request")
	rig.requireNoValueLeaked()
}

// apiRequests is the API's count of answers with code to route (its
// swarmkey_api_requests_total), read from /metrics with an admin token.
func (rig *locustRig) apiRequests(route string, code int) int {
	rig.t.Helper()
	r := rig.run("tokens", "add", "--name", "metrics-"+strconv.Itoa(int(time.Now().UnixNano()%1e9)), "--scope", "admin")
	require.Equal(rig.t, 0, r.code, r.stderr)
	req, err := http.NewRequest(http.MethodGet, rig.apiURL+"/metrics", nil)
	require.NoError(rig.t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(r.stdout))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(rig.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(rig.t, err)
	require.Equal(rig.t, http.StatusOK, resp.StatusCode, string(body))
	m := regexp.MustCompile(`(?m)^swarmkey_api_requests_total\{code="` + strconv.Itoa(code) + `",route="` + regexp.QuoteMeta(route) + `"\} (\d+)$`).FindStringSubmatch(string(body))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	require.NoError(rig.t, err)
	return n
}

func TestLocustWithoutALeaseSingleFails(t *testing.T) {
	t.Parallel()
	rig := newLocustRig(t, "single")

	csvPrefix := filepath.Join(rig.dir, "control")
	cmd := exec.Command(locustBinary, rig.headlessArgs(csvPrefix)...)
	cmd.Env = rig.apiEnv() // no SWARMKEY_USES: no lease
	run := rig.runLocust(cmd, csvPrefix)

	require.Contains(t, run.output, "no lease is taken")
	require.Empty(t, rig.leases())
	rotations := startsIn(rig.rotationStarts(), run.start, run.end)
	require.GreaterOrEqual(t, rotations, 3, "rotations happen during an unleased run")
	require.Positive(t, run.failures, "a single key changed in place under a live run fails its requests:\n%s", run.output)
	require.Greater(t, run.requests, run.failures, "requests succeed between rotations")
	t.Logf("control run: %d rotations, %d requests, %d failures", rotations, run.requests, run.failures)
	rig.requireNoValueLeaked()
}

func TestLocustWithoutALeaseAlternatingSucceeds(t *testing.T) {
	t.Parallel()
	rig := newLocustRig(t, "alternating")

	csvPrefix := filepath.Join(rig.dir, "alternating")
	cmd := exec.Command(locustBinary, rig.headlessArgs(csvPrefix)...)
	cmd.Env = rig.apiEnv()
	run := rig.runLocust(cmd, csvPrefix)

	require.Empty(t, rig.leases())
	rotations := startsIn(rig.rotationStarts(), run.start, run.end)
	require.GreaterOrEqual(t, rotations, 3, "rotations happen during an unleased run")
	require.Zero(t, run.failures, "the previous key stays valid until the next rotation:\n%s", run.output)
	require.Greater(t, run.requests, 100, run.output)
	require.Equal(t, 0, run.code, run.output)
	t.Logf("alternating run: %d rotations, %d requests", rotations, run.requests)
	rig.requireNoValueLeaked()
}

func TestLocustDistributedOneLeaseEveryWorkerReads(t *testing.T) {
	t.Parallel()
	rig := newLocustRig(t, "single")
	rig.afterNextRotation()

	masterPort := freePort(t)
	env := rig.apiEnv("SWARMKEY_RUN=locust-distributed", "SWARMKEY_USES="+locustPolicy, "SWARMKEY_LEASE_TTL=10s")
	csvPrefix := filepath.Join(rig.dir, "distributed")
	master := exec.Command(locustBinary, append(rig.headlessArgs(csvPrefix),
		"--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", masterPort, "--expect-workers", "2")...)
	master.Env = env

	var workers []*exec.Cmd
	var workerOut []*bytes.Buffer
	for range 2 {
		w := exec.Command(locustBinary, "-f", rig.file, "--worker", "--master-host", "127.0.0.1", "--master-port", masterPort)
		w.Env, w.Dir = env, rig.dir
		var out bytes.Buffer
		w.Stdout, w.Stderr = &out, &out
		workers, workerOut = append(workers, w), append(workerOut, &out)
	}
	t.Cleanup(func() {
		for _, w := range workers {
			if w.Process != nil {
				_ = w.Process.Kill()
			}
		}
	})
	// The workers start beside the master; it waits for both.
	go func() {
		time.Sleep(500 * time.Millisecond)
		for _, w := range workers {
			if err := w.Start(); err != nil {
				t.Errorf("start worker: %v", err)
			}
		}
	}()
	run := rig.runLocust(master, csvPrefix)
	for i, w := range workers {
		waited := make(chan error, 1)
		go func() { waited <- w.Wait() }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			t.Fatalf("worker %d did not stop with the master:\n%s", i, workerOut[i].String())
		}
		rig.mu.Lock()
		rig.printed.WriteString(workerOut[i].String())
		rig.mu.Unlock()
	}

	l := rig.requireLeasedRun(run, "locust-distributed")
	require.Regexp(t, `:`+strconv.Itoa(master.Process.Pid)+`$`, l.Holder, "the master holds the lease")
	_, _, pids := rig.keys.counts()
	for i, w := range workers {
		require.Positive(t, pids[strconv.Itoa(w.Process.Pid)], "worker %d read the key and was accepted: %v\n%s", i, pids, workerOut[i].String())
		require.NotContains(t, workerOut[i].String(), "took lease", "workers take no lease")
	}
	require.Zero(t, pids[strconv.Itoa(master.Process.Pid)], "the master runs no users")
	require.Len(t, pids, 2, "requests came from the two workers only: %v", pids)
	rig.requireNoValueLeaked()
}
