// Package secret holds the one type through which swarmkey carries credential
// values. Every formatting path of a Secret prints "[REDACTED]": fmt verbs,
// JSON and text marshalling, slog. The only way to the bytes is Reveal, which
// providers and targets call at the point where the value must leave the
// process (an encrypted write, a SCRAM verifier, an HTTP header).
//
// Once revealed, a value can find its way into a message (a driver that
// quotes a connection string, an API that echoes a request): Scrubber is the
// one place that cuts known values out of text and errors again.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what every formatting path prints instead of a value.
const Redacted = "[REDACTED]"

// Secret is an immutable credential value. The zero Secret is empty.
type Secret struct {
	// value is unexported and never reachable by reflection-based printers:
	// fmt's %+v goes through Format below, encoding/json through MarshalJSON.
	value []byte
}

// New returns a Secret that holds a copy of b, so later writes to b do not
// change it.
func New(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	return Secret{value: append([]byte(nil), b...)}
}

// FromString returns a Secret holding s.
func FromString(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{value: []byte(s)}
}

// Reveal returns a copy of the value. Call it only where the value must leave
// the process, and never pass the result to a logger, an error or a metric.
func (s Secret) Reveal() []byte {
	return append([]byte(nil), s.value...)
}

// RevealString returns the value as a string; the same rules as Reveal apply.
func (s Secret) RevealString() string {
	return string(s.value)
}

// IsZero reports whether the Secret is empty.
func (s Secret) IsZero() bool { return len(s.value) == 0 }

// Len is the length of the value in bytes; lengths are not secret.
func (s Secret) Len() int { return len(s.value) }

// Equal compares two values in constant time (for equal lengths), so that a
// comparison does not leak how much of a guess was right.
func (s Secret) Equal(other Secret) bool {
	return subtle.ConstantTimeCompare(s.value, other.value) == 1
}

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, used by %#v.
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter so that every verb (%s %v %+v %#v %q %x %d …)
// prints the redaction marker, quoted for %q.
func (Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML, XML, map keys).
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
