// Package proc reads what the benchmark programs measure of processes from
// Linux's /proc: a process's stat line (its parent, CPU ticks, start), a
// memory line of its status, this process's CPU, and the CPU of the
// PostgreSQL server that scripts/with-postgres started.
package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const ClockTicks = 100

// Stat is what the benchmarks need of one /proc/[pid]/stat.
type Stat struct {
	PID, PPID int
	Name      string // comm: the executable's name, at most 15 bytes
	State     byte   // R, S, D, Z (zombie) …
	// Ticks is utime + stime of all the process's threads.
	Ticks uint64
	// ChildTicks is cutime + cstime: the children that ended and that it
	// waited for.
	ChildTicks uint64
	// Start is starttime: with PID, it tells a reused pid apart.
	Start uint64
}

// CPU is s.Ticks as a duration.
func (s Stat) CPU() time.Duration { return ticks(s.Ticks) }

// ParseStat reads one /proc/[pid]/stat line. comm is in parentheses and may
// itself hold spaces and parentheses, so the fields after it are counted
// from the last ')'.
func ParseStat(text string) (Stat, error) {
	open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || closing < open {
		return Stat{}, fmt.Errorf("stat %q: no (comm)", text)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(text[:open]))
	if err != nil {
		return Stat{}, fmt.Errorf("stat %q: pid: %w", text, err)
	}
	// After comm: state(3) ppid(4) … utime(14) stime(15) cutime(16)
	// cstime(17) … starttime(22), numbered as in proc(5); rest[0] is
	// field 3.
	rest := strings.Fields(text[closing+1:])
	if len(rest) < 20 {
		return Stat{}, fmt.Errorf("stat %q: %d fields after comm, want at least 20", text, len(rest))
	}
	var vals [6]uint64
	for i, n := range []int{4, 14, 15, 16, 17, 22} {
		// cutime and cstime are signed in proc(5); a negative one is
		// not a count of anything and reads as an error.
		if vals[i], err = strconv.ParseUint(rest[n-3], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("stat of pid %d: field %d: %w", pid, n, err)
		}
	}
	return Stat{
		PID:        pid,
		PPID:       int(vals[0]),
		Name:       text[open+1 : closing],
		State:      rest[0][0],
		Ticks:      vals[1] + vals[2],
		ChildTicks: vals[3] + vals[4],
		Start:      vals[5],
	}, nil
}

// ReadStat reads procDir/pid/stat ("/proc" on a real machine).
func ReadStat(procDir string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(string(b))
}

// CPU is the CPU time pid has used (user and system), 0 when it cannot be
// read.
func CPU(pid int) time.Duration {
	s, err := ReadStat("/proc", pid)
	if err != nil {
		return 0
	}
	return s.CPU()
}

// SelfCPU is this process's CPU time, user and system.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// StatusKiB reads a memory line of /proc/pid/status in KiB: "VmHWM:" (peak
// resident), "VmRSS:", "RssAnon:", "RssFile:". It is 0 when the line
// cannot be read.
func StatusKiB(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib
		}
	}
	return 0
}

// PostgresPID is the postmaster's process id of the server that
// scripts/with-postgres started (from SWARMKEY_TEST_POSTGRES_DATA's pid
// file), or 0 when there is none.
func PostgresPID() int {
	data, err := os.ReadFile(filepath.Join(os.Getenv("SWARMKEY_TEST_POSTGRES_DATA"), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	return pid
}

// TreeCPU is the CPU time of parent, of the children it runs now and of
// those that ended (as it collected them): for a postmaster, every backend
// alike. It is 0 when parent is 0.
func TreeCPU(parent int) time.Duration {
	if parent == 0 {
		return 0
	}
	var total uint64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := ReadStat("/proc", pid)
		if err != nil {
			continue
		}
		switch {
		case pid == parent:
			total += s.Ticks + s.ChildTicks
		case s.PPID == parent:
			total += s.Ticks
		}
	}
	return ticks(total)
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / ClockTicks }

// MachineBusy is the CPU time every process on the machine has used since
// boot, all cores together: /proc/stat's first line, less idle and iowait.
// It is 0 when it cannot be read.
func MachineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	busy, _ := ParseMachineBusy(string(data))
	return busy
}

// ParseMachineBusy reads the busy time from the text of /proc/stat: the
// "cpu" line's user, nice, system, irq, softirq and steal (guest time is
// already in user and nice).
func ParseMachineBusy(text string) (time.Duration, error) {
	line, _, _ := strings.Cut(text, "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q is not the cpu line", line)
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		n, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i, err)
		}
		busy += n
	}
	return ticks(busy), nil
}
