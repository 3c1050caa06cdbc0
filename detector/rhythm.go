package detector

import (
	"math"
	"time"
)

// rhythm is the learned daily and weekly rhythm of first spams: decayed
// counts over flat-expected counts per hour of the day and per weekday,
// with the scatter of the units (single hours, whole days) behind each
// (empirical-Bayes shrinkage, ebFactors). Persisted flat in detector_state.
type rhythm struct {
	HourC [24]float64 `json:"hour_c"`
	HourE [24]float64 `json:"hour_e"`
	DowC  [7]float64  `json:"dow_c"`
	DowE  [7]float64  `json:"dow_e"`
	// Scatter of the units (hours, days) behind each rhythm factor:
	// decayed Pearson sums of each unit against its group's factor and
	// decayed unit counts.
	HourSS [24]float64 `json:"hour_ss,omitzero"`
	HourN  [24]float64 `json:"hour_n,omitzero"`
	DowSS  [7]float64  `json:"dow_ss,omitzero"`
	DowN   [7]float64  `json:"dow_n,omitzero"`
	DayC   float64     `json:"day_c,omitzero"` // the UTC day so far
	DayE   float64     `json:"day_e,omitzero"`
}

// decay ages the rhythm by one hour (factor dec).
func (p *rhythm) decay(dec float64) {
	for i := range p.HourC {
		p.HourC[i] *= dec
		p.HourE[i] *= dec
		p.HourSS[i] *= dec
		p.HourN[i] *= dec
	}
	for i := range p.DowC {
		p.DowC[i] *= dec
		p.DowE[i] *= dec
		p.DowSS[i] *= dec
		p.DowN[i] *= dec
	}
}

// addHour adds a finished hour of the day hh with count c and flat
// expectation e, and adds it to the day so far.
func (p *rhythm) addHour(hh int, c, e float64) {
	seasonUnit(p.HourC[:], p.HourE[:], p.HourSS[:], p.HourN[:], hh, c, e)
	p.DayC += c
	p.DayE += e
}

// endDay adds the finished UTC day, a weekday ww, to its weekday.
func (p *rhythm) endDay(ww int) {
	seasonUnit(p.DowC[:], p.DowE[:], p.DowSS[:], p.DowN[:], ww, p.DayC, p.DayE)
	p.DayC, p.DayE = 0, 0
}

// factors are a rhythm's factors (mean 1 over each cycle), with the factor
// of the last UTC hour asked for cached.
type factors struct {
	fh [24]float64
	fw [7]float64
	ok bool
	hr int64   // UTC hour of f
	f  float64 // factor of hr
}

// at is the rhythm's factor at t (hour of the day times day of the week),
// computed from st's rhythm and dispersion when they changed (ok false).
func (f *factors) at(t time.Time, st *persisted) float64 {
	if !f.ok {
		f.compute(&st.rhythm, st.phi())
		f.hr = math.MinInt64
	}
	// The factor is constant within a UTC hour: cache it (advance asks
	// once per observation; Hour and Weekday are calendar computations).
	if t.Location() != time.UTC {
		return f.fh[t.Hour()] * f.fw[int(t.Weekday())]
	}
	if h := floorDiv(t.Unix(), 3600); h != f.hr {
		f.hr, f.f = h, f.fh[t.Hour()]*f.fw[int(t.Weekday())]
	}
	return f.f
}

// seasonMinUnits is how many units (decayed) every group of a cycle needs
// before the cycle's factors are used: about three of each weekday, three
// days of each hour. With fewer, one odd day makes a factor (two quiet
// Wednesdays halve every Wednesday's expectation), and the cycle stays
// flat.
const seasonMinUnits = 2.5

// compute turns the rhythm counts into factors with mean 1, so the level
// lives in the rate alone (two unnormalised ratios would each carry the
// level's error, and feed it back into the rate).
func (f *factors) compute(r *rhythm, phi float64) {
	// The daily rhythm is smooth: each hour borrows from its neighbours
	// (weights ¼ ½ ¼, circular), which cuts the noise of its factor to
	// 3/8 and lets the rhythm show after days instead of weeks.
	var c, e, ss [24]float64
	for h := range c {
		p, q := (h+23)%24, (h+1)%24
		c[h] = (r.HourC[p] + 2*r.HourC[h] + r.HourC[q]) / 4
		e[h] = (r.HourE[p] + 2*r.HourE[h] + r.HourE[q]) / 4
		ss[h] = (r.HourSS[p] + 2*r.HourSS[h] + r.HourSS[q]) / 4
	}
	ebFactors(f.fh[:], c[:], e[:], ss[:], r.HourN[:], phi, 3.0/8)
	ebFactors(f.fw[:], r.DowC[:], r.DowE[:], r.DowSS[:], r.DowN[:], phi, 1)
	f.ok = true
}

// ebFactors sets f to the rhythm factors of one cycle (hours of the day,
// days of the week), normalised to mean 1. Each raw factor c/e (counted
// over flat-expected first spams) is shrunk toward the cycle's mean by
// empirical Bayes (James–Stein): its noise is σ²/e, σ² the pooled Pearson
// scatter of the units (single hours, whole days) around their group's
// factor; the spread of the true factors is what the raw factors scatter
// beyond that noise. A group is then trusted in proportion to how much of
// its deviation the cycle's real rhythm can explain. Whole days carry the
// day-to-day swings of spam volume that hourly counts do not show, which is
// why weekdays are measured by days, not hours: four Mondays that happened
// to be busy make a Monday factor only if the other weekdays disagree by
// more than their own day-to-day noise.
//
// noise scales the variance of a raw factor (below 1 when the counts were
// smoothed).
func ebFactors(f, c, e, ss, n []float64, phi, noise float64) {
	var sumSS, units float64
	for g := range f {
		sumSS += ss[g]
		units += n[g]
		if n[g] < seasonMinUnits {
			for g := range f {
				f[g] = 1
			}
			return
		}
	}
	// Pooled unit scatter, with a prior of φ worth one unit per group.
	s2 := (sumSS + phi*float64(len(f))) / (units + float64(len(f)))
	s2 *= noise
	var mean, avgNoise float64
	for g := range f {
		f[g] = (c[g] + 1) / (e[g] + 1)
		mean += f[g] / float64(len(f))
		avgNoise += s2 / (e[g] + 1) / float64(len(f))
	}
	var spread float64
	for g := range f {
		spread += (f[g] - mean) * (f[g] - mean) / float64(len(f)-1)
	}
	tau2 := math.Max(0, spread-avgNoise)
	for g := range f {
		v := s2 / (e[g] + 1)
		f[g] = mean + tau2/(tau2+v)*(f[g]-mean)
	}
	normMean(f)
}

func normMean(f []float64) {
	var s float64
	for _, x := range f {
		s += x / float64(len(f))
	}
	if s <= 0 {
		for i := range f {
			f[i] = 1
		}
		return
	}
	for i := range f {
		f[i] /= s
	}
}

// seasonUnit adds one finished unit (an hour, a day) with count c and flat
// expectation e to group g: its Pearson deviation from the group's factor
// as it stood, then the unit itself.
func seasonUnit(c, e, ss, n []float64, g int, uc, ue float64) {
	if ue >= 0.1 {
		f := (c[g] + 1) / (e[g] + 1)
		ss[g] += math.Min((uc-f*ue)*(uc-f*ue)/(f*ue), 100)
		n[g]++
	}
	c[g] += uc
	e[g] += ue
}

// seedScatter fills in the unit counts and scatter of the rhythm factors
// for a state saved before they were kept (rhythm counts, no units), so an
// upgrade does not flatten a learned rhythm for weeks: as many units as the
// hours learned give (capped at the four-week half-life's steady state),
// each with the scatter of a quasi-Poisson unit, φ.
func (p *persisted) seedScatter(phi float64) { p.rhythm.seedScatter(phi, p.Hours) }

func (p *rhythm) seedScatter(phi float64, hours int64) {
	var n float64
	for g := range p.HourN {
		n += p.HourN[g] + p.DowN[g%7]
	}
	if n > 0 || hours == 0 {
		return
	}
	days := float64(hours) / 24
	for g := range p.HourN {
		if p.HourE[g] > 0 {
			p.HourN[g] = min(days, 40)
			p.HourSS[g] = phi * p.HourN[g]
		}
	}
	for g := range p.DowN {
		if p.DowE[g] > 0 {
			p.DowN[g] = min(days/7, 6.3)
			p.DowSS[g] = phi * p.DowN[g]
		}
	}
}
