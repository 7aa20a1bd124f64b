package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// A policy file is decoded in two passes over its YAML tree. The first,
// checkTree, walks the tree beside the Go types it decodes into: config's
// raw types (raw.go) and, for the target and store blocks, the Options types
// of the targets and stores, whose yaml tags are the file's keys. It
//
//   - reports every key that no field takes, with a did-you-mean hint
//     (decoding is strict);
//   - parses every time.Duration with ParseDuration, days included, and
//     rewrites it as a Go duration for yaml.v3, which knows only those;
//   - refuses a plain number (int, time.Duration) given as 0: the Options
//     types read 0 as "the default", so the file leaves the key out for that
//     instead, and an explicit 0 is a mistake, not a wish for the default;
//   - refuses a decimal number (47011.9, 5e3) for an integer field of any
//     kind: yaml.v3 would truncate it into the field without a word;
//   - lets through the keys of referenceKeys, which no field takes.
//
// The second pass, yaml.v3's Node.Decode, fills the values in and reports
// wrong types; it ignores the keys the first pass let through.

// referenceKeys are the credential keys of the blocks that decode into
// Options types. The type's own field is a secret.Secret that a policy file
// never holds (its yaml tag is "-"); the file gives a Reference under this
// key instead, which config parses (check.reference) and app resolves when
// it opens the target.
var referenceKeys = map[reflect.Type]string{
	reflect.TypeFor[postgres.Options](): "admin",
	reflect.TypeFor[httpkey.Auth]():     "secret",
	reflect.TypeFor[mysql.Options]():    "admin",
	reflect.TypeFor[redis.Options]():    "admin",
}

// treeProblem is one problem checkTree found, at an index path.
type treeProblem struct {
	path string
	line int
	msg  string
}

type treeChecker struct {
	problems []treeProblem
	// segs is the path of the node being walked (see path).
	segs []pathSeg
	// seen holds the nodes already walked as a type: an alias walks its
	// anchor once per type, so aliases cannot make the walk blow up or loop.
	seen map[treeVisit]bool
	// decimals holds the decimal numbers integer refused (and set to null):
	// an alias of one elsewhere is refused there too.
	decimals map[*yaml.Node]bool
}

type treeVisit struct {
	node *yaml.Node
	typ  reflect.Type
}

// checkTree runs the first pass over doc, which decodes into a value of
// type t, and returns its problems.
func checkTree(doc *yaml.Node, t reflect.Type) []treeProblem {
	return newTreeChecker().check("", doc, t)
}

func newTreeChecker() *treeChecker {
	return &treeChecker{seen: map[treeVisit]bool{}, decimals: map[*yaml.Node]bool{}}
}

// check runs the first pass over n, at path, which decodes into a value of
// type t, and returns its problems. A checker is reused by the entries of a
// cut file (split.go): each check starts afresh.
func (c *treeChecker) check(path string, n *yaml.Node, t reflect.Type) []treeProblem {
	clear(c.seen)
	clear(c.decimals)
	c.problems = nil
	c.segs = append(c.segs[:0], pathSeg{key: path})
	c.walk(n, t)
	return c.problems
}

// pathSeg is a step of the path being walked: a key, or a list index.
type pathSeg struct {
	key   string
	index int
	isIdx bool
}

// path is the index path of the node being walked ("policies[2].target"),
// built only for a problem: most nodes have none.
func (c *treeChecker) path() string {
	var b strings.Builder
	for _, s := range c.segs {
		switch {
		case s.isIdx:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		case b.Len() > 0:
			b.WriteByte('.')
			b.WriteString(s.key)
		default:
			b.WriteString(s.key)
		}
	}
	return b.String()
}

func (c *treeChecker) push(s pathSeg) { c.segs = append(c.segs, s) }

func (c *treeChecker) pop() { c.segs = c.segs[:len(c.segs)-1] }

// add records a problem at the path being walked.
func (c *treeChecker) add(line int, format string, args ...any) {
	c.problems = append(c.problems, treeProblem{path: c.path(), line: line, msg: fmt.Sprintf(format, args...)})
}

// resolve follows documents and aliases to the node that holds the value.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks n, which decodes into a value of type t. Where n does not
// have the shape t needs, it stops: that is a type error, Node.Decode's to
// report.
func (c *treeChecker) walk(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	n = resolve(n)
	if n == nil || c.seen[treeVisit{n, t}] {
		return
	}
	c.seen[treeVisit{n, t}] = true
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.MappingNode {
			c.mapping(n, t)
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				c.push(pathSeg{index: i, isIdx: true})
				c.walk(item, t.Elem())
				c.pop()
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				c.push(pathSeg{key: n.Content[i].Value})
				c.walk(n.Content[i+1], t.Elem())
				c.pop()
			}
		}
	default:
		if isInt(t.Kind()) {
			c.integer(n.Line, n) // a list item or a map value
		}
	}
}

// mapping checks the keys of n against the fields of the struct type t.
func (c *treeChecker) mapping(n *yaml.Node, t reflect.Type) {
	fields := yamlFieldsOf(t)
	ref := referenceKeys[t]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			c.merge(v, t)
			continue
		}
		if ft, ok := fields.types[k.Value]; ok {
			c.push(pathSeg{key: k.Value})
			c.field(k.Line, v, ft)
			c.pop()
			continue
		}
		if ref != "" && k.Value == ref {
			continue
		}
		if !isFieldName(k.Value) {
			// Not a misspelt field but text of some other kind, which may
			// be anything (a line of a file included by mistake): not shown.
			c.add(k.Line, "unknown key (not shown: it is not a field name)%s", knownFieldsHint(fields.names(ref), ""))
			continue
		}
		c.push(pathSeg{key: k.Value})
		c.add(k.Line, "unknown field %q%s", k.Value, knownFieldsHint(fields.names(ref), k.Value))
		c.pop()
	}
}

// merge checks the value of a "<<" key: a mapping, or a list of them, whose
// keys count as the enclosing mapping's.
func (c *treeChecker) merge(v *yaml.Node, t reflect.Type) {
	v = resolve(v)
	if v == nil || c.seen[treeVisit{v, t}] {
		return
	}
	c.seen[treeVisit{v, t}] = true
	switch v.Kind {
	case yaml.MappingNode:
		c.mapping(v, t)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			c.merge(m, t)
		}
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// field checks the value v of a struct field of type t; line is its key's.
func (c *treeChecker) field(line int, v *yaml.Node, t reflect.Type) {
	switch {
	case t == durationType:
		c.duration(line, v)
	case isInt(t.Kind()):
		c.count(line, v)
	case t.Kind() == reflect.Pointer && isInt(t.Elem().Kind()):
		// config's own optional counts, whose bounds (check.count) refuse 0.
		c.integer(line, v)
	default:
		c.walk(v, t)
	}
}

func (c *treeChecker) duration(line int, v *yaml.Node) {
	v = resolve(v)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return
	}
	d, err := ParseDuration(v.Value)
	switch {
	case err != nil:
		c.add(line, "bad duration %q: use Go durations like 90s, 2h, 1h30m or days like 7d", v.Value)
		setNull(v)
	case d == 0:
		c.add(line, "must be longer than 0; leave it out for the default")
		setNull(v)
	default:
		v.Tag, v.Value = "!!str", d.String()
	}
}

// integer refuses a decimal number for an integer field: yaml.v3 decodes
// "port: 47011.9" as 47011 and "1e3" as 1000, and neither is what the file
// says. It reports false when it refused v.
func (c *treeChecker) integer(line int, v *yaml.Node) bool {
	v = resolve(v)
	if v == nil || !c.decimals[v] && (v.Kind != yaml.ScalarNode || v.ShortTag() != "!!float") {
		return true
	}
	c.add(line, "want an integer, got a decimal number")
	c.decimals[v] = true
	setNull(v)
	return false
}

func (c *treeChecker) count(line int, v *yaml.Node) {
	if !c.integer(line, v) {
		return
	}
	v = resolve(v)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		return
	}
	var x int64
	if v.Decode(&x) == nil && x == 0 {
		c.add(line, "must not be 0; leave it out for the default")
		setNull(v)
	}
}

// setNull turns a reported value into null, so that Node.Decode leaves its
// field zero instead of reporting it again.
func setNull(v *yaml.Node) {
	v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.ScalarNode, "!!null", "", 0, nil
}

func isInt(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// yamlFields are the keys of a struct type as yaml.v3 decodes it.
type yamlFields struct {
	types  map[string]reflect.Type
	sorted []string
}

// names are the keys, with a reference key when the type has one, sorted.
func (f yamlFields) names(ref string) []string {
	if ref == "" {
		return f.sorted
	}
	names := append(slices.Clone(f.sorted), ref)
	slices.Sort(names)
	return names
}

var fieldsCache sync.Map // reflect.Type → yamlFields

// yamlFieldsOf lists the keys of the struct type t by yaml.v3's rules: the
// yaml tag's name, else the lower-cased field name; "-" and unexported
// fields skipped; ",inline" structs flattened in.
func yamlFieldsOf(t reflect.Type) yamlFields {
	if v, ok := fieldsCache.Load(t); ok {
		return v.(yamlFields)
	}
	f := yamlFields{types: map[string]reflect.Type{}}
	collectFields(t, f.types)
	for name := range f.types {
		f.sorted = append(f.sorted, name)
	}
	slices.Sort(f.sorted)
	fieldsCache.Store(t, f)
	return f
}

func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.PkgPath != "" && !sf.Anonymous {
			continue
		}
		name, flags, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(flags, ","), "inline") {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		into[name] = sf.Type
	}
}

// fieldNameRE matches what could be a field name, misspelt or not ("max
// attempts" too); other keys are not quoted in messages. Length aside:
// keys of 64 bytes and more are not names either.
var fieldNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]+( [A-Za-z0-9_.-]+)*$`) })

func isFieldName(key string) bool { return len(key) < 64 && fieldNameRE().MatchString(key) }

func knownFieldsHint(names []string, field string) string {
	if len(names) == 0 {
		return "; this block takes no fields"
	}
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(field, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; known fields: " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance, for short field names only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
