//go:build !cgo

package scan

import "errors"

// PythonParsed reports whether this build parses Python (tree-sitter, a C
// library, needs cgo). This one does not (CGO_ENABLED=0, the container
// image's static binary): Python files get the line rules only, and the
// scan says so.
const PythonParsed = false

func parsePython([]byte) (*pyNode, error) {
	return nil, errors.New("this swarmkey was built without cgo, so it cannot parse Python")
}
