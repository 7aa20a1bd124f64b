package secret

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// minFieldLen is the shortest string field of a secret document that
// AddDocument learns. Credentials are long (generated passwords and API keys
// run to dozens of bytes); the short strings of a document are ports, engine
// names and the like ("5432", "postgres"), which appear in every message and
// would turn it into noise if each occurrence became [REDACTED]. Eight bytes
// keeps every generated credential and drops those.
const minFieldLen = 8

// publicFields are the document fields that identify a credential without
// being one (the database document and the http target's key document):
// they must stay readable in messages ("key 7f3… could not be revoked").
var publicFields = map[string]bool{
	"engine": true, "host": true, "dbname": true, "username": true,
	"key_id": true, "key_name": true, "previous_key_id": true, "expires_at": true,
}

// Scrubber replaces known secret values in text and errors with Redacted.
// It is the last guard of every package that builds messages near a value:
// providers and targets keep values out of their errors in the first place,
// and pass what they do write through a Scrubber of the values in play.
//
// Each value is scrubbed in the forms a request or a connection string may
// carry it: as is, URL-encoded (query and path), JSON-escaped (as Go's
// encoder escapes it, and as encoders that leave <, > and & alone do) and
// base64 (basic auth).
//
// A value given with Add, or the whole of a document given with
// AddDocument, is scrubbed whatever its length: a value the caller names is
// a secret. Only the fields AddDocument finds inside a document are
// filtered (see AddDocument).
//
// The zero Scrubber scrubs nothing and is ready to use; Text, Err and With
// take a nil *Scrubber as one that scrubs nothing. A Scrubber is safe for concurrent use: a target
// shared by goroutines may keep one of its configured secrets and hand out
// copies (With) to each call.
type Scrubber struct {
	mu sync.Mutex
	// forms holds every form of every value, without duplicates.
	forms []string
}

// NewScrubber returns a Scrubber of values.
func NewScrubber(values ...Secret) *Scrubber {
	s := &Scrubber{}
	s.Add(values...)
	return s
}

// Add makes s scrub values; zero values are skipped. A value the caller
// holds only as a string (a password parsed from a URL, "user:password" of
// basic auth) goes in as FromString(v).
func (s *Scrubber) Add(values ...Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		s.addLocked(v.RevealString())
	}
}

// AddDocument makes s scrub each of docs whole and, when a document is a
// JSON object, each of its top-level string fields that is at least eight
// bytes long and not a public identifier (engine, host, dbname, username,
// key_id, key_name, previous_key_id, expires_at). Shorter fields are ports
// and names that occur in every message; public ones name the credential
// and must stay readable. A document that is not a JSON object is scrubbed
// whole only.
func (s *Scrubber) AddDocument(docs ...Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		if d.IsZero() {
			continue
		}
		s.addLocked(d.RevealString())
		var fields map[string]any
		if json.Unmarshal(d.value, &fields) != nil {
			continue
		}
		for k, v := range fields {
			if str, ok := v.(string); ok && len(str) >= minFieldLen && !publicFields[k] {
				s.addLocked(str)
			}
		}
	}
}

func (s *Scrubber) addLocked(v string) {
	if v == "" {
		return
	}
	forms := []string{v, url.QueryEscape(v), url.PathEscape(v), base64.StdEncoding.EncodeToString([]byte(v))}
	// Inside a JSON string, as Go's encoder escapes it (<, > and & as
	// \u003c…) and as most others do (Python, JavaScript: those as they are).
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			forms = append(forms, string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))[1:b.Len()-2]))
		}
	}
	for _, f := range forms {
		if f != "" && !slices.Contains(s.forms, f) {
			s.forms = append(s.forms, f)
		}
	}
}

// With returns a new Scrubber of s's values and values; s is unchanged.
// A nil s gives a Scrubber of values alone.
func (s *Scrubber) With(values ...Secret) *Scrubber {
	c := &Scrubber{}
	if s != nil {
		s.mu.Lock()
		c.forms = slices.Clone(s.forms)
		s.mu.Unlock()
	}
	c.Add(values...)
	return c
}

// Text returns t with every occurrence of a known value replaced by
// Redacted. Occurrences that overlap or touch become one Redacted, so no
// piece of a value shows between two markers. Text without a known value
// comes back unchanged.
func (s *Scrubber) Text(t string) string {
	clean, _ := s.scrub(t)
	return clean
}

// scrub is Text, and whether anything was replaced.
func (s *Scrubber) scrub(t string) (string, bool) {
	if s == nil || t == "" {
		return t, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Mark the spans of every occurrence in the original text first, then
	// replace: replacing value by value could leave the tail of a value
	// that overlaps an earlier one, or find a short value inside an
	// inserted marker.
	var spans [][2]int
	for _, f := range s.forms {
		for i := 0; i <= len(t)-len(f); {
			j := strings.Index(t[i:], f)
			if j < 0 {
				break
			}
			spans = append(spans, [2]int{i + j, i + j + len(f)})
			i += j + 1
		}
	}
	if len(spans) == 0 {
		return t, false
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var out strings.Builder
	last := 0
	for k := 0; k < len(spans); {
		start, end := spans[k][0], spans[k][1]
		for k++; k < len(spans) && spans[k][0] <= end; k++ {
			end = max(end, spans[k][1])
		}
		out.WriteString(t[last:start])
		out.WriteString(Redacted)
		last = end
	}
	out.WriteString(t[last:])
	return out.String(), true
}

// Err returns err scrubbed, by one rule for every caller:
//
//   - When err's text holds no known value, Err returns err itself, so
//     errors.Is and errors.As reach the whole chain (a *pgconn.PgError's
//     SQLSTATE, a provider's ErrNotFound).
//   - Otherwise it returns an error with the scrubbed text that does not
//     unwrap to err, whose chain still holds the value in its texts. Only
//     context.Canceled and context.DeadlineExceeded stay reachable with
//     errors.Is, so that callers still tell a cancellation or a timeout
//     from a failure. A caller that needs another sentinel through a
//     scrubbed message wraps it itself around Text's result.
//
// Err(nil) is nil.
func (s *Scrubber) Err(err error) error {
	if err == nil {
		return nil
	}
	clean, replaced := s.scrub(err.Error())
	if !replaced {
		return err
	}
	e := &scrubbedError{msg: clean}
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			e.ctxErr = c
			break
		}
	}
	return e
}

// scrubbedError is an error text with values cut out. It keeps no
// reference to the original error, so nothing (not even %#v) reaches it.
type scrubbedError struct {
	msg string
	// ctxErr is context.Canceled or context.DeadlineExceeded when the
	// original error was one of them, else nil.
	ctxErr error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.ctxErr }
