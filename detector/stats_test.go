package detector

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// dripWorld is a population whose spammers hold an old list (the first
// 1,000 addresses, spammed from the start) and, from some hour on, drip a
// leaked list from news@drip.example.
type dripWorld struct {
	h      *harness
	rng    *rand.Rand
	n      int
	old    []string
	next   int // the next address to leak
	leaked map[addr.ID]bool
}

func newDripWorld(t *testing.T, n, firstLeaked int) *dripWorld {
	w := &dripWorld{h: newHarness(t, store.NewMemory(), testKey(t, 1), nil), rng: rand.New(rand.NewPCG(5, 6)),
		n: n, next: firstLeaked, leaked: map[addr.ID]bool{}}
	for i := 0; i < n; i++ {
		w.h.obs(t0.Add(time.Duration(i)*time.Millisecond), false, user(i))
	}
	for i := 0; i < 1000; i++ {
		w.old = append(w.old, user(i))
	}
	w.h.obs(t0.Add(time.Minute), true, w.old...)
	return w
}

func (w *dripWorld) spam(at time.Time, from, ip string, rcpt ...string) {
	w.h.ev = append(w.h.ev, w.h.d.Observe(ingest.Observation{Time: at, Rcpt: rcpt, Spam: true, From: from, ClientIP: ip,
		Subject: "offer", MessageID: "<1@mid.example>"})...)
}

// background sends, every 10 minutes, a ham message and an ordinary
// campaign message to ten old-list addresses plus fresh never-spammed ones
// (fresh < 1: one, with that probability).
func (w *dripWorld) background(from, to time.Time, fresh float64) {
	for at := from; at.Before(to); at = at.Add(10 * time.Minute) {
		w.h.obs(at, false, user(1000+w.rng.IntN(w.n-1000)))
		rcpt := make([]string, 0, 13)
		for range 10 {
			rcpt = append(rcpt, w.old[w.rng.IntN(len(w.old))])
		}
		k := int(fresh)
		if fresh < 1 && w.rng.Float64() < fresh {
			k = 1
		}
		for range k {
			rcpt = append(rcpt, user(1000+w.rng.IntN(w.n-1000)))
		}
		w.spam(at, fmt.Sprintf("a@bulk%d.example", w.rng.IntN(5)), fmt.Sprintf("203.0.%d.9", w.rng.IntN(50)), rcpt...)
	}
}

// dripHour is the drip's campaign of hour hr: 8 messages from
// news@drip.example, 5 of them to never-spammed addresses, each hour from
// another /24.
func (w *dripWorld) dripHour(at time.Time, hr int) {
	for k := range 8 {
		a := w.old[w.rng.IntN(len(w.old))]
		if k%3 != 0 {
			a = user(w.next)
			w.leaked[w.h.d.o.Key.Hash(a)] = true
			w.next++
		}
		w.spam(at.Add(time.Duration(k)*5*time.Minute), "news@drip.example", fmt.Sprintf("198.51.%d.7", hr), a)
	}
}

// A slow drip from one sender, in small campaigns from ever new client
// networks, each adding a few first spams an hour to an ordinary
// background: the aggregate rate barely moves, but the sender's spam
// reaches mostly never-spammed addresses, which ordinary spam does not.
func TestNovelSenderDripIsFound(t *testing.T) {
	w := newDripWorld(t, 5000, 4000)
	h := w.h
	// About 14 ordinary first spams a day.
	start := t0.Add(time.Hour)
	leakStart := start.Add(10 * 24 * time.Hour)
	w.background(start, leakStart, 0.1)
	if h.d.WarmingUp() || len(h.events("opened")) != 0 {
		t.Fatalf("warm-up %v, %d incidents before the drip", h.d.WarmingUp(), len(h.events("opened")))
	}
	for hr := 0; hr < 6; hr++ {
		at := leakStart.Add(time.Duration(hr) * time.Hour)
		w.background(at, at.Add(time.Hour), 0.1)
		w.dripHour(at, hr)
	}
	leaked := w.leaked
	ins := h.d.Incidents()
	if len(ins) != 1 || ins[0].Kind != KindSurge {
		t.Fatalf("incidents after a 6-hour drip of %d first spams: %+v", len(leaked), ins)
	}
	in := ins[0]
	if in.Trigger != "cusum_novel" {
		t.Fatalf("opened by %s, want the novel-campaign CUSUM", in.Trigger)
	}
	hits := 0
	for _, id := range in.RecipientIDs {
		if leaked[id] {
			hits++
		}
	}
	if hits*10 < in.Recipients*9 || in.Campaigns.SenderDomain[0].Key != "drip.example" {
		t.Fatalf("%d of %d recipients leaked; senders %+v", hits, in.Recipients, in.Campaigns.SenderDomain)
	}
	if in.StartedAt.Before(leakStart) || in.OpenedAt.Sub(leakStart) > 5*time.Hour {
		t.Fatalf("started %v opened %v, drip from %v", in.StartedAt, in.OpenedAt, leakStart)
	}
}

func TestEmpiricalBayesRhythm(t *testing.T) {
	// Seven weekdays, 20 days each, with day-to-day volume swings of
	// ±20 % and Poisson noise around 100 expected per day. Over many
	// histories, the shrunk factors must be nearer the truth than the raw
	// ones: much nearer when the truth is flat, no farther when there is a
	// real weekly rhythm (weekends at half).
	rng := rand.New(rand.NewPCG(7, 8))
	for _, weekend := range []float64{1, 0.5} {
		truth := make([]float64, 7)
		for g := range truth {
			truth[g] = 1
			if g >= 5 {
				truth[g] = weekend
			}
		}
		normMean(truth)
		var rawErr, ebErr float64
		f := make([]float64, 7)
		for range 200 {
			var c, e, ss, n [7]float64
			for range 20 {
				for g := range 7 {
					seasonUnit(c[:], e[:], ss[:], n[:], g, poissonish(rng, 100*truth[g]*(0.8+0.4*rng.Float64())), 100)
				}
			}
			raw := make([]float64, 7)
			for g := range raw {
				raw[g] = c[g] / e[g]
			}
			normMean(raw)
			ebFactors(f, c[:], e[:], ss[:], n[:], 2, 1)
			for g := range f {
				rawErr += (raw[g] - truth[g]) * (raw[g] - truth[g])
				ebErr += (f[g] - truth[g]) * (f[g] - truth[g])
			}
		}
		t.Logf("weekend %.1f: mean squared error raw %.5f, shrunk %.5f", weekend, rawErr/1400, ebErr/1400)
		if weekend == 1 && ebErr > rawErr/3 || ebErr > rawErr*1.05 {
			t.Errorf("weekend %.1f: shrinkage error %.5f against raw %.5f", weekend, ebErr/1400, rawErr/1400)
		}
	}
	// Until every group has about three units, the cycle stays flat.
	f := make([]float64, 7)
	ebFactors(f, []float64{100, 0, 0, 0, 0, 0, 0}, []float64{50, 50, 50, 50, 50, 50, 50}, make([]float64, 7), []float64{9, 9, 9, 9, 9, 9, 2}, 2, 1)
	for _, x := range f {
		if x != 1 {
			t.Fatalf("factors from thin history: %v", f)
		}
	}
}

// poissonish draws a count of mean m (normal approximation, m ≫ 1).
func poissonish(rng *rand.Rand, m float64) float64 {
	return math.Max(0, math.Round(m+rng.NormFloat64()*math.Sqrt(m)))
}

// Days that swing between half and one and a half times the usual spam put
// their excess into many hours at once: the dispersion of 4-hour blocks
// sees it, the hourly one much less, and the aggregate CUSUM uses the
// larger.
func TestSlowDispersionSeesDayLevelSwings(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 20000
	for i := 0; i < n; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Millisecond), false, user(i))
	}
	next := 0
	for at := t0.Add(time.Hour); at.Before(t0.Add(30 * 24 * time.Hour)); at = at.Add(5 * time.Minute) {
		day := int(at.Sub(t0) / (24 * time.Hour))
		rate := 0.5 + float64(day%3)*0.5 // 0.5, 1, 1.5 by day
		h.obs(at, false, user(n/2+rng.IntN(n/2)))
		if rng.Float64() < rate*0.4 {
			// Each first spam from its own campaign: no campaign cap.
			h.d.Observe(ingest.Observation{Time: at, Rcpt: []string{user(next)}, Spam: true,
				From: fmt.Sprintf("a@s%d.example", next), ClientIP: fmt.Sprintf("192.0.%d.1", next%250)})
			next++
		}
	}
	fast, slow := h.d.st.phi(), h.d.st.phiSlow()
	t.Logf("φ hourly %.2f, 4-hour blocks %.2f", fast, slow)
	if slow < 1.5*fast {
		t.Fatalf("φ hourly %.2f, 4-hour blocks %.2f: day-level swings not seen", fast, slow)
	}
}

// A drip that goes on for two days against a busier background: the
// incident the novel-campaign CUSUM opens stays open while the drip runs
// (its resolution looks at the novel rate, not the aggregate one, which the
// drip hardly moves), counts only the drip's first spams against the novel
// expectation, and resolves once the drip stops.
func TestNovelIncidentLastsAsLongAsTheDrip(t *testing.T) {
	w := newDripWorld(t, 30000, 25000)
	h := w.h
	// Three ordinary first spams every 10 minutes (18 an hour).
	leakStart := t0.Add(5*24*time.Hour + time.Hour)
	w.background(t0.Add(time.Hour), leakStart, 3)
	if h.d.WarmingUp() || len(h.events("opened")) != 0 {
		t.Fatalf("warm-up %v, %d incidents before the drip", h.d.WarmingUp(), len(h.events("opened")))
	}
	for hr := 0; hr < 48; hr++ {
		at := leakStart.Add(time.Duration(hr) * time.Hour)
		w.background(at, at.Add(time.Hour), 3)
		w.dripHour(at, hr)
	}
	leaked := w.leaked
	dripEnd := leakStart.Add(48 * time.Hour)
	if o, r := h.events("opened"), h.events("resolved"); len(o) != 1 || len(r) != 0 {
		t.Fatalf("during a 48-hour drip: %d opened, %d resolved; want one incident, still open", len(o), len(r))
	}
	in := h.d.Incidents()[0]
	if in.Trigger != "cusum_novel" || in.OpenedAt.Sub(leakStart) > 6*time.Hour {
		t.Fatalf("opened by %s after %v", in.Trigger, in.OpenedAt.Sub(leakStart))
	}
	hits := 0
	for _, id := range in.RecipientIDs {
		if leaked[id] {
			hits++
		}
	}
	if hits < len(leaked)*8/10 || hits*10 < in.Recipients*9 {
		t.Fatalf("%d of the %d leaked in the incident, of %d recipients", hits, len(leaked), in.Recipients)
	}
	// On the aggregate basis 48 hours would expect about 860.
	if in.Expected > 100 || in.Observed < 5*in.Expected {
		t.Fatalf("observed %.0f vs expected %.1f: not on the novel basis", in.Observed, in.Expected)
	}
	w.background(dripEnd, dripEnd.Add(24*time.Hour), 3)
	if r := h.events("resolved"); len(r) != 1 {
		t.Fatalf("a day after the drip stopped: %d resolved", len(r))
	}
}

// A state saved before the rhythm's scatter was kept keeps its learned
// rhythm: the units are seeded from the hours learned.
func TestOldStateKeepsItsRhythm(t *testing.T) {
	p := persisted{Hours: 30 * 24}
	for g := range p.HourC {
		p.HourE[g] = 100
		p.HourC[g] = 50
		if g >= 8 && g < 20 {
			p.HourC[g] = 150 // a strong daytime rhythm
		}
	}
	for g := range p.DowC {
		p.DowC[g], p.DowE[g] = 340, 340
	}
	p.seedScatter(2)
	if p.HourN[0] != 30 || p.DowN[0] < 4 || p.HourSS[0] != 60 {
		t.Fatalf("seeded units %v scatter %v, weekdays %v", p.HourN[0], p.HourSS[0], p.DowN[0])
	}
	f := make([]float64, 24)
	ebFactors(f, p.HourC[:], p.HourE[:], p.HourSS[:], p.HourN[:], 2, 1)
	if f[12] < 1.4 || f[2] > 0.6 {
		t.Fatalf("rhythm after seeding: noon %.2f, 2 am %.2f", f[12], f[2])
	}
	// Seeding happens once: a state with units is left alone.
	p.HourN[0] = 7
	p.seedScatter(2)
	if p.HourN[0] != 7 {
		t.Fatal("seeded again")
	}
}

// A gap of more than a day is missing data, not quiet: the learned rate
// survives it, and a timestamp in the far future is a jump, not hours of
// minute-by-minute integration.
func TestClockJumpIsNotQuietTime(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 3000, 10, 0.002)
	rate := h.d.st.Num / h.d.st.Den
	// Three days of downtime, then mail again.
	h.obs(at.Add(3*24*time.Hour), false, user(1))
	if got := h.d.st.Num / h.d.st.Den; math.Abs(got/rate-1) > 1e-9 {
		t.Fatalf("learned rate %.3g before a 3-day gap, %.3g after: the gap was learned as quiet", rate, got)
	}
	// A new address seen before the gap matures across it.
	h.obs(at.Add(3*24*time.Hour+time.Minute), false, "late@example.net")
	before := h.d.AtRisk()
	h.obs(time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC), false, user(2))
	if h.d.AtRisk() != before+1 {
		t.Fatalf("at risk %d → %d across the jump, want one more (the late address matured)", before, h.d.AtRisk())
	}
	if got := h.d.st.Num / h.d.st.Den; math.Abs(got/rate-1) > 1e-9 || len(h.events("opened")) != 0 {
		t.Fatalf("after the year-9000 observation: rate %.3g (was %.3g), %d incidents", got, rate, len(h.events("opened")))
	}
}

// The rhythm and the dispersion are their own types, embedded: the stored
// state keeps its flat keys, so a state written before reads the same.
func TestPersistedStateKeepsItsKeys(t *testing.T) {
	var p persisted
	p.HourC[3], p.PhiNum, p.Phi4Den, p.DayC, p.Num = 1.5, 2.5, 3.5, 4.5, 5.5
	b, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]any
	if err := json.Unmarshal(b, &flat); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"hour_c", "dow_e", "day_c", "phi_num", "phi4_den", "num", "hours"} {
		if _, ok := flat[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	old := `{"num":5.5,"hour_c":[0,0,0,1.5,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"phi_num":2.5,"phi4_den":3.5,"day_c":4.5}`
	var q persisted
	if err := json.Unmarshal([]byte(old), &q); err != nil {
		t.Fatal(err)
	}
	if q.HourC[3] != 1.5 || q.PhiNum != 2.5 || q.Phi4Den != 3.5 || q.DayC != 4.5 || q.Num != 5.5 {
		t.Fatalf("decoded %+v", q)
	}
}

// Time from outside cannot blind the detector: with a wall clock
// (NotAfter), an observation dated 9999 is refused and never moves the
// clock, and a leak an hour later is still found.
func TestFutureObservationCannotBlind(t *testing.T) {
	wall := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) // during the history
	h := newHarness(t, store.NewMemory(), testKey(t, 1), func(o *Options) {
		o.NotAfter = func() time.Time { return wall.Add(5 * time.Minute) }
	})
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 3000, 10, 0.002)
	wall = at
	h.obs(time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC), false, user(1))
	if got := testutil.ToFloat64(h.d.m.future); got != 1 {
		t.Fatalf("future observations counted %v, want 1", got)
	}
	if h.d.clock.After(at.Add(time.Minute)) {
		t.Fatalf("the detector's clock moved to %v", h.d.clock)
	}
	wall = at.Add(2 * time.Hour)
	var users []int
	for i := 0; i < 120; i++ {
		users = append(users, 10+i*7)
	}
	in := leak(t, h, at.Add(time.Hour), users, user)
	if in.Recipients < 50 {
		t.Fatalf("incident holds %d recipients", in.Recipients)
	}
	if got := testutil.ToFloat64(h.d.m.late); got != 0 {
		t.Fatalf("%v observations counted as late after the refused one", got)
	}
}

// A clock stored ahead of the wall clock (before max_clock_skew, a clock
// set wrong) is pulled back at start, the learned state kept: live mail is
// not counted as late.
func TestStoredClockAheadIsPulledBack(t *testing.T) {
	st, key := store.NewMemory(), testKey(t, 1)
	h := newHarness(t, st, key, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 2000, 10, 0.002)
	rate := h.d.st.Num / h.d.st.Den
	h.obs(time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC), false, user(1))
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	wall := at.Add(time.Hour)
	h2 := newHarness(t, st, key, func(o *Options) {
		o.NotAfter = func() time.Time { return wall.Add(5 * time.Minute) }
	})
	h2.obs(wall, false, user(2))
	if got := testutil.ToFloat64(h2.d.m.late); got != 0 {
		t.Fatalf("live mail counted as late (%v) after a restart with a clock from 9999", got)
	}
	if !h2.d.clock.Equal(wall) {
		t.Fatalf("clock %v, want %v", h2.d.clock, wall)
	}
	if got := h2.d.st.Num / h2.d.st.Den; math.Abs(got/rate-1) > 1e-9 {
		t.Fatalf("learned rate %.3g, was %.3g", got, rate)
	}
}

// Retention: addresses without mail for forget_after leave the state and
// the store; one that comes back is new (warm-up), so its spam is never
// an established address's first spam.
func TestForgottenAddressComesBackAsNew(t *testing.T) {
	st := store.NewMemory()
	h := newHarness(t, st, testKey(t, 1), func(o *Options) { o.ForgetAfter = 40 * 24 * time.Hour })
	for i := 0; i < 200; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	// Users 0..99 keep getting mail; 100..199 fall silent.
	for day := 1; day <= 45; day++ {
		for i := 0; i < 100; i++ {
			h.obs(t0.Add(time.Duration(day)*24*time.Hour+time.Duration(i)*time.Second), false, user(i))
		}
	}
	if got := testutil.ToFloat64(h.d.m.forgotten); got != 100 {
		t.Fatalf("forgotten %v, want 100", got)
	}
	if h.d.Tracked() != 100 || h.d.AtRisk() != 100 {
		t.Fatalf("tracked %d at risk %d, want 100 and 100", h.d.Tracked(), h.d.AtRisk())
	}
	h.d.Close()
	stored := 0
	st.Recipients(h.d.space, func([16]byte, store.Record) error { stored++; return nil })
	if stored != 100 {
		t.Fatalf("store holds %d recipients, want 100", stored)
	}
	h2 := newHarness(t, st, testKey(t, 1), func(o *Options) { o.ForgetAfter = 40 * 24 * time.Hour })
	at := t0.Add(46 * 24 * time.Hour)
	before := testutil.ToFloat64(h2.d.m.firstSpam)
	h2.obs(at, true, user(150)) // forgotten: new
	if got := testutil.ToFloat64(h2.d.m.firstSpam); got != before {
		t.Fatalf("a forgotten address's spam counted as a first spam (%v → %v)", before, got)
	}
	h2.obs(at.Add(time.Minute), true, user(50)) // kept: a first spam
	if got := testutil.ToFloat64(h2.d.m.firstSpam); got != before+1 {
		t.Fatalf("a kept address's first spam not counted (%v → %v)", before, got)
	}
}
