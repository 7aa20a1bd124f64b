//go:build unix

package schedule

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time, so a benchmark can report
// the work done even when the machine is shared and wall time is inflated.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
