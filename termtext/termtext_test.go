package termtext_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/termtext"
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
		got := termtext.Printable(in)
		require.Equal(t, want, got, "%q", in)
		require.False(t, strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }), "%q", got)
	}
}

// The log's text handler (the default --log-format) quotes a value with a
// control character in it, and escapes the character: an escape sequence or
// a newline in a principal or an error does not reach the terminal raw and
// does not start a log line of its own. So does the JSON handler, for C0.
