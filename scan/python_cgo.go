//go:build cgo

package scan

import (
	"errors"
	"sync"

	sitter "github.com/tree-sitter/go-tree-sitter"
	python "github.com/tree-sitter/tree-sitter-python/bindings/go"
)

// PythonParsed reports whether this build parses Python (tree-sitter, a C
// library, needs cgo). Without it Python files get the line rules only.
const PythonParsed = true

// pythonLanguage is made on first use (a cgo call into the grammar), as
// the scan package's regular expressions are: nothing of scan runs when
// swarmkey starts for another command.
var pythonLanguage = sync.OnceValue(func() *sitter.Language { return sitter.NewLanguage(python.Language()) })

// parsePython parses src with tree-sitter's Python grammar and copies the
// tree into Go values, so that the analysis makes no cgo call per node. A
// file with syntax errors still parses: tree-sitter marks the broken part
// and keeps the rest.
func parsePython(src []byte) (*pyNode, error) {
	p := sitter.NewParser()
	defer p.Close()
	if err := p.SetLanguage(pythonLanguage()); err != nil {
		return nil, err
	}
	tree := p.Parse(src, nil)
	if tree == nil {
		return nil, errors.New("the Python parser returned no tree")
	}
	defer tree.Close()
	c := tree.Walk()
	defer c.Close()
	return copyNode(c, nil), nil
}

func copyNode(c *sitter.TreeCursor, parent *pyNode) *pyNode {
	n := c.Node()
	at := n.StartPosition()
	pn := &pyNode{kind: n.Kind(), field: c.FieldName(), named: n.IsNamed(), start: int(n.StartByte()), end: int(n.EndByte()),
		line: int(at.Row) + 1, col: int(at.Column) + 1, parent: parent}
	if c.GotoFirstChild() {
		for {
			pn.children = append(pn.children, copyNode(c, pn))
			if !c.GotoNextSibling() {
				break
			}
		}
		c.GotoParent()
	}
	return pn
}
