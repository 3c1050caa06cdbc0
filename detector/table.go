package detector

import (
	"encoding/binary"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/store"
)

// table is the in-memory recipient state: open addressing with linear
// probing over 20-byte slots, keyed by the first 64 bits of the id (a Go
// map of the same content costs 45-55 B an entry; this one 20 B a slot, at
// a load between 7/16 and 7/8). One probe sequence finds a slot, which is
// then updated in place. Two addresses collide only if their ids share 64
// bits (about one pair in 3·10⁵ populations of 10 M); the store keeps the
// full 128-bit ids.
type table struct {
	slots []slot
	n     int
	mask  uint64
}

type slot struct {
	k0, k1    uint32 // the id's first 64 bits; 0,0 = empty (forced non-zero)
	firstMail uint32 // minutes since the epoch
	firstSpam uint32 // minutes since the epoch, 0 = never
	lastDay   uint16 // days since the epoch of the last mail
	savedDay  uint16 // lastDay as last written to the store
}

func newTable(hint int) *table {
	n := 1024
	for n*7 < hint*8 {
		n <<= 1
	}
	return &table{slots: make([]slot, n), mask: uint64(n - 1)}
}

func key64(id *addr.ID) uint64 {
	k := binary.LittleEndian.Uint64(id[:8])
	if k == 0 {
		k = 1
	}
	return k
}

// home spreads the key (already uniform: it is a PRF output) over the table.
func (t *table) home(k uint64) uint64 { return (k ^ k>>29) & t.mask }

// find returns the slot of id, or nil.
func (t *table) find(id *addr.ID) *slot {
	k := key64(id)
	k0, k1 := uint32(k), uint32(k>>32)
	for i := t.home(k); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.k0 == k0 && s.k1 == k1 {
			return s
		}
		if s.k0 == 0 && s.k1 == 0 {
			return nil
		}
	}
}

// insert adds id, which must be absent, and returns its slot.
func (t *table) insert(id *addr.ID) *slot {
	if (t.n+1)*8 > len(t.slots)*7 {
		t.grow()
	}
	k := key64(id)
	s := t.place(k)
	s.k0, s.k1 = uint32(k), uint32(k>>32)
	t.n++
	return s
}

func (t *table) place(k uint64) *slot {
	for i := t.home(k); ; i = (i + 1) & t.mask {
		if s := &t.slots[i]; s.k0 == 0 && s.k1 == 0 {
			return s
		}
	}
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, len(old)*2)
	t.mask = uint64(len(t.slots) - 1)
	for i := range old {
		if s := old[i]; s.k0 != 0 || s.k1 != 0 {
			*t.place(uint64(s.k0) | uint64(s.k1)<<32) = s
		}
	}
}

func (s *slot) record() store.Record {
	return store.Record{FirstMail: s.firstMail, FirstSpam: s.firstSpam, LastMail: uint32(s.lastDay) * 1440}
}

func (s *slot) set(r store.Record) {
	s.firstMail, s.firstSpam, s.lastDay = r.FirstMail, r.FirstSpam, uint16(r.LastMail/1440)
	s.savedDay = s.lastDay
}
