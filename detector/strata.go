package detector

import (
	"encoding/json"
	"math"
	"math/bits"
	"time"

	"go.uber.org/zap"
)

// Stratified detection: the first-spam test of the whole population run
// again for every recipient domain and every source tag, so that the leak
// of a small domain's list is not averaged into the whole.
//
//   - A stratum is tested against the whole population's own first spams,
//     not against the model of their rate: every counted first spam
//     anywhere expects its share in each stratum, the stratum's at-risk
//     population over the whole one, times the stratum's ratio (a
//     conditional test). Spam volume swings by the day and comes in waves
//     of campaigns; such a wave raises every stratum's count by the same
//     factor, which a test against the model would take, in a stratum,
//     for a leak (a tenfold CUSUM does not care that a fourfold hour is
//     everywhere). A leak in one stratum raises its share; a leak over
//     everyone raises all of them alike and is the global tests' case.
//   - The ratio is learnt from the stratum's counted first spams against
//     what its share expected, shrunk toward 1 by a prior worth
//     stratumPrior expected first spams (a Gamma-Poisson posterior mean),
//     so a small stratum does not learn its own noise and a large one its
//     real character. Counts decay with a 28-day half-life.
//   - The clock is shared by all strata: the sum of 1/N over the counted
//     first spams (N the at-risk population then), and a stratum is
//     brought up to date only when it is touched (a first spam in it, the
//     hourly learning, an open incident's minute check) from the at-risk
//     count it had since the last time. A one-sided CUSUM only falls
//     between hits, so one lump is the same as many steps.
//   - Each stratum runs one Poisson CUSUM tuned for a rate ρ = stratumRho
//     times its baseline (a small list's leak multiplies its rate many
//     times). The false-alarm rate is controlled over all strata
//     together: the threshold is Options.Threshold + ln K for K watched
//     strata (the CUSUM's run length to a false alarm grows as e^h, so
//     K of them at h + ln K alarm about as often as one at h). A stratum
//     is watched while it holds at least one and at most half of the
//     at-risk population (beyond that it is the whole population, which
//     the global tests watch).
//   - One surge at a time per first spam: a first spam goes to the open
//     global surge incident if there is one, else to an open scoped
//     incident whose stratum it is in, and only otherwise feeds the tests.
//     A scoped incident opening takes its run out of the global tests
//     (their CUSUMs restart, its first spams leave the windows) and out
//     of the other strata that hold them; the global surge opening
//     restarts every stratum's CUSUM. So the same first spams never open
//     two incidents.
//   - A scoped incident resolves like a global one: evidence that its
//     rate is back (the reverse CUSUM), or, since a small stratum gathers
//     that slowly, 12 hours after opening with no excess over the last 12.

const (
	stratumRho      = 10
	stratumPrior    = 10  // expected first spams: the prior weight of the ratio 1
	stratumMaxShare = 0.5 // of the at-risk population, for a watched stratum
	stratumDecay    = 28 * 24.0
	// StratumMinExcess is the least excess of first spams over their
	// expectation that opens a scoped incident (the global tests need
	// Options.MinExcess).
	stratumMinExcess = 6
	recentHours      = 12
	stratumBlock     = 2  // expected first spams in a block of the dispersion
	stratumPhiPrior  = 12 // blocks
	// stratumPhiDecay is the half-life of the dispersion, in blocks.
	stratumPhiDecay = 60
	metaStrata      = "detector_strata"
)

// Scopes of an incident (Scope's keys).
const (
	ScopeDomain = "domain"
	ScopeTag    = "tag"
)

// Scope is the part of the population an incident is about: one recipient
// domain or one source tag. An incident about the whole population has
// none.
type Scope struct {
	Domain string `json:"domain,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// String is "domain=NAME" or "tag=NAME".
func (s *Scope) String() string {
	if s.Domain != "" {
		return ScopeDomain + "=" + s.Domain
	}
	return ScopeTag + "=" + s.Tag
}

// stratum is one recipient domain or source tag watched on its own.
type stratum struct {
	scope Scope
	dom   uint16 // domain strata: the domain id
	tag   int    // tag strata: the tag's index in the lists; -1 for domains

	c       cusum
	mark    float64 // strata.rInt when last brought up to date
	n       float64 // the at-risk count since then
	watched bool
	phi     float64 // its dispersion (stratumPhi)

	// learnt: counted first spams and what the global rate expected of
	// them (ratio 1), decaying; the dispersion's Pearson sum over blocks
	// and their number, decaying, and the block being filled
	C, E     float64
	PN, PD   float64
	blC, blE float64
	// this hour: counted first spams, expected at ratio 1, expected
	hrC, hrBase, hrE float64
	recent           [recentHours]struct{ c, e float64 }
	in               *Incident // the open scoped incident
}

// ratio is the stratum's learnt rate over the global one.
func (s *stratum) ratio() float64 { return (s.C + stratumPrior) / (s.E + stratumPrior) }

// recentSum is the counted first spams and their expectation over the
// last recentHours hours and this one.
func (s *stratum) recentSum() (c, e float64) {
	c, e = s.hrC, s.hrE
	for _, r := range s.recent {
		c += r.c
		e += r.e
	}
	return c, e
}

// strata is the Detector's stratified state.
type strata struct {
	on     bool
	doms   []*stratum // by domain id (0, unknown: none)
	tags   []*stratum // by tag index
	rInt   float64    // Σ 1/N over the counted first spams: each one's share per at-risk address
	k      int        // watched strata
	thr    float64    // the threshold for K
	scoped []*Incident
	saved  map[string][4]float64 // learnt C, E by scope, until the stratum exists
}

func (s *strata) all(fn func(*stratum)) {
	for _, st := range s.doms {
		if st != nil {
			fn(st)
		}
	}
	for _, st := range s.tags {
		if st != nil {
			fn(st)
		}
	}
}

// risk is the stratum's at-risk count now.
func (d *Detector) stratumRisk(s *stratum) float64 {
	if s.tag < 0 {
		return float64(d.pop.DomainRisk(s.dom))
	}
	if r := d.pop.TagRisk(); s.tag < len(r) {
		return float64(r[s.tag])
	}
	return 0
}

// strataClock moves the strata's clock by one counted first spam of the
// whole population: each at-risk address's share of it.
func (d *Detector) strataClock() {
	if n := d.pop.AtRisk(); n > 0 {
		d.strat.rInt += 1 / float64(n+1) // n+1: the address just spent
	}
}

// catchUp brings stratum s up to date: the expectation since it was last
// touched, at the at-risk count it had since.
func (d *Detector) catchUp(s *stratum) {
	if dr := d.strat.rInt - s.mark; dr > 0 && s.n > 0 {
		base := s.n * dr
		e := base * s.ratio()
		s.hrBase += base
		s.hrE += e
		s.c.expect(e, stratumRho, s.phi)
		if s.in != nil {
			s.c.expectBack(e, stratumRho, s.phi)
			s.in.Expected += e
		}
	}
	s.mark = d.strat.rInt
	s.n = d.stratumRisk(s)
	s.phi = d.stratumPhi(s)
}

// stratumPhi is the dispersion of stratum s: Pearson's ratio learnt over
// blocks of hours that each expected at least stratumBlock first spams,
// with a prior worth stratumPhiPrior blocks. The prior assumes the whole
// population's dispersion (phiSlow) is the model's error, a share of the
// expectation (the volume swings from day to day): Pearson's ratio is then
// 1 + cv²·e, and a stratum expecting a fraction of the whole has that
// fraction of the excess dispersion. The learnt value only ever raises it:
// a small stratum keeps about the prior (its blocks are few and long); a
// large one may learn that it has more (spam comes in waves of campaigns,
// which a share does not dilute as much), while its blocks, shorter than
// the whole population's 4 hours, miss the day-level swings and would
// learn too little.
func (d *Detector) stratumPhi(s *stratum) float64 {
	share := 0.0
	if total := float64(d.pop.AtRisk()); total > 0 {
		share = min(1, s.n/total)
	}
	prior := 1 + (d.phiSlowC-1)*share
	// Never below the prior: short blocks miss the day-level swings that
	// the whole population's 4-hour blocks see.
	return math.Max(prior, math.Min((s.PN+stratumPhiPrior*prior)/(s.PD+stratumPhiPrior), 20))
}

func (d *Detector) newStratum(sc Scope, dom uint16, tag int) *stratum {
	s := &stratum{scope: sc, dom: dom, tag: tag, mark: d.strat.rInt}
	if v, ok := d.strat.saved[sc.String()]; ok {
		s.C, s.E, s.PN, s.PD = v[0], v[1], v[2], v[3]
		delete(d.strat.saved, sc.String())
	}
	s.n = d.stratumRisk(s)
	return s
}

// domStratum is the stratum of domain id dom (nil for unknown).
func (d *Detector) domStratum(dom uint16) *stratum {
	if dom == 0 || !d.o.PerDomain {
		return nil
	}
	for int(dom) >= len(d.strat.doms) {
		d.strat.doms = append(d.strat.doms, nil)
	}
	s := d.strat.doms[dom]
	if s == nil {
		s = d.newStratum(Scope{Domain: d.pop.DomainName(dom)}, dom, -1)
		d.strat.doms[dom] = s
	}
	return s
}

// eachStratum calls fn for the strata of a first spam: its domain's and its
// tags'.
func (d *Detector) eachStratum(f *fsEvent, fn func(*stratum)) {
	if s := d.domStratum(f.dom); s != nil {
		fn(s)
	}
	for m := f.tags; m != 0; m &= m - 1 {
		if i := bits.TrailingZeros64(m); i < len(d.strat.tags) && d.strat.tags[i] != nil {
			fn(d.strat.tags[i])
		}
	}
}

// scopedFor is the open scoped incident a first spam belongs to, if any.
func (d *Detector) scopedFor(f *fsEvent) *Incident {
	var in *Incident
	if len(d.strat.scoped) == 0 {
		return nil
	}
	d.eachStratum(f, func(s *stratum) {
		if in == nil && s.in != nil {
			in = s.in
		}
	})
	return in
}

// strataLearn counts a first spam in its strata's hour (learning only).
func (d *Detector) strataLearn(f *fsEvent) {
	d.eachStratum(f, func(s *stratum) {
		d.catchUp(s)
		s.hrC++
	})
}

// strataHit counts a first spam in its strata and, out of warm-up and
// without an open global surge, adds it to their CUSUMs; it reports
// whether a scoped incident opened on it.
func (d *Detector) strataHit(f fsEvent, t time.Time) bool {
	if !d.strat.on {
		return false
	}
	hit := !d.st.Warm && d.open[KindSurge] == nil
	var fire *stratum
	d.eachStratum(&f, func(s *stratum) {
		d.catchUp(s)
		s.hrC++
		s.c.begin()
		if !hit || !s.watched {
			return
		}
		s.c.hit(f, stratumRho, s.phi, s.phi)
		if fire == nil && s.c.s >= d.strat.thr && s.c.excess() >= stratumMinExcess {
			fire = s
		}
	})
	return fire != nil && d.openScoped(fire, t)
}

// growScoped adds a first spam to the open scoped incident of its stratum.
func (d *Detector) growScoped(in *Incident, f fsEvent, t time.Time) {
	d.eachStratum(&f, func(s *stratum) {
		d.catchUp(s)
		s.hrC++
		if s.in == in {
			s.c.begin()
			s.c.hit(f, stratumRho, s.phi, s.phi)
			in.Score = max(in.Score, s.c.s/d.strat.thr)
		}
	})
	in.addFS(&f)
	in.Observed++
	in.UpdatedAt = t
	defer d.publish()
	if t.Sub(d.lastUpd[in.ID]) >= updateEvery {
		d.lastUpd[in.ID] = t
		d.out = append(d.out, in.snapshot(EventUpdated, t))
		d.dirtyMeta = true
	}
}

// openScoped opens the incident of stratum s, whose CUSUM crossed its
// threshold; false when its excess is a dictionary attack's (the global
// dictionary test's business).
func (d *Detector) openScoped(s *stratum, t time.Time) bool {
	events, runExp := s.c.run, s.c.exp
	if d.dictionaryShare(events) >= float64(len(events)) {
		s.c.reset()
		return false
	}
	run := events[changePoint(events, runExp):]
	trigger := TriggerCUSUMDomain
	if s.tag >= 0 {
		trigger = TriggerCUSUMTag
	}
	in := d.newIncident(KindSurge, trigger, t)
	sc := s.scope
	in.Scope = &sc
	in.StartedAt = run[0].t
	in.Score = s.c.s / d.strat.thr
	in.Expected = runExp * float64(len(run)) / float64(len(events))
	for _, f := range run {
		in.addFS(&f)
	}
	in.Observed = float64(len(run))
	s.in, in.st = in, s
	s.c.back = 0
	d.strat.scoped = append(d.strat.scoped, in)
	d.lastUpd[in.ID] = t
	// Its first spams are explained: out of the global tests and of the
	// other strata that hold them.
	d.resetRuns()
	for _, f := range run {
		d.win.uncount(f.t, f.novel)
		d.eachStratum(&f, func(o *stratum) {
			if o != s && o.in == nil {
				o.c.reset()
			}
		})
	}
	d.announce(in, t, zap.String("scope", sc.String()), zap.String("trigger", trigger), zap.Int("recipients", in.Recipients),
		zap.Float64("expected", in.Expected), zap.Time("started_at", in.StartedAt), zap.Int("strata", d.strat.k))
	return true
}

// dictionaryShare is the dictionary evidence of the campaigns behind
// events.
func (d *Detector) dictionaryShare(events []fsEvent) float64 {
	seen := map[string]bool{}
	ev := 0.0
	for _, f := range events {
		if k := f.mi.dictKey; !seen[k] {
			seen[k] = true
			ev += d.dictGroups[k]
		}
	}
	return ev
}

// strataReset restarts every stratum's CUSUM (the global surge took their
// first spams).
func (d *Detector) strataReset() {
	d.strat.all(func(s *stratum) {
		if s.in == nil {
			s.c.reset()
		}
	})
}

// strataHour ends hour for every stratum: learning, the recent hours. It
// runs before maturation changes the at-risk counts.
func (d *Detector) strataHour() {
	if !d.strat.on {
		return
	}
	dec := math.Pow(0.5, 1/stratumDecay)
	phi := d.st.phi()
	d.strat.all(func(s *stratum) {
		d.catchUp(s)
		c := math.Min(s.hrC, s.hrE+3*math.Sqrt(phi*s.hrE)+2)
		if s.in != nil || d.open[KindSurge] != nil {
			// An excess being explained must not teach itself as
			// the stratum's rate.
			c = math.Min(s.hrC, s.hrE)
		}
		// The ratio's evidence: counts at ratio 1 against their
		// expectation at ratio 1.
		s.C = s.C*dec + c
		s.E = s.E*dec + s.hrBase
		// The dispersion, from ordinary hours only.
		if s.in != nil || len(d.open) > 0 {
			s.blC, s.blE = 0, 0
		} else if s.blC, s.blE = s.blC+s.hrC, s.blE+s.hrE; s.blE >= stratumBlock {
			decB := math.Pow(0.5, 1/float64(stratumPhiDecay))
			s.PN = s.PN*decB + math.Min((s.blC-s.blE)*(s.blC-s.blE)/s.blE, 100)
			s.PD = s.PD*decB + 1
			s.blC, s.blE = 0, 0
		}
		copy(s.recent[1:], s.recent[:recentHours-1])
		s.recent[0].c, s.recent[0].e = s.hrC, s.hrE
		s.hrC, s.hrBase, s.hrE = 0, 0, 0
	})
}

// strataRefresh takes the at-risk counts after maturation (or a reload of
// the lists), makes the strata of new domains, and recounts the watched
// strata and their threshold.
func (d *Detector) strataRefresh() {
	if !d.strat.on {
		return
	}
	for dom := 1; d.o.PerDomain && dom < d.pop.Domains(); dom++ {
		if d.pop.DomainRisk(uint16(dom)) > 0 {
			d.domStratum(uint16(dom))
		}
	}
	total := float64(d.pop.AtRisk())
	k := 0
	d.strat.all(func(s *stratum) {
		d.catchUp(s)
		s.watched = s.n >= 1 && s.n <= stratumMaxShare*total
		if s.watched {
			k++
		}
	})
	d.strat.k = k
	d.strat.thr = d.o.Threshold + math.Log(max(1, float64(k)))
	d.attachScoped()
}

// strataTags rebuilds the tag strata for the lists in use (after a load or
// reload: tags may have come, gone or moved), keeping what each tag learnt.
func (d *Detector) strataTags() {
	if !d.strat.on {
		return
	}
	old := map[string]*stratum{}
	for _, s := range d.strat.tags {
		if s != nil {
			d.catchUp(s)
			old[s.scope.Tag] = s
		}
	}
	names := d.attr.lists.Tags()
	d.strat.tags = make([]*stratum, len(names))
	for i, name := range names {
		if s := old[name]; s != nil {
			s.tag = i
			s.n = d.stratumRisk(s)
			d.strat.tags[i] = s
			delete(old, name)
			continue
		}
		d.strat.tags[i] = d.newStratum(Scope{Tag: name}, 0, i)
	}
	for _, s := range old {
		// A tag gone from the lists: its learnt state waits in case
		// it comes back; its open incident, if any, resolves alone.
		d.strat.saved[s.scope.String()] = [4]float64{s.C, s.E, s.PN, s.PD}
		if s.in != nil {
			s.in.st = nil
		}
	}
	d.strataRefresh()
}

// attachScoped gives the open scoped incidents loaded from the store (or
// whose tag went away and came back) their stratum.
func (d *Detector) attachScoped() {
	for _, in := range d.strat.scoped {
		if in.st != nil {
			continue
		}
		var s *stratum
		if in.Scope.Domain != "" {
			if id, ok := d.pop.DomainID(in.Scope.Domain); ok {
				s = d.domStratum(id)
			}
		} else {
			for _, ts := range d.strat.tags {
				if ts != nil && ts.scope.Tag == in.Scope.Tag {
					s = ts
				}
			}
		}
		if s != nil && s.in == nil {
			in.st, s.in = s, in
		}
	}
}

// checkResolveScoped closes the scoped incidents whose excess is over.
func (d *Detector) checkResolveScoped(t time.Time) {
	kept := d.strat.scoped[:0]
	for _, in := range d.strat.scoped {
		s := in.st
		quiet := false
		if t.Sub(in.OpenedAt) >= quietWindow*time.Minute {
			if s == nil {
				quiet = t.Sub(in.UpdatedAt) >= recentHours*time.Hour
			} else {
				d.catchUp(s)
				c, e := s.recentSum()
				quiet = s.c.back >= resolveThreshold || t.Sub(in.OpenedAt) >= recentHours*time.Hour && c <= 1.5*e+3
			}
		}
		if !quiet {
			kept = append(kept, in)
			continue
		}
		if s != nil {
			s.in = nil
			s.c.reset()
		}
		in.st = nil
		delete(d.lastUpd, in.ID)
		d.retire(in, t)
	}
	clear(d.strat.scoped[len(kept):])
	d.strat.scoped = kept
	d.refreshActive(KindSurge)
}

// refreshActive sets the active gauge of kind: 1 while any incident of it
// is open.
func (d *Detector) refreshActive(kind string) {
	on := d.open[kind] != nil || kind == KindSurge && len(d.strat.scoped) > 0
	d.m.active.WithLabelValues(kind).Set(b2f(on))
}

// strataState is the persisted learning of the strata (meta
// detector_strata): by scope, the decayed counted first spams and their
// expectation at the global rate, and the dispersion's decayed Pearson sum
// and block count.
type strataState map[string][4]float64

func (d *Detector) strataPersist() []byte {
	out := strataState{}
	for k, v := range d.strat.saved {
		out[k] = v
	}
	d.strat.all(func(s *stratum) {
		if s.C > 0 || s.E > 0 {
			out[s.scope.String()] = [4]float64{s.C, s.E, s.PN, s.PD}
		}
	})
	b, _ := json.Marshal(out)
	return b
}

func (d *Detector) strataLoad(raw []byte) error {
	d.strat.saved = map[string][4]float64{}
	if raw == nil {
		return nil
	}
	var st strataState
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	for k, v := range st {
		d.strat.saved[k] = v
	}
	return nil
}
