package forensics

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// world is a generative model of a population, apart from the detector:
// addresses existing at the start and created during the history, each
// mailed at its own rate, and a list copied at a known time and spammed
// later. It checks the estimator itself on many seeds; sim scenarios
// through the real detector check the whole path (detector tests).
type world struct {
	n       int           // addresses at the start
	newFrac float64       // share of all addresses created during the history
	days    int           // history length
	copyAge time.Duration // list copied this long before its use
	hits    int           // list addresses spammed (about)
	welcome float64       // share of new addresses first mailed within hours
}

var epoch = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// run returns the evidence and the true copy time.
func (w world) run(seed uint64) (Evidence, time.Time) {
	rng := rand.New(rand.NewPCG(seed, 7))
	const warm = 168 * time.Hour
	start := epoch
	end := start.Add(time.Duration(w.days) * 24 * time.Hour)
	use := end.Add(-3 * 24 * time.Hour) // the campaign runs a day from here
	copyAt := use.Add(-w.copyAge)
	nNew := int(float64(w.n) * w.newFrac / (1 - w.newFrac))
	type addr struct{ created, first time.Time }
	var as []addr
	rate := func() float64 { // mails a day
		if rng.Float64() < 0.08 {
			return 1.0 / 60
		}
		return math.Exp(rng.NormFloat64()*0.8) * 0.25
	}
	for i := 0; i < w.n+nNew; i++ {
		c := start.Add(-time.Duration(rng.Float64()*5*365*24) * time.Hour)
		if i >= w.n {
			c = start.Add(time.Duration(rng.Float64() * float64(end.Sub(start))))
		}
		from := c
		if from.Before(start) {
			from = start
		}
		f := from.Add(time.Duration(rng.ExpFloat64() / rate() * 24 * float64(time.Hour)))
		if i >= w.n && rng.Float64() < w.welcome {
			f = c.Add(time.Duration(rng.ExpFloat64() * 3 * float64(time.Hour)))
		}
		as = append(as, addr{c, f})
	}
	seen := map[int64]int{}
	risk := map[int64]int{}
	ev := Evidence{Warmup: warm, HitsFirstMail: map[int64]int{}, HitsAt: map[int64]int{}}
	existing := 0
	for _, a := range as {
		if !a.created.After(copyAt) {
			existing++
		}
	}
	f := float64(w.hits) / float64(existing) * 1.6 // some listed ones are not at risk yet
	for _, a := range as {
		if a.first.After(end) {
			continue
		}
		seen[hourOf(a.first)]++
		hit := false
		if !a.created.After(copyAt) && rng.Float64() < f {
			at := use.Add(time.Duration(rng.Float64() * 24 * float64(time.Hour)))
			if !a.first.Add(warm).After(at) {
				hit = true
				ev.HitsFirstMail[hourOf(a.first)]++
				ev.HitsAt[hourOf(at)]++
			} else {
				continue // spammed before it matured: never at risk
			}
		}
		if !hit && !a.first.Add(warm).After(end) {
			risk[hourOf(a.first)]++
		}
	}
	ev.Seen, ev.Risk = toHours(seen), toHours(risk)
	return ev, copyAt
}

func toHours(m map[int64]int) Hours {
	var ks []int64
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	h := Hours{From: ks[0], N: make([]int32, ks[len(ks)-1]-ks[0]+1)}
	for k, n := range m {
		h.N[k-h.From] += int32(n)
	}
	return h
}

func TestDateCoverage(t *testing.T) {
	for _, w := range []world{
		{n: 14000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9},
		{n: 3000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9},
		{n: 1000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9},
		{n: 1000, newFrac: 0.3, days: 60, copyAge: 21 * 24 * time.Hour, hits: 150, welcome: 0.9},
		{n: 1000, newFrac: 0.1, days: 60, copyAge: 10 * 24 * time.Hour, hits: 150, welcome: 0.9},
		{n: 1000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150},
		{n: 3000, newFrac: 0.2, days: 60, copyAge: 5 * 24 * time.Hour, hits: 150, welcome: 0.5},
	} {
		seeds, in, dated := 60, 0, 0
		var widths []float64
		for s := 1; s <= seeds; s++ {
			ev, truth := w.run(uint64(s))
			snap, why := Date(ev)
			if snap == nil {
				if testing.Verbose() {
					t.Logf("seed %d: %s", s, why)
				}
				continue
			}
			dated++
			if !truth.Before(snap.NotBefore) && !truth.After(snap.NotAfter) {
				in++
			} else {
				t.Logf("seed %d: true %s, interval %s … %s", s, truth.Format(time.DateTime), snap.NotBefore.Format(time.DateTime), snap.NotAfter.Format(time.DateTime))
			}
			widths = append(widths, snap.NotAfter.Sub(snap.NotBefore).Hours()/24)
		}
		sort.Float64s(widths)
		if len(widths) == 0 {
			widths = append(widths, math.NaN())
		}
		t.Logf("%+v: dated %d/%d, covered %d, width median %.1f max %.1f days", w, dated, seeds, in, widths[len(widths)/2], widths[len(widths)-1])
	}
}
