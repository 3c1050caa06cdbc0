package detector

import (
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/recipients"
)

type fsEvent struct {
	expBefore float64 // expected count of the run before this event
	t         time.Time
	id        addr.ID
	mi        *msgInfo
	dormant   bool
	novel     bool   // of a novel campaign
	dom       uint16 // the address's domain id (recipients.Outcome.Domain)
	tags      uint64 // its tag mask
	seenHr    int64  // the hour of its first mail (seenHour; 0: not known)
	long      bool   // long dormant
	domName   string // its domain's name ("": unknown)
}

// firstSpam handles the first spam of an at-risk address (it has left the
// at-risk population: Population.Spent).
func (d *Detector) firstSpam(t time.Time, oc *recipients.Outcome, mi *msgInfo, g, gs *group) {
	id, dormant := oc.ID, oc.Dormant
	d.m.firstSpam.Inc()
	d.hrAll++
	nv := novel(g, d.prevGroups[mi.dictKey]) || gs != nil && !d.o.NoNovel && novel(gs, d.prevSend[mi.keys[dimSender]])
	counted := g.counted < perCampaign || nv
	if d.o.Trace != nil {
		d.o.Trace(t, id, d.pop.AtRisk(), counted, nv)
	}
	if !counted {
		// Beyond its campaign's quota: only the share test counts it.
		f := fsEvent{t: t, id: id, mi: mi.complete(), dormant: dormant, dom: oc.Domain, tags: oc.TagMask(), seenHr: d.seenHour(oc.FirstMail), long: oc.LongDormant, domName: d.pop.DomainName(oc.Domain)}
		if d.scopedFor(&f) != nil {
			return
		}
		if opened := d.shareHit(f, t); !opened {
			if in := d.open[KindSurge]; in != nil && in.Trigger == TriggerCUSUMShare {
				d.grow(in, t, f)
			}
		}
		return
	}
	g.counted++
	mi.complete()
	f := fsEvent{t: t, id: id, mi: mi, dormant: dormant, novel: nv, dom: oc.Domain, tags: oc.TagMask(), seenHr: d.seenHour(oc.FirstMail), long: oc.LongDormant, domName: d.pop.DomainName(oc.Domain)}
	// A first spam in the stratum of an open scoped incident is
	// explained by it: it feeds no other test.
	if in := d.scopedFor(&f); in != nil {
		d.growScoped(in, f, t)
		return
	}
	if d.shareHit(f, t) {
		return // it opened a share incident, which holds it
	}
	d.cusumAll.begin()
	d.hrCount++
	d.strataClock()
	d.win.cur().c++
	d.win.longC++
	if nv {
		d.hrNovel++
		d.win.cur().nc++
		d.cusumNovel.begin()
	}
	if d.strataHit(f, t) {
		return
	}
	if d.st.Warm {
		// Learning only: an excess during warm-up must not carry
		// into the first minutes after it.
		return
	}
	d.cusumAll.hit(f, d.o.Rho, d.phiSlowC, d.phiC)
	if nv {
		d.cusumNovel.hit(f, novelRho, d.phiC, d.phiC)
	}
	// An open incident takes the first spams of its basis: all counted
	// ones, or for one the novel-campaign CUSUM opened, the novel ones.
	if in := d.open[KindSurge]; in != nil {
		if nv || in.Trigger != TriggerCUSUMNovel {
			d.grow(in, t, f)
		}
		return
	}
	if in := d.open[KindDictionary]; in != nil && in.Trigger != TriggerDictionaryBurst {
		if nv || in.Trigger != TriggerCUSUMNovel {
			d.grow(in, t, f)
		}
		return
	}
	d.checkOpen(t)
}

func (d *Detector) grow(in *Incident, t time.Time, f fsEvent) {
	in.addFS(&f)
	in.Observed++
	in.UpdatedAt = t
	defer d.publish()
	sc := d.cusumAll.s / d.o.Threshold
	switch in.Trigger {
	case TriggerCUSUMNovel:
		sc = d.cusumNovel.s / d.o.Threshold
	case TriggerCUSUMShare:
		sc = d.cusumShare.s / d.o.Threshold
	}
	if sc > in.Score {
		in.Score = sc
	}
	if t.Sub(d.lastUpd[in.Kind]) >= updateEvery {
		d.lastUpd[in.Kind] = t
		d.out = append(d.out, in.snapshot(EventUpdated, t))
		d.dirtyMeta = true
	}
}

// windowOf is the span of a window trigger (0 for the others): an excess
// it finds is dated no earlier than its window.
func windowOf(trigger string) time.Duration {
	switch trigger {
	case TriggerWindow10m:
		return shortWindow * time.Minute
	case TriggerWindow24h:
		return 24 * time.Hour
	}
	return 0
}

// chernoff is the Poisson tail statistic: -ln P(X ≥ x) ≥ this for mean m.
func chernoff(x, m float64) float64 {
	if x <= m {
		return 0
	}
	if m <= 0 {
		m = 1e-9
	}
	return x*math.Log(x/m) - x + m
}

func (d *Detector) checkOpen(t time.Time) {
	all, nov := &d.cusumAll, &d.cusumNovel
	if d.st.Warm || len(all.run) == 0 {
		return
	}
	events, runExp := all.run, all.exp
	obs := float64(len(all.run))
	phi, phiSlow := d.phiC, d.phiSlowC
	trigger, score := "", 0.0
	if all.s >= d.o.Threshold && all.excess() >= d.o.MinExcess {
		trigger, score = TriggerCUSUM, all.s/d.o.Threshold
	} else if !d.o.NoNovel && nov.s >= d.o.Threshold && nov.excess() >= d.o.MinExcess {
		// The excess of novel campaigns alone: its own run.
		trigger, score = TriggerCUSUMNovel, nov.s/d.o.Threshold
		events, runExp, obs = nov.run, nov.exp, float64(len(nov.run))
	} else if w := d.win.sum(shortWindow); w.c-w.e >= d.o.MinExcess && chernoff(w.c, w.e)/phi >= d.o.WindowThreshold {
		trigger, score = TriggerWindow10m, chernoff(w.c, w.e)/phi/d.o.WindowThreshold
	} else if m := longMargin * d.win.longE; d.win.longC-m >= d.o.MinExcess && chernoff(d.win.longC, m)/phiSlow >= d.o.WindowThreshold {
		// Over a day the expected count is large, so a Poisson test
		// would flag a baseline that is merely 10 % off; test against
		// the expectation with a model-error margin instead.
		trigger, score = TriggerWindow24h, chernoff(d.win.longC, m)/phiSlow/d.o.WindowThreshold
	}
	if trigger == "" {
		return
	}
	// Dictionary or leak? Compare the dictionary evidence of the
	// campaigns behind the excess with its first spams.
	ev := d.dictionaryShare(events)
	first := changePoint(events, runExp)
	// A window test dates the excess no earlier than its window.
	if win := windowOf(trigger); win > 0 {
		for first < len(events)-1 && events[first].t.Before(t.Add(-win)) {
			first++
		}
	}
	run := events[first:]
	if trigger == TriggerCUSUMNovel {
		run = d.campaignStart(run)
	}
	kind := KindSurge
	if ev >= obs {
		kind = KindDictionary
	}
	if in := d.open[kind]; in != nil {
		// The excess belongs to the open incident of its kind.
		for _, f := range run {
			in.addFS(&f)
			in.Observed++
		}
		in.DictionaryEvidence = max(in.DictionaryEvidence, int(ev))
		in.UpdatedAt = t
		d.resetRuns()
		d.dirtyMeta = true
		return
	}
	in := d.newIncident(kind, trigger, t)
	in.StartedAt = run[0].t
	in.Score = score
	in.DictionaryEvidence = int(ev)
	// Expected from the start on: the run's share of its exposure.
	in.Expected = runExp * float64(len(run)) / obs
	for _, f := range run {
		in.addFS(&f)
	}
	in.Observed = float64(len(run))
	d.open[kind] = in
	d.cusumAll.back, d.cusumNovel.back = 0, 0
	d.lastUpd[kind] = t
	if kind == KindSurge {
		// The strata's runs are in it now.
		d.strataReset()
	}
	d.announce(in, t, zap.String("trigger", trigger), zap.Int("recipients", in.Recipients),
		zap.Float64("expected", in.Expected), zap.Time("started_at", in.StartedAt))
}

// changePoint is the index in a CUSUM's run (events, with the run's
// expectation runExp) where its excess starts.
func changePoint(events []fsEvent, runExp float64) int {
	// The excess starts at the change point: the run's event from which
	// on the generalised likelihood ratio of "a higher rate since then"
	// is largest (the rate estimated, not fixed at ρ, so a sharp burst
	// after a mild drift is dated at the burst).
	// Candidates must explain at least half of the run's largest excess,
	// or short campaign clusters inside a drip would pull the change point
	// to the latest cluster.
	maxExcess := 0.0
	for _, f := range events {
		maxExcess = math.Max(maxExcess, float64(len(events))-(runExp-f.expBefore))
	}
	first, best := 0, -1.0
	for i, f := range events {
		n, m := float64(len(events)-i), runExp-f.expBefore
		if n-m < maxExcess/2 {
			continue
		}
		if g := chernoff(n, m); g > best {
			first, best = i, g
		}
	}
	return first
}

// campaignStart dates a novel-campaign excess from its campaigns' first
// first spams: the first recipients of a campaign do not yet make it
// novel, but they are the start of the excess. It prepends the counted
// first spams of the hour before run[0] from the same campaigns or sender
// domains.
func (d *Detector) campaignStart(run []fsEvent) []fsEvent {
	camps, senders := map[string]bool{}, map[string]bool{}
	for _, f := range run {
		camps[f.mi.dictKey] = true
		if sk := f.mi.keys[dimSender]; sk != none {
			senders[sk] = true
		}
	}
	var before []fsEvent
	for _, f := range d.cusumAll.run {
		if !f.t.Before(run[0].t) {
			break
		}
		if run[0].t.Sub(f.t) <= time.Hour && (camps[f.mi.dictKey] || senders[f.mi.keys[dimSender]]) {
			before = append(before, f)
		}
	}
	if len(before) == 0 {
		return run
	}
	return append(before, run...)
}

// resetRuns restarts both CUSUMs from zero.
func (d *Detector) resetRuns() {
	d.cusumAll.reset()
	d.cusumNovel.reset()
	d.cusumShare.reset()
}

// checkResolve closes incidents after a quiet period (hysteresis: opening
// needs a strong excess, closing only the absence of one).
func (d *Detector) checkResolve(t time.Time) {
	for _, k := range kinds {
		in := d.open[k]
		if in == nil || t.Sub(in.OpenedAt) < quietWindow*time.Minute {
			continue
		}
		var quiet bool
		if in.Trigger == TriggerDictionaryBurst {
			c := d.win.sum(60).d
			quiet = c < d.o.DictMin/2 && c < 5*d.st.DictRate
		} else {
			// Evidence that the rate is back, or, where the base
			// rate is too low to gather that evidence soon, half a
			// day without excess.
			w := d.win.sum(12 * 60)
			c, e, ev := w.c, w.e, d.cusumAll.back
			switch in.Trigger {
			case TriggerCUSUMNovel:
				c, e, ev = w.nc, w.ne, d.cusumNovel.back
			case TriggerCUSUMShare:
				c, e, ev = w.a, w.ae, d.cusumShare.back
			}
			quiet = ev >= resolveThreshold || t.Sub(in.OpenedAt) >= 12*time.Hour && c <= 1.5*e+3
		}
		if !quiet {
			continue
		}
		delete(d.open, k)
		d.refreshActive(k)
		if in.Trigger != TriggerDictionaryBurst {
			// Start afresh: the excess just explained must not
			// reopen through the windows that still hold it.
			d.resetRuns()
			d.win.clearCounts()
			d.strataReset()
		}
		d.retire(in, t)
	}
}
