// Package schedule decides when a rotation may start. It is pure planning
// code: no I/O, no clock. Every function that needs the current time takes it
// as an argument (now), so callers and tests choose the instant.
//
// # Schedules
//
// A [Schedule] is a cron spec parsed by github.com/robfig/cron/v3
// (cron.ParseStandard: five fields, minute hour day-of-month month
// day-of-week, plus @yearly, @monthly, @weekly, @daily, @midnight, @hourly and
// @every DURATION) and an IANA time zone (default UTC). A "TZ=" or "CRON_TZ="
// prefix in the spec is refused: the zone is the policy's timezone field, and
// one setting must not have two sources.
//
// Five-field specs and the @yearly…@hourly descriptors are wall-clock
// schedules: they fire when the clock on the wall of the policy's zone shows a
// matching minute. robfig/cron parses them; swarmkey computes the fires itself
// (see below) and agrees with robfig on every instant that is not next to a
// daylight-saving change.
//
// @every DURATION fires every DURATION of elapsed time, anchored at the Unix
// epoch (1970-01-01T00:00:00Z): "@every 6h" fires at 00:00, 06:00, 12:00 and
// 18:00 UTC whatever the zone. robfig anchors @every at the moment its Next is
// called, which would make the fires depend on when the daemon asked; a
// planner needs fires that are the same for every caller. robfig counts the
// period in whole seconds, silently: it would fire "@every 500ms" (or 0s,
// or -5s) every second and "@every 1500ms" every second too. [New] refuses
// those instead: the period is a whole number of seconds, at least
// [MinEvery].
//
// # Daylight saving
//
// robfig/cron, left alone, skips a wall-clock fire that falls in a
// spring-forward gap (a daily 02:30 schedule in Europe/Berlin does not fire on
// 2026-03-29 at all) and fires twice when a local time repeats on the
// fall-back day (02:30 CEST and 02:30 CET on 2026-10-25). Neither is what an
// operator of a rotation policy expects: a skipped day lets a credential age
// a day longer than its schedule says, and a double fire rotates twice.
// swarmkey therefore applies one rule to every wall-clock schedule:
//
//   - A local time that does not exist (it falls in a spring-forward gap)
//     fires at the first instant after the gap: 03:00 local the same day, for
//     both Europe/Berlin (2026-03-29T01:00:00Z) and America/New_York
//     (2026-03-08T07:00:00Z). Several nonexistent local times of one gap fire
//     once, together, at that instant; so does a fire of the schedule that
//     falls exactly on it.
//   - A local time that occurs twice (it falls in a fall-back repeat) fires
//     once, at its first occurrence: 02:30 CEST in Europe/Berlin on
//     2026-10-25 (00:30Z), 01:30 EDT in America/New_York on 2026-11-01
//     (05:30Z). The repeated hour's second pass fires nothing.
//
// The rule holds for every field, including "*/15 * * * *": on a fall-back
// day that schedule is silent for the repeated hour. A schedule that must keep
// an elapsed-time rhythm across daylight saving should use @every, which does
// not look at the wall clock.
//
// [Schedule.Period] is the nominal shortest gap between fires, measured on
// the wall clock as if the zone had no daylight saving. Around a transition a
// real gap can be shorter (a "59 1,2 * * *" schedule in Berlin fires at 01:59
// CET and, by the gap rule, 03:00 CEST, one minute apart) or longer.
//
// # Busy intervals
//
// Every busy source expands to half-open [Interval]s [Start, End); two
// intervals that merely touch at an end point do not overlap.
//
//   - A Locust run ([OneOffRun], [RecurringRun]) that uses the policy's
//     credential is busy for its duration, widened by the policy's
//     GuardBefore (earlier start) and GuardAfter (later end).
//   - A [Lease] is a run that is live now. It is busy from Started until
//     Ended, if the run ended, or else until LastHeartbeat+TTL, widened by the
//     guards like a scheduled run. A lease that has no Ended and whose last
//     heartbeat is older than its TTL (now ≥ LastHeartbeat+TTL) has expired:
//     its Locust crashed or lost the network, and it blocks nothing, not even
//     GuardAfter, so a crashed run never holds a rotation back.
//   - A [DenyWindow] (cron + duration, in its own schedule's zone, per policy
//     or global) is busy for its duration from each fire, not widened.
//
// # Planning
//
// A fire f opens the window [f, f+Window). The rotation occupies
// [t, t+ExpectedDuration) (at least the instant t when ExpectedDuration is
// zero). [Plan] picks the earliest t ≥ max(f, now) with t < f+Window such that
// [t, t+ExpectedDuration) overlaps no busy interval. The start must lie inside
// the window; the rotation may run past the window's end, because a window
// bounds when a rotation begins, not when it completes. The earliest such t
// is the window's lower bound or the end of a busy interval: that is the only
// way a start can become free.
//
// When no start in the window is free, the fire is deferred: the Decision
// records the window and the busy intervals that overlap the window's reach
// [max(f, now), f+Window+ExpectedDuration), the span a rotation starting in
// the window could occupy, and planning moves on to the next fire.
//
// See [Plan] for max_age, on_overdue and missed windows.
package schedule
