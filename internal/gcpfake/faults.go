package gcpfake

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FaultKind is what a Fault does to the call it picks: the gRPC counterparts
// of internal/faultproxy's kinds for AWS.
type FaultKind string

// The kinds of fault.
const (
	// FaultThrottle answers RESOURCE_EXHAUSTED (a quota) without running
	// the call.
	FaultThrottle FaultKind = "throttle"
	// FaultServerError answers INTERNAL without running the call.
	FaultServerError FaultKind = "server-error"
	// FaultUnavailable answers UNAVAILABLE without running the call.
	FaultUnavailable FaultKind = "unavailable"
	// FaultLost runs the call, then answers UNAVAILABLE instead of its
	// response: the change is made and the client cannot tell.
	FaultLost FaultKind = "lost"
	// FaultHold runs the call and holds its answer for Fault.Hold, or until
	// the client's deadline or cancellation, whichever comes first (then
	// the client gets its context's error; the change is made).
	FaultHold FaultKind = "hold"
	// FaultHook runs Fault.Hook before the call: another writer between
	// the previous call and this one (Mutate, SetAliases …).
	FaultHook FaultKind = "hook"
)

// FaultKinds lists every kind, in a fixed order for reports.
var FaultKinds = []FaultKind{FaultThrottle, FaultServerError, FaultUnavailable, FaultLost, FaultHold, FaultHook}

// Fault picks calls of the fake and says what to do to them.
type Fault struct {
	// Method is the RPC's name ("UpdateSecret"); "" matches every call.
	Method string
	// Nth picks the Nth matching call after the fault was injected (1 is
	// the next one); the fault is spent once it fired. 0 picks every
	// matching call until ClearFaults.
	Nth  int
	Kind FaultKind
	// Hold is how long FaultHold holds the answer.
	Hold time.Duration
	// Hook runs before a FaultHook call. It may use the fake's direct
	// methods (Mutate, SetAliases, AddVersion).
	Hook func()
	// OnFire, if set, runs when the fault picks a call (for FaultLost and
	// FaultHold after the call ran).
	OnFire func(method string)
}

type armedFault struct {
	fault Fault
	seen  int
}

// Inject arms a fault. Faults are checked in the order they were injected;
// the first that picks a call acts on it. They run inside the interceptor,
// around the hooks of SetHooks.
func (f *Server) Inject(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &armedFault{fault: fault})
}

// ClearFaults disarms every fault.
func (f *Server) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// PendingFaults is the number of faults still armed.
func (f *Server) PendingFaults() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.faults)
}

// Fired returns how many calls each kind of fault was injected into.
func (f *Server) Fired() map[FaultKind]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[FaultKind]int, len(f.fired))
	for k, n := range f.fired {
		out[k] = n
	}
	return out
}

// pickFault is called with mu held.
func (f *Server) pickFault(method string) (Fault, bool) {
	for i, a := range f.faults {
		if a.fault.Method != "" && a.fault.Method != method {
			continue
		}
		a.seen++
		switch {
		case a.fault.Nth == 0:
		case a.seen == a.fault.Nth:
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
		default:
			continue
		}
		if f.fired == nil {
			f.fired = map[FaultKind]int{}
		}
		f.fired[a.fault.Kind]++
		return a.fault, true
	}
	return Fault{}, false
}

// applyFault runs call (the handler with the hooks around it) as fault says.
func applyFault(ctx context.Context, method string, fault Fault, call func() (any, error)) (any, error) {
	fire := func() {
		if fault.OnFire != nil {
			fault.OnFire(method)
		}
	}
	switch fault.Kind {
	case FaultThrottle:
		fire()
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded (injected by gcpfake)")
	case FaultServerError:
		fire()
		return nil, status.Error(codes.Internal, "internal error (injected by gcpfake)")
	case FaultUnavailable:
		fire()
		return nil, status.Error(codes.Unavailable, "the service is unavailable (injected by gcpfake)")
	case FaultHook:
		if fault.Hook != nil {
			fault.Hook()
		}
		fire()
		return call()
	case FaultLost:
		_, _ = call()
		fire()
		return nil, status.Error(codes.Unavailable, "connection lost after the call (injected by gcpfake)")
	case FaultHold:
		resp, err := call()
		fire()
		t := time.NewTimer(fault.Hold)
		defer t.Stop()
		select {
		case <-t.C:
			return resp, err
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return call()
}
