package detector

import "time"

// ringLen is the minutes the ring holds: the long (24-hour) window.
const ringLen = 1440

// bin is one minute of the ring.
type bin struct {
	c, e, d float64 // first spams, expected, dictionary evidence
	nc, ne  float64 // the same for novel campaigns
	a, ae   float64 // all first spams, and the share test's expectation
}

// ring is the last day minute by minute, for the window tests, with the
// 24-hour sums of counted first spams and their expectation kept as it
// rolls. Time is the caller's: roll moves it to a minute.
type ring struct {
	bins         [ringLen]bin
	minIdx       int64 // the current minute (since the epoch)
	longC, longE float64
}

// cur is the current minute's bin.
func (r *ring) cur() *bin { return &r.bins[r.minIdx%ringLen] }

// roll moves the ring to minute m, emptying the minutes it enters; after a
// gap longer than the ring it starts empty.
func (r *ring) roll(m int64) {
	if m-r.minIdx > ringLen {
		r.bins = [ringLen]bin{}
		r.longC, r.longE = 0, 0
		r.minIdx = m - 1
	}
	for r.minIdx < m {
		r.minIdx++
		old := &r.bins[r.minIdx%ringLen]
		r.longC -= old.c
		r.longE -= old.e
		*old = bin{}
	}
}

// sum is the sum of the last n minutes, the current one included.
func (r *ring) sum(n int) bin {
	var w bin
	for i := int64(0); i < int64(n); i++ {
		b := &r.bins[(r.minIdx-i+ringLen*4)%ringLen]
		w.c += b.c
		w.e += b.e
		w.d += b.d
		w.nc += b.nc
		w.ne += b.ne
		w.a += b.a
		w.ae += b.ae
	}
	return w
}

// uncount takes one counted first spam at t out of the ring (it was
// explained by a scoped incident), if t is still in it.
func (r *ring) uncount(t time.Time, novel bool) {
	m := t.Unix() / 60
	if m > r.minIdx || r.minIdx-m >= ringLen {
		return
	}
	b := &r.bins[m%ringLen]
	if b.c >= 1 {
		b.c--
		r.longC--
	}
	if novel && b.nc >= 1 {
		b.nc--
	}
	if b.a >= 1 {
		b.a--
	}
}

// clear empties the ring.
func (r *ring) clear() {
	r.bins = [ringLen]bin{}
	r.longC, r.longE = 0, 0
}

// clearCounts empties the first-spam counts and expectations, keeping the
// dictionary evidence.
func (r *ring) clearCounts() {
	for i := range r.bins {
		r.bins[i].c, r.bins[i].e, r.bins[i].nc, r.bins[i].ne = 0, 0, 0, 0
		r.bins[i].a, r.bins[i].ae = 0, 0
	}
	r.longC, r.longE = 0, 0
}
