// Package nooptarget is a target with nothing behind it: Create wraps the
// generated password in a document, and every other verb succeeds at once.
// It is for tests and benchmarks that measure swarmkey itself (the daemon's
// scheduling lag) without a system to rotate; it is not selectable in a
// config file.
package nooptarget

import (
	"context"
	"encoding/json"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
)

// Target implements targets.Target and does nothing.
type Target struct{}

// Create returns {"value": <password>}.
func (Target) Create(_ context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	doc, err := json.Marshal(map[string]string{"value": req.Password.RevealString()})
	return targets.CreateResponse{Pending: secret.New(doc), Principal: "noop"}, err
}

func (Target) Check(context.Context, targets.CheckRequest) error     { return nil }
func (Target) Apply(context.Context, targets.ApplyRequest) error     { return nil }
func (Target) Verify(context.Context, targets.VerifyRequest) error   { return nil }
func (Target) Restore(context.Context, targets.RestoreRequest) error { return nil }
func (Target) Retire(context.Context, targets.RetireRequest) error   { return nil }
func (Target) Close() error                                          { return nil }
