// Package notify tells people when a rotation needs them: it routes events
// (a rotation that needs attention or failed, an overdue credential, a long
// deferral, a lease that expired without a goodbye) to sinks, a signed JSON
// webhook or a Slack-compatible incoming webhook, and delivers them as River
// jobs, so a delivery retries with backoff, survives a restart and never
// holds up a rotation.
//
// An Event carries names, times, tokens and the reason text the audit log
// already holds: never a credential value. The sinks' own credentials (the
// webhook's HMAC key, Slack's URL, which holds Slack's token) are resolved
// when a delivery is attempted and never stored in a job, a log or a metric.
package notify

import (
	"fmt"
	"strings"
	"time"
)

// Kind is what happened; the names are those of a route's events:.
type Kind string

// The kinds of events.
const (
	// NeedsAttention: a rotation ended needs_attention (its rollback failed,
	// it failed after promote, or it reached its attempt limit).
	NeedsAttention Kind = "needs_attention"
	// Failed: a rotation attempt failed and was rolled back; River retries it.
	Failed Kind = "failed"
	// Overdue: the credential is older than the policy's max_age; sent once
	// per credential (per overdue-since instant).
	Overdue Kind = "overdue"
	// Deferred: a fire was deferred and its rotation pushed back by more than
	// the deferral threshold.
	Deferred Kind = "deferred"
	// LeaseExpired: a Locust run's lease ran past its TTL without a heartbeat
	// or an end; sent once per lease.
	LeaseExpired Kind = "lease_expired"
)

// Kinds lists every kind, in the order messages list them.
var Kinds = []Kind{NeedsAttention, Failed, Overdue, Deferred, LeaseExpired}

// ParseKind returns the kind called s.
func ParseKind(s string) (Kind, bool) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// KindNames is the list of kinds for messages: "needs_attention, failed, …".
func KindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Event is one notification's content. Every field is audit-safe: names,
// times, rotation tokens, outcomes and reason texts the rotator has
// already scrubbed. It is what a webhook receives as JSON.
type Event struct {
	// ID identifies the notification; it stays the same across retries, so
	// a receiver can drop a duplicate. Enqueue sets it.
	ID   string    `json:"id"`
	Kind Kind      `json:"event"`
	At   time.Time `json:"at"`
	// Policy is the policy the event is about; "" for a lease, which names
	// its policies in Policies.
	Policy   string   `json:"policy,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// Tags are the tags of Policy (or of Policies): routes match on them.
	Tags []string `json:"tags,omitempty"`
	// Rotation is the rotation's token, Outcome its outcome.
	Rotation string `json:"rotation,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	// Reason says why, in the words of the audit log.
	Reason string `json:"reason,omitempty"`
	// Detail holds the kind's own fields (the lease's id, run and holder; the
	// deferred fire and its blockers; the time overdue since).
	Detail map[string]string `json:"detail,omitempty"`
}

// Summary is the event in one line, as the Slack message's text.
func (e Event) Summary() string {
	subject := e.Policy
	if subject == "" {
		subject = strings.Join(e.Policies, ", ")
	}
	var what string
	switch e.Kind {
	case NeedsAttention:
		what = "rotation of " + subject + " needs attention"
	case Failed:
		what = "rotation of " + subject + " failed and was rolled back"
	case Overdue:
		what = subject + " is overdue"
	case Deferred:
		what = "rotation of " + subject + " was deferred"
	case LeaseExpired:
		what = "a lease on " + subject + " expired without a heartbeat or an end"
	default:
		what = string(e.Kind) + " " + subject
	}
	if e.Reason != "" {
		what += ": " + e.Reason
	}
	return "swarmkey: " + what
}

// policies are the policies the event concerns, for routing.
func (e Event) policies() []string {
	if e.Policy != "" {
		return append([]string{e.Policy}, e.Policies...)
	}
	return e.Policies
}

func (e Event) String() string { return fmt.Sprintf("%s %s", e.Kind, strings.Join(e.policies(), ",")) }
