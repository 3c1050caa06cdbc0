package recipients

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/store"
)

// A Population in tally mode (Options.Tally) keeps no addresses: a shared
// store (a fleet's Redis, package recipients/redisstore) decides each
// recipient's outcome, and Tally counts the outcomes into the same at-risk
// accounting Apply keeps (the total, the maturation hours, per tag and per
// domain), so that the statistics read the same numbers from it. Fed the
// outcomes Apply gave for a history, in the same order, a tally has the
// counts of the Population that gave them (TestTallyMatchesApply). Its
// counts are persisted as a meta blob (TallyMeta) with the rest of the
// caller's batch, since no records are there to recount them from.

// TallyMeta names the meta blob of a tally's counts for a key space.
func TallyMeta(space [8]byte) string { return "recipient_tally:" + hex.EncodeToString(space[:]) }

// tallyState is the persisted form of a tally's counts.
type tallyState struct {
	Tracked    int                        `json:"tracked"`
	AtRisk     int                        `json:"at_risk"`
	MatHr      int64                      `json:"mat_hr"`
	Mature     map[int64]int32            `json:"mature,omitempty"`
	Tags       []string                   `json:"tags,omitempty"`
	TagRisk    []int                      `json:"tag_risk,omitempty"`
	TagBuckets map[int64][]int32          `json:"tag_buckets,omitempty"`
	DomRisk    []int                      `json:"dom_risk,omitempty"`
	DomBuckets map[int64]map[uint16]int32 `json:"dom_buckets,omitempty"`
	RiskHours  *hourHist                  `json:"risk_hours,omitempty"`
	SeenHours  *hourHist                  `json:"seen_hours,omitempty"`
}

// Tally counts what a message at t did to one recipient, as decided by a
// shared store: oc.Kind, oc.ID (its tag mask), oc.Dormant; domain is the
// recipient's domain (oc.Domain is set to its id here) and matureHour,
// for an EarlySpam, the hour the address would have matured (first mail
// plus warm-up, rounded up, as MatureHour computes); for a FirstSpam, the
// hour it matured (0: not known), which sets oc.FirstMail (to that hour's
// end less the warm-up) where the store did not. A FirstSpam is left in
// the counts until Spent, as after Apply. Canary outcomes count nothing.
func (p *Population) Tally(t time.Time, oc *Outcome, domain string, matureHour int64) {
	k := key64(&oc.ID)
	switch oc.Kind {
	case NewMail:
		p.tracked++
		dom := p.doms.id(domain, &p.batch)
		oc.Domain = dom
		p.seenFirst(Minutes(t), 1)
		h := p.matureHour(Minutes(t))
		p.mature[h]++
		p.tags.mature(h, k, 1)
		p.doms.bucketAdd(h, dom, 1)
	case NewSpam:
		p.tracked++
		oc.Domain = p.doms.id(domain, &p.batch)
	case Mail, Spam:
	case EarlySpam:
		dom := p.doms.id(domain, &p.batch)
		oc.Domain = dom
		if matureHour > p.matHr {
			p.mature[matureHour]--
			p.tags.mature(matureHour, k, -1)
			p.doms.bucketAdd(matureHour, dom, -1)
		} else {
			// The store decided with the message's own hour, and this
			// tally's clock already matured the address's hour (a late
			// message, or instances whose clocks differ): it was counted
			// at risk, and leaves the count as a first spam would.
			p.atRisk--
			p.riskHr.add(matureHour, -1)
			p.tags.spent(p.tags.mask(k))
			p.doms.add(dom, -1)
		}
	case FirstSpam:
		oc.Domain = p.doms.id(domain, &p.batch)
		oc.mask = p.tags.mask(k)
		if oc.FirstMail == 0 && matureHour > 0 {
			oc.FirstMail = uint32(matureHour*60) - p.warmupMin
		}
	}
}

// TallyForget counts an address the shared store forgot: firstMail
// (minutes) and whether it never had spam. Its domain is not known there,
// so the per-domain counts keep it (they are corrected as its domain's
// strata re-learn; see the redisstore package doc).
func (p *Population) TallyForget(id *addr.ID, firstMail uint32, neverSpammed bool) {
	p.tracked--
	if !neverSpammed {
		return
	}
	p.seenFirst(firstMail, -1)
	k := key64(id)
	if h := p.matureHour(firstMail); h <= p.matHr {
		p.atRisk--
		p.riskHr.add(h, -1)
		p.tags.spent(p.tags.mask(k))
	} else {
		p.mature[h]--
		p.tags.mature(h, k, -1)
	}
}

// MatureHour is the hour (since the epoch) in which an address first
// mailed at firstMail (minutes) becomes established.
func (p *Population) MatureHour(firstMail uint32) int64 { return p.matureHour(firstMail) }

// StageTally puts a tally's counts into the pending batch (Batch), to be
// committed with the caller's meta blobs. A no-op out of tally mode.
func (p *Population) StageTally() {
	if !p.o.Tally {
		return
	}
	s := tallyState{
		Tracked: p.tracked, AtRisk: p.atRisk, MatHr: p.matHr, Mature: p.mature,
		TagRisk: p.tags.risk, TagBuckets: p.tags.buckets,
		RiskHours: &p.riskHr, SeenHours: &p.seenHr,
	}
	if p.tags.lists != nil {
		s.Tags = p.tags.lists.Tags()
	}
	if p.doms.on {
		s.DomRisk, s.DomBuckets = p.doms.risk, p.doms.buckets
	}
	raw, _ := json.Marshal(s)
	p.batch.PutMeta(TallyMeta(p.batch.Space), raw)
}

// loadTally reads a tally's counts (Load, in tally mode).
func (p *Population) loadTally(st Source) error {
	raw, err := st.Meta(TallyMeta(p.batch.Space))
	if err != nil || raw == nil {
		return err
	}
	var s tallyState
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("recipient tally unreadable (%v): %w", err, store.ErrCorrupt)
	}
	if p.doms.on && s.DomRisk != nil && len(s.DomRisk) != len(p.doms.names) {
		return fmt.Errorf("recipient tally has %d domains, the list %d: %w", len(s.DomRisk), len(p.doms.names), store.ErrCorrupt)
	}
	p.tracked, p.atRisk, p.matHr = s.Tracked, s.AtRisk, s.MatHr
	if s.RiskHours != nil {
		p.riskHr = *s.RiskHours
	}
	if s.SeenHours != nil {
		p.seenHr = *s.SeenHours
	}
	if s.Mature != nil {
		p.mature = s.Mature
	}
	if p.doms.on && s.DomRisk != nil {
		p.doms.risk = s.DomRisk
		if s.DomBuckets != nil {
			p.doms.buckets = s.DomBuckets
		}
	}
	// The per-tag counts are kept until SetLists brings the same tags.
	p.tags.risk, p.tags.buckets = s.TagRisk, s.TagBuckets
	p.tallyTags = s.Tags
	if p.tags.buckets == nil {
		p.tags.buckets = map[int64][]int32{}
	}
	return nil
}

// keepTallyTags reports whether a tally may keep its per-tag counts for
// lists with tags (the same tags, in the same order, as those counted).
func (p *Population) keepTallyTags(tags []string) bool {
	return p.o.Tally && len(tags) > 0 && slices.Equal(tags, p.tallyTags) && len(p.tags.risk) == len(tags)+1
}
