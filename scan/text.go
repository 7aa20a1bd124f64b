package scan

import (
	"bytes"
	"path"
	"regexp"
	"strings"
	"sync"
)

// Line rules for files that are not Python: .env, YAML, JSON, TOML, INI,
// locust.conf, CI files, shell scripts, Dockerfiles. These formats put one
// key and its value on a line, so a key-by-key reading finds what a parser
// would, in every one of them alike.

// keyValue: KEY = value, KEY: value, "key": "value", export KEY=value,
// ENV KEY=value, - KEY=value (a YAML list of variables).
var keyValue = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*(?:-\s+)?(?:export\s+|ENV\s+|ARG\s+|set\s+|setenv\s+|readonly\s+|declare\s+(?:-\w+\s+)?)?["']?([A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*(?:=|:(?:\s|$|["'])|\s+)`)
})

// inlineAssign: NAME=value anywhere on a line (PGPASSWORD=… psql, a
// docker run -e NAME=value, a CI script line).
var inlineAssign = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?:^|[\s"'])([A-Za-z_][A-Za-z0-9_]*)=`) })

// quotedKey: "key": value anywhere on a line (a JSON object on one line,
// a YAML flow mapping).
var quotedKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`["']([A-Za-z_][A-Za-z0-9_.\-]*)["']\s*:\s*`) })

// k8sName: "- name: NAME" of a list of variables (Kubernetes env, compose);
// the next line's "value:" is NAME's.
var k8sName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*-\s+name:\s*["']?([A-Za-z_][A-Za-z0-9_]*)["']?\s*$`)
})

// flagValue: --password value, --api-key=value.
var flagValue = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?:^|\s)--([A-Za-z][A-Za-z0-9_\-]*)(?:=|\s+)`) })

// headerInText: Authorization: Bearer value, X-API-Key: value (a curl -H,
// a YAML map of headers).
var headerInText = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)["']?\b(authorization|proxy-authorization|x-api-key|api-key|x-auth-token|x-access-token|x-api-token|private-token)["']?\s*[:=]\s*["']?((?:bearer|token|basic|apikey)\s+)?([A-Za-z0-9._~+/=:\-]{6,})`)
})

// textKind is the kind of a key found in a file of this name.
func textKind(file string) Kind {
	if strings.EqualFold(path.Base(file), "locust.conf") || strings.HasSuffix(strings.ToLower(file), ".locust.conf") {
		return KindLocustConf
	}
	return KindAssignment
}

// scanText applies the line rules to a file that is not Python.
func scanText(file string, src []byte) []Finding {
	var out []Finding
	seen := map[int]bool{} // value start offsets already reported
	add := func(f Finding, start, end int) {
		if seen[start] {
			return
		}
		seen[start] = true
		f.File = file
		f.span = span{start: start, end: end}
		f.Value = secretOf(src[start:end])
		out = append(out, f)
	}
	kind := textKind(file)
	offset := 0
	listName := "" // the NAME of a "- name: NAME" line just read
	for lineNo, line := range bytes.Split(src, []byte("\n")) {
		l := string(line)
		lineStart := offset
		offset += len(line) + 1
		if strings.HasPrefix(strings.TrimSpace(l), "#") && !strings.HasPrefix(strings.TrimSpace(l), "#!") {
			// A comment: commented-out credentials are still found by the
			// generic rules; the key rules would take prose for keys.
			continue
		}
		key, keyEnd := leadingKey(l)
		if key == "value" && listName != "" {
			key = listName
		}
		listName = ""
		if m := k8sName().FindStringSubmatch(l); m != nil {
			listName = m[1]
		}
		for _, u := range urlPasswords(l) {
			k := KindConnectionString
			if u.http {
				k = KindHostUserinfo
			}
			add(Finding{Line: lineNo + 1, Column: u.start + 1, Kind: k, Rule: "locust/" + string(k), Variable: key},
				lineStart+u.start, lineStart+u.end)
		}
		for _, m := range headerInText().FindAllStringSubmatchIndex(l, -1) {
			v := l[m[6]:m[7]]
			if !plausibleUsedSecret(v) || strings.HasPrefix(v, "self.") || strings.HasPrefix(v, "cls.") {
				continue
			}
			add(Finding{Line: lineNo + 1, Column: m[6] + 1, Kind: KindHeader, Rule: "locust/header", Variable: l[m[2]:m[3]]},
				lineStart+m[6], lineStart+m[7])
		}
		// Keys: the line's leading key, then NAME=value and --flag value
		// anywhere on it.
		type cand struct {
			name string
			at   int
		}
		var cands []cand
		if key != "" {
			cands = append(cands, cand{name: key, at: keyEnd})
		}
		for _, m := range inlineAssign().FindAllStringSubmatchIndex(l, -1) {
			cands = append(cands, cand{name: l[m[2]:m[3]], at: m[1]})
		}
		for _, m := range quotedKey().FindAllStringSubmatchIndex(l, -1) {
			cands = append(cands, cand{name: l[m[2]:m[3]], at: m[1]})
		}
		for _, m := range flagValue().FindAllStringSubmatchIndex(l, -1) {
			cands = append(cands, cand{name: l[m[2]:m[3]], at: m[1]})
		}
		for _, c := range cands {
			if !isCredentialName(c.name) {
				continue
			}
			start, end, ok := valueAt(l, c.at)
			if !ok {
				continue
			}
			v := l[start:end]
			if !plausibleSecret(v) {
				continue
			}
			if scheme := schemePrefix().FindStringIndex(v); scheme != nil {
				start += scheme[1]
			}
			add(Finding{Line: lineNo + 1, Column: start + 1, Kind: kind, Rule: "locust/" + string(kind), Variable: c.name},
				lineStart+start, lineStart+end)
		}
	}
	return out
}

// leadingKey returns the key a line starts with and where its value
// begins; "" when the line starts with none. A space separates a key from
// its value only after ENV, ARG and setenv (a Dockerfile, csh).
func leadingKey(l string) (string, int) {
	m := keyValue().FindStringSubmatchIndex(l)
	if m == nil {
		return "", 0
	}
	key, end := l[m[2]:m[3]], m[1]
	sep := strings.TrimSpace(l[m[3]:end])
	sep = strings.Trim(sep, `"'`)
	if sep == "" {
		head := strings.ToUpper(strings.TrimSpace(l))
		if !strings.HasPrefix(head, "ENV ") && !strings.HasPrefix(head, "ARG ") && !strings.HasPrefix(head, "SETENV ") {
			return "", 0
		}
	}
	if c := l[end-1]; (c == '"' || c == '\'') && end-2 >= 0 && strings.TrimSpace(l[:end-1])[len(strings.TrimSpace(l[:end-1]))-1] == ':' {
		end-- // the value's opening quote
	}
	return key, end
}

// valueAt reads the value that starts at byte at of line: a quoted string
// (without its quotes) or a bare word up to a space, a comment, a comma or a
// closing bracket.
func valueAt(line string, at int) (start, end int, ok bool) {
	for at < len(line) && (line[at] == ' ' || line[at] == '\t') {
		at++
	}
	if at >= len(line) {
		return 0, 0, false
	}
	switch q := line[at]; q {
	case '"', '\'', '`':
		i := strings.IndexByte(line[at+1:], q)
		if i < 0 {
			return 0, 0, false
		}
		return at + 1, at + 1 + i, true
	case '|', '>', '{', '[', '&', '*', '!':
		return 0, 0, false // YAML blocks, anchors and tags, JSON objects
	}
	end = at
	for end < len(line) && !strings.ContainsRune(" \t,;}]\r", rune(line[end])) {
		if line[end] == '#' && end > at && (line[end-1] == ' ' || line[end-1] == '\t') {
			break
		}
		end++
	}
	return at, end, end > at
}
