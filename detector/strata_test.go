package detector

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// domainWorld is a population spread over one large domain and many small
// ones, with a background of first spams at the same rate everywhere.
type domainWorld struct {
	t     *testing.T
	h     *harness
	rng   *rand.Rand
	addrs []string
	at    time.Time
}

func domainAddr(i int, dom string) string { return fmt.Sprintf("u%d@%s", i, dom) }

// newDomainWorld has big addresses in big.example and small addresses in
// each of shop0.example … shop<shops-1>.example, warmed up and learnt over
// days of background.
func newDomainWorld(t *testing.T, st Store, mod func(*Options), big, shops, small, days int) *domainWorld {
	w := &domainWorld{t: t, h: newHarness(t, st, testKey(t, 3), mod), rng: rand.New(rand.NewPCG(7, 8))}
	for i := 0; i < big; i++ {
		w.addrs = append(w.addrs, domainAddr(i, "big.example"))
	}
	for s := 0; s < shops; s++ {
		for i := 0; i < small; i++ {
			w.addrs = append(w.addrs, domainAddr(i, fmt.Sprintf("shop%d.example", s)))
		}
	}
	for i, a := range w.addrs {
		w.h.obs(t0.Add(time.Duration(i)*time.Millisecond), false, a)
	}
	w.at = t0
	w.background(t0.Add(time.Duration(days) * 24 * time.Hour))
	return w
}

// background runs ham and first spams (0.002 per address a day, from many
// small campaigns) up to end.
func (w *domainWorld) background(end time.Time) {
	perStep := 0.002 * float64(len(w.addrs)) / 144
	for w.at.Before(end) {
		w.at = w.at.Add(10 * time.Minute)
		w.h.obs(w.at, false, w.addrs[w.rng.IntN(len(w.addrs))])
		for n := poissonish(w.rng, perStep); n > 0; n-- {
			c := w.rng.IntN(500)
			w.h.ev = append(w.h.ev, w.h.d.Observe(ingest.Observation{Time: w.at, Rcpt: []string{w.addrs[w.rng.IntN(len(w.addrs))]}, Spam: true,
				From: fmt.Sprintf("x@spam%d.example", c), ClientIP: fmt.Sprintf("203.0.%d.9", c%200), Subject: "Win 1000 now", MessageID: "<1@mid.example>"})...)
		}
	}
}

// leak sends first spams to users of dom, one every gap, with the
// background going on; it returns the leaked ids.
func (w *domainWorld) leak(dom string, users []int, gap time.Duration) map[addr.ID]bool {
	leaked := map[addr.ID]bool{}
	for _, i := range users {
		a := domainAddr(i, dom)
		leaked[w.h.d.o.Key.Hash(a)] = true
		w.background(w.at.Add(gap))
		w.h.ev = append(w.h.ev, w.h.d.Observe(ingest.Observation{Time: w.at, Rcpt: []string{a}, Spam: true,
			From: "promo@shopleak.example", ClientIP: "198.51.100.7", Subject: "Your order", MessageID: "<o@shopleak.example>"})...)
	}
	return leaked
}

func (w *domainWorld) opened() []Event {
	var out []Event
	for _, e := range w.h.ev {
		if e.Event == EventOpened && e.Kind == KindSurge {
			out = append(out, e)
		}
	}
	return out
}

func perDomain(o *Options) { o.PerDomain = true }

func TestDomainLeakOpensOneScopedIncident(t *testing.T) {
	w := newDomainWorld(t, store.NewMemory(), perDomain, 20000, 20, 300, 12)
	if n := len(w.opened()); n != 0 {
		t.Fatalf("%d surge incidents on the background: %+v", n, w.opened()[0])
	}
	if w.h.d.strat.k != 20 {
		t.Fatalf("%d strata watched, want the 20 shops (big.example is most of the population)", w.h.d.strat.k)
	}
	leakAt := w.at
	leaked := w.leak("shop7.example", span(0, 30), 8*time.Minute) // 30 in 4 hours
	w.background(w.at.Add(2 * time.Hour))
	op := w.opened()
	if len(op) != 1 {
		for _, e := range op {
			t.Logf("opened %s %s %+v at %v, %d recipients", e.ID, e.Trigger, e.Scope, e.OpenedAt.Sub(leakAt), e.Recipients)
		}
		t.Fatalf("%d surge incidents opened, want 1", len(op))
	}
	in := op[0]
	if in.Scope == nil || in.Scope.Domain != "shop7.example" || in.Trigger != TriggerCUSUMDomain {
		t.Fatalf("incident scope %+v trigger %s", in.Scope, in.Trigger)
	}
	if d := in.OpenedAt.Sub(leakAt); d > 2*time.Hour {
		t.Fatalf("opened %v after the leak began", d)
	}
	final := w.h.d.Incidents()
	var got Incident
	for _, f := range final {
		if f.ID == in.ID {
			got = f
		}
	}
	hits := 0
	for _, id := range got.RecipientIDs {
		if leaked[id] {
			hits++
		}
	}
	if hits < 28 || got.Recipients > hits+2 {
		t.Fatalf("%d of the incident's %d recipients leaked, of 30", hits, got.Recipients)
	}
	if got.Observed < float64(hits) || got.Expected <= 0 || got.Expected > 3 {
		t.Fatalf("observed %v expected %v", got.Observed, got.Expected)
	}
	b, _ := json.Marshal(got)
	var raw map[string]any
	json.Unmarshal(b, &raw)
	if sc, _ := raw["scope"].(map[string]any); sc["domain"] != "shop7.example" {
		t.Fatalf("scope in the JSON: %s", b)
	}
	if testutil.ToFloat64(w.h.d.m.active.WithLabelValues(KindSurge)) != 1 {
		t.Fatal("surge not active")
	}
	// Over: resolved once, and nothing else opened.
	w.background(w.at.Add(30 * time.Hour))
	var resolved []Event
	for _, e := range w.h.ev {
		if e.Event == EventResolved {
			resolved = append(resolved, e)
		}
	}
	if len(resolved) != 1 || resolved[0].ID != in.ID || len(w.opened()) != 1 {
		for _, e := range w.opened() {
			t.Logf("opened %s %s %+v at %v, %d recipients, observed %.0f expected %.1f", e.ID, e.Trigger, e.Scope, e.OpenedAt.Sub(leakAt), e.Recipients, e.Observed, e.Expected)
		}
		t.Fatalf("resolved %d, opened %d", len(resolved), len(w.opened()))
	}
	if testutil.ToFloat64(w.h.d.m.active.WithLabelValues(KindSurge)) != 0 {
		t.Fatal("surge still active")
	}
}

// Without the per-domain test, the same leak is averaged into the whole:
// the stratified test is what finds it.
func TestDomainLeakIsLateWithoutStrata(t *testing.T) {
	w := newDomainWorld(t, store.NewMemory(), nil, 20000, 20, 300, 12)
	leakAt := w.at
	w.leak("shop7.example", span(0, 30), 8*time.Minute)
	w.background(w.at.Add(2 * time.Hour))
	for _, in := range w.opened() {
		if in.OpenedAt.Sub(leakAt) <= 2*time.Hour {
			t.Fatalf("the whole-population tests found it in %v: this world does not test strata", in.OpenedAt.Sub(leakAt))
		}
	}
}

func TestStrataQuietOnBackground(t *testing.T) {
	w := newDomainWorld(t, store.NewMemory(), perDomain, 12000, 200, 50, 40)
	if w.h.d.strat.k != 200 {
		t.Fatalf("%d strata watched, want 200", w.h.d.strat.k)
	}
	if op := w.opened(); len(op) != 0 {
		t.Fatalf("%d surge incidents on 40 days of background over 200 domains: %+v", len(op), op[0])
	}
	// Every shop learnt about the global rate: the prior holds the
	// ratio near 1 where the data are few.
	for _, s := range w.h.d.strat.doms {
		if s != nil && s.tag < 0 && (s.ratio() < 0.4 || s.ratio() > 2.5) {
			t.Fatalf("%s learnt a ratio of %.2f (C %.1f, E %.1f)", s.scope.String(), s.ratio(), s.C, s.E)
		}
	}
}

func TestScopedIncidentSurvivesRestart(t *testing.T) {
	st := store.NewMemory()
	w := newDomainWorld(t, st, perDomain, 20000, 20, 300, 12)
	w.leak("shop3.example", span(0, 20), 8*time.Minute)
	op := w.opened()
	if len(op) != 1 || op[0].Scope == nil {
		t.Fatalf("opened %+v", op)
	}
	ratio := w.h.d.strat.doms[w.domainID("shop3.example")].ratio()
	if err := w.h.d.Close(); err != nil {
		t.Fatal(err)
	}
	w.h = newHarness(t, st, testKey(t, 3), perDomain)
	var open *Incident
	for _, in := range w.h.d.Incidents() {
		if in.State == StateOpen {
			open = &in
		}
	}
	if open == nil || open.ID != op[0].ID || open.Scope == nil || open.Scope.Domain != "shop3.example" {
		t.Fatalf("after restart: %+v", w.h.d.Incidents())
	}
	s := w.h.d.strat.doms[w.domainID("shop3.example")]
	if s == nil || s.in == nil || s.in.ID != open.ID || s.ratio() != ratio {
		t.Fatalf("stratum after restart: %+v (ratio %v before)", s, ratio)
	}
	if testutil.ToFloat64(w.h.d.m.active.WithLabelValues(KindSurge)) != 1 {
		t.Fatal("surge not active after restart")
	}
	// More of the same leak joins it rather than opening another.
	w.leak("shop3.example", span(20, 30), 8*time.Minute)
	if len(w.opened()) != 0 {
		t.Fatalf("opened after restart: %+v", w.opened())
	}
	w.background(w.at.Add(30 * time.Hour))
	if r := w.h.events(EventResolved); len(r) != 1 || r[0].ID != open.ID || r[0].Recipients < 28 {
		t.Fatalf("resolved: %+v", r)
	}
}

func (w *domainWorld) domainID(name string) uint16 {
	id, ok := w.h.d.pop.DomainID(name)
	if !ok {
		w.t.Fatalf("no domain %s", name)
	}
	return id
}

func TestTagLeakOpensScopedIncident(t *testing.T) {
	key := testKey(t, 1)
	ls := &lists{loadLists(t, key, map[string][]int{"billing": span(0, 400), "crm": span(400, 800)}, nil)}
	h := newHarness(t, store.NewMemory(), key, func(o *Options) { o.PerTag = true; o.PerDomain = true; o.Attribution = ls })
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 20000, 12, 0.002)
	if n := len(h.events(EventOpened)); n != 0 {
		t.Fatalf("%d incidents on the background", n)
	}
	if h.d.strat.k != 2 {
		t.Fatalf("%d strata watched, want the 2 tags (example.net is everyone)", h.d.strat.k)
	}
	h.ev = nil
	for n, i := range span(0, 30) {
		// A leak of the billing list: 30 of its addresses in 4 hours.
		h.ev = append(h.ev, h.d.Observe(ingest.Observation{Time: at.Add(time.Duration(n) * 8 * time.Minute), Rcpt: []string{user(i * 13)}, Spam: true,
			From: "promo@bill.example", ClientIP: "198.51.100.7", Subject: "Invoice"})...)
	}
	h.tick(at.Add(5 * time.Hour))
	op := h.events(EventOpened)
	if len(op) != 1 || op[0].Scope == nil || op[0].Scope.Tag != "billing" || op[0].Trigger != TriggerCUSUMTag {
		for _, e := range op {
			t.Logf("opened %s %s %+v at %v", e.ID, e.Trigger, e.Scope, e.OpenedAt.Sub(at))
		}
		t.Fatalf("%d incidents opened, want one scoped to tag billing", len(op))
	}
	if d := op[0].OpenedAt.Sub(at); d > 2*time.Hour || op[0].TopTag != "billing" {
		t.Fatalf("opened after %v, top tag %q", d, op[0].TopTag)
	}
}
