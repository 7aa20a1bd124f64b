package chaos

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// The invariants; each violation is counted under one of them.
const (
	Lockout          = "lockout"           // current (or alternating's previous) does not log in
	ForeignPromotion = "foreign promotion" // current is not a version whose rotation passed its canary
	Stuck            = "stuck"             // no new rotation succeeds after the fault is gone
	DoubleRotation   = "double rotation"   // a request key (a fire) succeeded twice
	UntrueOutcome    = "untrue outcome"    // a rotation recorded rolled back whose version is current or previous
	TempFileLeft     = "temp file left"    // a file-store temp file (a sealed copy of a version) outlived its write
	LateStart        = "late start"        // the daemon started a fire's rotation after its window ended
)

// Invariants in report order.
var Invariants = []string{Lockout, ForeignPromotion, Stuck, DoubleRotation, UntrueOutcome, TempFileLeft, LateStart}

// Violation is one broken invariant, with what led to it.
type Violation struct {
	Invariant string
	Policy    string
	At        time.Duration // since the run began
	Detail    string
	// Recent is the policy's last injections, oldest first.
	Recent []string
}

// Stats counts what a run did and found. It is safe for concurrent use.
type Stats struct {
	mu         sync.Mutex
	start      time.Time
	injections map[string]int            // kind → count
	landings   map[string]map[string]int // kind → where it landed → count
	outcomes   map[string]int            // what happened after injections (information)
	violations []Violation
	recent     map[string][]string // policy → last injections
	checks     int
	logins     int
}

// NewStats starts the run's clock.
func NewStats() *Stats {
	return &Stats{start: time.Now(), injections: map[string]int{}, landings: map[string]map[string]int{},
		outcomes: map[string]int{}, recent: map[string][]string{}}
}

// Inject counts one injection of kind that landed at where ("" if the kind
// has no landing) on policy ("" for every policy), and remembers it for the
// policy's violations.
func (s *Stats) Inject(kind, where, policy, note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injections[kind]++
	if where != "" {
		if s.landings[kind] == nil {
			s.landings[kind] = map[string]int{}
		}
		s.landings[kind][where]++
	}
	line := fmt.Sprintf("%s %s", time.Since(s.start).Round(time.Millisecond), kind)
	if where != "" {
		line += " at " + where
	}
	if note != "" {
		line += " (" + note + ")"
	}
	for _, p := range s.policies(policy) {
		r := append(s.recent[p], line)
		if len(r) > 6 {
			r = r[len(r)-6:]
		}
		s.recent[p] = r
	}
}

// policies: "" stands for every policy seen so far.
func (s *Stats) policies(policy string) []string {
	if policy != "" {
		return []string{policy}
	}
	var all []string
	for p := range s.recent {
		all = append(all, p)
	}
	return all
}

// Track makes policy known, so that global injections are remembered for it.
func (s *Stats) Track(policy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recent[policy]; !ok {
		s.recent[policy] = nil
	}
}

// Outcome counts something that happened (not a violation).
func (s *Stats) Outcome(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[what]++
}

// Checked counts one invariant check of a policy and the logins it made.
func (s *Stats) Checked(logins int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
	s.logins += logins
}

// Violate records a violation.
func (s *Stats) Violate(invariant, policy, format string, args ...any) Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := Violation{Invariant: invariant, Policy: policy, At: time.Since(s.start), Detail: fmt.Sprintf(format, args...),
		Recent: append([]string(nil), s.recent[policy]...)}
	s.violations = append(s.violations, v)
	return v
}

// Violations returns the violations so far.
func (s *Stats) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Violation(nil), s.violations...)
}

// Count returns the violations of invariant.
func (s *Stats) Count(invariant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.violations {
		if v.Invariant == invariant {
			n++
		}
	}
	return n
}

// Injections returns the count of kind; a kind ending in "*" sums every
// kind with that prefix.
func (s *Stats) Injections(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := strings.CutSuffix(kind, "*"); ok {
		n := 0
		for k, c := range s.injections {
			if strings.HasPrefix(k, p) {
				n += c
			}
		}
		return n
	}
	return s.injections[kind]
}

// Landings returns where the injections of kind landed.
func (s *Stats) Landings(kind string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, n := range s.landings[kind] {
		out[k] = n
	}
	return out
}

// Elapsed is the time since the run began.
func (s *Stats) Elapsed() time.Duration { return time.Since(s.start) }

var (
	uuidRe   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	numberRe = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)
	pathRe   = regexp.MustCompile(`/tmp/[^ ]*`)
)

// signature is a violation's first line with tokens, numbers and paths
// taken out, so that one bug met many times is one group.
func signature(detail string) string {
	line, _, _ := strings.Cut(detail, "\n")
	line = uuidRe.ReplaceAllString(line, "<token>")
	line = pathRe.ReplaceAllString(line, "<path>")
	line = numberRe.ReplaceAllString(line, "<n>")
	if len(line) > 260 {
		line = line[:260] + "…"
	}
	return line
}

// landingOrder sorts landings by step.
var landingOrder = map[string]int{"start": 0, "create": 1, "set": 2, "test": 3, "promote": 4, "finish": 5, "succeed": 6, "exit": 7}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aok := landingOrder[keys[i]]
		b, bok := landingOrder[keys[j]]
		if aok && bok {
			return a < b
		}
		if aok != bok {
			return aok
		}
		return keys[i] < keys[j]
	})
	return keys
}

// Report writes the run's figures: injections per kind (with where they
// landed), outcomes, and the violations per invariant with their details.
func (s *Stats) Report(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "chaos run: %s, %d invariant checks, %d logins\n\n", time.Since(s.start).Round(time.Second), s.checks, s.logins)
	fmt.Fprintf(w, "| injection | count | where it landed |\n| --- | --- | --- |\n")
	kinds := make([]string, 0, len(s.injections))
	for k := range s.injections {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	total := 0
	for _, k := range kinds {
		var where []string
		for _, l := range sortedKeys(s.landings[k]) {
			where = append(where, fmt.Sprintf("%s %d", l, s.landings[k][l]))
		}
		fmt.Fprintf(w, "| %s | %d | %s |\n", k, s.injections[k], strings.Join(where, ", "))
		total += s.injections[k]
	}
	kills := 0
	for _, k := range kinds {
		if strings.HasPrefix(k, "kill -9") {
			kills += s.injections[k]
		}
	}
	fmt.Fprintf(w, "| **all** | %d | of which kill -9: %d |\n\n", total, kills)

	fmt.Fprintf(w, "| outcome | count |\n| --- | --- |\n")
	for _, k := range sortedKeys(s.outcomes) {
		fmt.Fprintf(w, "| %s | %d |\n", k, s.outcomes[k])
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "| invariant | violations |\n| --- | --- |\n")
	for _, inv := range Invariants {
		n := 0
		for _, v := range s.violations {
			if v.Invariant == inv {
				n++
			}
		}
		fmt.Fprintf(w, "| %s | %d |\n", inv, n)
	}
	if len(s.violations) > 0 {
		// The same bug shows many times: group by what was said.
		groups := map[string]int{}
		var order []string
		for _, v := range s.violations {
			g := v.Invariant + ": " + signature(v.Detail)
			if groups[g] == 0 {
				order = append(order, g)
			}
			groups[g]++
		}
		fmt.Fprintf(w, "\n| violations grouped by what was found | count |\n| --- | --- |\n")
		for _, g := range order {
			fmt.Fprintf(w, "| %s | %d |\n", strings.ReplaceAll(g, "|", "/"), groups[g])
		}
	}
	for _, v := range s.violations {
		fmt.Fprintf(w, "\n%s: %s at %s: %s\n", v.Invariant, v.Policy, v.At.Round(time.Millisecond), v.Detail)
		if len(v.Recent) > 0 {
			fmt.Fprintf(w, "    the policy's last injections:\n")
		}
		for _, r := range v.Recent {
			fmt.Fprintf(w, "      %s\n", r)
		}
	}
}
