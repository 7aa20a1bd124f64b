package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoggerEscapesControlCharacters(t *testing.T) {
	for format, want := range map[string]string{
		"text": `principal="k\x1b[2J\ntime=x level=INFO msg=forged"`,
		"json": `"principal":"k\u001b[2J\ntime=x level=INFO msg=forged"`,
	} {
		var out bytes.Buffer
		g := &globals{logLevel: "info", logFormat: format, stderr: &out}
		logger, err := g.logger()
		require.NoError(t, err)
		logger.Error("rotation failed", "principal", "k\x1b[2J\ntime=x level=INFO msg=forged",
			"error", errors.New("canary query: ERROR: evil\x1b]0;t\x07\r\nlevel=INFO"))
		require.Equal(t, 1, strings.Count(out.String(), "\n"), "%s: one line: %q", format, out.String())
		require.True(t, strings.HasSuffix(out.String(), "\n"))
		require.False(t, strings.ContainsAny(out.String(), "\x1b\x07\r"), "%s: %q", format, out.String())
		require.Contains(t, out.String(), want)
	}
}
