// Package report writes the backtest report of a replay (`spamsurge replay
// --report FILE.html`): one self-contained HTML page, no outside assets and
// no script, with inline SVG charts of the first spams per hour against the
// band the detector expected, the incidents on that timeline, the at-risk
// population, and a table of the incidents.
//
// A Recorder collects what it needs while the replay runs: every finished
// hour (detector.Options.OnHour) and every incident event (the latest
// snapshot of each incident). The page holds no address: incidents carry
// keyed hashes (which the report leaves out too) and campaign keys with
// addresses masked.
package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/replay"
)

// Recorder collects a replay's hourly series and incidents. Its methods are
// for one goroutine (replay calls both from the one running the detector).
type Recorder struct {
	hours     []detector.Hour
	incidents map[string]*detector.Incident
	order     []string // incident ids, in the order they were first seen
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{incidents: map[string]*detector.Incident{}} }

// Hour records one finished hour; give it as detector.Options.OnHour.
func (r *Recorder) Hour(h detector.Hour) { r.hours = append(r.hours, h) }

// Event records an incident event; the latest snapshot of each incident is
// kept (without its recipients' hashes).
func (r *Recorder) Event(ev detector.Event) {
	in := ev.Incident
	in.RecipientIDs = nil
	if _, ok := r.incidents[in.ID]; !ok {
		r.order = append(r.order, in.ID)
	}
	r.incidents[in.ID] = &in
}

// Hours is the number of hours recorded.
func (r *Recorder) Hours() int { return len(r.hours) }

// Meta is what the page says about the run.
type Meta struct {
	Title   string
	Inputs  []string // the files replayed, in the order read
	Stats   replay.Stats
	Tracked int // addresses tracked at the end
	AtRisk  int // at risk at the end
	// Err is how the replay ended when it did not finish ("" when it did).
	Err       string
	Version   string
	Generated time.Time
}

// Band is the range of hourly counts the detector took for normal: the
// central 99 % of a quasi-Poisson count with mean mu and dispersion phi
// (phi × a Poisson variable of mean mu/phi).
func Band(mu, phi float64) (lo, hi float64) {
	if !(mu > 0) || math.IsInf(mu, 0) {
		return 0, 0
	}
	if !(phi >= 1) || math.IsInf(phi, 0) {
		phi = 1
	}
	m := mu / phi
	return phi * poissonQuantile(m, 0.005), phi * poissonQuantile(m, 0.995)
}

// poissonQuantile is the smallest k with P(X ≤ k) ≥ p, X ~ Poisson(mu).
func poissonQuantile(mu, p float64) float64 {
	if mu > 400 {
		// Normal approximation, with continuity correction.
		z := 2.5758293035489
		if p < 0.5 {
			z = -z
		}
		return math.Max(0, math.Ceil(mu+z*math.Sqrt(mu)-0.5))
	}
	pmf := math.Exp(-mu)
	cdf := pmf
	k := 0.0
	for cdf < p && k < 10000 {
		k++
		pmf *= mu / k
		cdf += pmf
	}
	return k
}

// Write renders the page.
func (r *Recorder) Write(w io.Writer, m Meta) error {
	if m.Title == "" {
		m.Title = "spamsurge backtest"
	}
	if m.Generated.IsZero() {
		m.Generated = time.Now()
	}
	p := page{Meta: m, Hours: len(r.hours)}
	if len(r.hours) > 0 {
		p.From, p.To = r.hours[0].Start, r.hours[len(r.hours)-1].Start.Add(time.Hour)
	}
	for _, h := range r.hours {
		if h.Warm {
			p.WarmUntil = h.Start.Add(time.Hour)
		}
	}
	for i, id := range r.order {
		in := r.incidents[id]
		row := incidentRow(i+1, in)
		p.Incidents = append(p.Incidents, row)
		p.Kinds[kindIndex(in.Kind)]++
	}
	p.OpenedSummary = openedSummary(p.Kinds)
	if len(r.hours) > 0 {
		spans := r.spans(p.Incidents)
		p.Overview = r.hourChart(p.From, p.To, spans, "first spams per hour, the whole replay")
		p.AtRiskChart = r.atRiskChart(p.From, p.To, spans)
		for i := range p.Incidents {
			if i == maxZooms {
				p.MoreZooms = len(p.Incidents) - maxZooms
				break
			}
			in := r.incidents[r.order[i]]
			from := in.StartedAt.Add(-48 * time.Hour)
			to := p.To
			if in.ResolvedAt != nil {
				to = in.ResolvedAt.Add(24 * time.Hour)
			}
			if d := to.Sub(from); d > 14*24*time.Hour {
				to = from.Add(14 * 24 * time.Hour)
			}
			from, to = maxTime(from, p.From), minTime(to, p.To)
			if !to.After(from) {
				continue
			}
			c := r.hourChart(from.Truncate(time.Hour), to, spans, fmt.Sprintf("incident %d: %s", i+1, in.ID))
			p.Zooms = append(p.Zooms, zoom{N: i + 1, ID: in.ID, Chart: c})
		}
	}
	return pageTmpl.Execute(w, &p)
}

const maxZooms = 12

type page struct {
	Meta
	Hours         int
	From, To      time.Time
	WarmUntil     time.Time
	Incidents     []row
	Kinds         [4]int // surge, dictionary, canary, other
	OpenedSummary string
	Overview      *chart
	AtRiskChart   *chart
	Zooms         []zoom
	MoreZooms     int
}

type zoom struct {
	N     int
	ID    string
	Chart *chart
}

type row struct {
	N                                        int
	ID, Kind, Trigger, Scope, State          string
	Started, Opened, Resolved, Delay, Length string
	Recipients                               int
	Observed, Expected                       string
	Campaigns                                []campaign
	TopTag, TopSource, Canary                string
	startedAt, openedAt                      time.Time
	resolvedAt                               *time.Time
}

type campaign struct {
	Dim, Key string
	Share    string
}

func kindIndex(k string) int {
	switch k {
	case detector.KindSurge:
		return 0
	case detector.KindDictionary:
		return 1
	case detector.KindCanary:
		return 2
	}
	return 3
}

func openedSummary(k [4]int) string {
	var parts []string
	for i, name := range []string{"surge", "dictionary", "canary", "other"} {
		if k[i] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", k[i], name))
		}
	}
	if len(parts) == 0 {
		return "no incident"
	}
	return strings.Join(parts, ", ")
}

func incidentRow(n int, in *detector.Incident) row {
	r := row{N: n, ID: in.ID, Kind: in.Kind, Trigger: in.Trigger, State: in.State,
		Started: stamp(in.StartedAt), Opened: stamp(in.OpenedAt), Recipients: in.Recipients,
		Observed: num(in.Observed), Expected: num(in.Expected),
		TopTag: in.TopTag, TopSource: in.TopSource, Canary: in.CanarySource,
		startedAt: in.StartedAt, openedAt: in.OpenedAt, resolvedAt: in.ResolvedAt}
	if in.Scope != nil {
		r.Scope = in.Scope.String()
	}
	if d := in.OpenedAt.Sub(in.StartedAt); d >= 0 {
		r.Delay = dur(d) + " later"
	}
	if in.ResolvedAt != nil {
		r.Resolved = stamp(*in.ResolvedAt)
		r.Length = dur(in.ResolvedAt.Sub(in.OpenedAt))
	}
	add := func(dim string, g []detector.Group) {
		if len(g) > 0 {
			r.Campaigns = append(r.Campaigns, campaign{Dim: dim, Key: g[0].Key, Share: fmt.Sprintf("%.0f %%", 100*g[0].Share)})
		}
	}
	add("sender", in.Campaigns.SenderDomain)
	add("network", in.Campaigns.ClientNetwork)
	add("subject", in.Campaigns.Subject)
	add("message-id", in.Campaigns.MessageIDDomain)
	return r
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func dur(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

func num(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "–"
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return fmt.Sprintf("%.0f", f)
	case math.Abs(f) < 10:
		return fmt.Sprintf("%.2f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// span is an incident on the timeline.
type span struct {
	N                int
	Kind             string
	Label            string // "1", "2" ...
	Title            string // tooltip
	Start, Open, End time.Time
	Ongoing          bool
}

func (r *Recorder) spans(rows []row) []span {
	var out []span
	end := r.hours[len(r.hours)-1].Start.Add(time.Hour)
	for _, in := range rows {
		s := span{N: in.N, Kind: in.Kind, Label: fmt.Sprint(in.N), Start: in.startedAt, Open: in.openedAt, End: end, Ongoing: true}
		if in.resolvedAt != nil {
			s.End, s.Ongoing = *in.resolvedAt, false
		}
		if s.Start.After(s.Open) {
			s.Start = s.Open
		}
		s.Title = fmt.Sprintf("%d: %s (%s, %s), started %s, opened %s, ", in.N, in.ID, in.Kind, in.Trigger, in.Started, in.Opened)
		if s.Ongoing {
			s.Title += "still open"
		} else {
			s.Title += "resolved " + in.Resolved
		}
		s.Title += fmt.Sprintf(", %d recipients", in.Recipients)
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Open.Before(out[j].Open) })
	return out
}

// Incidents is the number of incidents recorded.
func (r *Recorder) Incidents() int { return len(r.order) }
