package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmkey/swarmkey/bench/internal/proc"
)

// loadAvg is /proc/loadavg's first three fields.
type loadAvg struct{ one, five, fifteen float64 }

func (l loadAvg) String() string { return fmt.Sprintf("%.2f/%.2f/%.2f", l.one, l.five, l.fifteen) }

// parseLoadAvg reads "0.21 0.35 0.40 1/169 13980".
func parseLoadAvg(text string) (loadAvg, error) {
	fields := strings.Fields(text)
	if len(fields) < 3 {
		return loadAvg{}, fmt.Errorf("loadavg %q: want three load averages", text)
	}
	var v [3]float64
	for i := range v {
		f, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return loadAvg{}, fmt.Errorf("loadavg %q: field %d: %w", text, i+1, err)
		}
		v[i] = f
	}
	return loadAvg{v[0], v[1], v[2]}, nil
}

func readLoadAvg(procDir string) (loadAvg, error) {
	b, err := os.ReadFile(filepath.Join(procDir, "loadavg"))
	if err != nil {
		return loadAvg{}, err
	}
	return parseLoadAvg(string(b))
}

// snapshot is every process's stat at one moment.
type snapshot struct {
	at    time.Time
	procs map[int]proc.Stat
}

// readSnapshot reads procDir/[pid]/stat for every process. A process that
// exits while the folder is read is left out.
func readSnapshot(procDir string) (snapshot, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{at: time.Now(), procs: make(map[int]proc.Stat, len(entries))}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		// A process that died between the listing and the read: ENOENT on
		// open, ESRCH on read.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue
		}
		if err != nil {
			return snapshot{}, err
		}
		p, err := proc.ParseStat(string(b))
		if err != nil {
			return snapshot{}, fmt.Errorf("%s/%s/stat: %w", procDir, e.Name(), err)
		}
		s.procs[p.PID] = p
	}
	return s, nil
}

// tree is root and every process whose parent chain in s leads to it.
func (s snapshot) tree(root int) map[int]bool {
	children := map[int][]int{}
	for pid, p := range s.procs {
		children[p.PPID] = append(children[p.PPID], pid)
	}
	in := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !in[c] {
				in[c] = true
				queue = append(queue, c)
			}
		}
	}
	return in
}

// usage is the CPU that the processes of one name outside benchrun's tree
// took over a time: share is in cores (0.41 = 41 % of one core).
type usage struct {
	name  string
	share float64
}

func (u usage) String() string { return fmt.Sprintf("%s %.0f %%", u.name, 100*u.share) }

// othersBetween is the CPU the processes outside root's tree took between
// snapshots a and b: see cpuTally.
func othersBetween(a, b snapshot, root int) []usage {
	t := newCPUTally(root)
	t.add(a)
	t.add(b)
	return t.others()
}

// procKey tells processes apart over time: a pid may be reused, its start
// time not.
type procKey struct {
	pid   int
	start uint64
}

// cpuTally follows the processes over a series of snapshots: the CPU each
// took between the first snapshot and the last one it was seen in, and
// whether it was ever in root's tree. A process counts as the benchmark's
// if any snapshot saw it in the tree; one that started after the first
// snapshot counts from zero; one that ended counts up to its last sight.
type cpuTally struct {
	root        int
	first, last time.Time
	firstTicks  map[procKey]uint64
	lastSeen    map[procKey]proc.Stat
	own         map[procKey]bool
}

func newCPUTally(root int) *cpuTally {
	return &cpuTally{root: root, firstTicks: map[procKey]uint64{}, lastSeen: map[procKey]proc.Stat{}, own: map[procKey]bool{}}
}

func (t *cpuTally) add(s snapshot) {
	initial := t.first.IsZero()
	if initial {
		t.first = s.at
	}
	t.last = s.at
	tree := s.tree(t.root)
	for pid, p := range s.procs {
		k := procKey{pid, p.Start}
		if _, seen := t.lastSeen[k]; !seen && initial {
			t.firstTicks[k] = p.Ticks
		}
		t.lastSeen[k] = p
		if tree[pid] {
			t.own[k] = true
		}
	}
}

// others is the CPU the processes outside the tree took, summed by name,
// busiest first (names under 0.5 % of a core left out), as a share of one
// core over the time from the first snapshot to the last. Summing by name
// makes twenty short-lived compilers or a PostgreSQL's backends one entry.
func (t *cpuTally) others() []usage {
	elapsed := t.last.Sub(t.first).Seconds()
	if elapsed <= 0 {
		return nil
	}
	byName := map[string]float64{}
	for k, p := range t.lastSeen {
		if t.own[k] {
			continue
		}
		if before := t.firstTicks[k]; p.Ticks > before {
			byName[p.Name] += float64(p.Ticks-before) / proc.ClockTicks / elapsed
		}
	}
	var out []usage
	for name, share := range byName {
		if share >= 0.005 {
			out = append(out, usage{name, share})
		}
	}
	slices.SortFunc(out, func(x, y usage) int {
		return cmp.Or(cmp.Compare(y.share, x.share), cmp.Compare(x.name, y.name))
	})
	return out
}

// machineInfo names the machine for the Markdown table: CPU count, model
// and kernel.
type machineInfo struct {
	cpus   int
	model  string
	kernel string
}

func (m machineInfo) String() string {
	return fmt.Sprintf("%d × %s, Linux %s", m.cpus, m.model, m.kernel)
}

// parseCPUModel is the first "model name" of /proc/cpuinfo ("" when the
// architecture does not give one).
func parseCPUModel(cpuinfo string) string {
	for line := range strings.Lines(cpuinfo) {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

func readMachineInfo(procDir string, cpus int) machineInfo {
	m := machineInfo{cpus: cpus, model: "unknown CPU", kernel: "unknown"}
	if b, err := os.ReadFile(filepath.Join(procDir, "cpuinfo")); err == nil {
		if model := parseCPUModel(string(b)); model != "" {
			m.model = model
		}
	}
	if b, err := os.ReadFile(filepath.Join(procDir, "sys", "kernel", "osrelease")); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}
