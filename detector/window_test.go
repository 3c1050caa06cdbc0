package detector

import "testing"

// The ring keeps exactly the last n minutes, and its 24-hour sums follow
// what rolls out; a gap longer than a day empties it.
func TestRingRollsAndSums(t *testing.T) {
	var r ring
	r.minIdx = 1000
	for m := int64(1000); m < 1000+3*ringLen; m++ {
		r.roll(m)
		r.cur().c++
		r.cur().e += 0.5
		r.longC++
		r.longE += 0.5
		if w := r.sum(10); m >= 1010 && (w.c != 10 || w.e != 5) {
			t.Fatalf("minute %d: 10-minute sum %+v", m, w)
		}
		if m >= 1000+ringLen && (r.longC != ringLen || r.longE != ringLen/2) {
			t.Fatalf("minute %d: day sums %v %v, want %d %d", m, r.longC, r.longE, ringLen, ringLen/2)
		}
	}
	r.cur().d = 7
	r.clearCounts()
	if w := r.sum(ringLen); w.c != 0 || w.e != 0 || w.d != 7 || r.longC != 0 {
		t.Fatalf("after clearCounts: %+v, longC %v", w, r.longC)
	}
	r.roll(r.minIdx + 2*ringLen)
	if w := r.sum(ringLen); w.d != 0 {
		t.Fatalf("after a two-day gap: %+v", w)
	}
}
