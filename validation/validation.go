// Package validation is the error that the Validate methods of the targets'
// and stores' Options types return: every problem at once, each naming its
// field as a policy file spells it below the Options' own block (the yaml
// tags of the Options type: "port", "issue.url", "labels.team"). Package
// config places each problem at its file, line and field; Go callers read
// the whole list in one message.
//
// It imports nothing, so that every target and store can use it.
package validation

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with an Options value.
type Problem struct {
	// Field is the path of the field below the block, in the file's
	// spelling; "" when the problem is about the block as a whole.
	Field string
	// Msg says what is wrong and, where it is not obvious, what to do. It
	// never holds a secret's value.
	Msg string
}

func (p Problem) Error() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// Error is every Problem of one Options value.
type Error struct {
	// Subject names what was checked: "postgres target",
	// `http target of policy "checkout-api"`.
	Subject  string
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return e.Subject + ": " + strings.Join(parts, "; ")
}

// Add records a problem with field.
func (e *Error) Add(field, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Err returns e, or nil when it holds no problem: what a Validate method
// returns.
func (e *Error) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}
