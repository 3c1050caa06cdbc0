package recipients

import (
	"math/bits"
	"unsafe"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/store"
)

// table is the in-memory recipient state: open addressing with linear
// probing over 16-byte slots, keyed by the first 64 bits of the id. Two
// addresses collide only if their ids share 64 bits (about one pair in
// 3·10⁵ populations of 10 M); the store keeps the full 128-bit ids.
//
// A slot is the 64-bit key and the address's state packed into 64 bits
// (layout below; the old slot held the same state unpacked in 20 bytes).
// The state is exact: what does not fit the packed form (times more than
// about 11 years from the detector's clock at load, the canary marker, a
// zero first mail) is kept in a small side map instead, so every field
// reads back as it was written and every decision is the same.
//
// The capacity need not be a power of two: the home slot is the key
// scaled to the capacity (a multiply). The table grows when it is 7/8
// full: it doubles up to 4 M slots (64 MB; 32 B an address at 1 M), then
// grows by a quarter, so that a big table is always between 70 % and
// 87.5 % full (16 B a slot: at most 23 B an address, 20.5 B at 10 M).
type table struct {
	slots []slot
	n     int
	cap   uint64

	// Bases of the packed times (setBase).
	based   bool
	base    uint32 // minutes
	dayBase uint16 // days
	// big holds the state of slots whose state does not pack (their
	// packed word is 0), by key.
	big map[uint64]rec

	sink uint64 // see touch

	// doms, once a domain is set, holds each slot's domain id (0:
	// unknown), parallel to slots: 2 bytes a slot.
	doms []uint16
}

type slot struct {
	k uint64 // the id's first 64 bits, never 0; 0 = empty
	v uint64 // packed rec; 0 = the state is in table.big
}

// rec is one address's state.
type rec struct {
	firstMail uint32 // minutes since the epoch
	firstSpam uint32 // minutes since the epoch, 0 = never
	lastDay   uint16 // days since the epoch of the last mail
	savedDay  uint16 // lastDay as last written to the store
}

// Packed layout of slot.v, times relative to the table's bases:
//
//	bits  0-23  firstMail - base         (1 … 2²⁴-1; 0 marks "in big")
//	bits 24-47  firstSpam - base         (0 = never)
//	bits 48-60  lastDay - dayBase        (0 … 8191: 22 years)
//	bits 61-63  lastDay - savedDay       (0 … 7; Observe keeps it ≤ 6)
const (
	relBits  = 24
	relMax   = 1<<relBits - 1
	dayBits  = 13
	dayMax   = 1<<dayBits - 1
	deltaMax = 7
)

const (
	minCap   = 1024
	loadNum  = 7 // grow when more than loadNum/loadDen full
	loadDen  = 8
	growNum  = 5 // from bigCap slots on, by growNum/growDen
	growDen  = 4
	bigCap   = 1 << 22            // 64 MB
	baseBack = 1 << (relBits - 1) // base: this many minutes before the first firstMail (16 years)
	dayBack  = 1 << (dayBits - 1) // dayBase: this many days before the first lastDay (11 years)
)

func newTable(hint int) *table {
	c := uint64(minCap)
	for uint64(hint)*loadDen > c*loadNum {
		c = nextCap(c)
	}
	return &table{slots: newSlots(c), cap: c}
}

// nextCap is the capacity after c: double while the table is small (a
// grow moves every address, and small tables cost little memory whatever
// their load), a quarter more from bigCap slots on.
func nextCap(c uint64) uint64 {
	if c < bigCap {
		return c * 2
	}
	return c + c*(growNum-growDen)/growDen
}

func newSlots(n uint64) []slot {
	s := make([]slot, n)
	adviseHuge(s)
	return s
}

func key64(id *addr.ID) uint64 { return id.Key64() }

// home scales the key (uniform: it is a PRF output) to the capacity. The
// key's bytes are taken big-endian, so that homes follow the order of the
// ids: the store hands them over sorted, and a restart then fills the
// table front to back instead of missing the cache on every address.
func (t *table) home(k uint64) uint64 {
	hi, _ := bits.Mul64(bits.ReverseBytes64(k), t.cap)
	return hi
}

// touch loads the home slot of k, so that a lookup soon after finds it
// in the cache (Go has no prefetch instruction; the load's result goes to
// a field so that it is not optimised away).
func (t *table) touch(k uint64) {
	t.sink += t.slots[t.home(k)].k
}

// lookup returns the slot of id and true, or the empty slot where id
// would go and false (valid until the next insert).
func (t *table) lookup(k uint64) (*slot, bool) {
	i := t.home(k)
	for {
		s := &t.slots[i]
		if s.k == k {
			return s, true
		}
		if s.k == 0 {
			return s, false
		}
		if i++; i == t.cap {
			i = 0
		}
	}
}

// find returns the slot of id, or nil.
func (t *table) find(id *addr.ID) *slot {
	if s, ok := t.lookup(key64(id)); ok {
		return s
	}
	return nil
}

// insert adds id, which must be absent, with state r, and returns its
// slot (valid until the next insert).
func (t *table) insert(id *addr.ID, r rec) *slot {
	k := key64(id)
	if (uint64(t.n)+1)*loadDen > t.cap*loadNum {
		t.grow()
	}
	s, _ := t.lookup(k)
	t.n++
	s.k = k
	t.put(s, r)
	return s
}

// insertAt adds the key of a lookup that returned (s, false), with state r,
// and returns its slot (s, or another one after a grow).
func (t *table) insertAt(s *slot, k uint64, r rec) *slot {
	if (uint64(t.n)+1)*loadDen > t.cap*loadNum {
		t.grow()
		s, _ = t.lookup(k)
	}
	t.n++
	s.k = k
	t.put(s, r)
	return s
}

// index is the position of s in the slots.
func (t *table) index(s *slot) uint64 {
	return uint64((uintptr(unsafe.Pointer(s)) - uintptr(unsafe.Pointer(unsafe.SliceData(t.slots)))) / unsafe.Sizeof(slot{}))
}

// dom is the domain id of the address in s (0: unknown).
func (t *table) dom(s *slot) uint16 {
	if t.doms == nil {
		return 0
	}
	return t.doms[t.index(s)]
}

// setDom sets the domain id of the address in s.
func (t *table) setDom(s *slot, d uint16) {
	if t.doms == nil {
		if d == 0 {
			return
		}
		t.doms = make([]uint16, t.cap)
	}
	t.doms[t.index(s)] = d
}

// remove deletes the address with key k, and reports whether it was
// there. Linear probing cannot leave a hole in a probe sequence, so the
// addresses after it whose home is not between the hole and themselves
// move back into it (Knuth's Algorithm R): every lookup still finds what is
// left.
func (t *table) remove(k uint64) bool {
	i := t.home(k)
	for t.slots[i].k != k {
		if t.slots[i].k == 0 {
			return false
		}
		if i++; i == t.cap {
			i = 0
		}
	}
	if t.slots[i].v == 0 && len(t.big) > 0 {
		delete(t.big, k)
	}
	j := i
	for {
		if j++; j == t.cap {
			j = 0
		}
		sj := &t.slots[j]
		if sj.k == 0 {
			break
		}
		h := t.home(sj.k)
		// Leave sj where it is if its home lies cyclically in (i, j].
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		t.slots[i] = *sj
		if t.doms != nil {
			t.doms[i] = t.doms[j]
		}
		i = j
	}
	t.slots[i] = slot{}
	if t.doms != nil {
		t.doms[i] = 0
	}
	t.n--
	return true
}

func (t *table) grow() {
	old, oldDoms := t.slots, t.doms
	t.cap = nextCap(t.cap)
	t.slots = newSlots(t.cap)
	if oldDoms != nil {
		t.doms = make([]uint16, t.cap)
	}
	for j, s := range old {
		if s.k == 0 {
			continue
		}
		i := t.home(s.k)
		for t.slots[i].k != 0 {
			if i++; i == t.cap {
				i = 0
			}
		}
		t.slots[i] = s
		if oldDoms != nil {
			t.doms[i] = oldDoms[j]
		}
	}
}

// setBase centres the packed times on a minute and a day: states within
// about 16 years (first mail, first spam) and 11 years (last mail) of them
// pack. The detector calls it with its clock before loading the store;
// otherwise the first state stored sets it.
func (t *table) setBase(minute uint32, day uint16) {
	t.based = true
	t.base = minute - min(minute, baseBack)
	t.dayBase = day - min(day, dayBack)
}

// get returns the state of s.
func (t *table) get(s *slot) rec {
	v := s.v
	fm := uint32(v & relMax)
	if fm == 0 {
		return t.big[s.k]
	}
	r := rec{
		firstMail: t.base + fm,
		lastDay:   t.dayBase + uint16(v>>48&dayMax),
	}
	if fs := uint32(v >> relBits & relMax); fs != 0 {
		r.firstSpam = t.base + fs
	}
	r.savedDay = r.lastDay - uint16(v>>61)
	return r
}

// put stores r as the state of s.
func (t *table) put(s *slot, r rec) {
	if s.v == 0 && len(t.big) > 0 {
		delete(t.big, s.k)
	}
	if !t.based {
		t.setBase(r.firstMail, r.lastDay)
	}
	fm := r.firstMail - t.base
	fs := r.firstSpam - t.base
	day := r.lastDay - t.dayBase
	delta := r.lastDay - r.savedDay
	if fm-1 >= relMax || r.firstSpam != 0 && fs-1 >= relMax || day > dayMax || delta > deltaMax {
		// Does not pack (fm must be 1 … relMax, fs 0 or 1 … relMax).
		if t.big == nil {
			t.big = map[uint64]rec{}
		}
		t.big[s.k] = r
		s.v = 0
		return
	}
	if r.firstSpam == 0 {
		fs = 0
	}
	s.v = uint64(fm) | uint64(fs)<<relBits | uint64(day)<<48 | uint64(delta)<<61
}

// each calls fn with the key and state of every address, in no
// particular order; fn may change the state with put.
func (t *table) each(fn func(k uint64, s *slot, r rec)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.k != 0 {
			fn(s.k, s, t.get(s))
		}
	}
}

// neverSpammed calls fn with the key and first mail of every address
// that never got spam (a list reload's recount: a plain loop, no call per
// empty or spammed slot).
func (t *table) neverSpammed(fn func(k uint64, firstMail uint32)) {
	for i := range t.slots {
		s := &t.slots[i]
		if s.k == 0 {
			continue
		}
		if s.v != 0 {
			if s.v>>relBits&relMax != 0 {
				continue
			}
			fn(s.k, t.base+uint32(s.v&relMax))
		} else if r := t.big[s.k]; r.firstSpam == 0 {
			fn(s.k, r.firstMail)
		}
	}
}

func (r rec) record() store.Record {
	return store.Record{FirstMail: r.firstMail, FirstSpam: r.firstSpam, LastMail: uint32(r.lastDay) * 1440}
}

// recOf is the state of a stored record, as last written.
func recOf(r store.Record) rec {
	d := uint16(r.LastMail / 1440)
	return rec{firstMail: r.FirstMail, firstSpam: r.FirstSpam, lastDay: d, savedDay: d}
}
