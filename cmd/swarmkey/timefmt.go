package main

import "time"

// cliTime is the one way the CLI shows an instant: RFC 3339 to the second
// in the user's zone (TZ; "Z" under UTC). Seconds are always shown: a
// window can be seconds long, and operators compare these times with the
// audit log's and the daemon's, which use the same format.
func cliTime(t time.Time) string { return t.Local().Format(time.RFC3339) }
