package proc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	// comm with a space and parentheses of its own; utime 1200, stime 34,
	// cutime 7, cstime 8, starttime 2295959.
	line := "24005 (my (odd) name) R 24004 24000 6357 0 -1 4194304 132 0 0 0 1200 34 7 8 20 0 1 0 2295959 2990080 413 18446744073709551615\n"
	p, err := ParseStat(line)
	require.NoError(t, err)
	require.Equal(t, Stat{PID: 24005, PPID: 24004, Name: "my (odd) name", State: 'R', Ticks: 1234, ChildTicks: 15, Start: 2295959}, p)

	for _, bad := range []string{
		"",
		"24005 no comm R 1",
		"24005 (short) R 1 2 3",
		"x (name) R 24004 24000 6357 0 -1 4194304 132 0 0 0 1200 34 7 8 20 0 1 0 2295959 2990080",
		"24005 (name) R 24004 24000 6357 0 -1 4194304 132 0 0 0 12x0 34 7 8 20 0 1 0 2295959 2990080",
	} {
		_, err := ParseStat(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestParseMachineBusy(t *testing.T) {
	// user 100, nice 2, system 30, idle 5000, iowait 40, irq 3, softirq 4,
	// steal 1, guest 20 (already in user), guest_nice 0.
	busy, err := ParseMachineBusy("cpu  100 2 30 5000 40 3 4 1 20 0\ncpu0 50 1 15 2500 20 1 2 0 10 0\n")
	require.NoError(t, err)
	require.Equal(t, ticks(140), busy)

	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 x 8 9 10\n", "cpu 1 2 3\n"} {
		_, err := ParseMachineBusy(bad)
		require.Error(t, err, "%q", bad)
	}
}
