package config

import (
	"bytes"
)

// A file of many policies is not decoded as one YAML tree: yaml.v3 builds
// the whole node tree of a document before decoding any of it, and an index
// of it besides, which took about 150 MiB for 10,000 policies. Instead the
// file is cut at the entries of its top-level policies: list, and each
// entry is parsed, checked and decoded on its own when its turn comes, its
// tree garbage as soon as its policy is built (see loader.eachPolicy).
//
// The cut is made on lines, which is sound for the block layout every
// policy file in practice has:
//
//	policies:
//	  - name: a          <- an entry: "-" at the list's indentation
//	    schedule: ...    <- deeper: part of the entry
//	  - name: b
//	notifications: ...   <- shallower: the list has ended
//
// A line can look like an entry without being one only inside a token that
// spans lines: a quoted scalar or a flow collection (block scalars and plain
// scalars continue only on deeper lines). Such a token, opened in one entry
// and closed in a later one, leaves the first entry's text unterminated, and
// its parse fails. So every cut is checked by parsing: when the header (the
// file with the entries blanked) does not hold policies: at the line found,
// with no value, the file is decoded whole at once; when an entry does not
// parse on its own (a bad file, an alias of an anchor in another entry, a
// wrong cut), the load starts over with that file decoded whole, which
// reports exactly what it always did. Files with document markers,
// directives, a byte-order mark or tabs in indentation are decoded whole
// from the start.

// policyEntry is one entry of a file's top-level policies: list: its lines,
// indentation kept, are data[start:end] of the file's data, from line on.
type policyEntry struct {
	line, start, end int
}

// splitFile is a policy file cut at its policies: entries.
type splitFile struct {
	// header is the file with every line of the entries emptied (line
	// breaks kept, so lines stay where they are).
	header []byte
	// policiesLine is the line of the "policies:" key; firstEntryLine the
	// line of the first entry.
	policiesLine, firstEntryLine int
	entries                      []policyEntry
	// data is the whole file, which the entries index.
	data []byte
}

// splitPolicies cuts data as described above; ok is false when the file is
// not laid out so, or has no entries to cut.
func splitPolicies(data []byte) (sf splitFile, ok bool) {
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return splitFile{}, false
	}
	const (
		before  = iota // looking for the policies: key
		opening        // after it, looking for the first entry
		inList         // in the list
		after          // after the list
	)
	st := before
	indent := 0                   // the list's indentation
	entryStart, listEnd := -1, -1 // byte offsets
	var entries []policyEntry     // ends filled in at the end
	lineNo := 0
	for off := 0; off < len(data); {
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end < 0 {
			end = len(data)
		} else {
			end += off
			next = end + 1
		}
		line := data[off:end]
		start := off
		off = next

		if isMarkerLine(line) {
			return splitFile{}, false
		}
		if isPoliciesKey(line) {
			if st != before {
				return splitFile{}, false // given twice: the whole file says so
			}
			st = opening
			sf.policiesLine = lineNo
			continue
		}
		if st == before || st == after || isBlankOrComment(line) {
			continue
		}
		n := leadingSpaces(line)
		if n < len(line) && line[n] == '\t' {
			return splitFile{}, false
		}
		entry := isEntryAt(line, n)
		switch st {
		case opening:
			if !entry {
				return splitFile{}, false // no list under policies:
			}
			st, indent, entryStart = inList, n, start
			sf.firstEntryLine = lineNo
			entries = append(entries, policyEntry{line: lineNo, start: start})
		case inList:
			switch {
			case entry && n == indent:
				entries = append(entries, policyEntry{line: lineNo, start: start})
			case n > indent:
			default:
				st, listEnd = after, start
			}
		}
	}
	if len(entries) == 0 {
		return splitFile{}, false
	}
	if listEnd < 0 {
		listEnd = len(data)
	}
	for i := range entries {
		entries[i].end = listEnd
		if i+1 < len(entries) {
			entries[i].end = entries[i+1].start
		}
	}
	blanked := bytes.Count(data[entryStart:listEnd], []byte{'\n'})
	header := make([]byte, 0, entryStart+blanked+len(data)-listEnd)
	header = append(header, data[:entryStart]...)
	header = append(header, bytes.Repeat([]byte{'\n'}, blanked)...)
	header = append(header, data[listEnd:]...)
	sf.header, sf.entries, sf.data = header, entries, data
	return sf, true
}

// isMarkerLine reports a line that starts a document ("---"), ends one
// ("...") or is a directive ("%YAML"): files with those are decoded whole.
func isMarkerLine(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("...")) || bytes.HasPrefix(line, []byte("%"))
}

// isPoliciesKey reports the line "policies:" at the top level, with nothing
// after it but blanks and a comment.
func isPoliciesKey(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("policies:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '#' || (len(rest) == 1 && rest[0] == '\r')
}

func isBlankOrComment(line []byte) bool {
	t := bytes.TrimLeft(line, " \t\r")
	return len(t) == 0 || t[0] == '#'
}

func leadingSpaces(line []byte) int {
	n := 0
	for n < len(line) && line[n] == ' ' {
		n++
	}
	return n
}

// isEntryAt reports a "-" at column n followed by a blank or the line's end:
// a block sequence entry.
func isEntryAt(line []byte, n int) bool {
	if n >= len(line) || line[n] != '-' {
		return false
	}
	return n+1 == len(line) || line[n+1] == ' ' || line[n+1] == '\t' || line[n+1] == '\r'
}
