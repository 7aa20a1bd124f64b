package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/swarmkey/swarmkey/schedule"
)

// The Locust run calendar: runs scheduled ahead (one-off or recurring) and
// leases taken by runs that are live. The planner reads it through Calendar.

// UsesTagPrefix marks an entry of a run's uses that names a tag rather than
// a policy: "tag:checkout" stands for every policy tagged checkout when the
// calendar is read.
const UsesTagPrefix = "tag:"

// CalendarLookback is how far before now Calendar still returns one-off runs
// that ended and leases that ended or expired. Such a run blocks nothing
// unless a policy's guard_after reaches past now, so a guard_after longer
// than this is cut to it for runs that are over.
const CalendarLookback = 24 * time.Hour

var (
	// ErrRunExists is returned when a run with the same name is active
	// (not cancelled).
	ErrRunExists = errors.New("an active run already has this name")
	// ErrLeaseExpired is returned by HeartbeatLease when the lease's last
	// heartbeat is TTL or more old: rotations may have run since, and the
	// holder must take a new lease.
	ErrLeaseExpired = errors.New("lease expired: no heartbeat within its TTL")
	// ErrLeaseEnded is returned by HeartbeatLease when the lease has ended.
	ErrLeaseEnded = errors.New("lease has ended")
)

// InvalidRunError says which field of a run or lease request is wrong and
// why. Field is one of name, start, every, timezone, duration, uses,
// created_by, holder, ttl: the CLI turns it into the flag of the same name.
type InvalidRunError struct {
	Field  string
	Value  string
	Reason string
}

func (e *InvalidRunError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

func invalid(field, value, format string, args ...any) error {
	return &InvalidRunError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// RunKind tells a one-off run from a recurring one.
type RunKind string

const (
	RunOneOff    RunKind = "one_off"
	RunRecurring RunKind = "recurring"
)

// Run is one row of the runs table.
type Run struct {
	ID   int64
	Name string
	Kind RunKind
	// Start is set for a one-off run: busy [Start, Start+Duration).
	Start time.Time
	// Every and Timezone are set for a recurring run: busy
	// [fire, fire+Duration) at every fire of the cron spec Every in the IANA
	// zone Timezone.
	Every    string
	Timezone string
	Duration time.Duration
	// Uses names policies, or tags as "tag:NAME".
	Uses        []string
	CreatedBy   string
	CreatedAt   time.Time
	CancelledAt *time.Time
	CancelledBy string
}

// Schedule returns the parsed schedule of a recurring run (the zero
// Schedule for a one-off run).
func (r Run) Schedule() (schedule.Schedule, error) {
	if r.Kind != RunRecurring {
		return schedule.Schedule{}, nil
	}
	return schedule.Parse(r.Every, r.Timezone)
}

// Occurrence is where a run stands at one instant: the one-off run, or the
// occurrence of a recurring run that is under way, else the next one.
type Occurrence struct {
	// Start and End bound it; both zero when there is none (a cancelled
	// recurring run, or a spec with no fire left).
	Start, End time.Time
	// State is scheduled, running, ended (one-off only), cancelled, never
	// (a recurring spec with no fire left) or "invalid: …".
	State string
}

// At returns where r stands at now.
func (r Run) At(now time.Time) Occurrence {
	var start time.Time
	switch r.Kind {
	case RunOneOff:
		start = r.Start
	case RunRecurring:
		sched, err := r.Schedule()
		if err != nil {
			return Occurrence{State: "invalid: " + err.Error()}
		}
		if r.CancelledAt == nil {
			// The occurrence under way, if any, else the next one.
			start = sched.Next(now.Add(-r.Duration))
		}
	}
	o := Occurrence{}
	if !start.IsZero() {
		o.Start, o.End = start, start.Add(r.Duration)
	}
	switch {
	case r.CancelledAt != nil:
		o.State = "cancelled"
	case start.IsZero():
		o.State = "never"
	case now.Before(start):
		o.State = "scheduled"
	case now.Before(o.End):
		o.State = "running"
	default:
		o.State = "ended"
	}
	return o
}

// OneOffRunRequest describes a run that happens once.
type OneOffRunRequest struct {
	Name      string
	Start     time.Time
	Duration  time.Duration
	Uses      []string
	CreatedBy string
}

// RecurringRunRequest describes a run that starts at every fire of a cron
// spec (cron.ParseStandard, as for policies) in Timezone ("" means UTC).
type RecurringRunRequest struct {
	Name      string
	Every     string
	Timezone  string
	Duration  time.Duration
	Uses      []string
	CreatedBy string
}

const runColumns = `id, name, kind, start_at, coalesce(cron_spec, ''), coalesce(timezone, ''), duration, uses,
	created_by, created_at, cancelled_at, coalesce(cancelled_by, '')`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var start *time.Time
	err := row.Scan(&r.ID, &r.Name, &r.Kind, &start, &r.Every, &r.Timezone, &r.Duration, &r.Uses,
		&r.CreatedBy, &r.CreatedAt, &r.CancelledAt, &r.CancelledBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	if start != nil {
		r.Start = start.UTC()
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if r.CancelledAt != nil {
		t := r.CancelledAt.UTC()
		r.CancelledAt = &t
	}
	return r, nil
}

// AddOneOffRun records a run busy over [Start, Start+Duration). It refuses
// (with an *InvalidRunError) a bad name, a duration that is not positive, a
// run that has already ended, and empty or malformed uses; it returns
// ErrRunExists when an active run has the name. Nothing is written on error.
func (db *DB) AddOneOffRun(ctx context.Context, req OneOffRunRequest) (Run, error) {
	uses, err := checkRun(req.Name, req.Duration, req.Uses, req.CreatedBy)
	if err != nil {
		return Run{}, err
	}
	now := db.now()
	if req.Start.IsZero() {
		return Run{}, invalid("start", "", "missing")
	}
	if !req.Start.Add(req.Duration).After(now) {
		return Run{}, invalid("start", req.Start.UTC().Format(time.RFC3339),
			"the run would already be over (its start plus its duration is past): give a later start")
	}
	return db.insertRun(ctx, req.Name, `
		INSERT INTO runs (name, kind, start_at, duration, uses, created_by, created_at)
		VALUES ($1, 'one_off', $2, $3, $4, $5, $6)
		RETURNING `+runColumns,
		req.Name, req.Start, req.Duration, uses, req.CreatedBy, now)
}

// AddRecurringRun records a run busy for Duration from every fire of Every
// in Timezone. Besides AddOneOffRun's checks it refuses a spec that
// schedule.Parse refuses, a zone that is not an IANA name ("Local" too: it
// would depend on the host that plans), and a Duration longer than the
// spec's period, with which consecutive runs would overlap. An empty
// Timezone is stored as "UTC".
func (db *DB) AddRecurringRun(ctx context.Context, req RecurringRunRequest) (Run, error) {
	uses, err := checkRun(req.Name, req.Duration, req.Uses, req.CreatedBy)
	if err != nil {
		return Run{}, err
	}
	tz := req.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if tz == "Local" {
		return Run{}, invalid("timezone", tz, "the host's local zone is not allowed: name an IANA zone such as Europe/Berlin")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Run{}, invalid("timezone", tz, "not an IANA zone name (such as Europe/Berlin or UTC)")
	}
	sched, err := schedule.New(req.Every, loc)
	if err != nil {
		reason := strings.TrimPrefix(err.Error(), fmt.Sprintf("schedule %q: ", req.Every))
		return Run{}, invalid("every", req.Every, "%s", reason)
	}
	if p := sched.Period(); req.Duration > p {
		return Run{}, invalid("duration", req.Duration.String(),
			"longer than the period of %q (%s): consecutive runs would overlap", req.Every, p)
	}
	return db.insertRun(ctx, req.Name, `
		INSERT INTO runs (name, kind, cron_spec, timezone, duration, uses, created_by, created_at)
		VALUES ($1, 'recurring', $2, $3, $4, $5, $6, $7)
		RETURNING `+runColumns,
		req.Name, sched.Spec(), tz, req.Duration, uses, req.CreatedBy, db.now())
}

func (db *DB) insertRun(ctx context.Context, name, sql string, args ...any) (Run, error) {
	r, err := scanRun(db.pool.QueryRow(ctx, sql, args...))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "runs_active_name" {
		return Run{}, fmt.Errorf("run %q: %w", name, ErrRunExists)
	}
	if err != nil {
		return Run{}, fmt.Errorf("add run %q: %w", name, err)
	}
	return r, nil
}

// checkRun checks what one-off and recurring runs share and returns uses
// without duplicates, in the order given.
func checkRun(name string, d time.Duration, uses []string, createdBy string) ([]string, error) {
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	if d <= 0 {
		return nil, invalid("duration", d.String(), "a run must end after it starts: give a positive duration such as 90m")
	}
	if strings.TrimSpace(createdBy) == "" {
		return nil, invalid("created_by", createdBy, "missing: say who adds the run")
	}
	return checkUses(uses)
}

// checkName accepts 1 to 128 characters with no white space or control
// characters, so a name can be typed on a command line and shown in a table.
func checkName(field, name string) error {
	switch {
	case name == "":
		return invalid(field, name, "missing")
	case len(name) > 128:
		return invalid(field, name, "longer than 128 bytes")
	case !utf8.ValidString(name):
		return invalid(field, name, "not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return invalid(field, name, "no white space or control characters allowed")
	}
	return nil
}

func checkUses(uses []string) ([]string, error) {
	out := make([]string, 0, len(uses))
	for _, u := range uses {
		if err := checkName("uses", u); err != nil {
			return nil, err
		}
		if u == UsesTagPrefix {
			return nil, invalid("uses", u, "a tag needs a name: tag:NAME")
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, invalid("uses", "", "missing: name the policies (or tag:NAME) whose credentials the run uses")
	}
	return out, nil
}

// ListRuns returns the active runs, and the cancelled ones too when
// includeCancelled is set, oldest first.
func (db *DB) ListRuns(ctx context.Context, includeCancelled bool) ([]Run, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+runColumns+` FROM runs
		WHERE $1 OR cancelled_at IS NULL ORDER BY id`, includeCancelled)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// CancelRun cancels the active run called name on behalf of by, and
// returns it. The row stays, with cancelled_at and cancelled_by, for the
// record; it no longer blocks rotations, and its name may be reused. It
// returns ErrNotFound when no active run has the name.
func (db *DB) CancelRun(ctx context.Context, name, by string) (Run, error) {
	if strings.TrimSpace(by) == "" {
		return Run{}, invalid("created_by", by, "missing: say who cancels the run")
	}
	r, err := scanRun(db.pool.QueryRow(ctx, `
		UPDATE runs SET cancelled_at = $2, cancelled_by = $3
		WHERE name = $1 AND cancelled_at IS NULL
		RETURNING `+runColumns, name, db.now(), by))
	if err != nil {
		return Run{}, fmt.Errorf("cancel run %q: %w", name, err)
	}
	return r, nil
}

// Lease is one row of the leases table: a Locust run that is live.
type Lease struct {
	ID            string
	RunName       string
	Uses          []string
	Holder        string
	StartedAt     time.Time
	LastHeartbeat time.Time
	TTL           time.Duration
	EndedAt       *time.Time
}

// LeaseRequest describes a lease to take. Holder says who holds it (host,
// pid, user); TTL is how long the lease lives past each heartbeat.
type LeaseRequest struct {
	RunName string
	Uses    []string
	Holder  string
	TTL     time.Duration
}

const leaseColumns = `id::text, run_name, uses, holder, started_at, last_heartbeat, ttl, ended_at`

func scanLease(row pgx.Row) (Lease, error) {
	var l Lease
	err := row.Scan(&l.ID, &l.RunName, &l.Uses, &l.Holder, &l.StartedAt, &l.LastHeartbeat, &l.TTL, &l.EndedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, ErrNotFound
	}
	if err != nil {
		return l, err
	}
	l.StartedAt, l.LastHeartbeat = l.StartedAt.UTC(), l.LastHeartbeat.UTC()
	if l.EndedAt != nil {
		t := l.EndedAt.UTC()
		l.EndedAt = &t
	}
	return l, nil
}

// StartLease takes a new lease, started and last heard from now, with a
// fresh UUIDv7 as its ID.
func (db *DB) StartLease(ctx context.Context, req LeaseRequest) (Lease, error) {
	if err := checkName("name", req.RunName); err != nil {
		return Lease{}, err
	}
	switch {
	case strings.TrimSpace(req.Holder) == "":
		return Lease{}, invalid("holder", req.Holder, "missing: say who holds the lease (host, pid, user)")
	case !utf8.ValidString(req.Holder) || strings.ContainsFunc(req.Holder, unicode.IsControl):
		// PostgreSQL text holds neither a NUL nor invalid UTF-8: refused
		// there, it would look like an unreachable database.
		return Lease{}, invalid("holder", req.Holder, "no control characters or invalid UTF-8 allowed")
	}
	if req.TTL <= 0 {
		return Lease{}, invalid("ttl", req.TTL.String(), "must be positive")
	}
	uses, err := checkUses(req.Uses)
	if err != nil {
		return Lease{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Lease{}, fmt.Errorf("start lease for run %q: %w", req.RunName, err)
	}
	now := db.now()
	l, err := scanLease(db.pool.QueryRow(ctx, `
		INSERT INTO leases (id, run_name, uses, holder, started_at, last_heartbeat, ttl)
		VALUES ($1, $2, $3, $4, $5, $5, $6)
		RETURNING `+leaseColumns, id, req.RunName, uses, req.Holder, now, req.TTL))
	if err != nil {
		return Lease{}, fmt.Errorf("start lease for run %q: %w", req.RunName, err)
	}
	return l, nil
}

// HeartbeatLease renews the lease: it stays live until now+TTL. A lease
// that has already expired is not revived (ErrLeaseExpired): a rotation may
// have run since it stopped blocking, so its holder must take a new lease
// and re-read its credential. An ended lease gives ErrLeaseEnded, an unknown
// ID ErrNotFound.
func (db *DB) HeartbeatLease(ctx context.Context, id string) (Lease, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Lease{}, fmt.Errorf("heartbeat lease %q: %w", id, ErrNotFound)
	}
	now := db.now()
	l, err := scanLease(db.pool.QueryRow(ctx, `
		UPDATE leases SET last_heartbeat = $2
		WHERE id = $1 AND ended_at IS NULL AND last_heartbeat + ttl > $2
		RETURNING `+leaseColumns, id, now))
	if errors.Is(err, ErrNotFound) {
		l, err = scanLease(db.pool.QueryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE id = $1`, id))
		switch {
		case err != nil:
		case l.EndedAt != nil:
			err = ErrLeaseEnded
		default:
			err = ErrLeaseExpired
		}
		return Lease{}, fmt.Errorf("heartbeat lease %s: %w", id, err)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("heartbeat lease %s: %w", id, err)
	}
	return l, nil
}

// EndLease records that the run ended now; from then on the lease blocks
// only the policies' guard_after. Ending an ended lease changes nothing and
// returns it (a retried call is safe). Ending an expired lease still records
// the end: the run was live until now, whatever its heartbeats said.
func (db *DB) EndLease(ctx context.Context, id string) (Lease, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Lease{}, fmt.Errorf("end lease %q: %w", id, ErrNotFound)
	}
	l, err := scanLease(db.pool.QueryRow(ctx, `
		UPDATE leases SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL
		RETURNING `+leaseColumns, id, db.now()))
	if errors.Is(err, ErrNotFound) {
		l, err = scanLease(db.pool.QueryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE id = $1`, id))
	}
	if err != nil {
		return Lease{}, fmt.Errorf("end lease %s: %w", id, err)
	}
	return l, nil
}

// Calendar returns what may block rotations at now, as the schedule package
// plans with it: every active (not cancelled) run, except one-off runs that
// ended more than CalendarLookback before now, and every lease that ended,
// or whose last heartbeat plus TTL fell, less than CalendarLookback before
// now. Whether a lease has expired is left to the planner (schedule.Lease
// decides by TTL at its own now). Each Policies field is expand(uses), so
// tags are resolved against the policies loaded now; a nil expand keeps uses
// as they are. The runs and leases are read in one snapshot. A recurring run
// whose spec or zone no longer parses (a host without that zone) is an
// error naming the run: leaving it out would let rotations run under it.
func (db *DB) Calendar(ctx context.Context, now time.Time, expand func(uses []string) []string) (schedule.Busy, error) {
	if expand == nil {
		expand = slices.Clone[[]string]
	}
	since := now.Add(-CalendarLookback)
	// One statement, so one snapshot and one round trip: the daemon reads
	// the calendar up to three times per rotation (runs first by id, then
	// leases by start and id).
	rows, err := db.pool.Query(ctx, `
		SELECT true, id, '', name, kind, start_at, coalesce(cron_spec, ''), coalesce(timezone, ''), duration, uses,
			NULL::timestamptz, NULL::timestamptz, NULL::interval, NULL::timestamptz
		FROM runs WHERE cancelled_at IS NULL AND (kind = 'recurring' OR start_at + duration > $1)
		UNION ALL
		SELECT false, NULL, id::text, run_name, '', NULL, '', '', NULL, uses, started_at, last_heartbeat, ttl, ended_at
		FROM leases WHERE (ended_at IS NULL AND last_heartbeat + ttl > $1) OR ended_at > $1
		ORDER BY 1 DESC, 2, 11, 3`, since)
	if err != nil {
		return schedule.Busy{}, fmt.Errorf("read the run calendar: %w", err)
	}
	defer rows.Close()
	var busy schedule.Busy
	for rows.Next() {
		var (
			isRun                   bool
			runID                   *int64
			leaseID, name           string
			kind                    RunKind
			start                   *time.Time
			every, zone             string
			duration, ttl           *time.Duration
			uses                    []string
			started, heartbeat, end *time.Time
		)
		if err := rows.Scan(&isRun, &runID, &leaseID, &name, &kind, &start, &every, &zone, &duration, &uses,
			&started, &heartbeat, &ttl, &end); err != nil {
			return schedule.Busy{}, fmt.Errorf("read the run calendar: %w", err)
		}
		if !isRun {
			l := schedule.Lease{Name: name, Started: started.UTC(), LastHeartbeat: heartbeat.UTC(), TTL: *ttl, Policies: expand(uses)}
			if end != nil {
				t := end.UTC()
				l.Ended = &t
			}
			busy.Leases = append(busy.Leases, l)
			continue
		}
		r := Run{Name: name, Kind: kind, Every: every, Timezone: zone, Duration: *duration, Uses: uses}
		switch r.Kind {
		case RunOneOff:
			busy.OneOff = append(busy.OneOff, schedule.OneOffRun{
				Name: r.Name, Start: start.UTC(), Duration: r.Duration, Policies: expand(r.Uses)})
		case RunRecurring:
			sched, err := r.Schedule()
			if err != nil {
				return schedule.Busy{}, fmt.Errorf("read the run calendar: recurring run %q: %w (cancel it with `swarmkey runs cancel %s` and add it again)", r.Name, err, r.Name)
			}
			busy.Recurring = append(busy.Recurring, schedule.RecurringRun{
				Name: r.Name, Schedule: sched, Duration: r.Duration, Policies: expand(r.Uses)})
		}
	}
	if err := rows.Err(); err != nil {
		return schedule.Busy{}, fmt.Errorf("read the run calendar: %w", err)
	}
	return busy, nil
}
