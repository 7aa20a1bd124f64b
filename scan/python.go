package scan

import (
	"strings"
)

// pyNode is a node of a parsed Python file, copied out of tree-sitter's
// tree (kinds and field names are tree-sitter-python's).
type pyNode struct {
	kind       string
	field      string // the field this node is in its parent, "" when none
	named      bool
	start, end int
	line, col  int
	parent     *pyNode
	children   []*pyNode
}

// child returns the first child in field name, or nil.
func (n *pyNode) child(field string) *pyNode {
	for _, c := range n.children {
		if c.field == field {
			return c
		}
	}
	return nil
}

// namedChildren returns the named children (no punctuation, no comments).
func (n *pyNode) namedChildren() []*pyNode {
	var out []*pyNode
	for _, c := range n.children {
		if c.named && c.kind != "comment" {
			out = append(out, c)
		}
	}
	return out
}

func (n *pyNode) walk(visit func(*pyNode)) {
	visit(n)
	for _, c := range n.children {
		c.walk(visit)
	}
}

// binding is one assignment of a value to a name: NAME = value,
// self.NAME = value, or a parameter's default.
type binding struct {
	name      string
	value     *pyNode
	line      int
	classAttr bool
}

// pyAnalysis follows credential values through one Python file.
type pyAnalysis struct {
	file     string
	src      []byte
	bindings map[string][]binding
	found    map[int]*Finding // by the value's start offset
	order    []int
}

// scanPython finds the credentials of a Python file: see the package
// documentation.
func scanPython(file string, src []byte) ([]Finding, error) {
	root, err := parsePython(src)
	if err != nil {
		return nil, err
	}
	a := &pyAnalysis{file: file, src: src, bindings: map[string][]binding{}, found: map[int]*Finding{}}
	root.walk(a.bind)
	root.walk(a.inspect)
	out := make([]Finding, 0, len(a.order))
	for _, at := range a.order {
		out = append(out, *a.found[at])
	}
	return out, nil
}

func (a *pyAnalysis) text(n *pyNode) string { return string(a.src[n.start:n.end]) }

// bind records assignments and parameter defaults.
func (a *pyAnalysis) bind(n *pyNode) {
	switch n.kind {
	case "assignment":
		left, right := n.child("left"), n.child("right")
		if left == nil || right == nil {
			return
		}
		if name := targetName(a, left); name != "" {
			a.bindings[name] = append(a.bindings[name], binding{name: name, value: right, line: n.line, classAttr: inClassBody(n)})
		}
	case "default_parameter", "typed_default_parameter":
		name, value := n.child("name"), n.child("value")
		if name != nil && value != nil && name.kind == "identifier" {
			a.bindings[a.text(name)] = append(a.bindings[a.text(name)], binding{name: a.text(name), value: value, line: n.line})
		}
	}
}

// targetName is the name an assignment target binds: x, self.x, cls.x.
func targetName(a *pyAnalysis, left *pyNode) string {
	switch left.kind {
	case "identifier":
		return a.text(left)
	case "attribute":
		if attr := left.child("attribute"); attr != nil {
			return a.text(attr)
		}
	}
	return ""
}

// inClassBody reports whether an assignment statement sits directly in a
// class body (a class attribute).
func inClassBody(n *pyNode) bool {
	p := n.parent
	if p != nil && p.kind == "expression_statement" {
		p = p.parent
	}
	return p != nil && p.kind == "block" && p.parent != nil && p.parent.kind == "class_definition"
}

// inspect looks at one node for the places a credential is used or held.
func (a *pyAnalysis) inspect(n *pyNode) {
	switch n.kind {
	case "dictionary":
		context := "field"
		if p := n.parent; p != nil && p.kind == "keyword_argument" {
			if name := p.child("name"); name != nil {
				context = a.text(name)
			}
		}
		for _, pair := range n.namedChildren() {
			if pair.kind != "pair" {
				continue
			}
			key, value := pair.child("key"), pair.child("value")
			if key == nil || value == nil || key.kind != "string" {
				continue
			}
			k, _, _, _ := a.stringContent(key)
			switch {
			case headerName().MatchString(k):
				a.use(value, KindHeader, "header "+k, n.line, k)
			case payloadName().MatchString(k) || isCredentialName(k):
				a.use(value, KindLoginPayload, context+" "+k, n.line, k)
			}
		}
	case "keyword_argument":
		name, value := n.child("name"), n.child("value")
		if name == nil || value == nil {
			return
		}
		k := a.text(name)
		switch {
		case k == "auth":
			a.useAuth(value, n.line, 0)
		case payloadName().MatchString(k) || isCredentialName(k):
			a.use(value, KindLoginPayload, "argument "+k, n.line, k)
		}
	case "call":
		fn := n.child("function")
		args := n.child("arguments")
		if fn == nil || args == nil {
			return
		}
		f := a.text(fn)
		positional := positionalArgs(args)
		if strings.HasSuffix(f, "BasicAuth") || strings.HasSuffix(f, "DigestAuth") {
			if len(positional) >= 2 {
				a.use(positional[1], KindAuthTuple, "auth "+f, n.line, "")
			}
			return
		}
		if envName, def := a.envDefault(n); def != nil && isCredentialName(envName) {
			v, start, end, ok := a.stringContent(def)
			if ok && plausibleUsedSecret(v) && len(urlPasswords(v)) == 0 {
				a.add(Finding{Kind: KindEnvDefault, Rule: "locust/env-default", Variable: envName}, def, start, end, n)
			}
		}
	case "assignment":
		left, right := n.child("left"), n.child("right")
		if left == nil || right == nil {
			return
		}
		if left.kind == "subscript" {
			// x.headers["Authorization"] = "…", os.environ["API_TOKEN"] = "…"
			if sub := left.child("subscript"); sub != nil && sub.kind == "string" {
				k, _, _, _ := a.stringContent(sub)
				switch {
				case headerName().MatchString(k):
					a.use(right, KindHeader, "header "+k, n.line, k)
				case isCredentialName(k):
					a.literal(right, KindAssignment, k)
				}
			}
			return
		}
		name := targetName(a, left)
		if name == "" || !isCredentialName(name) {
			return
		}
		kind := KindAssignment
		if inClassBody(n) {
			kind = KindClassAttribute
		}
		a.literal(right, kind, name)
	case "default_parameter", "typed_default_parameter":
		name, value := n.child("name"), n.child("value")
		if name != nil && value != nil && isCredentialName(a.text(name)) {
			a.literal(value, KindAssignment, a.text(name))
		}
	case "string":
		a.connectionStrings(n)
	}
}

// literal reports a string literal held by a credential name (not followed
// further: a name bound to another name is found where that one is bound).
func (a *pyAnalysis) literal(value *pyNode, kind Kind, name string) {
	if value.kind != "string" && value.kind != "concatenated_string" {
		return
	}
	strs := []*pyNode{value}
	if value.kind == "concatenated_string" {
		strs = value.namedChildren()
	}
	for _, s := range strs {
		if isFString(a, s) {
			continue
		}
		v, start, end, ok := a.stringContent(s)
		if !ok || !plausibleSecret(v) {
			continue
		}
		a.add(Finding{Kind: kind, Rule: "locust/" + string(kind), Variable: name}, s, start, end, nil)
	}
}

// connectionStrings reports the passwords of URLs with userinfo in a string
// literal.
func (a *pyAnalysis) connectionStrings(s *pyNode) {
	for _, c := range s.children {
		if c.kind != "string_content" {
			continue
		}
		for _, u := range urlPasswords(string(a.src[c.start:c.end])) {
			kind := KindConnectionString
			if u.http {
				kind = KindHostUserinfo
			}
			a.add(Finding{Kind: kind, Rule: "locust/" + string(kind), Variable: a.holder(s)}, s, c.start+u.start, c.start+u.end, nil)
		}
	}
}

// holder names what a literal is assigned or passed to: the variable, the
// keyword, the environment variable whose default it is; "" when nothing.
func (a *pyAnalysis) holder(n *pyNode) string {
	for p := n.parent; p != nil; p = p.parent {
		switch p.kind {
		case "assignment":
			if left := p.child("left"); left != nil {
				return targetName(a, left)
			}
			return ""
		case "keyword_argument", "default_parameter", "typed_default_parameter":
			if name := p.child("name"); name != nil {
				return a.text(name)
			}
			return ""
		case "call":
			if name, _ := a.envDefault(p); name != "" {
				return name
			}
		case "pair":
			if key := p.child("key"); key != nil && key.kind == "string" {
				k, _, _, _ := a.stringContent(key)
				return k
			}
		case "expression_statement", "block", "module":
			return ""
		}
	}
	return ""
}

// envDefault recognises os.environ.get(NAME, DEFAULT), os.getenv(NAME,
// DEFAULT) and os.environ.setdefault(NAME, DEFAULT) (also default=): the
// variable's name and the default's node when it is a string literal.
func (a *pyAnalysis) envDefault(call *pyNode) (string, *pyNode) {
	fn, args := call.child("function"), call.child("arguments")
	if fn == nil || args == nil {
		return "", nil
	}
	switch a.text(fn) {
	case "os.environ.get", "os.getenv", "getenv", "environ.get", "os.environ.setdefault", "environ.setdefault":
	default:
		return "", nil
	}
	positional := positionalArgs(args)
	if len(positional) == 0 || positional[0].kind != "string" {
		return "", nil
	}
	name, _, _, _ := a.stringContent(positional[0])
	var def *pyNode
	if len(positional) >= 2 {
		def = positional[1]
	}
	for _, c := range args.namedChildren() {
		if c.kind == "keyword_argument" {
			if k := c.child("name"); k != nil && a.text(k) == "default" {
				def = c.child("value")
			}
		}
	}
	if def == nil || def.kind != "string" || isFString(a, def) {
		return name, nil
	}
	return name, def
}

func positionalArgs(args *pyNode) []*pyNode {
	var out []*pyNode
	for _, c := range args.namedChildren() {
		if c.kind != "keyword_argument" && c.kind != "list_splat" && c.kind != "dictionary_splat" {
			out = append(out, c)
		}
	}
	return out
}

// useAuth follows the value of auth=: a (user, password) tuple or list, or
// a name bound to one.
func (a *pyAnalysis) useAuth(v *pyNode, useLine, depth int) {
	if depth > 4 {
		return
	}
	switch v.kind {
	case "tuple", "list", "parenthesized_expression":
		items := v.namedChildren()
		if v.kind == "parenthesized_expression" && len(items) == 1 {
			a.useAuth(items[0], useLine, depth+1)
			return
		}
		if len(items) == 2 {
			a.use(items[1], KindAuthTuple, "auth tuple", useLine, "")
		}
	case "identifier", "attribute":
		if b, ok := a.lookup(v, useLine); ok {
			a.useAuth(b.value, useLine, depth+1)
		}
	case "call":
		// auth=HTTPBasicAuth(…): inspect finds it as a call.
	}
}

// source is a literal a used value comes from.
type source struct {
	literal    *pyNode // the string node
	start, end int     // the value's bytes
	variable   string  // the name it was bound to, if it came through one
	envCall    *pyNode // the os.getenv call whose default it is
}

// use follows the value expression v, used as kind at useLine, back to the
// string literals it is built from, and reports each as one finding at the
// literal, naming the use when it is elsewhere.
func (a *pyAnalysis) use(v *pyNode, kind Kind, what string, useLine int, key string) {
	for _, s := range a.sources(v, kind == KindHeader, useLine, 0) {
		value := string(a.src[s.start:s.end])
		if !plausibleUsedSecret(value) || len(urlPasswords(value)) > 0 {
			continue
		}
		variable := s.variable
		if variable == "" {
			variable = key
		}
		f := Finding{Kind: kind, Rule: "locust/" + string(kind), Variable: variable}
		if s.envCall != nil {
			f.Kind, f.Rule = KindEnvDefault, "locust/env-default"
		}
		if s.literal.line != useLine {
			f.UsedAt = []Use{{File: a.file, Line: useLine, What: what}}
		}
		a.add(f, s.literal, s.start, s.end, s.envCall)
	}
}

// sources resolves a value expression to the literals it is built from:
// strings, f-string parts and interpolations, + concatenations, names and
// attributes bound in the file, os.getenv defaults, and NAME["key"] of a
// dictionary bound to NAME.
func (a *pyAnalysis) sources(v *pyNode, header bool, useLine, depth int) []source {
	if v == nil || depth > 8 {
		return nil
	}
	switch v.kind {
	case "string":
		if isFString(a, v) {
			var out []source
			for _, c := range v.children {
				switch c.kind {
				case "interpolation":
					out = append(out, a.sources(c.child("expression"), false, useLine, depth+1)...)
				case "string_content":
					text := string(a.src[c.start:c.end])
					start := c.start
					if header {
						_, n := stripScheme(text)
						start += n
					}
					if end := trimRightSpace(a.src, start, c.end); end-start >= 8 {
						out = append(out, source{literal: v, start: start, end: end})
					}
				}
			}
			return out
		}
		text, start, end, ok := a.stringContent(v)
		if !ok {
			return nil
		}
		if header {
			_, n := stripScheme(text)
			start += n
			end = trimRightSpace(a.src, start, end)
		}
		return []source{{literal: v, start: start, end: end}}
	case "concatenated_string":
		var out []source
		for _, c := range v.namedChildren() {
			out = append(out, a.sources(c, header, useLine, depth+1)...)
		}
		return out
	case "binary_operator":
		if op := v.child("operator"); op == nil || a.text(op) != "+" {
			return nil
		}
		return append(a.sources(v.child("left"), header, useLine, depth+1), a.sources(v.child("right"), header, useLine, depth+1)...)
	case "parenthesized_expression":
		var out []source
		for _, c := range v.namedChildren() {
			out = append(out, a.sources(c, header, useLine, depth+1)...)
		}
		return out
	case "identifier", "attribute":
		b, ok := a.lookup(v, useLine)
		if !ok {
			return nil
		}
		out := a.sources(b.value, header, useLine, depth+1)
		for i := range out {
			if out[i].variable == "" {
				out[i].variable = b.name
			}
		}
		return out
	case "call":
		if name, def := a.envDefault(v); def != nil {
			text, start, end, ok := a.stringContent(def)
			if !ok {
				return nil
			}
			if header {
				_, n := stripScheme(text)
				start += n
			}
			return []source{{literal: def, start: start, end: end, variable: name, envCall: v}}
		}
	case "subscript":
		// CREDS["password"], with CREDS = {"password": "…"}
		value, sub := v.child("value"), v.child("subscript")
		if value == nil || sub == nil || sub.kind != "string" {
			return nil
		}
		b, ok := a.lookup(value, useLine)
		if !ok || b.value.kind != "dictionary" {
			return nil
		}
		want, _, _, _ := a.stringContent(sub)
		for _, pair := range b.value.namedChildren() {
			key := pair.child("key")
			if pair.kind == "pair" && key != nil && key.kind == "string" {
				if k, _, _, _ := a.stringContent(key); k == want {
					return a.sources(pair.child("value"), header, useLine, depth+1)
				}
			}
		}
	}
	return nil
}

// lookup finds the binding of a name or attribute used at useLine: the
// last one before the use, else the first one after it (a method may use a
// module constant defined further down).
func (a *pyAnalysis) lookup(v *pyNode, useLine int) (binding, bool) {
	name := ""
	switch v.kind {
	case "identifier":
		name = a.text(v)
	case "attribute":
		if attr := v.child("attribute"); attr != nil {
			name = a.text(attr)
		}
	}
	bs := a.bindings[name]
	if len(bs) == 0 {
		return binding{}, false
	}
	best := -1
	for i, b := range bs {
		if b.line <= useLine && (best < 0 || b.line >= bs[best].line) {
			best = i
		}
	}
	if best < 0 {
		best = 0
	}
	return bs[best], true
}

// stringContent returns a string literal's content (between its quotes, as
// written: escapes are not decoded) and its byte range. ok is false for an
// empty string and for byte strings.
func (a *pyAnalysis) stringContent(s *pyNode) (string, int, int, bool) {
	var start, end = -1, -1
	for _, c := range s.children {
		switch c.kind {
		case "string_start":
			start = c.end
			if strings.ContainsAny(strings.ToLower(a.text(c)), "b") {
				return "", 0, 0, false
			}
		case "string_end":
			end = c.start
		}
	}
	if start < 0 || end < start {
		return "", 0, 0, false
	}
	return string(a.src[start:end]), start, end, end > start
}

func isFString(a *pyAnalysis, s *pyNode) bool {
	for _, c := range s.children {
		if c.kind == "string_start" {
			return strings.ContainsAny(strings.ToLower(a.text(c)), "f")
		}
	}
	return false
}

func trimRightSpace(src []byte, start, end int) int {
	for end > start && (src[end-1] == ' ' || src[end-1] == '\t') {
		end--
	}
	return end
}

// kindRank orders kinds for a value found more than once: the way it is
// used says more than the name that holds it, and a getenv default needs
// its own fix.
var kindRank = map[Kind]int{
	KindEnvDefault: 5, KindHeader: 4, KindAuthTuple: 4, KindLoginPayload: 4,
	KindConnectionString: 3, KindHostUserinfo: 3, KindClassAttribute: 2, KindAssignment: 1,
}

// add records a finding of the literal lit at [start, end), or merges it
// into the finding already there.
func (a *pyAnalysis) add(f Finding, lit *pyNode, start, end int, envCall *pyNode) {
	if old, ok := a.found[start]; ok {
		if kindRank[f.Kind] > kindRank[old.Kind] {
			old.Kind, old.Rule = f.Kind, f.Rule
			if envCall != nil {
				old.span.envCall, old.span.callStart, old.span.callEnd = true, envCall.start, envCall.end
			}
		}
		if old.Variable == "" {
			old.Variable = f.Variable
		}
		for _, u := range f.UsedAt {
			if !containsUse(old.UsedAt, u) {
				old.UsedAt = append(old.UsedAt, u)
			}
		}
		return
	}
	line, col := position(a.src, start)
	f.File, f.Line, f.Column = a.file, line, col
	f.Value = secretOf(a.src[start:end])
	f.span = span{start: start, end: end, literalStart: lit.start, literalEnd: lit.end, python: true}
	if envCall != nil {
		f.span.envCall, f.span.callStart, f.span.callEnd = true, envCall.start, envCall.end
	}
	a.found[start] = &f
	a.order = append(a.order, start)
}

func containsUse(us []Use, u Use) bool {
	for _, have := range us {
		if have == u {
			return true
		}
	}
	return false
}

// position is the 1-based line and column of byte offset at.
func position(src []byte, at int) (int, int) {
	line, col := 1, 1
	for _, c := range src[:at] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
