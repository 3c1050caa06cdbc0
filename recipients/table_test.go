package recipients

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/spamsurge/spamsurge/addr"
)

// TestTableDifferential drives the packed table and a plain map (what the
// table used to hold: 64-bit key → full state) through the same random
// inserts, lookups and updates, growth included, with states that pack and
// states that do not (times far from the first one, the canary marker,
// zero times, wrapped days), and checks that every state reads back
// exactly and that iteration sees the same addresses.
func TestTableDifferential(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		r := rand.New(rand.NewPCG(seed, 99))
		const now = 29_600_000 // minutes, 2026
		randRec := func() rec {
			var x rec
			switch r.IntN(20) {
			case 0: // anything at all
				x = rec{r.Uint32(), r.Uint32(), uint16(r.Uint32()), uint16(r.Uint32())}
			case 1: // a record with tiny times (tests, a zero clock)
				x = rec{r.Uint32N(3), r.Uint32N(3), uint16(r.IntN(3)), 0}
				x.savedDay = x.lastDay
			default: // what Observe and the store produce
				x.firstMail = now - r.Uint32N(5*365*1440)
				if r.IntN(3) == 0 {
					x.firstSpam = x.firstMail + r.Uint32N(now-x.firstMail+1)
				}
				if r.IntN(50) == 0 {
					x.firstSpam = 1 // the canary marker
				}
				x.lastDay = uint16(x.firstMail/1440) + uint16(r.IntN(int(now/1440-x.firstMail/1440)+1))
				x.savedDay = x.lastDay - uint16(r.IntN(7))
			}
			return x
		}
		tab := newTable(0)
		ref := map[uint64]rec{}
		refDom := map[uint64]uint16{}
		var keys []addr.ID
		for op := 0; op < 300_000; op++ {
			switch {
			case len(keys) == 0 || r.IntN(3) == 0: // insert
				var id addr.ID
				binary.LittleEndian.PutUint64(id[:8], r.Uint64())
				binary.LittleEndian.PutUint64(id[8:], r.Uint64())
				k := key64(&id)
				if _, ok := ref[k]; ok {
					continue
				}
				x := randRec()
				var s *slot
				if r.IntN(2) == 0 {
					s = tab.insert(&id, x)
				} else {
					var found bool
					s, found = tab.lookup(k)
					if found {
						t.Fatalf("lookup of a new key found a slot")
					}
					s = tab.insertAt(s, k, x)
				}
				dom := uint16(r.IntN(4)) // 0: unknown
				tab.setDom(s, dom)
				refDom[k] = dom
				ref[k] = x
				keys = append(keys, id)
			case r.IntN(2) == 0: // update, as Observe does
				id := keys[r.IntN(len(keys))]
				s := tab.find(&id)
				if s == nil {
					t.Fatalf("seed %d op %d: key lost", seed, op)
				}
				x := tab.get(s)
				if r.IntN(4) == 0 {
					x = randRec()
				} else {
					x.lastDay++
					if x.lastDay-x.savedDay >= lastMailSlack {
						x.savedDay = x.lastDay
					}
				}
				tab.put(s, x)
				ref[key64(&id)] = x
			case r.IntN(4) == 0: // forget one
				i := r.IntN(len(keys))
				id := keys[i]
				if !tab.remove(key64(&id)) {
					t.Fatalf("seed %d op %d: key lost before remove", seed, op)
				}
				delete(ref, key64(&id))
				delete(refDom, key64(&id))
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
				if tab.find(&id) != nil {
					t.Fatalf("seed %d op %d: removed key still found", seed, op)
				}
			default: // absent key
				var id addr.ID
				binary.LittleEndian.PutUint64(id[:8], r.Uint64())
				if _, ok := ref[key64(&id)]; !ok && tab.find(&id) != nil {
					t.Fatalf("found an absent key")
				}
			}
			if op%50_000 == 0 || op == 299_999 {
				if tab.n != len(ref) {
					t.Fatalf("n %d, want %d", tab.n, len(ref))
				}
				seen := 0
				tab.each(func(k uint64, s *slot, x rec) {
					seen++
					if d := tab.dom(s); d != refDom[k] {
						t.Fatalf("seed %d op %d: key %x in domain %d, want %d", seed, op, k, d, refDom[k])
					}
					if want, ok := ref[k]; !ok || x != want {
						t.Fatalf("seed %d op %d: key %x reads %+v, want %+v (present %v)", seed, op, k, x, want, ok)
					}
				})
				if seen != len(ref) {
					t.Fatalf("each saw %d, want %d", seen, len(ref))
				}
				never := 0
				tab.neverSpammed(func(k uint64, fm uint32) {
					never++
					if want := ref[k]; want.firstSpam != 0 || want.firstMail != fm {
						t.Fatalf("neverSpammed: key %x first mail %d, want %+v", k, fm, want)
					}
				})
				for _, x := range ref {
					if x.firstSpam == 0 {
						never--
					}
				}
				if never != 0 {
					t.Fatalf("neverSpammed saw %d too many", never)
				}
				for k := range tab.big {
					if s, ok := tab.lookup(k); !ok || s.v != 0 {
						t.Fatalf("side map holds %x, whose slot packs", k)
					}
				}
			}
		}
		t.Logf("seed %d: %d addresses, %d slots, %d unpacked", seed, tab.n, tab.cap, len(tab.big))
	}
}
