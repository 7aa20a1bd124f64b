package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "2h", want: 2 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: " 2d ", want: 48 * time.Hour},
		{in: "-1d", want: -24 * time.Hour},
		{in: "-1h", want: -time.Hour},
		{in: "", err: true},
		{in: "d", err: true},
		{in: "1.5d", err: true},
		{in: "1d-2h", err: true},
		{in: "2 hours", err: true},
		{in: "3600", err: true},
		{in: "99999999d", err: true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err {
			require.Error(t, err, "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		require.Equal(t, tt.want, got, "%q", tt.in)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()

	for in, want := range map[time.Duration]string{
		2 * time.Hour:    "2h",
		90 * time.Minute: "1h30m",
		time.Minute:      "1m",
		90 * time.Second: "1m30s",
		72 * time.Hour:   "72h",
		0:                "0s",
	} {
		require.Equal(t, want, formatDuration(in))
	}
}
