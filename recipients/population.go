// Package recipients is the per-recipient state of the detector: when each
// address (by keyed hash) first got mail and first got spam, which
// addresses are established and never spammed (the at-risk population),
// how many of those are on each source list, and which are canaries.
//
// It answers one question per message, Apply: what happened to each
// recipient (new, first spam, canary, ...). The statistics in package
// detector consume those outcomes; they never touch the table. This is the
// seam a shared store (Redis, for a fleet of mail hops) plugs into: it
// keeps the same state elsewhere and returns the same outcomes.
//
// It never holds or returns a plaintext address: only addr.IDs.
package recipients

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/store"
)

// lastMailSlack is how far (days) an address's last mail may move before
// it is written again.
const lastMailSlack = 7

// LongDormantFactor: an address without mail for this many times the
// dormancy period (six months for the default 30 days) is long dormant.
const LongDormantFactor = 6

// IdleFor says whether an address whose last mail was on lastDay (days
// since the epoch) is dormant, and long dormant, at t. The last mail is
// kept to the day: idleness counts from the day's end, so dormant means
// surely dormant.
func IdleFor(t time.Time, lastDay uint16, dormant time.Duration) (isDormant, long bool) {
	idle := t.Sub(time.Unix(int64(lastDay+1)*86400, 0))
	return idle >= dormant, idle >= LongDormantFactor*dormant
}

// Rcpt is one recipient of a message, normalised and hashed.
type Rcpt struct {
	ID     addr.ID
	Detail string // sub-address detail ("shop" of user+shop@), if any
	Domain string // the address's domain, normalised (empty: unknown)
}

// Kind is what a message did to one recipient's state.
type Kind uint8

const (
	// NewMail: the first mail to an address, not spam. It is
	// established (at risk) once it has had mail for Options.Warmup.
	NewMail Kind = iota
	// NewSpam: the first mail to an address is spam. It never becomes
	// at risk (dictionary-attack evidence).
	NewSpam
	// Mail: more mail to a known address that is not spam.
	Mail
	// Spam: spam to a known address that already had spam.
	Spam
	// EarlySpam: the first spam of a known address that had not
	// matured yet: it never becomes at risk.
	EarlySpam
	// FirstSpam: the first spam of an established, never-spammed
	// address. It leaves the at-risk population when the caller says
	// it has counted it (Spent).
	FirstSpam
	// Canary: an address on a canary list. It gets no state.
	Canary
)

// Outcome is what a message did to one recipient.
type Outcome struct {
	Kind   Kind
	ID     addr.ID
	Detail string
	// Dormant (FirstSpam): the address had no mail for Options.Dormant
	// before this one; LongDormant, for LongDormantFactor times that (a
	// dead account, as an old backup's list is full of).
	Dormant, LongDormant bool
	// Source (Canary): the source the canary was planted in.
	Source string
	// Domain is the id of the domain the address is counted under
	// (DomainName; 0: unknown, as for addresses stored before domains
	// were kept).
	Domain uint16
	// FirstMail (FirstSpam) is the address's first mail, minutes since
	// the epoch (0: not known, as from a journal written before it was
	// kept).
	FirstMail uint32
	mask      uint64 // FirstSpam: the address's tag mask
}

// TagMask is a FirstSpam's tag mask: bit i for the address being in the
// list of Lists().Tags()[i].
func (o *Outcome) TagMask() uint64 { return o.mask }

// Known reports whether the recipient had state before the message.
func (o *Outcome) Known() bool { return o.Kind >= Mail && o.Kind <= FirstSpam }

// Options of a Population.
type Options struct {
	// Warmup is how long an address must have had mail before it is
	// established.
	Warmup time.Duration
	// Dormant is how long without mail makes an address dormant.
	Dormant time.Duration
	// ForgetAfter: an address without mail for this long is dropped
	// (Forget); zero keeps every address for ever.
	ForgetAfter time.Duration
	// Domains keeps the per-domain at-risk counts (DomainRisk), for
	// per-domain detection. Off, no domain is kept or written, and the
	// hot path does not pay for it (a 2-byte array beside the table,
	// read on first spams and writes, and the domains' buckets); records
	// rewritten then lose their domain and adopt it again once it is on.
	Domains bool
	// Tally keeps no addresses: a shared store decides the outcomes and
	// Tally counts them (tally.go). Apply and Forget are not used then.
	Tally bool
}

// Population is the recipient state kept in memory (packed table, 20.5 B
// an address at 10 M) with its pending writes to the embedded store. Not
// safe for concurrent use: one goroutine (the detector's) calls it.
type Population struct {
	o         Options
	warmupMin uint32

	tab    *table
	atRisk int
	mature map[int64]int32 // hour index → never-spammed addresses maturing then
	matHr  int64           // hours up to this one are processed

	tags tagRisk
	doms domainRisk

	// First-seen histograms (firstseen.go).
	riskHr, seenHr hourHist

	batch store.Batch
	// oldestDay is at most the last-mail day of every address in the
	// table: Forget has nothing to do before the cutoff passes it.
	oldestDay uint16

	// Tally mode: the addresses counted (Tracked) and the tags the
	// per-tag counts are of.
	tracked   int
	tallyTags []string
}

// New returns an empty Population whose writes go to the store space
// (the key fingerprint).
func New(o Options, space [8]byte) *Population {
	p := &Population{o: o, warmupMin: uint32(o.Warmup / time.Minute), tab: newTable(0), mature: map[int64]int32{}}
	p.doms.init(o.Domains)
	p.batch.Space = space
	return p
}

// Source is where Load reads stored recipients from (store.Pebble,
// store.Memory).
type Source interface {
	// Recipients calls fn for every recipient record in the key space.
	Recipients(space [8]byte, fn func(id [16]byte, r store.Record) error) error
	// Meta returns a named blob, nil if absent.
	Meta(name string) ([]byte, error)
}

// Load reads the recipients stored for the population's space. clock is
// the detector's stored clock (zero for none): the addresses matured by
// then are at risk, the others mature as the clock's hours pass (Mature).
// sizeHint (the count saved last time) sizes the table.
func (p *Population) Load(st Source, clock time.Time, sizeHint int) error {
	if sizeHint > 0 {
		p.tab = newTable(sizeHint)
	}
	clockMin := Minutes(clock)
	if clockMin != 0 {
		p.tab.setBase(clockMin, uint16(clockMin/1440))
	}
	raw, err := st.Meta(DomainsMeta(p.batch.Space))
	if err != nil {
		return err
	}
	if err := p.doms.load(raw); err != nil {
		return err
	}
	if p.o.Tally {
		p.matHr = int64(clockMin) / 60
		return p.loadTally(st)
	}
	err = st.Recipients(p.batch.Space, func(id [16]byte, r store.Record) error {
		if r.FirstMail == 0 {
			return fmt.Errorf("recipient without first mail: %w", store.ErrCorrupt)
		}
		// Stored ids are unique: no lookup before the insert.
		aid := addr.ID(id)
		x := recOf(r)
		s := p.tab.insert(&aid, x)
		if r.Domain != 0 && p.doms.on {
			if int(r.Domain) >= len(p.doms.names) {
				return fmt.Errorf("recipient of domain %d, %d known: %w", r.Domain, len(p.doms.names)-1, store.ErrCorrupt)
			}
			p.tab.setDom(s, r.Domain)
		}
		if p.oldestDay == 0 || x.lastDay < p.oldestDay {
			p.oldestDay = x.lastDay
		}
		if hamFirst(r.FirstMail, r.FirstSpam) {
			p.seenFirst(r.FirstMail, 1)
		}
		if r.FirstSpam == 0 {
			// Same rule as established(): matured once its hour bucket
			// is processed.
			if h := p.matureHour(r.FirstMail); h <= int64(clockMin)/60 {
				p.atRisk++
				p.riskHr.add(h, 1)
				p.doms.add(p.tab.dom(s), 1)
			} else {
				p.mature[h]++
				p.doms.bucketAdd(h, p.tab.dom(s), 1)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.matHr = int64(clockMin) / 60
	return nil
}

// Minutes is t in whole minutes since the epoch, the unit of the state (0
// for a zero or pre-1970 time).
func Minutes(t time.Time) uint32 {
	if t.IsZero() || t.Unix() < 60 {
		return 0
	}
	return uint32(t.Unix() / 60)
}

// matureHour is the hour bucket in which an address first mailed at
// firstMail (minutes) becomes established.
func (p *Population) matureHour(firstMail uint32) int64 {
	return int64(firstMail+p.warmupMin+59) / 60
}

// established reports whether the address had matured by the hour
// accounting (its maturation bucket is processed), which keeps the at-risk
// count and the first-spam decision consistent.
func (p *Population) established(firstMail uint32) bool {
	return p.matureHour(firstMail) <= p.matHr
}

// AtRisk is the number of established addresses that never got spam.
func (p *Population) AtRisk() int { return p.atRisk }

// Tracked is the number of addresses with state.
func (p *Population) Tracked() int { return p.tab.n + p.tracked }

// Touch starts loading id's home slot into the cache: the table is far
// larger than the caches, and misses for a message's recipients then
// overlap (with each other and with the caller's work) instead of stalling
// Apply one by one.
func (p *Population) Touch(id *addr.ID) { p.tab.touch(key64(id)) }

// Apply records one message to rcpts at t and appends what it did to each
// recipient, in order, to out. A FirstSpam stays in the at-risk counts
// until Spent: statistics that read them between two first spams of one
// message see the population as it was.
func (p *Population) Apply(t time.Time, rcpts []Rcpt, spam bool, out []Outcome) []Outcome {
	now := Minutes(t)
	for i := range rcpts {
		id, detail := rcpts[i].ID, rcpts[i].Detail
		if src, ok := p.tags.canary(id); ok {
			out = append(out, Outcome{Kind: Canary, ID: id, Detail: detail, Source: src})
			continue
		}
		k := key64(&id)
		sl, found := p.tab.lookup(k)
		if !found {
			dom := p.doms.id(rcpts[i].Domain, &p.batch)
			r := store.Record{FirstMail: now, LastMail: now, Domain: dom}
			kind := NewMail
			if spam {
				r.FirstSpam = now
				kind = NewSpam
			} else {
				h := p.matureHour(now)
				p.seenFirst(now, 1)
				p.mature[h]++
				p.tags.mature(h, k, 1)
				p.doms.bucketAdd(h, dom, 1)
			}
			p.tab.setDom(p.tab.insertAt(sl, k, recOf(r)), dom)
			if p.oldestDay == 0 {
				p.oldestDay = uint16(now / 1440)
			}
			p.dirty(id, r)
			out = append(out, Outcome{Kind: kind, ID: id, Detail: detail, Domain: dom})
			continue
		}
		// The domain array is read only where it matters (a first spam,
		// a write): it is one more cache miss per recipient otherwise.
		st := p.tab.get(sl)
		changed, touched := false, false
		oc := Outcome{Kind: Mail, ID: id, Detail: detail}
		if spam {
			oc.Kind = Spam
		}
		if spam && st.firstSpam == 0 {
			st.firstSpam = now
			changed = true
			oc.Domain = p.tab.dom(sl)
			if p.established(st.firstMail) {
				oc.Kind = FirstSpam
				oc.FirstMail = st.firstMail
				// The last mail is kept to the day: count from the
				// day's end, so dormant means surely dormant.
				oc.Dormant, oc.LongDormant = IdleFor(t, st.lastDay, p.o.Dormant)
				oc.mask = p.tags.mask(k)
			} else {
				oc.Kind = EarlySpam
				// Spammed before it matured: it never becomes at risk.
				if h := p.matureHour(st.firstMail); h > p.matHr {
					p.mature[h]--
					p.tags.mature(h, k, -1)
					p.doms.bucketAdd(h, oc.Domain, -1)
				}
			}
		}
		if day := uint16(now / 1440); day != st.lastDay {
			st.lastDay = day
			touched = true
			// Last mail only matters for dormancy (a month): the
			// store gets it when it moved a week, so a restart can
			// make an address look at most a week less dormant.
			if day-st.savedDay >= lastMailSlack {
				changed = true
			}
		}
		if changed {
			r := st.record()
			r.LastMail = now
			r.Domain = p.tab.dom(sl)
			if r.Domain == 0 && rcpts[i].Domain != "" {
				// Stored before domains were kept: it moves from the
				// unknown domain to its own as it is written. (A first
				// spam in this message is still counted under the
				// unknown one: its Outcome says 0, and so does Spent.)
				if r.Domain = p.doms.id(rcpts[i].Domain, &p.batch); r.Domain != 0 {
					p.adopt(sl, st, r.Domain)
				}
			}
			p.dirty(id, r)
			st.savedDay = st.lastDay
		}
		if changed || touched {
			p.tab.put(sl, st)
		}
		out = append(out, oc)
	}
	return out
}

// Forget drops the addresses with no mail for Options.ForgetAfter as of t:
// they leave the table and the at-risk counts (if they were at risk), and
// the store at the next commit; one that comes back is a new address
// (warm-up), never an established one's first spam. It reads the stored
// records of st for the full ids (the table keeps 64 bits of each), and
// checks each against the table, whose last mail is exact. It returns how
// many it forgot. Cheap when nothing can be old enough: it scans only once
// the cutoff passes the oldest last mail it knows of.
func (p *Population) Forget(st Source, t time.Time) (int, error) {
	if p.o.ForgetAfter <= 0 || p.tab.n == 0 {
		return 0, nil
	}
	today := int64(Minutes(t) / 1440)
	cut := today - int64(p.o.ForgetAfter/(24*time.Hour))
	if cut <= int64(p.oldestDay) {
		return 0, nil
	}
	cutoff := uint16(cut)
	forgot := 0
	oldest := uint16(today)
	err := st.Recipients(p.batch.Space, func(id [16]byte, r store.Record) error {
		aid := addr.ID(id)
		k := key64(&aid)
		sl, found := p.tab.lookup(k)
		if !found {
			return nil
		}
		x := p.tab.get(sl)
		if x.lastDay >= cutoff {
			oldest = min(oldest, x.lastDay)
			return nil
		}
		if hamFirst(x.firstMail, x.firstSpam) {
			p.seenFirst(x.firstMail, -1)
		}
		if x.firstSpam == 0 {
			d := p.tab.dom(sl)
			if p.established(x.firstMail) {
				p.atRisk--
				p.riskHr.add(p.matureHour(x.firstMail), -1)
				p.tags.spent(p.tags.mask(k))
				p.doms.add(d, -1)
			} else if h := p.matureHour(x.firstMail); h > p.matHr {
				p.mature[h]--
				p.tags.mature(h, k, -1)
				p.doms.bucketAdd(h, d, -1)
			}
		}
		p.tab.remove(k)
		p.batch.Recs = append(p.batch.Recs, store.Entry{ID: id})
		forgot++
		return nil
	})
	if err != nil {
		return forgot, err
	}
	p.oldestDay = oldest
	return forgot, nil
}

// Spent takes a FirstSpam's address out of the at-risk counts (the total
// and its source lists').
func (p *Population) Spent(o *Outcome) {
	if o.Kind != FirstSpam {
		return
	}
	p.atRisk--
	if o.FirstMail != 0 {
		p.riskHr.add(p.matureHour(o.FirstMail), -1)
	}
	p.tags.spent(o.mask)
	p.doms.add(o.Domain, -1)
}

// adopt moves a never-spammed address stored without a domain (slot s,
// state st) to domain d in the per-domain counts.
func (p *Population) adopt(s *slot, st rec, d uint16) {
	p.tab.setDom(s, d)
	if st.firstSpam != 0 {
		return
	}
	if p.established(st.firstMail) {
		p.doms.add(0, -1)
		p.doms.add(d, 1)
	} else if h := p.matureHour(st.firstMail); h > p.matHr {
		p.doms.bucketAdd(h, 0, -1)
		p.doms.bucketAdd(h, d, 1)
	}
}

// Domains is the number of domain ids in use, 0 (unknown) included.
func (p *Population) Domains() int { return len(p.doms.names) }

// DomainName is the name of domain id d ("" for 0, unknown).
func (p *Population) DomainName(d uint16) string { return p.doms.names[d] }

// DomainID is the id of a domain name already known.
func (p *Population) DomainID(name string) (uint16, bool) {
	id, ok := p.doms.ids[name]
	return id, ok
}

// DomainRisk is the at-risk population of domain id d.
func (p *Population) DomainRisk(d uint16) int { return p.doms.risk[d] }

// Canary reports whether id is on a canary list, and its source.
func (p *Population) Canary(id addr.ID) (string, bool) { return p.tags.canary(id) }

// Mature processes the hour buckets up to hour h (hours since the epoch):
// the addresses established by then join the at-risk population.
func (p *Population) Mature(h int64) {
	if h-p.matHr > int64(len(p.mature))+1 {
		for k, n := range p.mature {
			if k <= h {
				p.atRisk += int(n)
				p.riskHr.add(k, n)
				delete(p.mature, k)
			}
		}
	} else {
		for k := p.matHr + 1; k <= h; k++ {
			if n, ok := p.mature[k]; ok {
				p.atRisk += int(n)
				p.riskHr.add(k, n)
				delete(p.mature, k)
			}
		}
	}
	p.matHr = h
	p.tags.matured(h)
	p.doms.matured(h)
}

func (p *Population) dirty(id addr.ID, r store.Record) {
	p.batch.Recs = append(p.batch.Recs, store.Entry{ID: id, Rec: r})
}

// Pending is the number of recipient writes not yet committed.
func (p *Population) Pending() int { return len(p.batch.Recs) }

// Batch is the pending writes. The caller adds its own meta blobs, so that
// recipients and the statistics' state are committed together, and calls
// Reset on the batch once the commit succeeded (after a failure the batch
// is kept and the next commit retries it).
func (p *Population) Batch() *store.Batch { return &p.batch }

// SetLists adopts source lists (nil: none): canaries leave the at-risk
// accounting, and the per-list at-risk counts are recounted (one pass over
// the table, on load and reload only).
func (p *Population) SetLists(l *attribution.Lists) {
	p.tags.lists = l
	l.Canaries(func(id addr.ID, _ string) {
		sl := p.tab.find(&id)
		if sl == nil {
			return
		}
		st := p.tab.get(sl)
		if st.firstSpam != 0 {
			return
		}
		d := p.tab.dom(sl)
		if p.established(st.firstMail) {
			p.atRisk--
			p.riskHr.add(p.matureHour(st.firstMail), -1)
			p.doms.add(d, -1)
		} else if h := p.matureHour(st.firstMail); h > p.matHr {
			p.mature[h]--
			p.doms.bucketAdd(h, d, -1)
		}
		// In memory only (never written): the slot is no longer at
		// risk, and Apply never reaches it while it is a canary.
		st.firstSpam = 1
		p.tab.put(sl, st)
	})
	n := len(l.Tags())
	if p.keepTallyTags(l.Tags()) {
		return
	}
	p.tags.risk = make([]int, n+1)
	p.tags.buckets = map[int64][]int32{}
	if p.o.Tally {
		p.tallyTags = l.Tags()
	}
	if n == 0 {
		return
	}
	p.tab.neverSpammed(func(k uint64, firstMail uint32) {
		m := l.Mask(k)
		if m == 0 {
			return
		}
		if p.established(firstMail) {
			addBits(p.tags.risk, m, 1)
		} else {
			p.tags.bucket(p.matureHour(firstMail), m, 1)
		}
	})
}

// Lists are the source lists in use (nil: none).
func (p *Population) Lists() *attribution.Lists { return p.tags.lists }

// TagRisk is the at-risk population per tag of Lists().Tags(), and at
// [len(tags)] the at-risk addresses in any tag (the untagged are the rest
// of AtRisk). Empty without tags. The caller must not change it.
func (p *Population) TagRisk() []int { return p.tags.risk }

// tagRisk is the at-risk accounting per source list.
type tagRisk struct {
	lists *attribution.Lists
	// risk: see TagRisk.
	risk []int
	// buckets mirrors Population.mature for tagged addresses: hour →
	// per-tag counts (same layout as risk).
	buckets map[int64][]int32
}

func (a *tagRisk) canary(id addr.ID) (string, bool) {
	if a.lists == nil {
		return "", false
	}
	return a.lists.Canary(id)
}

// mask is the tag mask of key k, or 0 without tags.
func (a *tagRisk) mask(k uint64) uint64 {
	if len(a.risk) <= 1 {
		return 0
	}
	return a.lists.Mask(k)
}

// mature follows Population.mature for one address with key k (delta +1:
// new; -1: spammed before it matured).
func (a *tagRisk) mature(h int64, k uint64, delta int32) {
	if m := a.mask(k); m != 0 {
		a.bucket(h, m, delta)
	}
}

func (a *tagRisk) bucket(h int64, m uint64, delta int32) {
	b := a.buckets[h]
	if b == nil {
		b = make([]int32, len(a.risk))
		a.buckets[h] = b
	}
	for x := m; x != 0; x &= x - 1 {
		b[bits.TrailingZeros64(x)] += delta
	}
	b[len(b)-1] += delta
}

// matured follows the maturation of hour buckets up to h.
func (a *tagRisk) matured(h int64) {
	drain(a.buckets, h, func(b []int32) {
		for i, n := range b {
			a.risk[i] += int(n)
		}
	})
}

// drain hands fn every bucket of hours up to h, and drops them (hourly,
// off the hot path).
func drain[B any](buckets map[int64]B, h int64, fn func(B)) {
	for k, b := range buckets {
		if k <= h {
			fn(b)
			delete(buckets, k)
		}
	}
}

// spent follows the first spam of an at-risk address with tag mask m.
func (a *tagRisk) spent(m uint64) {
	if m != 0 {
		addBits(a.risk, m, -1)
	}
}

func addBits(v []int, m uint64, delta int) {
	for b := m; b != 0; b &= b - 1 {
		v[bits.TrailingZeros64(b)] += delta
	}
	v[len(v)-1] += delta
}

// DomainsMeta names the meta blob of the domain list of a key space (a JSON
// array of names, index = id, "" first): domain names are not addresses
// (incidents name them), and the ids in the records of one key space refer
// to its list.
func DomainsMeta(space [8]byte) string { return "recipient_domains:" + hex.EncodeToString(space[:]) }

// maxDomains bounds the domain ids (a uint16 a slot); later domains are
// counted as unknown.
const maxDomains = 1<<16 - 1

// domainRisk is the at-risk accounting per recipient domain: the domain
// list (id → name, written with the records that first refer to an id)
// and, per domain, the at-risk count and the maturation buckets.
type domainRisk struct {
	on      bool     // Options.Domains
	names   []string // by id; names[0] is "" (unknown)
	ids     map[string]uint16
	risk    []int
	buckets map[int64]map[uint16]int32
	// The last domain asked for, and its id: mail comes in runs to one
	// domain.
	last   string
	lastID uint16
}

func (d *domainRisk) init(on bool) {
	d.on = on
	d.names, d.ids, d.risk = []string{""}, map[string]uint16{}, []int{0}
	d.buckets = map[int64]map[uint16]int32{}
}

// load reads the domain list blob (nil: none yet).
func (d *domainRisk) load(raw []byte) error {
	if raw == nil {
		return nil
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err != nil || len(names) == 0 || names[0] != "" {
		return fmt.Errorf("domain list unreadable: %w", store.ErrCorrupt)
	}
	d.names = names
	d.risk = make([]int, len(names))
	for i, n := range names[1:] {
		d.ids[n] = uint16(i + 1)
	}
	return nil
}

// id is the id of domain name, added (and the list written into b) when
// new.
func (d *domainRisk) id(name string, b *store.Batch) uint16 {
	if name == "" || !d.on {
		return 0
	}
	if name == d.last {
		return d.lastID
	}
	id, ok := d.ids[name]
	if !ok {
		if len(d.names) > maxDomains {
			return 0
		}
		id = uint16(len(d.names))
		d.names = append(d.names, name)
		d.risk = append(d.risk, 0)
		d.ids[name] = id
		raw, _ := json.Marshal(d.names)
		b.PutMeta(DomainsMeta(b.Space), raw)
	}
	d.last, d.lastID = name, id
	return id
}

// add changes the at-risk count of domain dom.
func (d *domainRisk) add(dom uint16, delta int) {
	if d.on {
		d.risk[dom] += delta
	}
}

func (d *domainRisk) bucketAdd(h int64, dom uint16, delta int32) {
	if !d.on {
		return
	}
	b := d.buckets[h]
	if b == nil {
		b = map[uint16]int32{}
		d.buckets[h] = b
	}
	b[dom] += delta
}

// matured moves the buckets up to hour h into the at-risk counts.
func (d *domainRisk) matured(h int64) {
	drain(d.buckets, h, func(b map[uint16]int32) {
		for dom, n := range b {
			d.risk[dom] += int(n)
		}
	})
}
