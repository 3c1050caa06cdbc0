package forensics

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
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

// TestDateCoverage runs the estimator on 60 seeds of each world: the
// intervals it gives must hold the true copy time in 95 % of cases, and
// where the evidence is good (new addresses mailed within hours of their
// creation, the list copied three weeks before its use) it must date most
// lists, within days. Where it is thin (few new addresses, or all found
// slowly) it mostly says so instead: those worlds check only that what it
// does say is right.
func TestDateCoverage(t *testing.T) {
	type want struct {
		dated       int     // at least this many of the seeds dated
		medianWidth float64 // days, at most
	}
	allIn, allDated := 0, 0
	for _, c := range []struct {
		w world
		want
	}{
		{world{n: 1000, newFrac: 0.3, days: 60, copyAge: 21 * 24 * time.Hour, hits: 150, welcome: 0.9}, want{55, 10}},
		{world{n: 14000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9}, want{30, 10}},
		{world{n: 3000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9}, want{30, 11}},
		{world{n: 1000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9}, want{35, 10}},
		{world{n: 1000, newFrac: 0.1, days: 60, copyAge: 10 * 24 * time.Hour, hits: 150, welcome: 0.9}, want{}},
		{world{n: 1000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150}, want{}},
		{world{n: 3000, newFrac: 0.2, days: 60, copyAge: 5 * 24 * time.Hour, hits: 150, welcome: 0.5}, want{}},
	} {
		w := c.w
		seeds, in, dated := 60, 0, 0
		var widths []float64
		for s := 1; s <= seeds; s++ {
			ev, truth := w.run(uint64(s))
			snap, why := Date(ev)
			if snap == nil {
				if why == "" {
					t.Fatalf("seed %d: no interval and no reason", s)
				}
				continue
			}
			dated++
			if snap.Confidence != Confidence || !snap.NotBefore.Before(snap.NotAfter) {
				t.Fatalf("seed %d: interval %+v", s, snap)
			}
			if !truth.Before(snap.NotBefore) && !truth.After(snap.NotAfter) {
				in++
			} else {
				t.Logf("seed %d: true %s, interval %s … %s", s, truth.Format(time.DateTime), snap.NotBefore.Format(time.DateTime), snap.NotAfter.Format(time.DateTime))
			}
			widths = append(widths, snap.NotAfter.Sub(snap.NotBefore).Hours()/24)
		}
		allIn, allDated = allIn+in, allDated+dated
		sort.Float64s(widths)
		med := math.NaN()
		if len(widths) > 0 {
			med = widths[len(widths)/2]
		}
		t.Logf("%d at start, %.0f %% new over %d days, copied %s before use, welcome %.0f %%: dated %d/%d, holding the truth %d, width median %.1f days",
			w.n, w.newFrac*100, w.days, w.copyAge, w.welcome*100, dated, seeds, in, med)
		if dated < c.dated || c.medianWidth > 0 && !(med <= c.medianWidth) {
			t.Errorf("dated %d (want ≥ %d), median width %.1f days (want ≤ %.0f)", dated, c.dated, med, c.medianWidth)
		}
	}
	if float64(allIn) < Confidence*float64(allDated) {
		t.Errorf("%d of %d intervals hold the true copy time: below %.0f %%", allIn, allDated, Confidence*100)
	}
}

// Odd evidence (empty, negative or far-apart counts, hits outside the
// histograms) gives an interval or a reason, never a panic or a reversed
// interval.
func TestDateOddEvidence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	base := hourOf(epoch)
	dated, reasons := 0, map[string]int{}
	for i := 0; i < 300; i++ {
		ev := Evidence{Warmup: time.Duration(rng.IntN(400)) * time.Hour, HitsFirstMail: map[int64]int{}, HitsAt: map[int64]int{}}
		mk := func() Hours {
			h := Hours{From: base + int64(rng.IntN(2000)) - 1000, N: make([]int32, rng.IntN(3000))}
			for j := range h.N {
				h.N[j] = int32(rng.IntN(50) - 5)
			}
			return h
		}
		ev.Seen, ev.Risk = mk(), mk()
		for j := rng.IntN(200); j > 0; j-- {
			ev.HitsFirstMail[base+int64(rng.IntN(4000))-2000] += rng.IntN(3)
			ev.HitsAt[base+1500+int64(rng.IntN(1000))] += rng.IntN(3)
		}
		s, why := Date(ev)
		if s != nil {
			dated++
		}
		reasons[reasonKind(why)]++
		switch {
		case s == nil && why == "":
			t.Fatalf("case %d: neither an interval nor a reason", i)
		case s != nil && (s.NotAfter.Before(s.NotBefore) || math.IsNaN(s.Confidence)):
			t.Fatalf("case %d: interval %+v", i, s)
		}
	}
	t.Logf("%d dated; reasons %v", dated, reasons)
	if len(reasons) < 3 {
		t.Errorf("the cases reach too few of Date's paths: %v", reasons)
	}
}

// reasonKind is a reason without its numbers and dates: its first words.
func reasonKind(why string) string {
	var words []string
	for _, w := range strings.Fields(why) {
		if strings.ContainsAny(w, "0123456789") {
			continue
		}
		if words = append(words, w); len(words) == 3 {
			break
		}
	}
	return strings.Join(words, " ")
}

// BenchmarkDate: one dating of a 60-day history (the detector dates an
// incident again each time it grew by a tenth).
func BenchmarkDate(b *testing.B) {
	ev, _ := world{n: 14000, newFrac: 0.3, days: 60, copyAge: 14 * 24 * time.Hour, hits: 150, welcome: 0.9}.run(1)
	b.ResetTimer()
	for b.Loop() {
		Date(ev)
	}
}
