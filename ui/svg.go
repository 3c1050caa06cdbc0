package ui

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/replay/report"
)

// Chart geometry (SVG user units; the SVG scales to the page's width).
const (
	chartW, chartH = 720, 220
	padL, padR     = 44, 12
	padT, padB     = 14, 34
)

// Colours, shared with the page's legend.
const (
	colBand     = "#cfe3f7" // the expected band
	colExpected = "#1f77b4"
	colHits     = "#d62728" // first spams
	colPop      = "#9aa5b1" // the population
	colSnapshot = "#ff7f0e" // the snapshot interval
)

type plot struct {
	b        strings.Builder
	x0, x1   float64 // data range on x (Unix seconds)
	yMax     float64
	innerW   float64
	innerH   float64
	timeTick string // time format of the axis labels
}

func newPlot(x0, x1 time.Time, yMax float64, label string) *plot {
	p := &plot{x0: float64(x0.Unix()), x1: float64(x1.Unix()), yMax: math.Max(yMax, 1),
		innerW: chartW - padL - padR, innerH: chartH - padT - padB, timeTick: "Jan 2 15:04"}
	if x1.Sub(x0) > 72*time.Hour {
		p.timeTick = "Jan 2"
	}
	if p.x1 <= p.x0 {
		p.x1 = p.x0 + 3600
	}
	fmt.Fprintf(&p.b, `<svg viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">`,
		chartW, chartH, html.EscapeString(label))
	fmt.Fprintf(&p.b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="#fff" stroke="#ccc"/>`, padL, padT, p.innerW, p.innerH)
	return p
}

func (p *plot) x(t float64) float64 { return padL + (t-p.x0)/(p.x1-p.x0)*p.innerW }
func (p *plot) y(v float64) float64 { return padT + p.innerH - v/p.yMax*p.innerH }
func (p *plot) xt(t time.Time) float64 {
	return p.x(float64(t.Unix()))
}

func (p *plot) rect(x0, x1, y0, y1 float64, fill, extra string) {
	if x1 < x0 {
		x0, x1 = x1, x0
	}
	if y1 < y0 {
		y0, y1 = y1, y0
	}
	fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s/>`, x0, y0, math.Max(x1-x0, 0.6), y1-y0, fill, extra)
}

// vline marks time t; its label goes above the plot (row 0) or inside
// its top (row 1, for a second mark close to the first), kept inside.
func (p *plot) vline(t time.Time, col, dash, label string, row int) {
	x := p.xt(t)
	if x < padL || x > padL+p.innerW {
		return
	}
	fmt.Fprintf(&p.b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.0f" stroke="%s" stroke-width="1.5" stroke-dasharray="%s"/>`, x, x, padT, padT+p.innerH, col, dash)
	if label == "" {
		return
	}
	anchor, lx := "middle", x
	switch {
	case x > padL+p.innerW-70:
		anchor, lx = "end", x-3
	case x < padL+70:
		anchor, lx = "start", x+3
	}
	y := padT - 3
	if row == 1 {
		anchor, lx, y = "start", x+3, padT+12
	}
	fmt.Fprintf(&p.b, `<text x="%.1f" y="%d" fill="%s" text-anchor="%s">%s</text>`, lx, y, col, anchor, html.EscapeString(label))
}

// axes labels the y maximum and the ends and middle of the x range.
func (p *plot) axes(yLabel string) {
	fmt.Fprintf(&p.b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, padL-4, padT+9, fmtCount(p.yMax))
	fmt.Fprintf(&p.b, `<text x="%d" y="%.0f" text-anchor="end">0</text>`, padL-4, padT+p.innerH)
	fmt.Fprintf(&p.b, `<text x="12" y="%.0f" transform="rotate(-90 12 %.0f)" text-anchor="middle">%s</text>`, padT+p.innerH/2, padT+p.innerH/2, html.EscapeString(yLabel))
	for i, a := range []string{"start", "middle", "end"} {
		t := p.x0 + (p.x1-p.x0)*float64(i)/2
		fmt.Fprintf(&p.b, `<text x="%.1f" y="%.0f" text-anchor="%s">%s</text>`, p.x(t), padT+p.innerH+16, a,
			time.Unix(int64(t), 0).UTC().Format(p.timeTick))
	}
}

func (p *plot) done() template.HTML {
	p.b.WriteString(`</svg>`)
	return template.HTML(p.b.String()) // built here from numbers and escaped text only
}

func fmtCount(v float64) string {
	if v >= 10 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// timeline draws the incident's first spams by hour against the band the
// baseline expected (99 % of hours fall in it by chance: the replay
// report's band), with the change point (started) and the opening.
func timeline(in *detector.Incident) template.HTML {
	if len(in.HitsAt) == 0 {
		return ""
	}
	var first, last int64 = math.MaxInt64, 0
	maxN := 0
	for h, n := range in.HitsAt {
		first, last = min(first, h), max(last, h)
		maxN = max(maxN, n)
	}
	start := time.Unix(min(first*3600, in.StartedAt.Unix()), 0).Add(-3 * time.Hour).Truncate(time.Hour)
	end := time.Unix(max((last+1)*3600, in.UpdatedAt.Unix()), 0).Add(time.Hour).Truncate(time.Hour)
	hours := math.Max(in.UpdatedAt.Sub(in.StartedAt).Hours(), 1)
	rate := in.Expected / hours
	lo, hi := report.Band(rate, 1)
	p := newPlot(start, end, math.Max(float64(maxN), hi)*1.1, "first spams per hour")
	p.rect(p.xt(start), p.xt(end), p.y(lo), p.y(hi), colBand, "")
	fmt.Fprintf(&p.b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, padL, padL+p.innerW, p.y(rate), p.y(rate), colExpected)
	for h, n := range in.HitsAt {
		x0, x1 := p.x(float64(h*3600)), p.x(float64((h+1)*3600))
		p.rect(x0+0.3, x1-0.3, p.y(float64(n)), p.y(0), colHits, "")
	}
	p.vline(in.StartedAt, "#555", "4 3", "change point", 0)
	if !in.OpenedAt.Equal(in.StartedAt) {
		p.vline(in.OpenedAt, colHits, "2 2", "opened", 1)
	}
	p.axes("first spams / hour")
	return p.done()
}

// snapshotChart draws the population's first-seen curve (at-risk
// addresses by the day of their first mail), the incident's hits by the
// same day, and the interval the list was copied in.
func snapshotChart(in *detector.Incident, c *detector.FirstSeenCurve) template.HTML {
	if c == nil || len(c.AtRisk) == 0 {
		return ""
	}
	hits := map[int]int{}
	maxHit := 0
	for h, n := range in.HitsFirstSeen {
		off := h*3600 - c.From.Unix()
		if off < 0 {
			continue // first mailed before the curve begins
		}
		d := int(off / 86400)
		hits[d] += n
		maxHit = max(maxHit, hits[d])
	}
	days := len(c.AtRisk)
	for d := range hits {
		days = max(days, d+1)
	}
	maxPop := 0
	for d := range days {
		n := hits[d]
		if d < len(c.AtRisk) {
			n += c.AtRisk[d]
		}
		maxPop = max(maxPop, n)
	}
	start, end := c.From, c.From.Add(time.Duration(days)*24*time.Hour)
	if !in.StartedAt.IsZero() && in.StartedAt.After(end) {
		end = in.StartedAt.Add(24 * time.Hour).Truncate(24 * time.Hour)
	}
	p := newPlot(start, end, float64(maxPop)*1.05, "first-seen curve and list snapshot")
	if s := in.ListSnapshot; s != nil {
		p.rect(p.xt(s.NotBefore), p.xt(s.NotAfter), padT, padT+p.innerH, colSnapshot, ` fill-opacity="0.25"`)
	}
	for d := range days {
		n := hits[d]
		if d < len(c.AtRisk) {
			n += c.AtRisk[d]
		}
		x0 := p.xt(start.Add(time.Duration(d) * 24 * time.Hour))
		x1 := p.xt(start.Add(time.Duration(d+1) * 24 * time.Hour))
		p.rect(x0+0.2, x1-0.2, p.y(float64(n)), p.y(0), colPop, "")
	}
	// The hits on their own scale (the lower third), so that a hundred
	// hits show beside thousands of addresses.
	if maxHit > 0 {
		scale := p.yMax / 3 / float64(maxHit)
		for d, n := range hits {
			x0 := p.xt(start.Add(time.Duration(d) * 24 * time.Hour))
			x1 := p.xt(start.Add(time.Duration(d+1) * 24 * time.Hour))
			p.rect(x0+0.2, x1-0.2, p.y(float64(n)*scale), p.y(0), colHits, "")
		}
	}
	if s := in.ListSnapshot; s != nil {
		p.vline(s.NotBefore, colSnapshot, "3 2", "", 0)
		p.vline(s.NotAfter, colSnapshot, "3 2", "", 0)
	}
	p.vline(in.StartedAt, "#555", "4 3", "first spam", 0)
	p.axes("addresses / day")
	return p.done()
}
