// Package termtext makes text from outside swarmkey safe to print: the
// commands of both binaries (swarmkey, swarmkey-exec) print errors and
// warnings that quote stores, targets, APIs and the database through it.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with every control character (C0, DEL, C1) and every
// byte that is not UTF-8 written as an escape (\n, \r, \t, \x1b, \u009b,
// \xff), so that text from outside swarmkey (an API's key id, a role name,
// a store's or target's error message, a version id) can neither drive the
// terminal (an ANSI escape) nor start a line of its own in the output or
// the log (a newline). Every such field goes through it on its way to
// stdout or stderr; slog's handlers escape their own values. Backslashes are
// left as they are: the escapes are for reading, not for decoding.
func Printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}
