package detector

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/store"
)

// Meta blob names in the store.
const (
	metaKeyFP     = "key_fingerprint"
	metaState     = "detector_state"
	metaIncidents = "incidents"
)

const (
	longMargin = 1.5
	// resolveThreshold is the evidence (log-likelihood, over dispersion)
	// that the rate is back to its baseline rather than Rho times it,
	// needed to resolve a surge: hysteresis against flapping on a drip.
	resolveThreshold = 6
	shortWindow      = 10
	quietWindow      = 120
	updateEvery      = 10 * time.Minute
	keepResolved     = 50
	maxRun           = 200000 // bound on the excess candidates kept in memory
)

// Detector is the recipient state and surge statistics. Not safe for
// concurrent use: one goroutine calls Observe, Tick and Close.
type Detector struct {
	o     Options
	m     *metrics
	log   *zap.Logger
	space [8]byte

	// pop is the per-recipient state: who got mail and spam when, the
	// at-risk population.
	pop  *recipients.Population
	outs []recipients.Outcome // Observe's outcomes (reused)

	started   bool
	clock     time.Time
	st        persisted
	lastFl    time.Time
	dirtyMeta bool

	// current hour, for learning
	hrIdx                  int64
	hrCount, hrExp, hrFlat float64
	hrDen                  float64
	hrDict                 float64
	hrNovel, hrNovExp      float64

	// The CUSUMs of all counted first spams, and of the first spams of
	// novel campaigns only (novelRate).
	cusumAll, cusumNovel cusum
	win                  ring // the last day, minute by minute

	// dictGroups is dictionary evidence per campaign, decaying by half
	// every 3 hours, so first spams of a dictionary campaign are known as
	// such even after the burst is over.
	dictGroups         map[string]float64
	phiC, phiSlowC     float64           // phi() and phiSlow(), as of the last hour
	groups, prevGroups map[string]*group // by campaign (dictKey)
	senders, prevSend  map[string]*group // by sender domain alone
	recentNew          []newRcpt
	rc                 []recipients.Rcpt // Observe's recipients (reused)
	lastCampaign       campaignMemo

	open     map[string]*Incident
	resolved []*Incident
	lastUpd  map[string]time.Time
	out      []Event
	closer   io.Closer // the store, when Open made it
	snap     atomic.Pointer[[]Incident]
	attr     attrState // attribution.go

	fh       [24]float64
	fw       [7]float64
	seasonOK bool
	seasonHr int64   // UTC hour of seasonF
	seasonF  float64 // season factor of seasonHr
}

// persisted is the learned state kept across restarts (meta detector_state).
type persisted struct {
	Clock     time.Time   `json:"clock"`
	WarmUntil time.Time   `json:"warm_until,omitzero"`
	Warm      bool        `json:"warm"`
	Num       float64     `json:"num"`
	Den       float64     `json:"den"`
	HourC     [24]float64 `json:"hour_c"`
	HourE     [24]float64 `json:"hour_e"`
	DowC      [7]float64  `json:"dow_c"`
	DowE      [7]float64  `json:"dow_e"`
	// Scatter of the units (hours, days) behind each rhythm factor:
	// decayed Pearson sums of each unit against its group's factor and
	// decayed unit counts (computeSeason's empirical-Bayes shrinkage).
	HourSS [24]float64 `json:"hour_ss,omitzero"`
	HourN  [24]float64 `json:"hour_n,omitzero"`
	DowSS  [7]float64  `json:"dow_ss,omitzero"`
	DowN   [7]float64  `json:"dow_n,omitzero"`
	DayC   float64     `json:"day_c,omitzero"` // the UTC day so far
	DayE   float64     `json:"day_e,omitzero"`
	// The learned rate of novel-campaign first spams (per at-risk
	// address-hour, flat), as NovNum/NovDen.
	NovNum float64 `json:"nov_num,omitzero"`
	NovDen float64 `json:"nov_den,omitzero"`
	// Dispersion of 4-hour blocks (phiSlow) and the block so far.
	Phi4Num  float64 `json:"phi4_num,omitzero"`
	Phi4Den  float64 `json:"phi4_den,omitzero"`
	BlkC     float64 `json:"blk_c,omitzero"`
	BlkE     float64 `json:"blk_e,omitzero"`
	BlkH     int     `json:"blk_h,omitzero"`
	DictRate float64 `json:"dict_rate"` // dictionary evidence per hour
	Hours    int64   `json:"hours"`
	PhiNum   float64 `json:"phi_num"`
	PhiDen   float64 `json:"phi_den"`
	Seq      int     `json:"seq"`
	// Tracked sizes the table on load (a map grown key by key spends
	// most of a restart rehashing).
	Tracked int `json:"tracked"`
}

type fsEvent struct {
	expBefore float64 // expected count of the run before this event
	t         time.Time
	id        addr.ID
	mi        *msgInfo
	dormant   bool
}

// group is one campaign's (sender domain, client network) spam to known
// addresses in an hour: recipients, first spams, first spams counted.
type group struct {
	n, fs, counted int
}

// novel reports whether a campaign's share of first spams among its known
// recipients marks it as working from a new list (a leak), with a prior of
// 10 recipients so that a campaign's first few messages do not decide.
func novel(cur, prev *group) bool {
	n, fs := 10, 0
	for _, g := range []*group{cur, prev} {
		if g != nil {
			n += g.n
			fs += g.fs
		}
	}
	return float64(fs) >= noveltyShare*float64(n)
}

const (
	noveltyShare = 0.2
	// perCampaign is how many first spams per hour an ordinary campaign
	// (one that is not novel) feeds into the statistics. Spam campaigns
	// sweep whole lists, so first spams come in clusters; counting every
	// one makes the counts overdispersed and the Poisson tests cry wolf.
	perCampaign = 3
)

type newRcpt struct {
	t  time.Time
	id addr.ID
}

// New loads the recipient state for o.Key from o.Store and returns a
// Detector. A store whose key fingerprint differs, or that holds no
// recipients, starts in warm-up.
func New(o Options) (*Detector, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	d := &Detector{
		o:          o,
		m:          newMetrics(o.Registerer),
		log:        o.Logger.Named("detector"),
		space:      o.Key.Fingerprint(),
		open:       map[string]*Incident{},
		lastUpd:    map[string]time.Time{},
		dictGroups: map[string]float64{},
		groups:     map[string]*group{}, prevGroups: map[string]*group{},
		senders: map[string]*group{}, prevSend: map[string]*group{},
	}
	d.pop = recipients.New(recipients.Options{Warmup: o.Warmup, Dormant: o.Dormant}, d.space)
	fp, err := o.Store.Meta(metaKeyFP)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	keyChanged := fp != nil && string(fp) != string(d.space[:])
	if raw, err := o.Store.Meta(metaState); err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	} else if raw != nil {
		if err := json.Unmarshal(raw, &d.st); err != nil {
			return nil, fmt.Errorf("detector: stored state is unreadable (%v): %w", err, store.ErrCorrupt)
		}
	}
	if raw, err := o.Store.Meta(metaIncidents); err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	} else if raw != nil {
		var ins []*Incident
		if err := json.Unmarshal(raw, &ins); err != nil {
			return nil, fmt.Errorf("detector: stored incidents are unreadable (%v): %w", err, store.ErrCorrupt)
		}
		for _, in := range ins {
			in.restoreGroups()
			if in.State == StateOpen && !keyChanged {
				d.open[in.Kind] = in
			} else {
				d.resolved = append(d.resolved, in)
			}
		}
	}
	if err := d.pop.Load(o.Store, d.st.Clock, d.st.Tracked); err != nil {
		return nil, fmt.Errorf("detector: loading recipients: %w", err)
	}
	if err := d.attrStart(); err != nil {
		return nil, err
	}
	switch {
	case keyChanged:
		d.log.Warn("address key changed: stored recipients belong to another key; warming up",
			zap.String("stored_fingerprint", hex.EncodeToString(fp)), zap.String("key_fingerprint", hex.EncodeToString(d.space[:])))
		d.st.Warm, d.st.WarmUntil = true, time.Time{}
	case d.pop.Tracked() == 0:
		if !d.st.Warm {
			d.log.Info("empty store: warming up")
		}
		d.st.Warm, d.st.WarmUntil = true, time.Time{}
	}
	if d.st.Den == 0 {
		d.st.Num = o.PriorPerDay / 24 * o.PriorWeight
		d.st.Den = o.PriorWeight
	}
	d.phiC, d.phiSlowC = d.phi(), d.phiSlow()
	d.st.seedScatter(d.phiC)
	if fp == nil || keyChanged {
		d.pop.Batch().PutMeta(metaKeyFP, d.space[:])
		d.dirtyMeta = true
	}
	d.m.tracked.Set(float64(d.pop.Tracked()))
	d.m.atRisk.Set(float64(d.pop.AtRisk()))
	d.m.warmup.Set(b2f(d.st.Warm))
	for k := range d.open {
		d.m.active.WithLabelValues(k).Set(1)
	}
	d.publish()
	d.log.Info("recipient state loaded", zap.Int("recipients", d.pop.Tracked()), zap.Int("at_risk", d.pop.AtRisk()), zap.Bool("warmup", d.st.Warm))
	return d, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// AtRisk is the current number of at-risk addresses.
func (d *Detector) AtRisk() int { return d.pop.AtRisk() }

// Tracked is the number of addresses with state.
func (d *Detector) Tracked() int { return d.pop.Tracked() }

// WarmingUp reports whether incidents are suppressed.
func (d *Detector) WarmingUp() bool { return d.st.Warm }

// Incidents returns the open and recently resolved incidents (the last
// 50), oldest first, as of the last event. Unlike every other method it is
// safe to call from any goroutine (the HTTP API).
func (d *Detector) Incidents() []Incident {
	if p := d.snap.Load(); p != nil {
		return *p
	}
	return nil
}

// publish refreshes the snapshot Incidents returns.
func (d *Detector) publish() {
	d.attrAnnotate()
	out := d.incidents()
	d.snap.Store(&out)
}

func (d *Detector) incidents() []Incident {
	var out []Incident
	for _, in := range d.resolved {
		out = append(out, in.snapshot("", in.UpdatedAt).Incident)
	}
	for _, k := range kinds {
		if in := d.open[k]; in != nil {
			out = append(out, in.snapshot("", in.UpdatedAt).Incident)
		}
	}
	out = append(out, d.attrSnapshots()...)
	return out
}

// Observe records one transaction and returns the incident events it
// caused. Observations should come in time order; an older one is counted
// at the detector's current time.
func (d *Detector) Observe(o ingest.Observation) []Event {
	d.out = nil
	if o.Time.IsZero() {
		d.m.errors.Inc()
		return nil
	}
	t := o.Time.UTC()
	if !d.started {
		d.start(t)
	}
	if t.Before(d.clock) {
		d.m.late.Inc()
		t = d.clock
	}
	// Normalise and hash the recipients first, touching their home
	// slots: the table is far larger than the caches, and its misses then
	// overlap with each other and with advance instead of stalling the
	// updates one by one. (Normalize and Hash are pure: only the order of
	// the invalid counter changes.)
	rc := d.rc[:0]
	for _, raw := range o.Rcpt {
		norm, detail, err := d.o.Normalizer.Normalize(raw)
		if err != nil {
			d.m.invalid.Inc()
			continue
		}
		id := d.o.Key.Hash(norm)
		d.pop.Touch(&id)
		rc = append(rc, recipients.Rcpt{ID: id, Detail: detail})
	}
	d.rc = rc
	d.advance(t)
	var mi *msgInfo
	info := func() *msgInfo {
		if mi == nil {
			mi = d.msgInfo(&o)
		}
		return mi
	}
	dict := 0
	// The campaign (sender domain and client network) and the sender
	// domain alone, this hour: recipients and first spams.
	var g, gs *group
	groups := func() {
		if g != nil {
			return
		}
		mi := info()
		if g = d.groups[mi.dictKey]; g == nil {
			g = &group{}
			d.groups[mi.dictKey] = g
		}
		sk := mi.keys[dimSender]
		if sk == none {
			return // no usable sender domain: no sender-wide novelty
		}
		if gs = d.senders[sk]; gs == nil {
			gs = &group{}
			d.senders[sk] = gs
		}
	}
	d.syncLists()
	d.outs = d.pop.Apply(t, rc, o.Spam, d.outs[:0])
	for i := range d.outs {
		oc := &d.outs[i]
		switch oc.Kind {
		case recipients.Canary:
			d.canaryHit(t, oc.ID, oc.Source, &o)
			continue
		case recipients.NewSpam:
			dict++
			d.recentNew = append(d.recentNew, newRcpt{t, oc.ID})
			if len(d.recentNew) > 20000 {
				d.recentNew = append(d.recentNew[:0], d.recentNew[10000:]...)
			}
			continue
		case recipients.NewMail, recipients.Mail:
			continue
		}
		// Spam to a known address: the campaign's size this hour.
		groups()
		g.n++
		if gs != nil {
			gs.n++
		}
		if oc.Kind == recipients.FirstSpam {
			g.fs++
			if gs != nil {
				gs.fs++
			}
			d.pop.Spent(oc)
			d.rememberDetail(oc.ID, oc.Detail)
			d.firstSpam(t, oc.ID, info(), g, gs, oc.Dormant)
		}
	}
	d.attrRejected(t, &o)
	if o.Spam {
		dict += len(o.Rejected)
		if dict > 0 {
			d.dictEvidence(t, info(), dict)
		}
	}
	d.maybeFlush(t, false)
	if len(d.out) > 0 {
		d.publish()
	}
	return d.out
}

// msgInfo is newMsgInfo with the campaign keys of the last spam
// remembered: a campaign sends many messages in a row, and newMsgInfo's
// keys (sender domain, client network, their dictionary key) are pure
// functions of From and ClientIP whose parsing and formatting allocate on
// every spam otherwise. The subject and Message-ID are the message's own.
func (d *Detector) msgInfo(o *ingest.Observation) *msgInfo {
	c := &d.lastCampaign
	if !c.ok || c.from != o.From || c.ip != o.ClientIP {
		mi := newMsgInfo(o)
		*c = campaignMemo{ok: true, from: o.From, ip: o.ClientIP, tmpl: *mi}
		return mi
	}
	mi := new(msgInfo)
	*mi = c.tmpl
	mi.subject, mi.msgID = o.Subject, o.MessageID
	return mi
}

type campaignMemo struct {
	ok       bool
	from, ip string
	tmpl     msgInfo // as newMsgInfo returned it
}

// Tick advances the clock without an observation: it resolves incidents,
// learns, and flushes pending state. Call it about once a second in live
// mode, from the goroutine that calls Observe.
func (d *Detector) Tick(now time.Time) []Event {
	d.out = nil
	if !d.started || now.Before(d.clock) {
		return nil
	}
	d.advance(now.UTC())
	d.maybeFlush(now, false)
	if len(d.out) > 0 {
		d.publish()
	}
	return d.out
}

// Close writes all pending state durably (and closes the store if Open
// opened it). The Detector must not be used afterwards.
func (d *Detector) Close() error {
	d.gauges()
	d.dirtyMeta = d.started || d.dirtyMeta
	err := d.maybeFlush(d.clock, true)
	if d.closer != nil {
		if cerr := d.closer.Close(); err == nil {
			err = cerr
		}
		d.closer = nil
	}
	return err
}

func (d *Detector) start(t time.Time) {
	d.started = true
	if d.st.Clock.After(t) {
		// A restart with a clock behind the stored one (replayed
		// history ahead of real time): keep the stored clock.
		t = d.st.Clock
	}
	if d.st.Warm && d.st.WarmUntil.IsZero() {
		d.st.WarmUntil = t.Add(d.o.Warmup + d.o.Learn)
		d.dirtyMeta = true
	}
	if d.st.Clock.IsZero() {
		d.st.Clock = t
	}
	d.clock = d.st.Clock
	d.win.minIdx = d.clock.Unix() / 60
	d.hrIdx = d.clock.Unix() / 3600
	d.lastFl = t
}

func (d *Detector) maybeFlush(t time.Time, force bool) error {
	if !force && d.pop.Pending() < d.o.FlushMax && t.Sub(d.lastFl) < d.o.FlushEvery {
		return nil
	}
	d.lastFl = t
	if d.pop.Pending() == 0 && !d.dirtyMeta {
		return nil
	}
	batch := d.pop.Batch()
	if d.dirtyMeta {
		d.attrPersist()
		d.st.Clock = d.clock
		d.st.Tracked = d.pop.Tracked()
		b, _ := json.Marshal(&d.st)
		batch.PutMeta(metaState, b)
		all := append([]*Incident(nil), d.resolved...)
		for _, k := range kinds {
			if in := d.open[k]; in != nil {
				in.summarise()
				all = append(all, in)
			}
		}
		b, _ = json.Marshal(all)
		batch.PutMeta(metaIncidents, b)
	}
	if err := d.o.Store.Commit(batch, force || !d.o.NoSync); err != nil {
		// Keep the batch: the next flush retries it.
		d.m.errors.Inc()
		d.log.Error("store commit failed", zap.Error(err), zap.Int("pending", d.pop.Pending()))
		return err
	}
	d.m.flushes.Inc()
	batch.Reset()
	d.dirtyMeta = false
	return nil
}

// seedScatter fills in the unit counts and scatter of the rhythm factors
// for a state saved before they were kept (rhythm counts, no units), so an
// upgrade does not flatten a learned rhythm for weeks: as many units as the
// hours learned give (capped at the four-week half-life's steady state),
// each with the scatter of a quasi-Poisson unit, φ.
func (p *persisted) seedScatter(phi float64) {
	var n float64
	for g := range p.HourN {
		n += p.HourN[g] + p.DowN[g%7]
	}
	if n > 0 || p.Hours == 0 {
		return
	}
	days := float64(p.Hours) / 24
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

// phi is the dispersion of the counted first spams (variance over mean
// of hourly counts): 1 for a Poisson process, more when first spams come in
// clusters. Every test divides its log-likelihood by it (quasi-Poisson), so
// clustered but normal traffic does not look like a surge. Before a week of
// data it leans on a prior of 2 (worth 48 hours).
func (d *Detector) phi() float64 {
	p := (d.st.PhiNum + 2*48) / (d.st.PhiDen + 48)
	return math.Max(1, math.Min(p, 20))
}

// phiSlow is the dispersion for the tests that add evidence up over hours
// (the aggregate CUSUM, the 24-hour window): the same Pearson ratio over
// 4-hour blocks, and never below phi. Spam volume swings by the day, so
// one busy morning puts excess into several hours at once; hourly counts
// miss that correlation and would let a CUSUM count one busy morning as
// many independent surprises. (Measured on the simulator: 3.3 for hours,
// 4.1 for 4-hour blocks.)
func (d *Detector) phiSlow() float64 {
	p := (d.st.Phi4Num + 2*12) / (d.st.Phi4Den + 12)
	return math.Max(d.phi(), math.Min(p, 20))
}

// rate is the expected first-spam rate per at-risk address-hour at t.
func (d *Detector) rate(t time.Time) float64 {
	if d.o.RateOverride != nil {
		return d.o.RateOverride(t)
	}
	return d.st.Num / d.st.Den * d.season(t)
}

// seasonMinUnits is how many units (decayed) every group of a cycle needs
// before the cycle's factors are used: about three of each weekday, three
// days of each hour. With fewer, one odd day makes a factor (two quiet
// Wednesdays halve every Wednesday's expectation), and the cycle stays
// flat.
const seasonMinUnits = 2.5

// novelRate is the expected rate of first spams from novel campaigns per
// at-risk address-hour, given the season factor s and the expected rate r
// of all counted first spams at the same instant. On an established
// history it is close to zero (a campaign working from an old list reaches
// few never-spammed addresses), so it is floored at novelFloor of r: the
// CUSUM then forgets an isolated novel campaign within a day or two
// instead of keeping it forever.
func (d *Detector) novelRate(s, r float64) float64 {
	n := 0.0
	if d.o.NovelRateOverride != nil {
		n = d.o.NovelRateOverride(d.clock)
	} else if d.st.NovDen > 0 {
		n = d.st.NovNum / d.st.NovDen * s
	}
	return math.Max(n, novelFloor*r)
}

const (
	novelFloor = 0.02
	// novelRho is the rate increase the novel CUSUM is tuned for: its
	// base is near zero, so a leak multiplies it many times over.
	novelRho = 10
)

func (d *Detector) season(t time.Time) float64 {
	if !d.seasonOK {
		d.computeSeason()
		d.seasonHr = math.MinInt64
	}
	// The factor is constant within a UTC hour: cache it (advance asks
	// once per observation; Hour and Weekday are calendar computations).
	if t.Location() != time.UTC {
		return d.fh[t.Hour()] * d.fw[int(t.Weekday())]
	}
	if h := floorDiv(t.Unix(), 3600); h != d.seasonHr {
		d.seasonHr, d.seasonF = h, d.fh[t.Hour()]*d.fw[int(t.Weekday())]
	}
	return d.seasonF
}

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

// computeSeason turns the rhythm counts into factors with mean 1, so the
// level lives in the rate alone (two unnormalised ratios would each carry
// the level's error, and feed it back into the rate).
func (d *Detector) computeSeason() {
	phi := d.phi()
	// The daily rhythm is smooth: each hour borrows from its neighbours
	// (weights ¼ ½ ¼, circular), which cuts the noise of its factor to
	// 3/8 and lets the rhythm show after days instead of weeks.
	var c, e, ss [24]float64
	for h := range c {
		p, q := (h+23)%24, (h+1)%24
		c[h] = (d.st.HourC[p] + 2*d.st.HourC[h] + d.st.HourC[q]) / 4
		e[h] = (d.st.HourE[p] + 2*d.st.HourE[h] + d.st.HourE[q]) / 4
		ss[h] = (d.st.HourSS[p] + 2*d.st.HourSS[h] + d.st.HourSS[q]) / 4
	}
	ebFactors(d.fh[:], c[:], e[:], ss[:], d.st.HourN[:], phi, 3.0/8)
	ebFactors(d.fw[:], d.st.DowC[:], d.st.DowE[:], d.st.DowSS[:], d.st.DowN[:], phi, 1)
	d.seasonOK = true
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
		d.st.BlkC, d.st.BlkE, d.st.BlkH = 0, 0, 0
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
		s := d.season(d.clock)
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
	d.attrMinute(t)
	d.gauges()
}

func (d *Detector) onHour(t time.Time, h int64) {
	// Learn the finished hour. While an incident is open the hour counts
	// as expected at most, so an excess never teaches itself as normal.
	{
		dec := math.Pow(0.5, 1/d.o.HalfLife.Hours())
		decS := math.Pow(0.5, 1/(28*24.0))
		e := d.hrExp
		phi := d.phi()
		c := math.Min(d.hrCount, e+3*math.Sqrt(phi*e)+2)
		if len(d.open) > 0 {
			c = math.Min(d.hrCount, e)
		} else if e > 0.5 && d.pop.AtRisk() > 0 {
			// Pearson dispersion of hourly counts (quasi-Poisson).
			r := (d.hrCount - e) * (d.hrCount - e) / e
			decP := math.Pow(0.5, 1/(7*24.0))
			d.st.PhiNum = d.st.PhiNum*decP + math.Min(r, 100)
			d.st.PhiDen = d.st.PhiDen*decP + 1
			d.st.BlkC += d.hrCount
			d.st.BlkE += e
			d.st.BlkH++
			if d.st.BlkH == 4 {
				r := (d.st.BlkC - d.st.BlkE) * (d.st.BlkC - d.st.BlkE) / d.st.BlkE
				dec4 := math.Pow(0.5, 4/(7*24.0))
				d.st.Phi4Num = d.st.Phi4Num*dec4 + math.Min(r, 100)
				d.st.Phi4Den = d.st.Phi4Den*dec4 + 1
				d.st.BlkC, d.st.BlkE, d.st.BlkH = 0, 0, 0
			}
		}
		if len(d.open) > 0 || e <= 0.5 || d.pop.AtRisk() == 0 {
			// A block is four consecutive ordinary hours.
			d.st.BlkC, d.st.BlkE, d.st.BlkH = 0, 0, 0
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
		for i := range d.st.HourC {
			d.st.HourC[i] *= decS
			d.st.HourE[i] *= decS
			d.st.HourSS[i] *= decS
			d.st.HourN[i] *= decS
		}
		for i := range d.st.DowC {
			d.st.DowC[i] *= decS
			d.st.DowE[i] *= decS
			d.st.DowSS[i] *= decS
			d.st.DowN[i] *= decS
		}
		d.seasonOK = false
		seasonUnit(d.st.HourC[:], d.st.HourE[:], d.st.HourSS[:], d.st.HourN[:], hh, c, d.hrFlat)
		d.st.DayC += c
		d.st.DayE += d.hrFlat
		if floorDiv(h, 24) != floorDiv(d.hrIdx, 24) {
			// The UTC day ended.
			seasonUnit(d.st.DowC[:], d.st.DowE[:], d.st.DowSS[:], d.st.DowN[:], ww, d.st.DayC, d.st.DayE)
			d.st.DayC, d.st.DayE = 0, 0
		}
		dc := math.Min(d.hrDict, 3*d.st.DictRate+10)
		d.st.DictRate = d.st.DictRate*dec + dc*(1-dec)
		d.st.Hours++
		d.phiC, d.phiSlowC = d.phi(), d.phiSlow()
	}
	if ce := d.log.Check(zap.DebugLevel, "hour"); ce != nil {
		ce.Write(zap.Time("hour", time.Unix(d.hrIdx*3600, 0).UTC()), zap.Float64("counted", d.hrCount), zap.Float64("expected", d.hrExp),
			zap.Float64("phi", d.phi()), zap.Int("at_risk", d.pop.AtRisk()), zap.Float64("cusum", d.cusumAll.s), zap.Float64("dictionary", d.hrDict), zap.Int("open", len(d.open)))
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
	// Maturation.
	d.pop.Mature(h)
	d.m.atRisk.Set(float64(d.pop.AtRisk()))
	if d.st.Warm && !d.st.WarmUntil.IsZero() && !t.Before(d.st.WarmUntil) {
		d.st.Warm = false
		d.m.warmup.Set(0)
		// Windows filled under the early baseline are not evidence.
		d.win.clear()
		d.log.Info("warm-up over", zap.Int("at_risk", d.pop.AtRisk()))
	}
	d.dirtyMeta = true
}

// firstSpam handles the first spam of an at-risk address (it has left the
// at-risk population: Population.Spent).
func (d *Detector) firstSpam(t time.Time, id addr.ID, mi *msgInfo, g, gs *group, dormant bool) {
	d.m.firstSpam.Inc()
	nv := novel(g, d.prevGroups[mi.dictKey]) || gs != nil && !d.o.NoNovel && novel(gs, d.prevSend[mi.keys[dimSender]])
	counted := g.counted < perCampaign || nv
	if d.o.Trace != nil {
		d.o.Trace(t, id, d.pop.AtRisk(), counted, nv)
	}
	if !counted {
		return
	}
	g.counted++
	mi.complete()
	d.cusumAll.begin()
	d.hrCount++
	d.win.cur().c++
	d.win.longC++
	if nv {
		d.hrNovel++
		d.win.cur().nc++
		d.cusumNovel.begin()
	}
	if d.st.Warm {
		// Learning only: an excess during warm-up must not carry
		// into the first minutes after it.
		return
	}
	f := fsEvent{t: t, id: id, mi: mi, dormant: dormant}
	d.cusumAll.hit(f, d.o.Rho, d.phiSlowC, d.phiC)
	if nv {
		d.cusumNovel.hit(f, novelRho, d.phiC, d.phiC)
	}
	// An open incident takes the first spams of its basis: all counted
	// ones, or for one the novel-campaign CUSUM opened, the novel ones.
	if in := d.open[KindSurge]; in != nil {
		if nv || in.Trigger != TriggerCUSUMNovel {
			d.grow(in, t, id, mi, dormant)
		}
		return
	}
	if in := d.open[KindDictionary]; in != nil && in.Trigger != TriggerDictionaryBurst {
		if nv || in.Trigger != TriggerCUSUMNovel {
			d.grow(in, t, id, mi, dormant)
		}
		return
	}
	d.checkOpen(t)
}

func (d *Detector) grow(in *Incident, t time.Time, id addr.ID, mi *msgInfo, dormant bool) {
	in.add(id, mi, dormant)
	in.Observed++
	in.UpdatedAt = t
	defer d.publish()
	sc := d.cusumAll.s / d.o.Threshold
	if in.Trigger == TriggerCUSUMNovel {
		sc = d.cusumNovel.s / d.o.Threshold
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
	seen := map[string]bool{}
	ev := 0.0
	for _, f := range events {
		if k := f.mi.dictKey; !seen[k] {
			seen[k] = true
			ev += d.dictGroups[k]
		}
	}
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
			in.add(f.id, f.mi, f.dormant)
			in.Observed++
		}
		in.DictionaryEvidence = max(in.DictionaryEvidence, int(ev))
		in.UpdatedAt = t
		d.resetRuns()
		d.dirtyMeta = true
		return
	}
	d.st.Seq++
	in := &Incident{
		ID:                 fmt.Sprintf("%s-%s-%d", t.Format("20060102T150405Z"), kind, d.st.Seq),
		Kind:               kind,
		State:              StateOpen,
		StartedAt:          run[0].t,
		OpenedAt:           t,
		UpdatedAt:          t,
		Trigger:            trigger,
		Expected:           runExp,
		Score:              score,
		DictionaryEvidence: int(ev),
	}
	// Expected from the start on: the run's share of its exposure.
	in.Expected = runExp * float64(len(run)) / obs
	for _, f := range run {
		in.add(f.id, f.mi, f.dormant)
	}
	in.Observed = float64(len(run))
	d.open[kind] = in
	d.cusumAll.back, d.cusumNovel.back = 0, 0
	d.lastUpd[kind] = t
	d.m.active.WithLabelValues(kind).Set(1)
	d.m.incidents.WithLabelValues(kind).Inc()
	d.dirtyMeta = true
	d.log.Warn("incident opened", zap.String("id", in.ID), zap.String("kind", kind), zap.String("trigger", trigger),
		zap.Int("recipients", in.Recipients), zap.Float64("expected", in.Expected), zap.Time("started_at", in.StartedAt))
	d.out = append(d.out, in.snapshot(EventOpened, t))
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

// resetHour clears the current hour's learning sums.
func (d *Detector) resetHour() {
	d.hrCount, d.hrExp, d.hrFlat, d.hrDen, d.hrDict = 0, 0, 0, 0, 0
	d.hrNovel, d.hrNovExp = 0, 0
}

// resetRuns restarts both CUSUMs from zero.
func (d *Detector) resetRuns() {
	d.cusumAll.reset()
	d.cusumNovel.reset()
}

func (d *Detector) dictEvidence(t time.Time, mi *msgInfo, n int) {
	d.m.dictionary.Add(float64(n))
	d.dictGroups[mi.dictKey] += float64(n)
	d.hrDict += float64(n)
	d.win.cur().d += float64(n)
	if d.st.Warm || d.open[KindDictionary] != nil {
		if in := d.open[KindDictionary]; in != nil {
			in.DictionaryEvidence += n
			if in.Trigger == TriggerDictionaryBurst {
				in.Observed += float64(n)
			}
		}
		return
	}
	c := d.win.sum(shortWindow).d
	e := d.st.DictRate * shortWindow / 60
	if c < d.o.DictMin || c < 10*e {
		return
	}
	d.st.Seq++
	in := &Incident{
		ID:                 fmt.Sprintf("%s-%s-%d", t.Format("20060102T150405Z"), KindDictionary, d.st.Seq),
		Kind:               KindDictionary,
		State:              StateOpen,
		StartedAt:          t.Add(-shortWindow * time.Minute),
		OpenedAt:           t,
		UpdatedAt:          t,
		Trigger:            TriggerDictionaryBurst,
		Observed:           c,
		Expected:           e,
		Score:              c / math.Max(d.o.DictMin, 10*e),
		DictionaryEvidence: int(c),
	}
	cut := t.Add(-shortWindow * time.Minute)
	for _, r := range d.recentNew {
		if !r.t.Before(cut) {
			if in.StartedAt.After(r.t) || in.Recipients == 0 {
				in.StartedAt = r.t
			}
			in.add(r.id, mi, false)
		}
	}
	d.open[KindDictionary] = in
	d.lastUpd[KindDictionary] = t
	d.m.active.WithLabelValues(KindDictionary).Set(1)
	d.m.incidents.WithLabelValues(KindDictionary).Inc()
	d.dirtyMeta = true
	d.log.Warn("incident opened", zap.String("id", in.ID), zap.String("kind", KindDictionary), zap.String("trigger", in.Trigger),
		zap.Float64("evidence", c))
	d.out = append(d.out, in.snapshot(EventOpened, t))
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
			if in.Trigger == TriggerCUSUMNovel {
				c, e, ev = w.nc, w.ne, d.cusumNovel.back
			}
			quiet = ev >= resolveThreshold || t.Sub(in.OpenedAt) >= 12*time.Hour && c <= 1.5*e+3
		}
		if !quiet {
			continue
		}
		at := t
		in.State = StateResolved
		in.ResolvedAt = &at
		in.UpdatedAt = t
		delete(d.open, k)
		d.m.active.WithLabelValues(k).Set(0)
		d.resolved = append(d.resolved, in)
		if len(d.resolved) > keepResolved {
			d.resolved = d.resolved[len(d.resolved)-keepResolved:]
		}
		if in.Trigger != TriggerDictionaryBurst {
			// Start afresh: the excess just explained must not
			// reopen through the windows that still hold it.
			d.resetRuns()
			d.win.clearCounts()
		}
		d.dirtyMeta = true
		d.log.Info("incident resolved", zap.String("id", in.ID), zap.String("kind", k), zap.Int("recipients", in.Recipients))
		d.out = append(d.out, in.snapshot(EventResolved, t))
	}
}
