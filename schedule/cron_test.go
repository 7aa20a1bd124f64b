package schedule

import (
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the host's zoneinfo

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// fires returns n consecutive fires after from, in UTC RFC 3339.
func fires(s Schedule, from time.Time, n int) []string {
	var out []string
	for f := from; len(out) < n; {
		f = s.Next(f)
		out = append(out, f.UTC().Format(time.RFC3339))
	}
	return out
}

// robfigFires is the same with robfig/cron's own Next, for pinning its
// behaviour.
func robfigFires(t *testing.T, spec, zone string, from time.Time, n int) []string {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	require.NoError(t, err)
	parsed, err := cron.ParseStandard(spec)
	require.NoError(t, err)
	parsed.(*cron.SpecSchedule).Location = loc
	var out []string
	for f := from; len(out) < n; {
		f = parsed.Next(f)
		out = append(out, f.UTC().Format(time.RFC3339))
	}
	return out
}

func TestDST(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, spec, zone, from string
		robfig, ours           []string
	}{
		{
			name: "Berlin spring forward 2026-03-29: robfig skips the day, we fire at 03:00 CEST",
			spec: "30 2 * * *", zone: "Europe/Berlin", from: "2026-03-27T12:00:00Z",
			robfig: []string{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"},
			ours:   []string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		},
		{
			name: "Berlin fall back 2026-10-25: robfig fires at 02:30 CEST and 02:30 CET, we fire once",
			spec: "30 2 * * *", zone: "Europe/Berlin", from: "2026-10-23T12:00:00Z",
			robfig: []string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"},
			ours:   []string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"},
		},
		{
			name: "New York spring forward 2026-03-08: robfig skips the day, we fire at 03:00 EDT",
			spec: "30 2 * * *", zone: "America/New_York", from: "2026-03-06T12:00:00Z",
			robfig: []string{"2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"},
			ours:   []string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
		},
		{
			name: "New York fall back 2026-11-01: 02:30 is not repeated there (01:00-02:00 is), one fire each",
			spec: "30 2 * * *", zone: "America/New_York", from: "2026-10-30T12:00:00Z",
			robfig: []string{"2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"},
			ours:   []string{"2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"},
		},
		{
			name: "New York fall back 2026-11-01 at 01:30: robfig fires EDT and EST, we fire at 01:30 EDT only",
			spec: "30 1 * * *", zone: "America/New_York", from: "2026-10-30T12:00:00Z",
			robfig: []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"},
			ours:   []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"},
		},
		{
			name: "Sydney spring forward 2026-10-04 (02:00 AEST → 03:00 AEDT): 02:30 fires at 03:00 AEDT",
			spec: "30 2 * * *", zone: "Australia/Sydney", from: "2026-10-02T00:00:00Z",
			robfig: []string{"2026-10-02T16:30:00Z", "2026-10-04T15:30:00Z"},
			ours:   []string{"2026-10-02T16:30:00Z", "2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"},
		},
		{
			name: "Sydney fall back 2026-04-05 (03:00 AEDT → 02:00 AEST): 02:30 fires once, at 02:30 AEDT",
			spec: "30 2 * * *", zone: "Australia/Sydney", from: "2026-04-03T00:00:00Z",
			robfig: []string{"2026-04-03T15:30:00Z", "2026-04-04T15:30:00Z", "2026-04-04T16:30:00Z"},
			ours:   []string{"2026-04-03T15:30:00Z", "2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"},
		},
		{
			name: "Tokyo has no DST: 09:00 on weekdays is 00:00Z, Friday to Monday",
			spec: "0 9 * * 1-5", zone: "Asia/Tokyo", from: "2026-03-26T12:00:00Z",
			robfig: []string{"2026-03-27T00:00:00Z", "2026-03-30T00:00:00Z"},
			ours:   []string{"2026-03-27T00:00:00Z", "2026-03-30T00:00:00Z"},
		},
		{
			name: "Berlin spring forward: every 30 minutes, 02:00 and 02:30 coalesce with 03:00 CEST",
			spec: "*/30 * * * *", zone: "Europe/Berlin", from: "2026-03-29T00:15:00Z",
			robfig: []string{"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"},
			ours:   []string{"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"},
		},
		{
			name: "Berlin fall back: hourly is silent for the repeated hour's second pass",
			spec: "@hourly", zone: "Europe/Berlin", from: "2026-10-24T23:30:00Z",
			robfig: []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"},
			ours:   []string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			from := utc(c.from)
			require.Equal(t, c.robfig, robfigFires(t, c.spec, c.zone, from, len(c.robfig)), "robfig/cron's own behaviour changed")
			s := MustParse(c.spec, c.zone)
			require.Equal(t, c.ours, fires(s, from, len(c.ours)))
		})
	}
}

func TestDSTLocalClock(t *testing.T) {
	t.Parallel()
	// The gap fire is 03:00 local on the same day, the repeat fire the
	// first occurrence.
	berlin := MustParse("30 2 * * *", "Europe/Berlin")
	f := berlin.Next(utc("2026-03-28T12:00:00Z")).In(berlin.Location())
	require.Equal(t, "2026-03-29T03:00:00+02:00", f.Format(time.RFC3339))
	f = berlin.Next(utc("2026-10-24T12:00:00Z")).In(berlin.Location())
	require.Equal(t, "2026-10-25T02:30:00+02:00", f.Format(time.RFC3339))
	// Asked from inside the repeat's second pass, the next fire is tomorrow.
	require.Equal(t, utc("2026-10-26T01:30:00Z"), berlin.Next(utc("2026-10-25T01:10:00Z")))
	// And from inside the first pass, before 02:30 CEST, it is 02:30 CEST.
	require.Equal(t, utc("2026-10-25T00:30:00Z"), berlin.Next(utc("2026-10-25T00:10:00Z")))
}

func TestNonUTCZones(t *testing.T) {
	t.Parallel()
	tokyo := MustParse("15 3 * * *", "Asia/Tokyo")
	require.Equal(t, []string{"2026-07-01T18:15:00Z", "2026-07-02T18:15:00Z"}, fires(tokyo, utc("2026-07-01T12:00:00Z"), 2))
	sydney := MustParse("0 22 * * 0", "Australia/Sydney") // Sundays 22:00 local
	// January is AEDT (+11), July AEST (+10).
	require.Equal(t, []string{"2026-01-04T11:00:00Z"}, fires(sydney, utc("2026-01-01T00:00:00Z"), 1))
	require.Equal(t, []string{"2026-07-05T12:00:00Z"}, fires(sydney, utc("2026-07-01T00:00:00Z"), 1))
	require.Equal(t, utc("2026-07-05T12:00:00Z"), sydney.Prev(utc("2026-07-06T00:00:00Z")))
	require.Equal(t, "0 22 * * 0 Australia/Sydney", sydney.String())
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, bad := range []struct{ spec, zone, want string }{
		{"", "", "schedule"},
		{"61 * * * *", "", "schedule"},
		{"0 0 30 2 *", "", "matches no date"},
		{"TZ=Europe/Berlin 0 3 * * *", "", "timezone field"},
		{"0 3 * * *", "Mars/Olympus", "not an IANA zone"},
		{"0 0 0 3 * *", "", "schedule"}, // six fields: seconds are not standard
	} {
		_, err := Parse(bad.spec, bad.zone)
		require.ErrorContains(t, err, bad.want, bad.spec)
	}
	for _, c := range []struct {
		spec   string
		period time.Duration
	}{
		{"30 2 * * *", 24 * time.Hour},
		{"0 9 * * 1-5", 24 * time.Hour},
		{"0 0 1 * *", 28 * 24 * time.Hour},
		{"*/15 * * * *", 15 * time.Minute},
		{"0 0 1,31 * *", 24 * time.Hour},
		{"0 0 29 2 *", 4 * 365 * 24 * time.Hour}, // 2004 → 2008, 1461 days less… see below
		{"@hourly", time.Hour},
		{"@weekly", 7 * 24 * time.Hour},
		{"@every 90m", 90 * time.Minute},
	} {
		s, err := Parse(c.spec, "Europe/Berlin")
		require.NoError(t, err, c.spec)
		if c.spec == "0 0 29 2 *" {
			require.Equal(t, 1461*24*time.Hour, s.Period())
			continue
		}
		require.Equal(t, c.period, s.Period(), c.spec)
	}
	require.True(t, Schedule{}.IsZero())
	require.True(t, Schedule{}.Next(time.Now()).IsZero())
}

func TestEveryIsAnchoredAtTheEpoch(t *testing.T) {
	t.Parallel()
	s := MustParse("@every 6h", "Europe/Berlin")
	require.Equal(t, utc("2026-05-01T12:00:00Z"), s.Next(utc("2026-05-01T07:13:14Z")))
	require.Equal(t, utc("2026-05-01T18:00:00Z"), s.Next(utc("2026-05-01T12:00:00Z")))
	require.Equal(t, utc("2026-05-01T12:00:00Z"), s.Prev(utc("2026-05-01T17:59:59Z")))
	require.Equal(t, utc("2026-05-01T12:00:00Z"), s.Prev(utc("2026-05-01T12:00:00Z")))
}

// genSpec draws a valid five-field cron spec.
func genSpec(t *rapid.T) string {
	field := func(label string, lo, hi int) string {
		switch rapid.IntRange(0, 4).Draw(t, label+"-kind") {
		case 0:
			return "*"
		case 1:
			return itoa(rapid.IntRange(lo, hi).Draw(t, label))
		case 2:
			a := rapid.IntRange(lo, hi).Draw(t, label+"-a")
			b := rapid.IntRange(a, hi).Draw(t, label+"-b")
			return itoa(a) + "-" + itoa(b)
		case 3:
			return "*/" + itoa(rapid.IntRange(1, hi-lo+1).Draw(t, label+"-step"))
		default:
			a := rapid.IntRange(lo, hi).Draw(t, label+"-x")
			b := rapid.IntRange(lo, hi).Draw(t, label+"-y")
			return itoa(a) + "," + itoa(b)
		}
	}
	return field("minute", 0, 59) + " " + field("hour", 0, 23) + " " + field("dom", 1, 28) + " " + field("month", 1, 12) + " " + field("dow", 0, 6)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// In a zone without daylight saving our fires are exactly robfig's.
func TestNextAgreesWithRobfigWithoutDST(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		zone := rapid.SampledFrom([]string{"UTC", "Asia/Tokyo", "Asia/Kolkata"}).Draw(t, "zone")
		loc, err := time.LoadLocation(zone)
		require.NoError(t, err)
		ours, err := New(spec, loc)
		require.NoError(t, err, spec)
		theirs, err := cron.ParseStandard(spec)
		require.NoError(t, err)
		theirs.(*cron.SpecSchedule).Location = loc
		at := time.Unix(rapid.Int64Range(946684800, 2208988800).Draw(t, "at"), rapid.Int64Range(0, 999999999).Draw(t, "ns")).UTC()
		for i := 0; i < 5; i++ {
			want := theirs.Next(at)
			got := ours.Next(at)
			require.True(t, want.Equal(got), "%s in %s after %s: robfig %s, ours %s", spec, zone, at, want, got)
			if got.IsZero() {
				return
			}
			require.True(t, ours.Prev(got).Equal(got))
			require.True(t, ours.Prev(got.Add(-time.Nanosecond)).Before(got))
			at = got
		}
	})
}

// In a zone with daylight saving, fires are increasing, Prev inverts Next,
// each fire's local wall clock matches robfig's unless it is a gap fire, and
// no wall-clock minute fires twice.
func TestNextInvariantsWithDST(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		zone := rapid.SampledFrom([]string{"Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"}).Draw(t, "zone")
		s := MustParse(spec, zone)
		// Start near a transition most of the time.
		at := utc(rapid.SampledFrom([]string{"2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-10-24T20:00:00Z", "2026-10-31T20:00:00Z", "2026-04-04T10:00:00Z", "2026-10-03T10:00:00Z"}).Draw(t, "near"))
		at = at.Add(time.Duration(rapid.IntRange(0, 24*60).Draw(t, "minutes")) * time.Minute)
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			f := s.Next(at)
			if f.IsZero() {
				return
			}
			require.True(t, f.After(at))
			require.True(t, s.Prev(f).Equal(f), "Prev(%s)", f)
			local := f.In(s.Location())
			wall := local.Format("2006-01-02 15:04")
			require.False(t, seen[wall], "%s fired twice at wall time %s", spec, wall)
			seen[wall] = true
			at = f
		}
	})
}

func TestShortestGap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		spec, zone string
		gap        time.Duration
	}{
		{"0 3 * * *", "UTC", 24 * time.Hour},
		{"0 3 * * *", "Europe/Berlin", 23 * time.Hour}, // the spring-forward day
		{"59 1,2 * * *", "Europe/Berlin", time.Minute}, // 01:59 CET, then 03:00 CEST by the gap rule
		{"30 2 * * *", "Europe/Berlin", 23*time.Hour + 30*time.Minute},
		{"@weekly", "UTC", 7 * 24 * time.Hour},
		{"@every 12h", "Europe/Berlin", 12 * time.Hour},
		{"@hourly", "UTC", time.Hour},
		{"0 0 29 2 *", "UTC", 1461 * 24 * time.Hour},
	} {
		s := MustParse(c.spec, c.zone)
		require.Equal(t, c.gap, s.ShortestGap(), "%s in %s", c.spec, c.zone)
		require.Equal(t, c.gap, s.ShortestGap(), "%s in %s, memoized", c.spec, c.zone)
	}
	require.Zero(t, Schedule{}.ShortestGap())
}

func TestSpecErrors(t *testing.T) {
	t.Parallel()
	var se *SpecError
	_, err := New("0 3 * *", nil)
	require.ErrorAs(t, err, &se)
	require.Equal(t, "0 3 * *", se.Spec)
	require.ErrorContains(t, se.Err, "expected exactly 5 fields")
	_, err = New("CRON_TZ=Europe/Berlin 0 3 * * *", nil)
	require.ErrorIs(t, err, ErrZoneInSpec)
	_, err = New("0 0 30 2 *", nil)
	require.ErrorIs(t, err, ErrNoFires)
	require.ErrorContains(t, err, `schedule "0 0 30 2 *": matches no date`)
}

// TestEveryPeriodIsWholeSecondsOfAtLeastOne: robfig/cron would fire each of
// these every second, whatever it says; New refuses them and says why.
func TestEveryPeriodIsWholeSecondsOfAtLeastOne(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ spec, want string }{
		{"@every 0s", `schedule "@every 0s": @every 0s: the period must be at least 1s`},
		{"@every 0", `schedule "@every 0": @every 0: the period must be at least 1s`},
		{"@every -5s", `schedule "@every -5s": @every -5s: the period must be at least 1s`},
		{"@every 500ms", `schedule "@every 500ms": @every 500ms: the period must be at least 1s (fires are counted in whole seconds)`},
		{"@every 1500ms", `schedule "@every 1500ms": @every 1500ms: the period must be a whole number of seconds, such as 1s or 2s`},
		{" @every 1m0.5s ", `schedule " @every 1m0.5s ": @every 1m0.5s: the period must be a whole number of seconds, such as 1m0s or 1m1s`},
	} {
		_, err := Parse(c.spec, "")
		require.EqualError(t, err, c.want)
		require.ErrorIs(t, err, ErrEveryPeriod, c.spec)
		var se *SpecError
		require.ErrorAs(t, err, &se)
	}
	for _, spec := range []string{"@every 1s", "@every 2s", "@every 90m", "@every 1h0m1s"} {
		s, err := Parse(spec, "")
		require.NoError(t, err, spec)
		require.Equal(t, s.Period(), s.ShortestGap(), spec)
	}
	_, err := Parse("@every soon", "")
	require.ErrorContains(t, err, "failed to parse duration", "robfig still reports what is not a duration")
	require.NotErrorIs(t, err, ErrEveryPeriod)
}
