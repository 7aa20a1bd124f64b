package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron spec in a time zone. The zero Schedule never
// fires ([Schedule.IsZero] reports it). Schedules are immutable values and safe
// for concurrent use.
type Schedule struct {
	spec  string
	loc   *time.Location
	every int64 // @every period in seconds; 0 for a wall-clock schedule
	// cal is a wall-clock schedule's bit sets, shared by the copies of the
	// Schedule (a policy set of 100,000 holds as many copies); nil for
	// @every.
	cal    *calendar
	period time.Duration
}

// yearsAhead bounds every forward search, like robfig's own five-year limit:
// a spec that matches nothing in this many years is treated as never firing.
const yearsAhead = 5

// Parse parses spec with cron.ParseStandard semantics and places it in the
// IANA zone named timezone ("" means UTC). It refuses a spec that cannot be
// parsed, a "TZ="/"CRON_TZ=" prefix, an unknown zone and a spec that matches
// no instant (such as "0 0 30 2 *").
func Parse(spec, timezone string) (Schedule, error) {
	loc := time.UTC
	if timezone != "" {
		l, err := loadLocation(timezone)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: timezone %q: not an IANA zone name (e.g. Europe/Berlin): %w", spec, timezone, err)
		}
		loc = l
	}
	return New(spec, loc)
}

// locations memoizes time.LoadLocation by name: every read of the run
// calendar parses each recurring run's schedule, and loading a zone reads
// and decodes its transitions each time.
var locations sync.Map // zone name → *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// SpecError is a cron spec that New refuses. Err says why: the parser's
// reason, [ErrZoneInSpec] or [ErrNoFires] (use errors.Is).
type SpecError struct {
	Spec string
	Err  error
}

func (e *SpecError) Error() string { return fmt.Sprintf("schedule %q: %v", e.Spec, e.Err) }

func (e *SpecError) Unwrap() error { return e.Err }

var (
	// ErrZoneInSpec is a spec with a "TZ=" or "CRON_TZ=" prefix.
	ErrZoneInSpec = errors.New("the time zone belongs in the policy's timezone field, not in the spec")
	// ErrNoFires is a spec that matches at most one instant, such as
	// "0 0 30 2 *".
	ErrNoFires = errors.New("matches no date")
	// ErrEveryPeriod is an @every period that is not a whole number of
	// seconds of at least [MinEvery]. Its SpecError's message says which.
	ErrEveryPeriod = errors.New("not a usable @every period")
)

// MinEvery is the shortest @every period. robfig/cron counts @every in whole
// seconds: it turns a shorter period (0s, -5s and 500ms alike) into one
// second and cuts a fraction off a longer one (1500ms fires every second),
// without a word. A spec that asks for either cannot mean what it fires, so
// New refuses it instead.
const MinEvery = time.Second

// everyProblem is the SpecError of an @every spec whose period robfig would
// silently change, or nil.
func everyProblem(spec, trimmed string) error {
	rest, ok := strings.CutPrefix(trimmed, "@every ")
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return nil // not a duration: robfig's parser says so
	}
	var why string
	switch {
	case d <= 0:
		why = fmt.Sprintf("the period must be at least %s", MinEvery)
	case d < MinEvery:
		why = fmt.Sprintf("the period must be at least %s (fires are counted in whole seconds)", MinEvery)
	case d%time.Second != 0:
		why = fmt.Sprintf("the period must be a whole number of seconds, such as %s or %s",
			d.Truncate(time.Second), d.Truncate(time.Second)+time.Second)
	default:
		return nil
	}
	return &SpecError{Spec: spec, Err: everyError("@every " + rest + ": " + why)}
}

// everyError is the reason of an [ErrEveryPeriod]: its text alone, which
// names the period and the rule.
type everyError string

func (e everyError) Error() string { return string(e) }

func (e everyError) Is(target error) bool { return target == ErrEveryPeriod }

// New is Parse with a loaded location; nil means UTC. Its errors are
// *SpecError. An @every period must be a whole number of seconds, at least
// [MinEvery].
func New(spec string, loc *time.Location) (s Schedule, err error) {
	if loc == nil {
		loc = time.UTC
	}
	trimmed := strings.TrimSpace(spec)
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return Schedule{}, &SpecError{Spec: spec, Err: ErrZoneInSpec}
	}
	if err := everyProblem(spec, trimmed); err != nil {
		return Schedule{}, err
	}
	parsed, err := parseStandard(trimmed)
	if err != nil {
		return Schedule{}, &SpecError{Spec: spec, Err: fmt.Errorf("%w (want five fields \"minute hour day-of-month month day-of-week\", or @daily, @hourly, @every 1h…)", err)}
	}
	s = Schedule{spec: trimmed, loc: loc}
	switch p := parsed.(type) {
	case cron.ConstantDelaySchedule:
		s.every = int64(p.Delay / time.Second)
		s.period = time.Duration(s.every) * time.Second
		return s, nil
	case *cron.SpecSchedule:
		if p.Second != 1 {
			// ParseStandard always fixes the second at 0; anything else is a
			// robfig change this package does not know.
			return Schedule{}, &SpecError{Spec: spec, Err: errors.New("second-level specs are not supported")}
		}
		s.cal = &calendar{
			minute: p.Minute &^ starBit,
			hour:   p.Hour &^ starBit,
			dom:    p.Dom &^ starBit,
			month:  p.Month &^ starBit,
			dow:    p.Dow &^ starBit,
			either: p.Dom&starBit == 0 && p.Dow&starBit == 0,
		}
		per, ok := s.cal.memoPeriod()
		if !ok {
			return Schedule{}, &SpecError{Spec: spec, Err: fmt.Errorf("%w (at most one fire in %d years)", ErrNoFires, periodYears)}
		}
		s.period = per
		return s, nil
	default:
		return Schedule{}, &SpecError{Spec: spec, Err: fmt.Errorf("unsupported schedule type %T", parsed)}
	}
}

// parseStandard is cron.ParseStandard, which panics on some malformed specs
// (a bad spec must be an error, not a crash of whoever reads a policy file).
func parseStandard(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, errors.New("cannot parse it")
		}
	}()
	return cron.ParseStandard(spec)
}

// MustParse is Parse that panics on error, for tests and examples.
func MustParse(spec, timezone string) Schedule {
	s, err := Parse(spec, timezone)
	if err != nil {
		panic(err)
	}
	return s
}

// IsZero reports whether s is the zero Schedule, which never fires.
func (s Schedule) IsZero() bool { return s.spec == "" }

// String returns the spec and, unless it is UTC, the zone: "30 2 * * * Europe/Berlin".
func (s Schedule) String() string {
	if s.IsZero() {
		return "(none)"
	}
	if s.loc == time.UTC || s.every != 0 {
		return s.spec
	}
	return s.spec + " " + s.loc.String()
}

// Spec returns the cron spec as written (trimmed).
func (s Schedule) Spec() string { return s.spec }

// Location returns the zone fires are computed in (UTC for the zero Schedule).
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Period returns the nominal shortest gap between two fires: for @every the
// duration; for a wall-clock spec the shortest gap between consecutive
// matching wall-clock minutes over several years, ignoring daylight saving
// (see the package doc). "30 2 * * *" gives 24h, "0 9 * * 1-5" gives 24h,
// "0 0 1 * *" gives 28 days.
func (s Schedule) Period() time.Duration { return s.period }

// gapFires is how many consecutive fires ShortestGap measures: more than a
// year of a daily schedule, so that both daylight-saving changes count.
const gapFires = 400

// gapOrigin is where ShortestGap starts: a fixed instant, so that the answer
// does not depend on when it is asked.
var gapOrigin = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// gaps memoizes ShortestGap by spec and zone: it is a pure function of them,
// walking gapFires fires takes a while, and a policy file of thousands of
// policies usually holds a handful of distinct schedules.
var gaps sync.Map // spec + "\x00" + zone name → time.Duration

// ShortestGap returns the shortest elapsed time between two consecutive
// fires among the 400 fires that follow 2025-01-01T00:00 in the schedule's
// zone; 0 for the zero Schedule or one that does not fire twice in that
// span. Unlike [Schedule.Period] it measures instants, daylight saving
// included: a daily "0 3 * * *" in Europe/Berlin gives 23h (the
// spring-forward day), and "59 1,2 * * *" there gives one minute. A window
// that must close before the next fire opens is shorter than this. Results
// are memoized by spec and zone.
func (s Schedule) ShortestGap() time.Duration {
	if s.IsZero() {
		return 0
	}
	key := s.spec + "\x00" + s.Location().String()
	if v, ok := gaps.Load(key); ok {
		return v.(time.Duration)
	}
	var gap time.Duration
	prev := s.Next(gapOrigin.In(s.Location()))
	for i := 0; i < gapFires && !prev.IsZero(); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if d := next.Sub(prev); gap == 0 || d < gap {
			gap = d
		}
		prev = next
	}
	gaps.Store(key, gap)
	return gap
}

// Next returns the first fire strictly after the instant after, in after's
// location. It returns the zero time if the Schedule is zero or the spec
// matches nothing within five years.
func (s Schedule) Next(after time.Time) time.Time {
	if s.IsZero() {
		return time.Time{}
	}
	if s.every != 0 {
		sec := after.Unix()
		k := sec / s.every
		if sec%s.every < 0 {
			k-- // floor for instants before 1970
		}
		return time.Unix((k+1)*s.every, 0).In(after.Location())
	}
	a := after.In(s.loc)
	y, mo, d := a.Date()
	h, mi, _ := a.Clock()
	c := civil{y, int(mo), d, h, mi}.addMinute() // the first wall minute after a's
	limit := y + yearsAhead
	for {
		m, ok := s.cal.next(c, limit)
		if !ok {
			return time.Time{}
		}
		t := m.instant(s.loc)
		if t.After(after) {
			return t.In(after.Location())
		}
		// m is a repeated local time whose first occurrence is already past.
		c = m.addMinute()
	}
}

// Prev returns the latest fire at or before t, or the zero time if there is
// none within about ten years. cron has no backward search; Prev steps
// forward from a look-back that starts at one period and doubles.
func (s Schedule) Prev(t time.Time) time.Time {
	if s.IsZero() {
		return time.Time{}
	}
	look := s.period
	if look < time.Minute {
		look = time.Minute
	}
	for look < 11*365*24*time.Hour {
		f := s.Next(t.Add(-look))
		if !f.IsZero() && !f.After(t) {
			for {
				n := s.Next(f)
				if n.IsZero() || n.After(t) {
					return f
				}
				f = n
			}
		}
		look *= 2
	}
	return time.Time{}
}

// Fires returns the fires in [from, to), at most limit of them (limit ≤ 0
// means 10,000).
func (s Schedule) Fires(from, to time.Time, limit int) []time.Time {
	if limit <= 0 {
		limit = 10000
	}
	var out []time.Time
	for f := s.Next(from.Add(-time.Nanosecond)); !f.IsZero() && f.Before(to) && len(out) < limit; f = s.Next(f) {
		out = append(out, f)
	}
	return out
}

const starBit = 1 << 63

// calendar holds the bit sets of a wall-clock spec: bit n set means value n
// matches. either is cron's rule that when both day fields are restricted a
// day matches if either does.
type calendar struct {
	minute, hour, dom, month, dow uint64
	either                        bool
}

const everyWeekday = 1<<7 - 1 // bits 0 (Sunday) … 6 (Saturday)

// civil is a wall-clock minute, always normalised (month 1–12, day within the
// month, hour 0–23, minute 0–59).
type civil struct{ y, mo, d, h, mi int }

func (c civil) addMinute() civil {
	c.mi++
	if c.mi == 60 {
		c.mi = 0
		return c.addHour()
	}
	return c
}

func (c civil) addHour() civil {
	c.h++
	if c.h == 24 {
		c.h = 0
		return c.addDay()
	}
	return c
}

func (c civil) addDay() civil {
	c.d++
	if c.d > daysIn(c.y, c.mo) {
		c.d = 1
		return c.addMonth()
	}
	return c
}

func (c civil) addMonth() civil {
	c.mo++
	if c.mo == 13 {
		c.mo = 1
		c.y++
	}
	return c
}

// minutes counts wall-clock minutes since 1970-01-01 00:00, ignoring zones.
func (c civil) minutes() int64 {
	return (daysFromCivil(c.y, c.mo, c.d)*24+int64(c.h))*60 + int64(c.mi)
}

// nextBit returns the smallest set bit ≥ from in b, or -1.
func nextBit(b uint64, from int) int {
	if from > 63 {
		return -1
	}
	m := b >> uint(from)
	if m == 0 {
		return -1
	}
	return from + bits.TrailingZeros64(m)
}

func (k *calendar) dayMatches(c civil) bool {
	domOK := k.dom&(1<<uint(c.d)) != 0
	if !k.either && !domOK {
		return false
	}
	dowOK := k.dow == everyWeekday || k.dow&(1<<uint(weekday(c.y, c.mo, c.d))) != 0
	if k.either {
		return domOK || dowOK
	}
	return domOK && dowOK
}

// next returns the first wall-clock minute ≥ c that the spec matches, or
// false if there is none before the year limit.
func (k *calendar) next(c civil, limit int) (civil, bool) {
	for c.y <= limit {
		if k.month&(1<<uint(c.mo)) == 0 {
			m := nextBit(k.month, c.mo+1)
			if m < 0 || m > 12 {
				c = civil{c.y + 1, nextBit(k.month, 1), 1, 0, 0}
			} else {
				c = civil{c.y, m, 1, 0, 0}
			}
			continue
		}
		if !k.dayMatches(c) {
			c = civil{c.y, c.mo, c.d, 0, 0}.addDay()
			continue
		}
		h := nextBit(k.hour, c.h)
		if h < 0 || h > 23 {
			c = civil{c.y, c.mo, c.d, 0, 0}.addDay()
			continue
		}
		if h != c.h {
			c.h, c.mi = h, 0
		}
		mi := nextBit(k.minute, c.mi)
		if mi < 0 || mi > 59 {
			c = civil{c.y, c.mo, c.d, c.h, 0}.addHour()
			continue
		}
		c.mi = mi
		return c, true
	}
	return civil{}, false
}

const (
	periodYears = 9
	periodFires = 512
)

// periods memoizes calendar.period by calendar: New runs once per policy and
// deny window, and a file of thousands of policies usually holds a handful
// of distinct specs.
var periods sync.Map // calendar → periodResult

type periodResult struct {
	period time.Duration
	ok     bool
}

func (k calendar) memoPeriod() (time.Duration, bool) {
	if v, ok := periods.Load(k); ok {
		r := v.(periodResult)
		return r.period, r.ok
	}
	per, ok := k.period()
	periods.Store(k, periodResult{per, ok})
	return per, ok
}

// period measures the shortest wall-clock gap between consecutive matches,
// from 2001-01-01 (a Monday) over at most periodFires fires or periodYears
// years. It is false when fewer than two fires fall in that span.
func (k *calendar) period() (time.Duration, bool) {
	start := civil{2001, 1, 1, 0, 0}
	limit := start.y + periodYears
	prev, ok := k.next(start, limit)
	if !ok {
		return 0, false
	}
	best := int64(-1)
	for i := 0; i < periodFires; i++ {
		n, ok := k.next(prev.addMinute(), limit)
		if !ok {
			break
		}
		gap := n.minutes() - prev.minutes()
		if best < 0 || gap < best {
			best = gap
		}
		if best == 1 {
			break
		}
		prev = n
	}
	if best < 0 {
		return 0, false
	}
	return time.Duration(best) * time.Minute, true
}

// instant maps the wall-clock minute c in loc to an instant by the package's
// daylight-saving rule: a nonexistent time maps to the end of its gap, a
// repeated time to its first occurrence.
func (c civil) instant(loc *time.Location) time.Time {
	t := time.Date(c.y, time.Month(c.mo), c.d, c.h, c.mi, 0, 0, loc)
	y, mo, d := t.Date()
	h, mi, _ := t.Clock()
	if y == c.y && int(mo) == c.mo && d == c.d && h == c.h && mi == c.mi {
		start, _ := t.ZoneBounds()
		if start.IsZero() {
			return t
		}
		_, off := t.Zone()
		_, prevOff := start.Add(-time.Nanosecond).Zone()
		if prevOff > off {
			if e := t.Add(-time.Duration(prevOff-off) * time.Second); e.Before(start) {
				return e // the first occurrence, in the zone before the fall-back
			}
		}
		return t
	}
	// c lies in a spring-forward gap; time.Date normalised it to one side of
	// the transition. Find the transition whose gap, in wall-clock seconds,
	// contains c.
	wall := c.minutes() * 60
	start, end := t.ZoneBounds()
	for _, g := range []time.Time{start, end} {
		if g.IsZero() {
			continue
		}
		_, before := g.Add(-time.Nanosecond).Zone()
		_, after := g.Zone()
		if gs := g.Unix(); gs+int64(before) <= wall && wall < gs+int64(after) {
			return g
		}
	}
	return t // not reached with real tz data; keep Go's normalisation
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days since 1970-01-01 (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// weekday returns 0 for Sunday … 6 for Saturday.
func weekday(y, m, d int) int {
	w := (daysFromCivil(y, m, d) + 4) % 7 // 1970-01-01 was a Thursday
	if w < 0 {
		w += 7
	}
	return int(w)
}

// Equal reports whether s and t fire alike: the same spec in zones of the
// same name (two loads of a zone are two *time.Location values).
func (s Schedule) Equal(t Schedule) bool {
	return s.spec == t.spec && s.every == t.every && s.Location().String() == t.Location().String()
}
