package detector

import (
	"math"
	"time"

	"go.uber.org/zap"
)

// maxQuiet is the longest gap between observations (or ticks) that is
// taken as quiet time; a longer one is a jump (see advance).
const maxQuiet = 24 * time.Hour

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// advance moves the clock to t minute by minute: CUSUM drift, window
// sums, maturation, learning, resolution.
func (d *Detector) advance(t time.Time) {
	if gap := t.Sub(d.clock); gap > maxQuiet && !d.clock.IsZero() {
		// No observation for over a day: a stopped daemon, a hole in a
		// log, or a bogus timestamp. That is missing data, not a quiet
		// day: integrating it would teach the baseline that nothing
		// happened (and a timestamp in the year 9999 would keep this
		// loop busy for hours). Jump: windows and runs restart, the
		// learned rates stay as they were, addresses mature.
		d.log.Info("clock jumped: the gap is not counted as quiet time", zap.Duration("gap", gap), zap.Time("from", d.clock), zap.Time("to", t))
		d.resetRuns()
		d.resetHour()
		d.st.breakBlock()
		d.st.DayC, d.st.DayE = 0, 0
		d.clock = t.Truncate(time.Minute)
		d.onMinute(d.clock, floorDiv(d.clock.Unix(), 60))
	}
	for d.clock.Before(t) {
		var next time.Time
		if floorDiv(d.clock.Unix(), 60) == floorDiv(t.Unix(), 60) {
			// Within the clock's minute (the common case: one step).
			next = t
		} else if next = d.clock.Truncate(time.Minute).Add(time.Minute); next.After(t) {
			next = t
		}
		dt := next.Sub(d.clock).Hours()
		s := d.season.at(d.clock, &d.st)
		r := d.st.Num / d.st.Den * s
		if d.o.RateOverride != nil {
			r = d.o.RateOverride(d.clock)
		}
		n := float64(d.pop.AtRisk())
		e := r * n * dt
		en := d.novelRate(s, r) * n * dt
		d.hrNovExp += en
		d.win.cur().ne += en
		d.cusumNovel.expect(en, novelRho, d.phiC)
		d.hrExp += e
		d.hrFlat += e / s
		d.hrDen += n * s * dt
		d.win.cur().e += e
		d.win.longE += e
		for _, in := range d.open {
			switch in.Trigger {
			case TriggerDictionaryBurst:
			case TriggerCUSUMNovel:
				in.Expected += en
			default:
				in.Expected += e
			}
		}
		if len(d.open) > 0 {
			d.cusumAll.expectBack(e, d.o.Rho, d.phiC)
			d.cusumNovel.expectBack(en, novelRho, d.phiC)
		}
		d.cusumAll.expect(e, d.o.Rho, d.phiSlowC)
		d.clock = next
		if m := next.Unix() / 60; m != d.win.minIdx {
			d.onMinute(next, m)
		}
	}
}

// gauges publishes the slowly changing state (once a simulated minute and
// on Close, not per observation: the hot path stays free of atomics).
func (d *Detector) gauges() {
	sc := d.cusumAll.s
	if !d.o.NoNovel {
		sc = max(sc, d.cusumNovel.s)
	}
	if !d.o.NoShare {
		sc = max(sc, d.cusumShare.s)
	}
	d.m.score.Set(sc / d.o.Threshold)
	d.m.expected.Set(d.rate(d.clock) * float64(d.pop.AtRisk()))
	d.m.tracked.Set(float64(d.pop.Tracked()))
	d.m.atRisk.Set(float64(d.pop.AtRisk()))
}

func (d *Detector) onMinute(t time.Time, m int64) {
	d.win.roll(m)
	if h := m / 60; h != d.hrIdx {
		d.onHour(t, h)
	}
	d.checkResolve(t)
	d.checkResolveScoped(t)
	d.attrMinute(t)
	d.gauges()
}

func (d *Detector) onHour(t time.Time, h int64) {
	newDay := floorDiv(h, 24) != floorDiv(d.hrIdx, 24)
	// Learn the finished hour. While an incident is open the hour counts
	// as expected at most, so an excess never teaches itself as normal.
	{
		dec := math.Pow(0.5, 1/d.o.HalfLife.Hours())
		decS := math.Pow(0.5, 1/(28*24.0))
		e := d.hrExp
		phi := d.st.phi()
		c := math.Min(d.hrCount, e+3*math.Sqrt(phi*e)+2)
		if len(d.open) > 0 {
			c = math.Min(d.hrCount, e)
		} else if e > 0.5 && d.pop.AtRisk() > 0 {
			d.st.dispersion.addHour(d.hrCount, e)
		}
		if len(d.open) > 0 || e <= 0.5 || d.pop.AtRisk() == 0 {
			// A block is four consecutive ordinary hours.
			d.st.breakBlock()
		}
		d.st.Num = d.st.Num*dec + c
		d.st.Den = d.st.Den*dec + d.hrDen
		en := d.hrNovExp
		cn := math.Min(d.hrNovel, en+3*math.Sqrt(phi*en)+2)
		if len(d.open) > 0 || d.cusumNovel.s > 0 {
			// Open, or gathering evidence: a drip must not teach
			// itself as the novel rate before it alarms.
			cn = math.Min(d.hrNovel, en)
		}
		d.st.NovNum = d.st.NovNum*dec + cn
		d.st.NovDen = d.st.NovDen*dec + d.hrDen
		prev := time.Unix(d.hrIdx*3600, 0).UTC()
		hh, ww := prev.Hour(), int(prev.Weekday())
		d.st.decay(decS)
		d.season.ok = false
		d.st.rhythm.addHour(hh, c, d.hrFlat)
		if floorDiv(h, 24) != floorDiv(d.hrIdx, 24) {
			d.st.endDay(ww)
		}
		dc := math.Min(d.hrDict, 3*d.st.DictRate+10)
		d.st.DictRate = d.st.DictRate*dec + dc*(1-dec)
		d.st.Hours++
		d.phiC, d.phiSlowC = d.st.phi(), d.st.phiSlow()
		d.shareHour()
	}
	if ce := d.log.Check(zap.DebugLevel, "hour"); ce != nil {
		ce.Write(zap.Time("hour", time.Unix(d.hrIdx*3600, 0).UTC()), zap.Float64("counted", d.hrCount), zap.Float64("first_spams", d.hrAll), zap.Float64("expected", d.hrExp),
			zap.Float64("share_expected", d.hrShareE), zap.Float64("share", d.st.shareQ()), zap.Float64("share_phi", d.phiShare), zap.Float64("share_cusum", d.cusumShare.s),
			zap.Float64("phi", d.st.phi()), zap.Int("at_risk", d.pop.AtRisk()), zap.Float64("cusum", d.cusumAll.s), zap.Float64("dictionary", d.hrDict), zap.Int("open", len(d.open)))
	}
	if d.o.OnHour != nil {
		d.o.OnHour(Hour{Start: time.Unix(d.hrIdx*3600, 0).UTC(), FirstSpams: d.hrAll, Counted: d.hrCount, Expected: d.hrExp,
			Phi: d.st.phi(), AtRisk: d.pop.AtRisk(), Open: len(d.open), Warm: d.st.Warm})
	}
	d.resetHour()
	d.hrIdx = h
	for k, v := range d.dictGroups {
		if v *= 0.794; v < 1 { // 0.794³ ≈ 1/2
			delete(d.dictGroups, k)
		} else {
			d.dictGroups[k] = v
		}
	}
	d.prevGroups, d.groups = d.groups, d.prevGroups
	d.prevSend, d.senders = d.senders, d.prevSend
	clear(d.senders)
	clear(d.groups)
	// Maturation, and once a day retention.
	d.strataHour()
	d.pop.Mature(h)
	d.publishCurve()
	if newDay {
		d.forget(t)
	}
	d.strataRefresh()
	d.m.atRisk.Set(float64(d.pop.AtRisk()))
	if d.st.Warm && !d.st.WarmUntil.IsZero() && !t.Before(d.st.WarmUntil) {
		d.st.Warm = false
		d.m.warmup.Set(0)
		// Windows filled under the early baseline are not evidence.
		d.win.clear()
		d.strataReset()
		d.log.Info("warm-up over", zap.Int("at_risk", d.pop.AtRisk()))
	}
	d.dirtyMeta = true
}

// resetHour clears the current hour's learning sums.
func (d *Detector) resetHour() {
	d.hrCount, d.hrExp, d.hrFlat, d.hrDen, d.hrDict = 0, 0, 0, 0, 0
	d.hrNovel, d.hrNovExp, d.hrAll = 0, 0, 0
	d.hrShareN, d.hrShareE = 0, 0
}

// forget drops the addresses without mail for Options.ForgetAfter.
func (d *Detector) forget(t time.Time) {
	n, err := d.pop.Forget(d.o.Store, t)
	if err != nil {
		d.m.errors.Inc()
		d.log.Error("forgetting silent addresses failed", zap.Error(err))
	}
	if n > 0 {
		d.m.forgotten.Add(float64(n))
		d.log.Info("forgot addresses without mail", zap.Int("forgotten", n), zap.Duration("forget_after", d.o.ForgetAfter))
	}
}
