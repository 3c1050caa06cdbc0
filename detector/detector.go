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

	season factors // the rhythm's factors, cached
}

// persisted is the learned state kept across restarts (meta detector_state).
type persisted struct {
	Clock     time.Time `json:"clock"`
	WarmUntil time.Time `json:"warm_until,omitzero"`
	Warm      bool      `json:"warm"`
	Num       float64   `json:"num"`
	Den       float64   `json:"den"`
	// The daily and weekly rhythm, and the dispersion, are kept flat in
	// the same JSON object (embedded).
	rhythm
	dispersion
	// The learned rate of novel-campaign first spams (per at-risk
	// address-hour, flat), as NovNum/NovDen.
	NovNum   float64 `json:"nov_num,omitzero"`
	NovDen   float64 `json:"nov_den,omitzero"`
	DictRate float64 `json:"dict_rate"` // dictionary evidence per hour
	Hours    int64   `json:"hours"`
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
	d.phiC, d.phiSlowC = d.st.phi(), d.st.phiSlow()
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

// rate is the expected first-spam rate per at-risk address-hour at t.
func (d *Detector) rate(t time.Time) float64 {
	if d.o.RateOverride != nil {
		return d.o.RateOverride(t)
	}
	return d.st.Num / d.st.Den * d.season.at(t, &d.st)
}

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
	}
	if ce := d.log.Check(zap.DebugLevel, "hour"); ce != nil {
		ce.Write(zap.Time("hour", time.Unix(d.hrIdx*3600, 0).UTC()), zap.Float64("counted", d.hrCount), zap.Float64("expected", d.hrExp),
			zap.Float64("phi", d.st.phi()), zap.Int("at_risk", d.pop.AtRisk()), zap.Float64("cusum", d.cusumAll.s), zap.Float64("dictionary", d.hrDict), zap.Int("open", len(d.open)))
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
	in := d.newIncident(kind, trigger, t)
	in.StartedAt = run[0].t
	in.Score = score
	in.DictionaryEvidence = int(ev)
	// Expected from the start on: the run's share of its exposure.
	in.Expected = runExp * float64(len(run)) / obs
	for _, f := range run {
		in.add(f.id, f.mi, f.dormant)
	}
	in.Observed = float64(len(run))
	d.open[kind] = in
	d.cusumAll.back, d.cusumNovel.back = 0, 0
	d.lastUpd[kind] = t
	d.announce(in, t, zap.String("trigger", trigger), zap.Int("recipients", in.Recipients),
		zap.Float64("expected", in.Expected), zap.Time("started_at", in.StartedAt))
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
	in := d.newIncident(KindDictionary, TriggerDictionaryBurst, t)
	in.StartedAt = t.Add(-shortWindow * time.Minute)
	in.Observed, in.Expected = c, e
	in.Score = c / math.Max(d.o.DictMin, 10*e)
	in.DictionaryEvidence = int(c)
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
	d.announce(in, t, zap.String("trigger", in.Trigger), zap.Float64("evidence", c))
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
		delete(d.open, k)
		d.m.active.WithLabelValues(k).Set(0)
		if in.Trigger != TriggerDictionaryBurst {
			// Start afresh: the excess just explained must not
			// reopen through the windows that still hold it.
			d.resetRuns()
			d.win.clearCounts()
		}
		d.retire(in, t)
	}
}
