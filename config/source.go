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

	"go.yaml.in/yaml/v3"
)

// source is one parsed file: its raw decoding, its node tree for line
// look-ups, and the parts of it that failed to decode.
type source struct {
	file    string
	include bool
	raw     rawFile
	idx     nodeIndex
	// badUnits are the policies, deny windows, stores and top-level keys
	// (see unitOf) that had a decoding error: their partial values would
	// only produce follow-on errors, so validation stays quiet about them.
	badUnits map[string]bool
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
	byPath  map[string]*nodeEntry
	entries []*nodeEntry
	// keysOn and valuesOn find entries by the line of their key or value,
	// for rewriting yaml.v3's messages, which know only the line.
	keysOn, valuesOn map[int][]*nodeEntry
	// expanding holds the anchors being walked through an alias, so that an
	// anchor that contains an alias of itself is not expanded forever.
	expanding map[*yaml.Node]bool
}

func buildIndex(root *yaml.Node) nodeIndex {
	x := nodeIndex{
		byPath: map[string]*nodeEntry{}, expanding: map[*yaml.Node]bool{},
		keysOn: map[int][]*nodeEntry{}, valuesOn: map[int][]*nodeEntry{},
	}
	if root != nil {
		x.walk("", root)
	}
	return x
}

func (x *nodeIndex) add(e *nodeEntry) {
	x.entries = append(x.entries, e)
	if e.key != nil {
		x.keysOn[e.key.Line] = append(x.keysOn[e.key.Line], e)
	}
	x.valuesOn[e.value.Line] = append(x.valuesOn[e.value.Line], e)
	if _, dup := x.byPath[e.path]; !dup {
		x.byPath[e.path] = e
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
			x.add(&nodeEntry{path: p, key: k, value: v})
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
			x.add(&nodeEntry{path: p, value: c})
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
		if e, ok := s.idx.byPath[path]; ok {
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

var policyIndexRE = regexp.MustCompile(`^policies\[(\d+)\]`)

// display turns an index path into the path shown to people: a policy with
// a valid name is addressed by it.
func (s *source) display(path string) string {
	m := policyIndexRE.FindStringSubmatch(path)
	if m == nil {
		return path
	}
	if e, ok := s.idx.byPath[m[0]+".name"]; ok && e.value.Kind == yaml.ScalarNode && nameRE.MatchString(e.value.Value) {
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

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseSource parses one file: the node tree first (syntax errors), then a
// strict decoding (unknown fields, wrong types). Its errors are in
// FILE:LINE: FIELD: MSG form.
func parseSource(file string, data []byte, include bool) (src *source, errs Errors) {
	src = &source{file: file, include: include, idx: buildIndex(nil), badUnits: map[string]bool{}}
	defer func() {
		// yaml.v3 reports through panics internally; a bug there must not
		// take the daemon down on a bad file.
		if r := recover(); r != nil {
			src.badUnits[""] = true
			errs = append(errs, notPolicyFile(file, 0, "cannot parse the YAML: "+unquote(fmt.Sprint(r))))
		}
	}()

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return src, nil
		}
		src.badUnits[""] = true
		return src, Errors{syntaxError(file, err)}
	}
	// A file that is not a mapping of the top-level keys, such as
	// /etc/shadow reached by a wrong include:, is named as such, not
	// reported line by line: that would print its lines.
	if why := notPolicyMapping(resolve(&doc)); why != "" {
		src.badUnits[""] = true
		return src, Errors{notPolicyFile(file, 0, why)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		src.badUnits[""] = true
		if err != nil {
			return src, Errors{syntaxError(file, err)}
		}
		return src, Errors{{File: file, Line: extra.Line, Msg: "a second YAML document; give one document per file and use include: for more files"}}
	}
	// checkTree is the strict half of decoding (see decode.go), and rewrites
	// durations for Decode. Decode before indexing: yaml.v3 refuses
	// excessive aliasing there, which bounds what the index expands.
	tree := checkTree(&doc, reflect.TypeFor[rawFile]())
	err := doc.Decode(&src.raw)
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		src.badUnits[""] = true
		return src, Errors{syntaxError(file, err)}
	}
	src.idx = buildIndex(&doc)
	for _, p := range tree {
		errs = append(errs, Error{File: file, Line: p.line, Field: src.display(p.path), Msg: p.msg})
	}
	if te != nil {
		msgs := te.Errors
		if len(msgs) > maxDecodeErrors {
			errs = append(errs, Error{File: file, Msg: fmt.Sprintf("%d more decoding errors not shown", len(msgs)-maxDecodeErrors)})
			msgs = msgs[:maxDecodeErrors]
		}
		for _, msg := range msgs {
			e, spoils := src.decodeError(msg)
			if spoils {
				src.badUnits[unitOf(e.Field)] = true
			}
			e.Field = src.display(e.Field)
			errs = append(errs, e)
		}
	}
	return src, errs
}

// syntaxError reports a file that yaml.v3 cannot parse: it is not a
// policy file, whatever it was meant to be. The parser's message is kept
// with anything quoted in it cut out (see unquote).
func syntaxError(file string, err error) Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
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
var quotedRE = regexp.MustCompile("'[^']*'|`[^`]*`|\"(?:[^\"\\\\]|\\\\.)*\"")

// unquote cuts what a message of yaml.v3 quotes from the file out of it:
// an anchor name, a value, a key. The file may not be a policy file at all.
func unquote(msg string) string {
	return quotedRE.ReplaceAllString(msg, "(…)")
}

var (
	wrongTypeRE = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+|\\S+)(?: `(.*)`)? into (\\S+)$")
	dupKeyRE    = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)
	dupFieldRE  = regexp.MustCompile(`^line (\d+): field (.*) already set in type (\S+)$`)
	lineRE      = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// decodeError rewrites one of yaml.v3's decoding messages ("line 7: cannot
// unmarshal !!str `five` into int") into an Error with the path of the field,
// found by line in the node index. Field is left as an index path; spoils
// says whether the decoded value at that path is unusable. The rewritten
// messages never repeat the offending value.
func (s *source) decodeError(msg string) (e Error, spoils bool) {
	e.File = s.file
	if m := wrongTypeRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Field = s.valueAt(e.Line, m[2], m[3])
		e.Msg = fmt.Sprintf("want %s, got %s", describeGoType(m[4]), describeTag(m[2]))
		return e, true
	}
	if m := dupKeyRE.FindStringSubmatch(msg); m != nil {
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
	if m := dupFieldRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Field = s.keyAt(e.Line, m[2])
		e.Msg = fmt.Sprintf("%q is given twice; give it once", m[2])
		return e, true
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
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
	for _, e := range s.idx.keysOn[line] {
		if e.key.Value == name {
			found = e.path // the last one: a duplicate key is the later one
		}
	}
	return found
}

// valueAt finds the path of the value that yaml.v3 could not decode: on
// line, with that tag and, where given, that (possibly truncated) value.
func (s *source) valueAt(line int, tag, value string) string {
	var cands []*nodeEntry
	for _, e := range s.idx.valuesOn[line] {
		if e.value.ShortTag() == tag {
			cands = append(cands, e)
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
