package detector

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// Attribution in the detector (see package attribution for the lists and
// the statistics):
//
//   - Canaries. A recipient on a canary list, in any observation, spam or
//     not, opens a canary incident for its source at once (or updates the
//     open one), whatever the warm-up. Canaries never get recipient state:
//     they are outside the surge statistics and the at-risk population. A
//     canary incident resolves after CanaryQuiet without a hit.
//   - Tags. The at-risk population of every tag is kept incrementally,
//     mirroring the detector's own accounting (first spams, maturation
//     buckets); only a reload of the lists recounts, by one pass over the
//     recipient table. Every surge incident carries the tag ranking, the
//     top tag, the sub-address details concentrated in it, and how many of
//     its addresses were dormant or in a single source list.

// CanaryQuiet is how long a canary incident stays open after its last hit.
const CanaryQuiet = 24 * time.Hour

// metaCanaries holds the open canary incidents (resolved ones join the
// others in metaIncidents).
const metaCanaries = "canary_incidents"

// Attributor gives the current source lists (attribution.Set). Current is
// called from the detector's goroutine and must be safe against a
// concurrent reload.
type Attributor interface {
	Current() *attribution.Lists
}

// Attribution is what an incident says about the source of its addresses.
// Its fields appear inline in the incident's JSON.
type Attribution struct {
	// Tags ranks every source tag, and "untagged" (addresses in no list),
	// by how unlikely its share of the recipients is by chance.
	Tags []attribution.TagLift `json:"tags,omitempty"`
	// TopTag is the tag the incident is attributed to: a tag name,
	// "untagged" (a source not in any list), or empty when none stands
	// out; TopSource says it in words.
	TopTag    string `json:"top_tag,omitempty"`
	TopSource string `json:"top_source,omitempty"`
	// SubaddressDetails are the sub-address details ("user+shop") shared
	// by the first spams, keyed hashes unless configured as known.
	SubaddressDetails []attribution.DetailCount `json:"subaddress_details,omitempty"`
	// Dormant counts recipients without mail for detector.dormant before
	// their first spam; SingleSource those in exactly one tag list: the
	// marks of a stored list rather than a guessed or harvested one.
	Dormant      int `json:"dormant,omitempty"`
	SingleSource int `json:"single_source,omitempty"`
	// CanarySource is the source a canary incident's canaries were
	// planted in.
	CanarySource string `json:"canary_source,omitempty"`

	at   int                // Recipients when computed
	with *attribution.Lists // the lists then
}

// attrState is the detector's attribution bookkeeping.
type attrState struct {
	// lists are the lists in use (Population.Lists), kept to tell when
	// an incident's attribution was computed with older ones.
	lists *attribution.Lists
	// details holds the sub-address detail label of recent first spams
	// (two generations of at most detailGen, so memory is bounded).
	details, detailsOld map[addr.ID]detailLabel
	canaries            map[string]*Incident // open, by source
	canaryUpd           map[string]time.Time
	hits                prometheus.Counter
}

const detailGen = 100000

type detailLabel struct {
	label string
	known bool
}

// attrStart runs at the end of New: restores open canary incidents and
// counts the tag populations.
func (d *Detector) attrStart() error {
	a := &d.attr
	a.canaries, a.canaryUpd = map[string]*Incident{}, map[string]time.Time{}
	a.details = map[addr.ID]detailLabel{}
	a.hits = promauto.With(d.o.Registerer).NewCounter(prometheus.CounterOpts{Name: "spamsurge_canary_hits_total",
		Help: "Recipients on a canary list seen in any observation (spam or not)."})
	d.m.active.WithLabelValues(KindCanary)
	d.m.incidents.WithLabelValues(KindCanary)
	raw, err := d.o.Store.Meta(metaCanaries)
	if err != nil {
		return fmt.Errorf("detector: %w", err)
	}
	if raw != nil {
		var ins []*Incident
		if err := json.Unmarshal(raw, &ins); err != nil {
			return fmt.Errorf("detector: stored canary incidents are unreadable (%v): %w", err, store.ErrCorrupt)
		}
		for _, in := range ins {
			in.restoreGroups()
			a.canaries[in.CanarySource] = in
			d.m.active.WithLabelValues(KindCanary).Set(1)
		}
	}
	if d.o.Attribution != nil {
		d.attrSync(d.o.Attribution.Current())
	}
	return nil
}

// attrSync adopts new lists: canaries leave the at-risk accounting and the
// tag populations are recounted (Population.SetLists).
func (d *Detector) attrSync(l *attribution.Lists) {
	d.attr.lists = l
	d.pop.SetLists(l)
	if d.o.PerTag {
		d.strataTags()
	} else {
		d.strataRefresh()
	}
}

// syncLists adopts the lists of a reload (SIGHUP) before an observation.
func (d *Detector) syncLists() {
	if d.o.Attribution == nil {
		return
	}
	if l := d.o.Attribution.Current(); l != d.attr.lists {
		d.attrSync(l)
	}
}

// rememberDetail remembers the sub-address detail of a first spam, for the
// incidents' attribution.
func (d *Detector) rememberDetail(id addr.ID, detail string) {
	a := &d.attr
	if detail == "" || a.lists == nil {
		return
	}
	if len(a.details) >= detailGen {
		a.detailsOld, a.details = a.details, make(map[addr.ID]detailLabel, detailGen)
	}
	lbl, known := a.lists.DetailLabel(detail)
	a.details[id] = detailLabel{lbl, known}
}

// canaryHit handles mail to a canary of source src: it opens the source's
// canary incident, or adds to it.
func (d *Detector) canaryHit(t time.Time, id addr.ID, src string, o *ingest.Observation) {
	a := &d.attr
	a.hits.Inc()
	d.dirtyMeta = true
	mi := newMsgInfo(o).complete()
	if in := a.canaries[src]; in != nil {
		in.Observed++
		in.UpdatedAt = t
		known := false
		for _, r := range in.RecipientIDs {
			known = known || r == id
		}
		if !known {
			in.add(id, mi, false)
		}
		if t.Sub(a.canaryUpd[src]) >= updateEvery || !known {
			a.canaryUpd[src] = t
			d.out = append(d.out, in.snapshot(EventUpdated, t))
		}
		return
	}
	in := d.newIncident(KindCanary, TriggerCanary, t)
	in.Observed, in.Score = 1, 1
	in.CanarySource = src
	in.add(id, mi, false)
	a.canaries[src] = in
	a.canaryUpd[src] = t
	d.announce(in, t, zap.String("canary_source", src), zap.Bool("spam", o.Spam))
}

// attrMinute resolves canary incidents quiet for CanaryQuiet.
func (d *Detector) attrMinute(t time.Time) {
	a := &d.attr
	for _, src := range sortedKeys(a.canaries) {
		in := a.canaries[src]
		if t.Sub(in.UpdatedAt) < CanaryQuiet {
			continue
		}
		delete(a.canaries, src)
		d.retire(in, t)
	}
	if len(a.canaries) == 0 {
		d.m.active.WithLabelValues(KindCanary).Set(0)
	}
}

func sortedKeys(m map[string]*Incident) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// attrOpen lists the open canary incidents, oldest first.
func (d *Detector) attrOpen() []*Incident {
	var out []*Incident
	for _, k := range sortedKeys(d.attr.canaries) {
		out = append(out, d.attr.canaries[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].OpenedAt.Before(out[j].OpenedAt) })
	return out
}

// attrSnapshots is attrOpen as snapshots, for incidents().
func (d *Detector) attrSnapshots() []Incident {
	var out []Incident
	for _, in := range d.attrOpen() {
		out = append(out, in.snapshot("", in.UpdatedAt).Incident)
	}
	return out
}

// attrPersist runs before incidents are written: brings the attribution
// of surge incidents up to date and writes the open canary incidents.
func (d *Detector) attrPersist() {
	d.attrAnnotate()
	open := d.attrOpen()
	for _, in := range open {
		in.summarise()
	}
	if open == nil {
		open = []*Incident{}
	}
	b, _ := json.Marshal(open)
	d.pop.Batch().PutMeta(metaCanaries, b)
}

// attrAnnotate brings the attribution of the surge incidents, and of the
// events about to be returned, up to date.
func (d *Detector) attrAnnotate() {
	if in := d.open[KindSurge]; in != nil {
		d.annotate(in)
	}
	for _, in := range d.strat.scoped {
		d.annotate(in)
	}
	if n := len(d.resolved); n > 0 && d.resolved[n-1].Kind == KindSurge {
		d.annotate(d.resolved[n-1])
	}
	for i := range d.out {
		if d.out[i].Kind == KindSurge {
			d.annotate(&d.out[i].Incident)
		}
	}
}

// annotate computes in's attribution from its recipients (when they
// changed since the last time).
func (d *Detector) annotate(in *Incident) {
	a := &d.attr
	if in.Attribution.at == in.Recipients && in.Recipients > 0 && in.Attribution.with == a.lists {
		return
	}
	prev := in.Attribution
	at := Attribution{at: in.Recipients, with: a.lists}
	at.Dormant = int(in.DormantShare*float64(in.Recipients) + 0.5)
	tags := a.lists.Tags()
	counts := make([]int, len(tags)+1) // [len(tags)]: untagged
	details := map[string]int{}
	known := map[string]bool{}
	for _, id := range in.RecipientIDs {
		m := a.lists.Mask(id.Key64())
		if m == 0 {
			counts[len(tags)]++
		}
		if bits.OnesCount64(m) == 1 {
			at.SingleSource++
		}
		for b := m; b != 0; b &= b - 1 {
			counts[bits.TrailingZeros64(b)]++
		}
		dl, ok := a.details[id]
		if !ok {
			dl, ok = a.detailsOld[id]
		}
		if ok {
			details[dl.label]++
			known[dl.label] = dl.known
		}
	}
	if risk := d.pop.TagRisk(); len(tags) > 0 && len(risk) == len(tags)+1 {
		n := in.Recipients
		pop := d.pop.AtRisk() + n // the population before these first spams
		var cs []attribution.Count
		for i, t := range tags {
			cs = append(cs, attribution.Count{Tag: t, InIncident: counts[i], Population: risk[i] + counts[i]})
		}
		untagged := d.pop.AtRisk() - risk[len(tags)]
		cs = append(cs, attribution.Count{Tag: attribution.Untagged, InIncident: counts[len(tags)], Population: untagged + counts[len(tags)]})
		at.Tags, at.TopTag = attribution.Rank(n, pop, cs, attribution.DefaultGuards)
		at.TopSource = attribution.Sentence(at.Tags, at.TopTag, n)
	}
	// Details are remembered for recent first spams only; after a restart
	// the stored counts are kept where the recount finds fewer.
	for _, dc := range prev.SubaddressDetails {
		if dc.Count > details[dc.Detail] { // not seen since the restart
			details[dc.Detail] = dc.Count
			known[dc.Detail] = dc.Known
		}
	}
	var dcs []attribution.DetailCount
	for lbl, c := range details {
		dcs = append(dcs, attribution.DetailCount{Detail: lbl, Known: known[lbl], Count: c})
	}
	at.SubaddressDetails = attribution.TopDetails(dcs, in.Recipients)
	at.CanarySource = prev.CanarySource
	in.Attribution = at
	d.profile(in, d.date(in))
}

// SetAttribution attaches source lists to a Detector made by Open (serve
// loads the lists itself, so that a missing file stops the start). Call it
// before the first Observe, from the goroutine that calls Observe.
func (d *Detector) SetAttribution(a Attributor) {
	if a == nil {
		return
	}
	d.o.Attribution = a
	d.attrSync(a.Current())
}

// attrRejected checks the recipients the next hop refused: mail to a
// canary is evidence of the leak even when the canary has no mailbox (a
// fake row in a user table).
func (d *Detector) attrRejected(t time.Time, o *ingest.Observation) {
	if d.o.Attribution == nil || d.attr.lists.NumCanaries() == 0 {
		return
	}
	d.syncLists()
	for _, raw := range o.Rejected {
		if r, ok := d.Recipient(raw); ok {
			if src, ok := d.pop.Canary(r.ID); ok {
				d.canaryHit(t, r.ID, src, o)
			}
		}
	}
}
