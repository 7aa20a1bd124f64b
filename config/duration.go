package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// ParseDuration accepts Go durations ("90s", "1h30m") and a leading number of
// days with a d suffix, alone or followed by a Go duration ("7d", "1d12h").
// A day is 24 hours here: durations are spans, not calendar days. Policy
// files and command-line flags read durations with it.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	neg := false
	body := s
	if body[0] == '-' || body[0] == '+' {
		neg = body[0] == '-'
		body = body[1:]
	}
	if i := strings.IndexByte(body, 'd'); i > 0 {
		days, err := strconv.ParseUint(body[:i], 10, 32)
		if err != nil || days > 100000 {
			return 0, errors.New("bad number of days")
		}
		d := time.Duration(days) * day
		if rest := body[i+1:]; rest != "" {
			if rest[0] == '-' || rest[0] == '+' {
				return 0, errors.New("sign inside a duration")
			}
			r, err := time.ParseDuration(rest)
			if err != nil {
				return 0, err
			}
			d += r
		}
		if neg {
			d = -d
		}
		return d, nil
	}
	return time.ParseDuration(s)
}

// formatDuration prints d the way people write it in policy files: "2h"
// rather than Go's "2h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
