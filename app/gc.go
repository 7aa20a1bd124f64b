package app

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is serve's GOGC. Its heap is mostly the policy set, read
// once and kept: with Go's default of 100 the collector lets garbage grow
// to the size of everything live before it runs, so a daemon of 100,000
// policies (some 140 MiB live) reached 320 MiB resident while it planned
// them all at start. At 50 it collects at half that; the cost is a
// collection every few seconds under load, none worth measuring at rest.
const serveGCPercent = 50

// TuneServeGC sets serve's garbage collector (serveGCPercent) unless the
// operator set GOGC or GOMEMLIMIT, which then decide. Call it before the
// config is read: reading 100,000 policies is the first peak.
func TuneServeGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
