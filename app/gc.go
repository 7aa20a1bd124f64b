package app

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is serve's GOGC. Its heap is mostly the policy set, read
// once and kept: with Go's default of 100 the collector lets garbage grow
// to the size of everything live before it runs, so a daemon of 100,000
// policies (some 140 MiB live) reached 320 MiB resident while it planned
// them all at start. At 25 a daemon of 10,000 policies peaks some 8 MiB
// lower than at 50 while it reads its config and plans (62.4 against
// 70.7 MiB resident in one run, the binary's pages alike). The cost is
// collections twice as often as at 50 for the same allocation: at rest
// there is next to none, and under rotations it is small beside a
// rotation's own CPU.
const serveGCPercent = 25

// TuneServeGC sets serve's garbage collector (serveGCPercent) unless the
// operator set GOGC or GOMEMLIMIT, which then decide. Call it before the
// config is read: reading 100,000 policies is the first peak.
func TuneServeGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
