package timeline

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

//go:embed page.html.tmpl
var templateFiles embed.FS

// templates are parsed on first use, not at start: every swarmkey command
// links this package (serve's pages, plan --html) and would otherwise pay
// for the parse, exec and --help included.
var templates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"when":       func(t time.Time, loc *time.Location) string { return formatTime(t, loc) },
		"duration":   formatDuration,
		"join":       strings.Join,
		"describe":   describe,
		"detail":     formatDetail,
		"policyURL":  policyURL,
		"odd":        func(i int) bool { return i%2 == 1 },
		"add":        func(a, b int) int { return a + b },
		"plus":       func(a, b float64) float64 { return a + b },
		"sub":        func(a, b float64) float64 { return a - b },
		"deref":      func(t *time.Time) time.Time { return *t },
		"since":      func(from time.Time, to *time.Time) time.Duration { return to.Sub(from) },
		"auditLimit": func() int { return AuditLimit },
	}).ParseFS(templateFiles, "page.html.tmpl"))
})

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartWidth   = 1240
	labelWidth   = 230
	rightPad     = 16
	axisHeight   = 46
	rowHeight    = 40
	minBandWidth = 3
)

// ContentSecurityPolicy is what the pages allow: their own inline style
// and nothing else (no script, no fetch, no frame). The served pages send
// it as a header, and every page carries it in a meta element, so a file
// written by plan --html is held to it as well.
const ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// Render writes the overview page.
func Render(w io.Writer, t *Timeline) error {
	return templates().ExecuteTemplate(w, "overview", overviewView{Timeline: t, Chart: newChart(t, t.Rows)})
}

// RenderPolicy writes the page of one policy.
func RenderPolicy(w io.Writer, p *Policy) error {
	return templates().ExecuteTemplate(w, "policy", policyView{Policy: p, Chart: newChart(&p.Timeline, []Row{p.Row})})
}

type overviewView struct {
	*Timeline
	Chart chart
}

type policyView struct {
	*Policy
	Chart chart
}

// listedFires is how many fires the policy page lists before it lists only
// those deferred or pushed.
const listedFires = 12

// ListedFires are the fires the policy page's table lists: the first
// listedFires, then only those deferred or pushed by something.
func (v policyView) ListedFires() []Fire {
	var out []Fire
	for i, f := range v.Row.Fires {
		if i < listedFires || f.Deferred() || len(f.PushedBy) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// UnlistedFires counts the fires ListedFires leaves out.
func (v policyView) UnlistedFires() int { return len(v.Row.Fires) - len(v.ListedFires()) }

// CSP is the meta element's content.
func (overviewView) CSP() string { return ContentSecurityPolicy }

// CSP is the meta element's content.
func (policyView) CSP() string { return ContentSecurityPolicy }

// Title is the document's title.
func (overviewView) Title() string { return "swarmkey timeline" }

// Title is the document's title.
func (v policyView) Title() string { return "swarmkey · policy " + v.Row.Policy }

// chart is the SVG of some rows, positions computed.
type chart struct {
	Width, Height, LabelWidth, PlotRight int
	Ticks                                []tick
	NowX                                 float64
	ShowNow                              bool
	Rows                                 []chartRow
}

type tick struct {
	X     float64
	Label string
	Major bool
}

type chartRow struct {
	Row
	Y, Mid   int
	Href     string
	Outcome  string
	Bands    []chartBand
	Windows  []chartWindow
	Location *time.Location
}

type chartBand struct {
	Band
	X, W  float64
	Title string
}

type chartWindow struct {
	X, W, SlotX float64
	Deferred    bool
	Title       string
	// Blocker names what deferred the fire (data-blocked-by).
	Blocker string
}

func newChart(t *Timeline, rows []Row) chart {
	plotLeft := float64(labelWidth)
	plotWidth := float64(chartWidth - labelWidth - rightPad)
	span := t.To.Sub(t.From)
	x := func(at time.Time) float64 {
		f := float64(at.Sub(t.From)) / float64(span)
		return plotLeft + plotWidth*min(max(f, 0), 1)
	}
	c := chart{Width: chartWidth, Height: axisHeight + rowHeight*len(rows) + 8, LabelWidth: labelWidth, PlotRight: chartWidth - rightPad}
	c.Ticks = ticks(t.From, t.To, t.Location, x)
	if !t.Generated.Before(t.From) && t.Generated.Before(t.To) {
		c.NowX, c.ShowNow = x(t.Generated), true
	}
	for i, r := range rows {
		y := axisHeight + i*rowHeight
		cr := chartRow{Row: r, Y: y, Mid: y + rowHeight/2, Outcome: outcomeClass(r), Location: t.Location}
		if !t.Static {
			cr.Href = policyURL(r.Policy)
		}
		for _, b := range r.Bands {
			x0, x1 := x(b.Start), x(b.End)
			cr.Bands = append(cr.Bands, chartBand{Band: b, X: x0, W: max(x1-x0, minBandWidth),
				Title: fmt.Sprintf("%s %s: %s – %s", b.Kind, b.Name, formatTime(b.Start, t.Location), formatTime(b.End, t.Location))})
		}
		for _, f := range r.Fires {
			x0, x1 := x(f.WindowStart), x(f.WindowEnd)
			w := chartWindow{X: x0, W: max(x1-x0, minBandWidth), Deferred: f.Deferred()}
			window := fmt.Sprintf("window %s – %s", formatTime(f.WindowStart, t.Location), formatTime(f.WindowEnd, t.Location))
			if f.Deferred() {
				w.Blocker = describe(f.BlockedBy, t.Location)
				w.Title = fmt.Sprintf("deferred: %s; blocked by %s", window, w.Blocker)
			} else {
				w.SlotX = x(*f.Slot)
				w.Title = fmt.Sprintf("slot %s (%s)", formatTime(*f.Slot, t.Location), window)
				if len(f.PushedBy) > 0 {
					w.Title += "; pushed by " + describe(f.PushedBy, t.Location)
				}
			}
			cr.Windows = append(cr.Windows, w)
		}
		c.Rows = append(c.Rows, cr)
	}
	return c
}

// ticks are the axis marks: a labelled line at each midnight, lighter
// lines every 6 hours (every hour when the period is a day or less).
func ticks(from, to time.Time, loc *time.Location, x func(time.Time) float64) []tick {
	step := 6 * time.Hour
	if to.Sub(from) <= 26*time.Hour {
		step = time.Hour
	}
	if to.Sub(from) > 15*24*time.Hour {
		step = 24 * time.Hour
	}
	var out []tick
	local := from.In(loc)
	t := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	for n := 0; t.Before(to) && n < 1000; n++ {
		if !t.Before(from) {
			major := t.Hour() == 0
			label := t.Format("15:04")
			if major {
				label = t.Format("Mon 02 Jan")
			}
			out = append(out, tick{X: x(t), Label: label, Major: major})
		}
		next := t.Add(step)
		// Wall-clock steps: a day with a daylight-saving change still
		// marks its midnight.
		if y, m, d := next.Date(); next.Hour() != 0 && next.Sub(t) >= 24*time.Hour {
			next = time.Date(y, m, d, 0, 0, 0, 0, loc)
		}
		t = next
	}
	return out
}

func outcomeClass(r Row) string {
	switch {
	case r.LastOutcome == "needs_attention":
		return "attention"
	case r.LastOutcome == "failed":
		return "failed"
	case r.Overdue:
		return "overdue"
	case r.LastOutcome == "succeeded":
		return "ok"
	case r.LastOutcome == "":
		return "never"
	}
	return "other"
}

// formatTime is the pages' one time format: date, time and zone, with
// seconds only when they are not zero.
func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	t = t.In(loc)
	if t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04 MST")
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// formatDuration writes d as the config file does: 3d, 1d12h, 90m, 30s.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	if d > 0 {
		fmt.Fprintf(&b, "%dms", d/time.Millisecond)
	}
	return b.String()
}

// describe names bands as plan does: kind "name" until end.
func describe(bs []Band, loc *time.Location) string {
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("%s %q until %s", b.Kind, b.Name, formatTime(b.End, loc)))
	}
	return strings.Join(parts, "; ")
}

// formatDetail writes an audit entry's detail as key=value pairs. Audit
// details never hold a value (the state package's rule); the page shows
// them as recorded.
func formatDetail(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, " ")
}

func policyURL(name string) string { return "/policies/" + url.PathEscape(name) }
