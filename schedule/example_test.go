package schedule_test

import (
	"fmt"
	"time"

	"github.com/swarmkey/swarmkey/schedule"
)

// A nightly rotation at 02:30 Berlin time, a Locust soak test over the
// window, and the plan around it.
func ExamplePlan() {
	p := schedule.Timing{
		Name:             "checkout-db",
		Schedule:         schedule.MustParse("30 2 * * *", "Europe/Berlin"),
		Window:           3 * time.Hour,
		ExpectedDuration: 10 * time.Minute,
		GuardAfter:       15 * time.Minute,
	}
	soak := schedule.OneOffRun{
		Name:     "soak-test",
		Start:    time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), // 02:00 CEST
		Duration: 2 * time.Hour,
	}
	now := time.Date(2026, 5, 31, 20, 0, 0, 0, time.UTC)
	d := schedule.Plan(p, schedule.State{}, schedule.Busy{OneOff: []schedule.OneOffRun{soak}}, now)
	fmt.Println("window:", d.Window.Start.Format(time.RFC3339), "to", d.Window.End.Format(time.RFC3339))
	fmt.Println("start: ", d.Start.Format(time.RFC3339))
	// Output:
	// window: 2026-06-01T00:30:00Z to 2026-06-01T03:30:00Z
	// start:  2026-06-01T02:15:00Z
}

// On the spring-forward day a 02:30 schedule fires at 03:00 local, the
// first instant after the gap; on the fall-back day it fires once.
func ExampleSchedule_Next() {
	s := schedule.MustParse("30 2 * * *", "Europe/Berlin")
	f := time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)
	for range 3 {
		f = s.Next(f)
		fmt.Println(f.In(s.Location()).Format(time.RFC3339))
	}
	f = time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC)
	for range 2 {
		f = s.Next(f)
		fmt.Println(f.In(s.Location()).Format(time.RFC3339))
	}
	// Output:
	// 2026-03-28T02:30:00+01:00
	// 2026-03-29T03:00:00+02:00
	// 2026-03-30T02:30:00+02:00
	// 2026-10-25T02:30:00+02:00
	// 2026-10-26T02:30:00+01:00
}
