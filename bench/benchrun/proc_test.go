package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/bench/internal/proc"
)

// spinArg, as the test binary's first argument, makes it burn CPU (for at
// most the duration in the second argument): the busy process of the tests.
const spinArg = "benchrun-test-spin"

// cliEnv makes the test binary run benchrun's cli on its arguments.
const cliEnv = "BENCHRUN_TEST_CLI"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == spinArg {
		d, err := time.ParseDuration(os.Args[2])
		if err != nil {
			panic(err)
		}
		spin(d)
		os.Exit(0)
	}
	if os.Getenv(cliEnv) == "1" {
		os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func spin(d time.Duration) {
	deadline := time.Now().Add(d)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
	}
	_ = x
}

// spinnerName is the busy process's name in /proc: the test binary run
// through a symbolic link of this name (comm is the name it was run as).
const spinnerName = "benchrunspinner"

// spinnerPath links spinnerName to the test binary in a temporary folder.
func spinnerPath(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	link := filepath.Join(t.TempDir(), spinnerName)
	require.NoError(t, os.Symlink(self, link))
	return link
}

// startSpinner starts a busy child of the test, ended when the test ends.
func startSpinner(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(spinnerPath(t), spinArg, "60s")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// startSleeper starts an idle child of the test: a process tree that the
// spinner is not in.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func shareOf(others []usage, name string) (float64, bool) {
	for _, u := range others {
		if u.name == name {
			return u.share, true
		}
	}
	return 0, false
}

func TestParseLoadAvg(t *testing.T) {
	l, err := parseLoadAvg("0.21 1.35 12.40 2/169 13980\n")
	require.NoError(t, err)
	require.Equal(t, loadAvg{0.21, 1.35, 12.40}, l)
	for _, bad := range []string{"", "0.21 1.35", "0.21 x 1.0 1/2 3"} {
		_, err := parseLoadAvg(bad)
		require.Error(t, err, "%q", bad)
	}
}

// fakeProc writes a /proc-like folder: loadavg and one stat per process.
func fakeProc(t *testing.T, load string, procs []proc.Stat) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "loadavg"), []byte(load), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sys", "kernel"), 0o755)) // not a process
	for _, p := range procs {
		pdir := filepath.Join(dir, strconv.Itoa(p.PID))
		require.NoError(t, os.MkdirAll(pdir, 0o755))
		// utime carries all the ticks, stime none.
		line := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 %d 1000 10 0\n", p.PID, p.Name, p.PPID, p.Ticks, p.Start)
		require.NoError(t, os.WriteFile(filepath.Join(pdir, "stat"), []byte(line), 0o644))
	}
	return dir
}

func TestOthersFromSampleProcFiles(t *testing.T) {
	// benchrun is 100; 101 (the benchmark) and 102 (its PostgreSQL) are
	// its tree. 200 and 201 are another worker's postgres backends, 300 a
	// compiler that starts between the snapshots, 400 a pid reused by a
	// new process, 500 an idle shell.
	before := []proc.Stat{
		{PID: 1, PPID: 0, Name: "init", Ticks: 10, Start: 1},
		{PID: 100, PPID: 1, Name: "benchrun", Ticks: 50, Start: 5},
		{PID: 101, PPID: 100, Name: "rotationbench", Ticks: 100, Start: 6},
		{PID: 102, PPID: 101, Name: "postgres", Ticks: 100, Start: 7},
		{PID: 200, PPID: 1, Name: "postgres", Ticks: 1000, Start: 2},
		{PID: 201, PPID: 200, Name: "postgres", Ticks: 1000, Start: 3},
		{PID: 400, PPID: 1, Name: "old", Ticks: 5000, Start: 4},
		{PID: 500, PPID: 1, Name: "bash", Ticks: 7, Start: 4},
	}
	after := []proc.Stat{
		{PID: 1, PPID: 0, Name: "init", Ticks: 10, Start: 1},
		{PID: 100, PPID: 1, Name: "benchrun", Ticks: 90, Start: 5},
		{PID: 101, PPID: 100, Name: "rotationbench", Ticks: 300, Start: 6},
		{PID: 102, PPID: 101, Name: "postgres", Ticks: 250, Start: 7},
		{PID: 200, PPID: 1, Name: "postgres", Ticks: 1030, Start: 2},
		{PID: 201, PPID: 200, Name: "postgres", Ticks: 1020, Start: 3},
		{PID: 300, PPID: 1, Name: "compile", Ticks: 80, Start: 20},
		{PID: 400, PPID: 1, Name: "new", Ticks: 20, Start: 21},
		{PID: 500, PPID: 1, Name: "bash", Ticks: 7, Start: 4},
	}
	a, err := readSnapshot(fakeProc(t, "0.1 0.2 0.3 1/1 1", before))
	require.NoError(t, err)
	dirB := fakeProc(t, "2.50 1.00 0.50 3/170 999\n", after)
	b, err := readSnapshot(dirB)
	require.NoError(t, err)
	require.Len(t, b.procs, len(after))
	want := after[3]
	want.State = 'S'
	require.Equal(t, want, b.procs[102])
	b.at = a.at.Add(time.Second) // 100 ticks of a core

	require.Equal(t, []usage{{"compile", 0.80}, {"postgres", 0.50}, {"new", 0.20}}, othersBetween(a, b, 100),
		"the benchmark's own tree (100, 101, its postgres 102) is not other; the other postgres is summed; a reused pid counts from zero")

	load, err := readLoadAvg(dirB)
	require.NoError(t, err)
	require.Equal(t, loadAvg{2.5, 1, 0.5}, load)
}

// TestTallyOverSnapshots follows processes over three snapshots a second
// apart: a server of the benchmark that was in its tree while it ran and
// was re-parented before it ended stays the benchmark's; another process
// that ended before the last snapshot counts up to its last sight.
func TestTallyOverSnapshots(t *testing.T) {
	at := time.Now()
	snap := func(sec int, procs ...proc.Stat) snapshot {
		s := snapshot{at: at.Add(time.Duration(sec) * time.Second), procs: map[int]proc.Stat{}}
		for _, p := range procs {
			s.procs[p.PID] = p
		}
		return s
	}
	tally := newCPUTally(100)
	tally.add(snap(0,
		proc.Stat{PID: 100, PPID: 1, Name: "benchrun", Ticks: 0, Start: 1},
		proc.Stat{PID: 101, PPID: 100, Name: "pg_ctl", Ticks: 0, Start: 2},
		proc.Stat{PID: 300, PPID: 1, Name: "go", Ticks: 1000, Start: 3}))
	tally.add(snap(1,
		proc.Stat{PID: 100, PPID: 1, Name: "benchrun", Ticks: 1, Start: 1},
		proc.Stat{PID: 101, PPID: 100, Name: "pg_ctl", Ticks: 1, Start: 2},
		proc.Stat{PID: 102, PPID: 101, Name: "postgres", Ticks: 50, Start: 10},
		proc.Stat{PID: 300, PPID: 1, Name: "go", Ticks: 1060, Start: 3},
		proc.Stat{PID: 301, PPID: 300, Name: "compile", Ticks: 90, Start: 11}))
	tally.add(snap(2,
		proc.Stat{PID: 100, PPID: 1, Name: "benchrun", Ticks: 2, Start: 1},
		proc.Stat{PID: 102, PPID: 1, Name: "postgres", Ticks: 150, Start: 10},
		proc.Stat{PID: 300, PPID: 1, Name: "go", Ticks: 1080, Start: 3}))
	require.Equal(t, []usage{{"compile", 0.45}, {"go", 0.40}}, tally.others())
}

func TestMachineInfoFromSampleFiles(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cpuinfo"), []byte(cpuinfo), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sys", "kernel"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sys", "kernel", "osrelease"), []byte("6.1.0-18-amd64\n"), 0o644))
	require.Equal(t, "2 × Intel(R) Xeon(R) Processor, Linux 6.1.0-18-amd64", readMachineInfo(dir, 2).String())
	require.Equal(t, "4 × unknown CPU, Linux unknown", readMachineInfo(t.TempDir(), 4).String())
}

// TestOwnTreeIsNotOther runs a CPU-bound child of the test: it is not
// "other" when the tree measured from is the test's, and it is when the
// tree is another process's (an idle sleep's).
func TestOwnTreeIsNotOther(t *testing.T) {
	spinner := startSpinner(t)
	sleeper := startSleeper(t)
	time.Sleep(100 * time.Millisecond) // past the spinner's start-up
	a, err := readSnapshot("/proc")
	require.NoError(t, err)
	time.Sleep(time.Second)
	b, err := readSnapshot("/proc")
	require.NoError(t, err)
	require.Equal(t, spinnerName, b.procs[spinner.Process.Pid].Name)

	_, counted := shareOf(othersBetween(a, b, os.Getpid()), spinnerName)
	require.False(t, counted, "the test's own busy child counted as another process")

	share, counted := shareOf(othersBetween(a, b, sleeper.Process.Pid), spinnerName)
	require.True(t, counted, "a busy process outside the tree was not counted")
	require.Greater(t, share, 0.0)
}

// processGone says whether pid has ended and been reaped.
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
