package scan

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aymanbagabas/go-udiff"
)

// Replacement is what a hardcoded value becomes: the environment variable
// `swarmkey exec` sets, or the plugin's credential("POLICY")["FIELD"].
type Replacement struct {
	EnvVar string
	// Policy and Field, when set, use the plugin instead (Python only).
	Policy, Field string
}

func (r Replacement) python(quote byte) (expr, module string) {
	q := string(quote)
	if r.Policy != "" {
		return "swarmkey_locust.credential(" + q + r.Policy + q + ")[" + q + r.Field + q + "]", "swarmkey_locust"
	}
	return "os.environ[" + q + r.EnvVar + q + "]", "os"
}

// Rewrite returns src with f's value replaced by r: in Python, the string
// literal becomes os.environ["VAR"] (or the plugin call), a value inside a
// longer literal (a Bearer prefix, a connection string) becomes an f-string
// part, an os.getenv default goes with its call, and the import is added
// when missing; in other files the value becomes ${VAR}, which shells,
// docker compose and dotenv expand. f must come from scanning src.
func Rewrite(src []byte, f Finding, r Replacement) ([]byte, error) {
	s := f.span
	if s.end <= s.start || s.end > len(src) || string(src[s.start:s.end]) != f.Value.RevealString() {
		return nil, fmt.Errorf("%s: the file changed since it was scanned; scan it again", f.Location())
	}
	if !s.python {
		if r.EnvVar == "" {
			return nil, fmt.Errorf("%s: not a Python file: the plugin cannot be called here; use the environment variable", f.Location())
		}
		return splice(src, s.start, s.end, "${"+r.EnvVar+"}"), nil
	}
	lit := string(src[s.literalStart:s.literalEnd])
	prefixLen := strings.IndexAny(lit, `"'`)
	if prefixLen < 0 {
		return nil, fmt.Errorf("%s: the value is not in a string literal", f.Location())
	}
	prefix := strings.ToLower(lit[:prefixLen])
	quote := lit[prefixLen]
	quoteLen := 1
	if strings.HasPrefix(lit[prefixLen:], strings.Repeat(string(quote), 3)) {
		quoteLen = 3
	}
	inner := byte('"')
	if quote == '"' {
		inner = '\''
	}
	var out []byte
	var module string
	switch contentStart, contentEnd := s.literalStart+prefixLen+quoteLen, s.literalEnd-quoteLen; {
	case s.envCall:
		var expr string
		expr, module = r.python('"')
		out = splice(src, s.callStart, s.callEnd, expr)
	case s.start == contentStart && s.end == contentEnd && !strings.Contains(prefix, "f"):
		var expr string
		expr, module = r.python('"')
		out = splice(src, s.literalStart, s.literalEnd, expr)
	default:
		var expr string
		expr, module = r.python(inner)
		before := string(src[contentStart:s.start])
		after := string(src[s.end:contentEnd])
		if !strings.Contains(prefix, "f") {
			before, after = escapeBraces(before), escapeBraces(after)
		}
		newPrefix := strings.ReplaceAll(strings.ReplaceAll(prefix, "u", ""), "b", "")
		if !strings.Contains(newPrefix, "f") {
			newPrefix = "f" + newPrefix
		}
		q := lit[prefixLen : prefixLen+quoteLen]
		out = splice(src, s.literalStart, s.literalEnd, newPrefix+q+before+"{"+expr+"}"+after+q)
	}
	return addImport(out, module), nil
}

func splice(src []byte, start, end int, with string) []byte {
	out := make([]byte, 0, len(src)+len(with))
	out = append(out, src[:start]...)
	out = append(out, with...)
	return append(out, src[end:]...)
}

func escapeBraces(s string) string {
	return strings.NewReplacer("{", "{{", "}", "}}").Replace(s)
}

// addImport adds `import MODULE` before the file's first import, or after
// its leading comments and docstring when it has none, unless the module
// is imported already.
func addImport(src []byte, module string) []byte {
	imported := regexp.MustCompile(`(?m)^import\s+(?:[\w.]+\s*,\s*)*` + regexp.QuoteMeta(module) + `\b`)
	if imported.Match(src) {
		return src
	}
	// Before the first import that is not from __future__ (those must
	// come first), else after the last of those, else after a shebang,
	// encoding line and leading comments.
	imports := regexp.MustCompile(`(?m)^(?:import|from)\s.*$`).FindAllIndex(src, -1)
	for _, loc := range imports {
		if !strings.HasPrefix(string(src[loc[0]:loc[1]]), "from __future__") {
			return splice(src, loc[0], loc[0], "import "+module+"\n")
		}
	}
	at := 0
	if len(imports) > 0 {
		at = imports[len(imports)-1][1] + 1
		return splice(src, min(at, len(src)), min(at, len(src)), "import "+module+"\n")
	}
	for at < len(src) && src[at] == '#' {
		nl := strings.IndexByte(string(src[at:]), '\n')
		if nl < 0 {
			at = len(src)
			break
		}
		at += nl + 1
	}
	return splice(src, at, at, "import "+module+"\n")
}

// UnifiedDiff is the change from old to new as a unified diff of file.
func UnifiedDiff(file string, old, new []byte) string {
	return udiff.Unified("a/"+file, "b/"+file, string(old), string(new))
}

// Change is Rewrite's result with its diff for people: the old value shows
// as its masked preview, never in full.
type Change struct {
	New  []byte
	Diff string
}

// RewriteDiff is Rewrite with a unified diff of file whose removed lines
// show the value masked (‹preview›), so the diff can be printed.
func RewriteDiff(file string, src []byte, f Finding, r Replacement) (Change, error) {
	out, err := Rewrite(src, f, r)
	if err != nil {
		return Change{}, err
	}
	masked := splice(src, f.span.start, f.span.end, "‹"+Mask(f.Value.RevealString())+"›")
	return Change{New: out, Diff: UnifiedDiff(file, masked, out)}, nil
}
