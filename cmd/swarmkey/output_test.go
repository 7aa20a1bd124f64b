package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"checkout_b":                "checkout_b",
		"key-ü-✓ C:\\path":          "key-ü-✓ C:\\path",
		"k\x1b[2J\nFAKE line":       `k\x1b[2J\nFAKE line`,
		"a\rb\tc\x00d\x7f":          `a\rb\tc\x00d\x7f`,
		"csi\u009b2J":               `csi\u009b2J`,
		"bad utf-8 \xff\xfe":        `bad utf-8 \xff\xfe`,
		"osc \x1b]0;title\x07 done": `osc \x1b]0;title\x07 done`,
		"":                          "",
	} {
		got := printable(in)
		require.Equal(t, want, got, "%q", in)
		require.False(t, strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }), "%q", got)
	}
}

// The log's text handler (the default --log-format) quotes a value with a
// control character in it, and escapes the character: an escape sequence or
// a newline in a principal or an error does not reach the terminal raw and
// does not start a log line of its own. So does the JSON handler, for C0.
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
