package config

import (
	"strconv"
	"strings"
)

// Error is one problem in a policy file, located as precisely as the file
// allows. Its text is "FILE:LINE: FIELD: MSG"; the line is left out when it is
// unknown (a required top-level setting that no file gives, a file that cannot
// be read) and so is the field when the problem is not about one field (YAML
// syntax). Msg never holds a value read through a reference, never echoes
// a value given where a reference belongs, and never quotes a file that is
// not a policy file, nor a key that is not a field name.
type Error struct {
	// File is the path as the caller gave it, or as an include pattern
	// matched it.
	File string
	// Line is 1-based; 0 means unknown.
	Line int
	// Field is a path into the document such as
	// "policies[checkout-db].target.postgres.port"; a policy whose name is
	// missing or invalid is addressed by its position, "policies[2]".
	Field string
	// Msg says what is wrong and, where it is not obvious, what to do.
	Msg string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one Load or ValidateFiles call, in file
// order and, within a file, by line.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
