package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// source is one parsed file: its raw decoding, its node tree for line
// look-ups, and the parts of it that failed to decode. A file cut at its
// policies: entries (split.go) holds its header here, and each batch of
// entries gets a source of its own while it is checked (entries.go),
// sharing badUnits.
type source struct {
	file    string
	include bool
	raw     rawFile
	idx     nodeIndex
	// badUnits are the policies, deny windows, stores and top-level keys
	// (see unitOf) that had a decoding error: their partial values would
	// only produce follow-on errors, so validation stays quiet about them.
	badUnits map[string]bool
	// cut says the file was cut at its policies: entries (split.go), and
	// entries are those still to parse (entries.go) in data.
	cut     bool
	entries []policyEntry
	data    []byte
	// decodeErrs counts yaml.v3's decoding errors of the file, of which the
	// first maxDecodeErrors are shown: the header's, then the entries'
	// (both ways of decoding show the same ones).
	decodeErrs *int
}

// nodeEntry is one mapping value or sequence item, with the path that
// addresses it: "policies[2].target.postgres.port".
type nodeEntry struct {
	path  string
	key   *yaml.Node // nil for a sequence item
	value *yaml.Node
}

func (e *nodeEntry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return e.value.Line
}

type nodeIndex struct {
	// byPath holds the index in entries of the first entry at each path.
	byPath  map[string]int
	entries []nodeEntry
	// keysOn and valuesOn find entries by the line of their key or value,
	// for rewriting yaml.v3's messages, which know only the line; byLine
	// builds them on first use.
	keysOn, valuesOn map[int][]int
	// expanding holds the anchors being walked through an alias, so that an
	// anchor that contains an alias of itself is not expanded forever.
	expanding map[*yaml.Node]bool
}

func buildIndex(root *yaml.Node) nodeIndex {
	x := nodeIndex{byPath: map[string]int{}}
	if root != nil {
		x.walk("", root)
	}
	return x
}

func (x *nodeIndex) add(e nodeEntry) {
	x.entries = append(x.entries, e)
	if _, dup := x.byPath[e.path]; !dup {
		x.byPath[e.path] = len(x.entries) - 1
	}
}

// get returns the entry at path.
func (x *nodeIndex) get(path string) (*nodeEntry, bool) {
	i, ok := x.byPath[path]
	if !ok {
		return nil, false
	}
	return &x.entries[i], true
}

// byLine builds keysOn and valuesOn, once.
func (x *nodeIndex) byLine() {
	if x.keysOn != nil {
		return
	}
	x.keysOn, x.valuesOn = map[int][]int{}, map[int][]int{}
	for i, e := range x.entries {
		if e.key != nil {
			x.keysOn[e.key.Line] = append(x.keysOn[e.key.Line], i)
		}
		x.valuesOn[e.value.Line] = append(x.valuesOn[e.value.Line], i)
	}
}

// maxDecodeErrors bounds how many of yaml.v3's decoding errors one file
// reports; past a screenful, more do not help.
const maxDecodeErrors = 50

// maxIndexEntries bounds the index when aliases repeat parts of a file.
const maxIndexEntries = 100_000

// walk records every entry below n. It follows aliases (lines then point at
// the anchored original) but stops expanding them once the index is large,
// so that a file of nested aliases cannot make it do exponential work.
func (x *nodeIndex) walk(path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.walk(path, c)
		}
	case yaml.AliasNode:
		if n.Alias != nil && !x.expanding[n.Alias] && len(x.entries) < maxIndexEntries {
			if x.expanding == nil {
				x.expanding = map[*yaml.Node]bool{}
			}
			x.expanding[n.Alias] = true
			x.walk(path, n.Alias)
			delete(x.expanding, n.Alias)
		}
	case yaml.MappingNode:
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			x.add(nodeEntry{path: p, key: k, value: v})
			x.walk(p, v)
		}
		// Merged keys ("<<: *defaults") are this mapping's own; its explicit
		// keys win, as in decoding, so they were indexed first.
		for _, m := range merges {
			if m.Kind == yaml.SequenceNode {
				for _, item := range m.Content {
					x.walk(path, item)
				}
				continue
			}
			x.walk(path, m)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			x.add(nodeEntry{path: p, value: c})
			x.walk(p, c)
		}
	}
}

// has reports whether the file gives path at all (null included).
func (s *source) has(path string) bool {
	_, ok := s.idx.byPath[path]
	return ok
}

// line is the line of path or, when the file does not give it, of its
// nearest ancestor that it gives; 0 when there is none.
func (s *source) line(path string) int {
	for path != "" {
		if e, ok := s.idx.get(path); ok {
			return e.line()
		}
		path = parentPath(path)
	}
	return 0
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

var policyIndexRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^policies\[(\d+)\]`) })

// display turns an index path into the path shown to people: a policy with
// a valid name is addressed by it.
func (s *source) display(path string) string {
	m := policyIndexRE().FindStringSubmatch(path)
	if m == nil {
		return path
	}
	if e, ok := s.idx.get(m[0] + ".name"); ok && e.value.Kind == yaml.ScalarNode && nameRE().MatchString(e.value.Value) {
		return "policies[" + e.value.Value + "]" + path[len(m[0]):]
	}
	return path
}

// unitOf is the part of the document that a decoding error at path spoils.
func unitOf(path string) string {
	head, rest, _ := strings.Cut(path, ".")
	switch {
	case strings.HasPrefix(head, "policies["), strings.HasPrefix(head, "deny["):
		if i := strings.IndexByte(head, ']'); i > 0 {
			return head[:i+1]
		}
	case head == "stores" && rest != "":
		sub, _, _ := strings.Cut(rest, ".")
		return head + "." + sub
	}
	if i := strings.IndexByte(head, '['); i > 0 {
		return head[:i]
	}
	return head
}

func (s *source) suppressed(path string) bool {
	return s.badUnits[""] || s.badUnits[unitOf(path)]
}

// errAt builds an Error about path in s.
func (s *source) errAt(path, msg string) Error {
	return Error{File: s.file, Line: s.line(path), Field: s.display(path), Msg: msg}
}

// abs resolves a relative path given in s against the directory of s's
// file; "" stays "".
func (s *source) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.file), p)
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// parseSource parses one file: the node tree first (syntax errors), then a
// strict decoding (unknown fields, wrong types). Its errors are in
// FILE:LINE: FIELD: MSG form. With cut, a file laid out for it (split.go)
// has only its header decoded here; its policies: entries wait in entries,
// to be decoded a batch at a time when their policies are checked
// (entries.go).
func parseSource(file string, data []byte, include, cut bool) (*source, Errors) {
	if cut {
		if sf, ok := splitPolicies(data); ok {
			if src, errs, ok := parseDocument(file, sf.header, include, &sf); ok {
				return src, errs
			}
		}
	}
	src, errs, _ := parseDocument(file, data, include, nil)
	return src, errs
}

// parseDocument parses data, the whole file or, with sf, its header. For a
// header ok is false when it does not parse and decode as the whole file's
// head would (any syntax error, no empty policies: key at the line the cut
// found): the caller then parses the whole file instead.
func parseDocument(file string, data []byte, include bool, sf *splitFile) (src *source, errs Errors, ok bool) {
	src = &source{file: file, include: include, idx: buildIndex(nil), badUnits: map[string]bool{}, decodeErrs: new(int)}
	defer func() {
		// yaml.v3 reports through panics internally; a bug there must not
		// take the daemon down on a bad file.
		if r := recover(); r != nil {
			src.badUnits[""] = true
			errs, ok = append(errs, notPolicyFile(file, 0, "cannot parse the YAML: "+unquote(fmt.Sprint(r)))), sf == nil
		}
	}()
	// fail is a problem with the whole file: for a header, the whole file
	// is parsed instead, and reports it.
	fail := func(e Error) (*source, Errors, bool) {
		src.badUnits[""] = true
		return src, Errors{e}, sf == nil
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return src, nil, sf == nil
		}
		return fail(syntaxError(file, err))
	}
	// A file that is not a mapping of the top-level keys, such as
	// /etc/shadow reached by a wrong include:, is named as such, not
	// reported line by line: that would print its lines.
	if why := notPolicyMapping(resolve(&doc)); why != "" {
		return fail(notPolicyFile(file, 0, why))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fail(syntaxError(file, err))
		}
		return fail(Error{File: file, Line: extra.Line, Msg: "a second YAML document; give one document per file and use include: for more files"})
	}
	if sf != nil && !emptyPoliciesAt(resolve(&doc), sf.policiesLine) {
		return src, nil, false
	}
	// checkTree is the strict half of decoding (see decode.go), and rewrites
	// durations for Decode. Decode before indexing: yaml.v3 refuses
	// excessive aliasing there, which bounds what the index expands.
	tree := checkTree(&doc, reflect.TypeFor[rawFile]())
	err := doc.Decode(&src.raw)
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return fail(syntaxError(file, err))
	}
	src.idx = buildIndex(&doc)
	for _, p := range tree {
		errs = append(errs, Error{File: file, Line: p.line, Field: src.display(p.path), Msg: p.msg})
	}
	if te != nil {
		// The header's errors count first, then the entries' (a cut file
		// decodes its entries later), so that both ways show the same.
		var head, policies Errors
		for _, msg := range te.Errors {
			e, spoils := src.decodeError(msg)
			if spoils {
				src.badUnits[unitOf(e.Field)] = true
			}
			if strings.HasPrefix(e.Field, "policies[") {
				policies = append(policies, e)
			} else {
				head = append(head, e)
			}
		}
		for _, e := range append(head, policies...) {
			errs = src.decodeShown(errs, e)
		}
	}
	if sf != nil {
		src.cut, src.entries, src.data = true, sf.entries, sf.data
	}
	return src, errs, true
}

// emptyPoliciesAt reports whether root, the header of a cut file, is a
// mapping that holds the key policies once, at the start of line, with no
// value, no merge key ("<<") that could bring in another, and no key given
// twice (yaml.v3 then decodes none of the mapping, policies included).
func emptyPoliciesAt(root *yaml.Node, line int) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	found := false
	keys := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" || keys[k.Value] {
			return false
		}
		keys[k.Value] = true
		if k.Value != "policies" {
			continue
		}
		if found || k.Line != line || k.Column != 1 || k.Style != 0 || k.Tag != "!!str" ||
			v.Kind != yaml.ScalarNode || v.Tag != "!!null" || v.Value != "" || v.Anchor != "" {
			return false
		}
		found = true
	}
	return found
}

// decodeShown appends e, one of yaml.v3's decoding errors of s's file, to
// errs while fewer than maxDecodeErrors were shown; the rest are counted
// (see finishDecodeErrors).
func (s *source) decodeShown(errs Errors, e Error) Errors {
	*s.decodeErrs++
	if *s.decodeErrs > maxDecodeErrors {
		return errs
	}
	e.Field = s.display(e.Field)
	return append(errs, e)
}

// moreDecodeErrors is the error that counts the decoding errors of s's
// file not shown, once all are known; ok is false when none were left out.
func (s *source) moreDecodeErrors() (Error, bool) {
	if n := *s.decodeErrs - maxDecodeErrors; n > 0 {
		return Error{File: s.file, Msg: fmt.Sprintf("%d more decoding errors not shown", n)}, true
	}
	return Error{}, false
}

// shiftLines moves every node below n down by lines: an entry parsed on its
// own counts from its first line, the file from the file's.
func shiftLines(n *yaml.Node, lines int) {
	n.Line += lines
	for _, c := range n.Content {
		shiftLines(c, lines)
	}
}

// syntaxError reports a file that yaml.v3 cannot parse: it is not a
// policy file, whatever it was meant to be. The parser's message is kept
// with anything quoted in it cut out (see unquote).
func syntaxError(file string, err error) Error {
	msg := err.Error()
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return notPolicyFile(file, line, "bad YAML: "+unquote(m[2]))
	}
	return notPolicyFile(file, 0, "bad YAML: "+unquote(strings.TrimPrefix(msg, "yaml: ")))
}

// notPolicyFile is the one error of a file that is not a policy file: its
// name, the line where parsing stopped (0 when none), and why, in words of
// ours. It never quotes the file: that may be anything at all, such as a
// file of password hashes.
func notPolicyFile(file string, line int, why string) Error {
	return Error{File: file, Line: line, Msg: "not a swarmkey policy file (" + why + ")"}
}

// topLevelKeys are the keys of a policy file, as messages list them.
const topLevelKeys = "database:, stores:, include:, deny:, policies: or notifications:"

// notPolicyMapping says why the document root n cannot be a policy file, or
// "" when it may be one: empty, or a mapping with at least one key that is
// a top-level key or one mistyped (within the did-you-mean distance of
// knownFieldsHint), whose other keys are then reported as unknown fields.
// A mapping whose keys are all far from every top-level key is another
// kind of file ("root:$6$…:19000:0:99999:7:::" parses as a key) and is not
// reported key by key.
func notPolicyMapping(n *yaml.Node) string {
	switch {
	case n == nil, n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return ""
	case n.Kind != yaml.MappingNode:
		return "its top level is " + describeTag(n.ShortTag()) + ", not a mapping of " + topLevelKeys
	case len(n.Content) == 0:
		return ""
	}
	names := yamlFieldsOf(reflect.TypeFor[rawFile]()).sorted
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if k.ShortTag() == "!!merge" {
			return "" // merged keys are checked as the mapping's own
		}
		for _, name := range names {
			if editDistance(k.Value, name) < 3 {
				return ""
			}
		}
	}
	return "none of its top-level keys is " + topLevelKeys
}

// quotedRE matches what yaml.v3 quotes in its messages: 'anchor',
// `value`, "key".
var quotedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("'[^']*'|`[^`]*`|\"(?:[^\"\\\\]|\\\\.)*\"") })

// unquote cuts what a message of yaml.v3 quotes from the file out of it:
// an anchor name, a value, a key. The file may not be a policy file at all.
func unquote(msg string) string {
	return quotedRE().ReplaceAllString(msg, "(…)")
}

var (
	wrongTypeRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+|\\S+)(?: `(.*)`)? into (\\S+)$")
	})
	dupKeyRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)
	})
	dupFieldRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): field (.*) already set in type (\S+)$`) })
	lineRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): (.*)$`) })
)

// decodeError rewrites one of yaml.v3's decoding messages ("line 7: cannot
// unmarshal !!str `five` into int") into an Error with the path of the field,
// found by line in the node index. Field is left as an index path; spoils
// says whether the decoded value at that path is unusable. The rewritten
// messages never repeat the offending value.
func (s *source) decodeError(msg string) (e Error, spoils bool) {
	e.File = s.file
	if m := wrongTypeRE().FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Field = s.valueAt(e.Line, m[2], m[3], m[4])
		e.Msg = fmt.Sprintf("want %s, got %s", describeGoType(m[4]), describeTag(m[2]))
		return e, true
	}
	if m := dupKeyRE().FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Field = s.keyAt(e.Line, m[2])
		if !isFieldName(m[2]) {
			// Not shown, as in an unknown key's message (see checkTree).
			e.Field = parentPath(e.Field)
			e.Msg = fmt.Sprintf("a key is given twice (first at line %s); give it once", m[3])
			return e, true
		}
		e.Msg = fmt.Sprintf("%q is given twice (first at line %s); give it once", m[2], m[3])
		return e, true
	}
	if m := dupFieldRE().FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Field = s.keyAt(e.Line, m[2])
		e.Msg = fmt.Sprintf("%q is given twice; give it once", m[2])
		return e, true
	}
	if m := lineRE().FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = unquote(m[2])
		return e, true
	}
	e.Msg = unquote(msg)
	return e, true
}

// keyAt finds the path of the mapping key name on line; "" if none.
func (s *source) keyAt(line int, name string) string {
	var found string
	s.idx.byLine()
	for _, i := range s.idx.keysOn[line] {
		if e := &s.idx.entries[i]; e.key.Value == name {
			found = e.path // the last one: a duplicate key is the later one
		}
	}
	return found
}

// valueAt finds the path of the value that yaml.v3 could not decode: on
// line, with that tag, into a Go value of type goType (as yaml.v3 names
// it) and, where given, that (possibly truncated) value.
func (s *source) valueAt(line int, tag, value, goType string) string {
	var cands []*nodeEntry
	s.idx.byLine()
	for _, i := range s.idx.valuesOn[line] {
		if e := &s.idx.entries[i]; e.value.ShortTag() == tag {
			cands = append(cands, e)
		}
	}
	if len(cands) > 1 {
		// A list and its first item, a mapping and a value in it, may
		// share a line and a tag: the Go type tells them apart.
		var typed []*nodeEntry
		for _, e := range cands {
			if t := goTypeAt(e.path); t != nil && strings.TrimPrefix(t.String(), "*") == strings.TrimPrefix(goType, "*") {
				typed = append(typed, e)
			}
		}
		if len(typed) > 0 {
			cands = typed
		}
	}
	if len(cands) > 1 && value != "" {
		prefix := strings.TrimSuffix(value, "...")
		for _, e := range cands {
			if strings.HasPrefix(e.value.Value, prefix) {
				return e.path
			}
		}
	}
	if len(cands) > 0 {
		return cands[0].path
	}
	return ""
}

// goTypeAt is the Go type that the value at path decodes into, from
// rawFile down; nil when no field takes it. A list of policies decodes
// each entry into a rawPolicy, and so does the whole list when it is not a
// list (rawPolicies).
func goTypeAt(path string) reflect.Type {
	t := reflect.TypeFor[rawFile]()
	for path != "" {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			if end < 0 || (t.Kind() != reflect.Slice && t.Kind() != reflect.Array) {
				return nil
			}
			t, path = t.Elem(), path[end+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		name := path
		if i := strings.IndexAny(path, ".["); i >= 0 {
			name, path = path[:i], path[i:]
		} else {
			path = ""
		}
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := yamlFieldsOf(t).types[name]
			if !ok {
				return nil
			}
			t = ft
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
	}
	if t == reflect.TypeFor[rawPolicies]() {
		return reflect.TypeFor[[]rawPolicy]()
	}
	return t
}

func describeTag(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	case "!!null":
		return "null"
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	// A tag of the file's own is not quoted: the file may be anything.
	return "a value with a custom tag"
}

func describeGoType(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case t == "time.Duration":
		return "a duration such as 90s"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		// The raw types and the Options types they hold are structs.
		return "a mapping"
	}
	return t
}
