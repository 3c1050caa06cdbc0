package detector

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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
	pop *recipients.Population
	// tallied: outcomes were counted (Shared) since the last flush.
	tallied bool
	// dict and mi carry one observation's dictionary evidence and
	// campaign from consume to rejected.
	dict int
	mi   *msgInfo
	outs []recipients.Outcome // Observe's outcomes (reused)

	started    bool
	clock      time.Time
	futureWarn time.Time // last "observation from the future" log line
	st         persisted
	lastFl     time.Time
	dirtyMeta  bool
	staged     bool // StageMeta blobs wait in the batch

	// current hour, for learning
	hrIdx                  int64
	hrCount, hrExp, hrFlat float64
	hrDen                  float64
	hrDict                 float64
	hrNovel, hrNovExp      float64
	hrAll                  float64 // first spams, counted or not
	hrShareN, hrShareE     float64 // known spam recipients, the first spams their share expects

	// The CUSUMs of all counted first spams, and of the first spams of
	// novel campaigns only (novelRate).
	cusumAll, cusumNovel cusum
	// The share test's CUSUM (share.go) and its dispersion.
	cusumShare cusum
	phiShare   float64
	win        ring // the last day, minute by minute

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
	curve    atomic.Pointer[FirstSeenCurve]
	attr     attrState // attribution.go
	strat    strata    // strata.go

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
	// The share test's learning (share.go), flat.
	shareState
	Hours int64 `json:"hours"`
	Seq   int   `json:"seq"`
	// Tracked sizes the table on load (a map grown key by key spends
	// most of a restart rehashing).
	Tracked int `json:"tracked"`
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
	d.pop = recipients.New(recipients.Options{Warmup: o.Warmup, Dormant: o.Dormant, ForgetAfter: max(0, o.ForgetAfter), Domains: o.DomainCounts || o.PerDomain, Tally: o.Shared}, d.space)
	d.strat.on = o.PerDomain || o.PerTag
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
			switch {
			case in.State == StateOpen && !keyChanged && in.Scope != nil:
				d.strat.scoped = append(d.strat.scoped, in)
			case in.State == StateOpen && !keyChanged:
				d.open[in.Kind] = in
			default:
				d.resolved = append(d.resolved, in)
			}
		}
	}
	if raw, err := o.Store.Meta(metaStrata); err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	} else if err := d.strataLoad(raw); err != nil {
		return nil, fmt.Errorf("detector: stored strata are unreadable (%v): %w", err, store.ErrCorrupt)
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
	d.phiShare = d.st.sharePhi()
	d.st.seedScatter(d.phiC)
	d.strataRefresh()
	if fp == nil || keyChanged {
		d.pop.Batch().PutMeta(metaKeyFP, d.space[:])
		d.dirtyMeta = true
	}
	d.m.tracked.Set(float64(d.pop.Tracked()))
	d.m.atRisk.Set(float64(d.pop.AtRisk()))
	d.m.warmup.Set(b2f(d.st.Warm))
	for _, k := range kinds {
		d.refreshActive(k)
	}
	d.publish()
	d.publishCurve()
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
	for _, in := range d.strat.scoped {
		out = append(out, in.snapshot("", in.UpdatedAt).Incident)
	}
	out = append(out, d.attrSnapshots()...)
	return out
}

// Observe records one transaction and returns the incident events it
// caused. Observations should come in time order; an older one is counted
// at the detector's current time.
func (d *Detector) Observe(o ingest.Observation) []Event {
	d.out = nil
	if d.o.Shared {
		d.m.errors.Inc() // a shared detector's outcomes come through ObserveApplied
		return nil
	}
	t, ok := d.admit(&o)
	if !ok {
		return nil
	}
	// Normalise and hash the recipients first, touching their home
	// slots: the table is far larger than the caches, and its misses then
	// overlap with each other and with advance instead of stalling the
	// updates one by one. (Normalize and Hash are pure: only the order of
	// the invalid counter changes.)
	rc := d.rc[:0]
	for _, raw := range o.Rcpt {
		r, ok := d.Recipient(raw)
		if !ok {
			d.m.invalid.Inc()
			continue
		}
		d.pop.Touch(&r.ID)
		rc = append(rc, r)
	}
	d.rc = rc
	d.advance(t)
	d.syncLists()
	d.outs = d.pop.Apply(t, rc, o.Spam, d.outs[:0])
	d.consume(t, &o, d.outs)
	d.attrRejected(t, &o)
	d.rejected(t, &o, len(o.Rejected))
	return d.finish(t)
}

// Recipient normalises and hashes one address the way the detector
// keys it (false: malformed). Pure: a fleet's node calls it from its own
// goroutine to prepare the store's recipients.
func (d *Detector) Recipient(raw string) (recipients.Rcpt, bool) {
	norm, detail, err := d.o.Normalizer.Normalize(raw)
	if err != nil {
		return recipients.Rcpt{}, false
	}
	return recipients.Rcpt{ID: d.o.Key.Hash(norm), Detail: detail, Domain: norm[strings.LastIndexByte(norm, '@')+1:]}, true
}

// Applied is one message whose recipients a shared store has already
// applied (recipients/redisstore): what a fleet's journal carries to
// every instance's detector.
type Applied struct {
	// Obs is the message: its time, verdict and campaign fields (From,
	// ClientIP, Helo, Subject, MessageID). Rcpt and Rejected are not
	// read.
	Obs ingest.Observation
	// Outs are what the message did to its recipients, in order: Kind,
	// ID, Detail, Dormant, and Source for a canary.
	Outs []recipients.Outcome
	// Domains is each outcome's recipient domain, and Hours, for an
	// EarlySpam, the hour its address would have matured, for a
	// FirstSpam the hour it matured (0: not known; nil: none).
	Domains []string
	Hours   []int64
	// Rejected is how many recipients the next hop refused, and
	// RejectedCanaries the canaries among them (Kind Canary).
	Rejected         int
	RejectedCanaries []recipients.Outcome
}

// ObserveApplied is Observe for a shared detector (Options.Shared): the
// store has applied the message, and the outcomes are counted (tally) and
// tested here as Observe would have after its own Apply. Every instance
// of a fleet feeds the same Applied sequence to its detector, which is
// deterministic: they all open the same incidents, with the same ids.
func (d *Detector) ObserveApplied(a *Applied) []Event {
	d.out = nil
	if !d.o.Shared {
		d.m.errors.Inc()
		return nil
	}
	t, ok := d.admit(&a.Obs)
	if !ok {
		return nil
	}
	d.advance(t)
	d.syncLists()
	for i := range a.Outs {
		var h int64
		if i < len(a.Hours) {
			h = a.Hours[i]
		}
		dom := ""
		if i < len(a.Domains) {
			dom = a.Domains[i]
		}
		d.pop.Tally(t, &a.Outs[i], dom, h)
	}
	d.tallied = true
	d.consume(t, &a.Obs, a.Outs)
	for i := range a.RejectedCanaries {
		if oc := &a.RejectedCanaries[i]; oc.Kind == recipients.Canary {
			d.canaryHit(t, oc.ID, oc.Source, &a.Obs)
		}
	}
	d.rejected(t, &a.Obs, a.Rejected)
	return d.finish(t)
}

// admit checks an observation's time and starts the clock: ok false
// means it is refused (no time, or from beyond NotAfter). The time is
// the detector's clock for one older than it (counted as late).
func (d *Detector) admit(o *ingest.Observation) (t time.Time, ok bool) {
	if o.Time.IsZero() {
		d.m.errors.Inc()
		return t, false
	}
	t = o.Time.UTC()
	if d.o.NotAfter != nil {
		if limit := d.o.NotAfter(); t.After(limit) {
			d.m.future.Inc()
			if ce := d.log.Check(zap.WarnLevel, "observation from the future refused"); ce != nil && d.warnFuture(limit) {
				ce.Write(zap.Time("time", t), zap.Time("not_after", limit))
			}
			return t, false
		}
	}
	if !d.started {
		d.start(t)
	}
	if t.Before(d.clock) {
		d.m.late.Inc()
		t = d.clock
	}
	return t, true
}

// consume tests what a message at t did to its recipients (outs).
func (d *Detector) consume(t time.Time, o *ingest.Observation, outs []recipients.Outcome) {
	var mi *msgInfo
	info := func() *msgInfo {
		if mi == nil {
			mi = d.msgInfo(o)
		}
		return mi
	}
	d.dict = 0
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
	if o.Spam {
		known := 0
		for i := range outs {
			if k := outs[i].Kind; k == recipients.Spam || k == recipients.EarlySpam || k == recipients.FirstSpam {
				known++
			}
		}
		d.shareExpect(known)
	}
	for i := range outs {
		oc := &outs[i]
		switch oc.Kind {
		case recipients.Canary:
			d.canaryHit(t, oc.ID, oc.Source, o)
			continue
		case recipients.NewSpam:
			d.dict++
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
			d.firstSpam(t, oc, info(), g, gs)
		}
	}
	d.mi = mi
}

// rejected counts a spam's dictionary evidence: its new addresses
// (consume) and the n recipients the next hop refused.
func (d *Detector) rejected(t time.Time, o *ingest.Observation, n int) {
	if !o.Spam {
		return
	}
	dict := d.dict + n
	if dict > 0 {
		mi := d.mi
		if mi == nil {
			mi = d.msgInfo(o)
		}
		d.dictEvidence(t, mi, dict)
	}
}

// finish ends an observation: a flush when one is due, the incidents
// published when they changed.
func (d *Detector) finish(t time.Time) []Event {
	d.mi = nil
	d.maybeFlush(t, false)
	if len(d.out) > 0 {
		d.publish()
	}
	return d.out
}

// warnFuture rate-limits the log line for refused future observations to
// one a minute (a client replaying its history at us would flood it).
func (d *Detector) warnFuture(now time.Time) bool {
	if now.Sub(d.futureWarn) < time.Minute {
		return false
	}
	d.futureWarn = now
	return true
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

// StageMeta puts a named blob into the next commit of the recipient
// state, so that it is written atomically with the state of every
// observation consumed before it: a log tailer's position is durable
// exactly when what it read is. Names starting "tail:" are the tailers';
// the detector's own blobs are not to be named. Call it from the
// goroutine that calls Observe.
func (d *Detector) StageMeta(name string, v []byte) {
	d.pop.Batch().PutMeta(name, v)
	d.staged = true
}

// Checkpoint commits a shared detector's whole state (Options.Shared),
// durably, with the blobs staged since the last one (a fleet's journal
// position): a restart resumes from exactly there, so the instance goes
// on in step with the rest of its fleet. A shared detector commits
// nothing by itself (but on Close). Call it from the goroutine that calls
// ObserveApplied, about once a second.
func (d *Detector) Checkpoint() error {
	d.dirtyMeta = d.dirtyMeta || d.started || d.staged || d.tallied
	return d.maybeFlush(d.clock, true)
}

// CountError and CountInvalid count, as the detector's own, an error of
// a component that feeds it (spamsurge_detector_errors_total: a shared
// store's failed call) and an invalid recipient address. Safe from any
// goroutine.
func (d *Detector) CountError()   { d.m.errors.Inc() }
func (d *Detector) CountInvalid() { d.m.invalid.Inc() }

// StateNames names the store blobs that hold a shared detector's whole
// state (Options.Shared): what a fleet's snapshot copies from one
// instance to another. Blobs staged by others (a log tailer's position,
// a journal position) are not among them.
func (d *Detector) StateNames() []string {
	return []string{metaKeyFP, metaState, metaIncidents, metaStrata, metaCanaries,
		recipients.TallyMeta(d.space), recipients.DomainsMeta(d.space)}
}

// Meta reads a named blob from the store (nil when absent).
func (d *Detector) Meta(name string) ([]byte, error) { return d.o.Store.Meta(name) }

// CloseStore makes Close close c (the store the caller opened for this
// Detector alone).
func (d *Detector) CloseStore(c io.Closer) { d.closer = c }

// Keying is the key and address policy the Detector hashes with, for lists
// that must hash the same way.
func (d *Detector) Keying() (*addr.Key, addr.Normalizer) { return d.o.Key, d.o.Normalizer }

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
	if d.o.NotAfter != nil {
		if limit := d.o.NotAfter(); d.st.Clock.After(limit) {
			// A clock stored beyond the wall clock (an observation
			// from the future before max_clock_skew existed, or a
			// clock set wrong): everything after it would count as
			// late. Pull it back; the learned rates stay.
			d.log.Warn("stored clock is ahead of the wall clock; pulled back", zap.Time("stored", d.st.Clock), zap.Time("now", t))
			d.st.Clock = t
			d.dirtyMeta = true
		}
	}
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
	if d.o.Shared && !force {
		return nil // Checkpoint commits, whole
	}
	if d.pop.Pending() == 0 && !d.dirtyMeta && !d.staged && !d.tallied {
		return nil
	}
	if d.tallied {
		// Tally mode: the counts are state like the detector's own.
		d.pop.StageTally()
		d.dirtyMeta, d.tallied = true, false
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
		for _, in := range d.strat.scoped {
			in.summarise()
			all = append(all, in)
		}
		b, _ = json.Marshal(all)
		batch.PutMeta(metaIncidents, b)
		if d.strat.on {
			batch.PutMeta(metaStrata, d.strataPersist())
		}
	}
	if err := d.o.Store.Commit(batch, force || !d.o.NoSync); err != nil {
		// Keep the batch: the next flush retries it.
		d.m.errors.Inc()
		d.log.Error("store commit failed", zap.Error(err), zap.Int("pending", d.pop.Pending()))
		return err
	}
	d.m.flushes.Inc()
	batch.Reset()
	d.dirtyMeta, d.staged = false, false
	return nil
}
