package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
)

// chart is one SVG chart, laid out in Go: the template only writes its
// elements. Coordinates are in the viewBox (W × H); the SVG scales to the
// page's width.
type chart struct {
	Title          string
	W, H           int
	PX, PY, PW, PH float64 // the plot area
	YLabel         string
	Sqrt           bool
	Band           []string // polygons (path data), one per run of hours
	Expected       string   // path data
	Counted        string
	All            string // all first spams, when some were not counted
	Clipped        bool   // All goes beyond the top
	Line           string // the at-risk chart's line
	Above          []dot  // hours above the band
	Warm           *box
	Spans          []spanBox
	XTicks, YTicks []tick
	Empty          string // said instead of a chart
}

type dot struct{ X, Y string }

type box struct{ X, W string }

type spanBox struct {
	N                     int
	Kind, Label, Title    string
	SX, SW, OX, OW, LX    string
	LY                    string
	Ongoing, Started      bool
	LineX, LineY1, LineY2 string
}

type tick struct {
	Pos   string
	Label string
}

const (
	chartW    = 720
	chartH    = 260
	atRiskH   = 150
	padLeft   = 46.0
	padRight  = 8.0
	padTop    = 22.0
	padBottom = 24.0
)

func f1(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// xScale maps time to the plot's x.
type xScale struct {
	from, to time.Time
	x, w     float64
}

func (s xScale) at(t time.Time) float64 {
	if t.Before(s.from) {
		t = s.from
	}
	if t.After(s.to) {
		t = s.to
	}
	return s.x + s.w*t.Sub(s.from).Seconds()/s.to.Sub(s.from).Seconds()
}

// yScale maps a count to the plot's y: linear, or square root when the
// largest hours would flatten the rest.
type yScale struct {
	max, y, h float64
	sqrt      bool
}

func (s yScale) at(v float64) float64 {
	if !(v > 0) {
		v = 0
	}
	v = math.Min(v, s.max)
	if s.max <= 0 {
		return s.y + s.h
	}
	if s.sqrt {
		return s.y + s.h - s.h*math.Sqrt(v)/math.Sqrt(s.max)
	}
	return s.y + s.h - s.h*v/s.max
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

// window returns the recorded hours that start in [from, to).
func (r *Recorder) window(from, to time.Time) []detector.Hour {
	var out []detector.Hour
	for _, h := range r.hours {
		if !h.Start.Before(from) && h.Start.Before(to) {
			out = append(out, h)
		}
	}
	return out
}

// hourChart is first spams per hour against the expected band, with the
// incidents over it.
func (r *Recorder) hourChart(from, to time.Time, spans []span, title string) *chart {
	c := &chart{Title: title, W: chartW, H: chartH, PX: padLeft, PY: padTop, PW: chartW - padLeft - padRight, PH: chartH - padTop - padBottom}
	hs := r.window(from, to)
	if len(hs) == 0 || !to.After(from) {
		c.Empty = "no hour in this range"
		return c
	}
	xs := xScale{from: from, to: to, x: c.PX, w: c.PW}
	type hb struct{ lo, hi float64 }
	bands := make([]hb, len(hs))
	var top, maxHi []float64
	for i, h := range hs {
		lo, hi := Band(finite(h.Expected), finite(h.Phi))
		bands[i] = hb{lo, hi}
		// All first spams are drawn clipped: a big campaign's hours
		// beyond its quota would flatten what the tests compare.
		top = append(top, finite(h.Counted), hi)
		maxHi = append(maxHi, hi)
	}
	ymax := 0.0
	for _, v := range top {
		ymax = math.Max(ymax, v)
	}
	if ymax < 4 {
		ymax = 4
	}
	// The square root scale when the band would take a tenth of the
	// height or less.
	if q := quantile(maxHi, 0.95); q > 0 && ymax > 10*q {
		c.Sqrt = true
	}
	ymax = niceCeil(ymax)
	ys := yScale{max: ymax, y: c.PY, h: c.PH, sqrt: c.Sqrt}
	c.YLabel = "first spams / hour"
	if c.Sqrt {
		c.YLabel += " (√ scale)"
	}
	// Runs of consecutive hours (a clock jump leaves a gap).
	var exp, cnt, all strings.Builder
	var upper, lower []string
	flush := func() {
		if len(upper) > 0 {
			var b strings.Builder
			b.WriteString("M")
			b.WriteString(strings.Join(upper, "L"))
			for i := len(lower) - 1; i >= 0; i-- {
				b.WriteString("L")
				b.WriteString(lower[i])
			}
			b.WriteString("Z")
			c.Band = append(c.Band, b.String())
		}
		upper, lower = upper[:0], lower[:0]
	}
	differ := false
	for i, h := range hs {
		x0, x1 := xs.at(h.Start), xs.at(h.Start.Add(time.Hour))
		fresh := i == 0 || !h.Start.Equal(hs[i-1].Start.Add(time.Hour))
		if fresh {
			flush()
		}
		step := func(b *strings.Builder, v float64) {
			y := f1(ys.at(v))
			if fresh {
				fmt.Fprintf(b, "M%s %sH%s", f1(x0), y, f1(x1))
			} else {
				fmt.Fprintf(b, "V%sH%s", y, f1(x1))
			}
		}
		step(&exp, finite(h.Expected))
		step(&cnt, finite(h.Counted))
		step(&all, finite(h.FirstSpams))
		if h.FirstSpams != h.Counted {
			differ = true
		}
		lo, hi := bands[i].lo, bands[i].hi
		upper = append(upper, f1(x0)+" "+f1(ys.at(hi)), f1(x1)+" "+f1(ys.at(hi)))
		lower = append(lower, f1(x0)+" "+f1(ys.at(lo)), f1(x1)+" "+f1(ys.at(lo)))
		if finite(h.Counted) > hi && !h.Warm && len(c.Above) < 5000 {
			c.Above = append(c.Above, dot{f1((x0 + x1) / 2), f1(ys.at(h.Counted))})
		}
	}
	flush()
	c.Expected, c.Counted = exp.String(), cnt.String()
	if differ {
		c.All = all.String()
		for _, h := range hs {
			if finite(h.FirstSpams) > ymax {
				c.Clipped = true
			}
		}
	}
	r.decorate(c, xs, spans)
	c.YTicks = yTicks(ys)
	return c
}

// atRiskChart is the at-risk population at the end of each hour.
func (r *Recorder) atRiskChart(from, to time.Time, spans []span) *chart {
	c := &chart{Title: "at-risk addresses (established, never spammed)", W: chartW, H: atRiskH, PX: padLeft, PY: padTop, PW: chartW - padLeft - padRight, PH: atRiskH - padTop - padBottom}
	hs := r.window(from, to)
	if len(hs) == 0 {
		c.Empty = "no hour in this range"
		return c
	}
	xs := xScale{from: from, to: to, x: c.PX, w: c.PW}
	ymax := 1.0
	for _, h := range hs {
		ymax = math.Max(ymax, float64(h.AtRisk))
	}
	ys := yScale{max: niceCeil(ymax), y: c.PY, h: c.PH}
	var b strings.Builder
	for i, h := range hs {
		x := f1(xs.at(h.Start.Add(time.Hour)))
		y := f1(ys.at(float64(h.AtRisk)))
		if i == 0 || !h.Start.Equal(hs[i-1].Start.Add(time.Hour)) {
			fmt.Fprintf(&b, "M%s %s", f1(xs.at(h.Start)), y)
		}
		fmt.Fprintf(&b, "L%s %s", x, y)
	}
	c.Line = b.String()
	c.YLabel = "addresses"
	r.decorate(c, xs, spans)
	c.YTicks = yTicks(ys)
	return c
}

// decorate adds the warm-up, the incidents and the time axis.
func (r *Recorder) decorate(c *chart, xs xScale, spans []span) {
	var warmEnd time.Time
	for _, h := range r.hours {
		if h.Warm {
			warmEnd = h.Start.Add(time.Hour)
		}
	}
	if warmEnd.After(xs.from) {
		x0, x1 := xs.at(xs.from), xs.at(warmEnd)
		if x1 > x0 {
			c.Warm = &box{X: f1(x0), W: f1(x1 - x0)}
		}
	}
	// Labels in up to three rows, so that neighbours do not overlap.
	lastX := []float64{-1e9, -1e9, -1e9}
	for _, s := range spans {
		if !s.End.After(xs.from) || !s.Start.Before(xs.to) {
			continue
		}
		sx, ox, ex := xs.at(s.Start), xs.at(s.Open), xs.at(s.End)
		ow := math.Max(ex-ox, 1.5)
		b := spanBox{N: s.N, Kind: s.Kind, Label: s.Label, Title: s.Title, Ongoing: s.Ongoing,
			SX: f1(sx), SW: f1(ox - sx), OX: f1(ox), OW: f1(ow), Started: ox-sx >= 0.5,
			LineX: f1(ox), LineY1: f1(c.PY), LineY2: f1(c.PY + c.PH)}
		row := 0
		for row < len(lastX)-1 && ox-lastX[row] < 16 {
			row++
		}
		lastX[row] = ox
		b.LX, b.LY = f1(ox+2), f1(c.PY-10+float64(row)*11)
		if row > 0 {
			b.LY = f1(c.PY + 2 + float64(row)*11)
		}
		c.Spans = append(c.Spans, b)
	}
	c.XTicks = xTicks(xs)
}

// xTicks puts ticks on day boundaries (every 1, 2 or 7 days) or every few
// hours, at most about 10.
func xTicks(xs xScale) []tick {
	d := xs.to.Sub(xs.from)
	var step time.Duration
	switch {
	case d <= 36*time.Hour:
		step = 3 * time.Hour
	case d <= 4*24*time.Hour:
		step = 12 * time.Hour
	case d <= 10*24*time.Hour:
		step = 24 * time.Hour
	case d <= 20*24*time.Hour:
		step = 48 * time.Hour
	case d <= 80*24*time.Hour:
		step = 7 * 24 * time.Hour
	default:
		step = time.Duration(math.Ceil(d.Hours()/24/10)) * 24 * time.Hour
	}
	t := xs.from.UTC().Truncate(24 * time.Hour)
	if step == 7*24*time.Hour {
		for t.Weekday() != time.Monday {
			t = t.Add(24 * time.Hour)
		}
	}
	var out []tick
	for ; !t.After(xs.to) && len(out) < 40; t = t.Add(step) {
		if t.Before(xs.from) {
			continue
		}
		l := t.Format("Jan 2")
		if step < 24*time.Hour && t.Hour() != 0 {
			l = t.Format("15h")
		}
		out = append(out, tick{Pos: f1(xs.at(t)), Label: l})
	}
	return out
}

// yTicks are 1-2-5 values, spaced at least 18 units apart.
func yTicks(ys yScale) []tick {
	var cand []float64
	if ys.sqrt {
		for m := 1.0; m <= ys.max; m *= 10 {
			cand = append(cand, m, 2*m, 5*m)
		}
	} else {
		st := niceStep(ys.max / 4)
		for v := st; v <= ys.max*1.0001; v += st {
			cand = append(cand, v)
		}
	}
	out := []tick{{Pos: f1(ys.at(0)), Label: "0"}}
	last := ys.at(0)
	for _, v := range cand {
		if v > ys.max*1.0001 {
			break
		}
		y := ys.at(v)
		if last-y < 18 {
			continue
		}
		out = append(out, tick{Pos: f1(y), Label: short(v)})
		last = y
	}
	return out
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// niceStep is the 1-2-5 value at or above v.
func niceStep(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	m := math.Pow(10, math.Floor(math.Log10(v)))
	for _, f := range []float64{1, 2, 5, 10} {
		if f*m >= v {
			return math.Max(f*m, 1)
		}
	}
	return 10 * m
}

// niceCeil rounds v up to a multiple of a 1-2-5 step.
func niceCeil(v float64) float64 {
	st := niceStep(v / 5)
	return math.Ceil(v/st) * st
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}
