package detector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func testKey(t testing.TB, seed byte) *addr.Key {
	k, err := addr.NewKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type harness struct {
	t   testing.TB
	d   *Detector
	reg *prometheus.Registry
	ev  []Event
}

func newHarness(t testing.TB, st Store, key *addr.Key, mod func(*Options)) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{Key: key, Store: st, Registerer: reg, Warmup: 24 * time.Hour, Learn: 24 * time.Hour,
		Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, d: d, reg: reg}
}

func (h *harness) obs(at time.Time, spam bool, rcpt ...string) {
	h.ev = append(h.ev, h.d.Observe(ingest.Observation{Time: at, Rcpt: rcpt, Spam: spam,
		From: "x@spam.example", ClientIP: "203.0.113.9", Subject: "Win 1000 now", MessageID: "<1@mid.example>"})...)
}

func (h *harness) tick(at time.Time) { h.ev = append(h.ev, h.d.Tick(at)...) }

func (h *harness) events(kind string) []Event {
	var out []Event
	for _, e := range h.ev {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

func user(i int) string { return fmt.Sprintf("user%d@example.net", i) }

func TestAtRiskAccounting(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	for i := 0; i < 100; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	if h.d.Tracked() != 100 || h.d.AtRisk() != 0 {
		t.Fatalf("after first mail: tracked %d at risk %d", h.d.Tracked(), h.d.AtRisk())
	}
	h.tick(t0.Add(23 * time.Hour))
	if h.d.AtRisk() != 0 {
		t.Fatalf("at risk before warmup: %d", h.d.AtRisk())
	}
	// Spammed before maturing: never at risk.
	h.obs(t0.Add(23*time.Hour), true, user(0))
	h.tick(t0.Add(25 * time.Hour))
	if h.d.AtRisk() != 99 {
		t.Fatalf("at risk after warmup: %d, want 99", h.d.AtRisk())
	}
	if got := testutil.ToFloat64(h.d.m.atRisk); got != 99 {
		t.Fatalf("gauge %v", got)
	}
	h.obs(t0.Add(26*time.Hour), true, user(1), "USER2+promo@Example.NET")
	h.obs(t0.Add(26*time.Hour), true, user(1)) // second spam: nothing new
	if h.d.AtRisk() != 97 || testutil.ToFloat64(h.d.m.firstSpam) != 2 {
		t.Fatalf("at risk %d first spam %v", h.d.AtRisk(), testutil.ToFloat64(h.d.m.firstSpam))
	}
	// Spam to a never-seen address is dictionary evidence, not a first spam.
	h.obs(t0.Add(26*time.Hour), true, "stranger@example.net")
	if testutil.ToFloat64(h.d.m.firstSpam) != 2 || testutil.ToFloat64(h.d.m.dictionary) != 1 {
		t.Fatal("spam to a new address counted as first spam")
	}
	// Rejected recipients are never tracked.
	before := h.d.Tracked()
	h.d.Observe(ingest.Observation{Time: t0.Add(27 * time.Hour), Spam: true, Rejected: []string{"ghost@example.net"}})
	if h.d.Tracked() != before || testutil.ToFloat64(h.d.m.dictionary) != 2 {
		t.Fatalf("rejected recipient tracked: %d -> %d", before, h.d.Tracked())
	}
}

func TestInvalidAndLate(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	h.obs(t0.Add(time.Hour), false, "no-at-sign", strings.Repeat("x", 10<<10)+"@example.net", user(1))
	if h.d.Tracked() != 1 || testutil.ToFloat64(h.d.m.invalid) != 2 {
		t.Fatalf("tracked %d invalid %v", h.d.Tracked(), testutil.ToFloat64(h.d.m.invalid))
	}
	h.obs(t0, false, user(2)) // an hour late
	if testutil.ToFloat64(h.d.m.late) != 1 || h.d.Tracked() != 2 {
		t.Fatal("late observation not counted at the clock")
	}
	h.d.Observe(ingest.Observation{Rcpt: []string{user(3)}})
	if testutil.ToFloat64(h.d.m.errors) != 1 || h.d.Tracked() != 2 {
		t.Fatal("observation without time accepted")
	}
}

// population runs n addresses through warm-up and learning with a steady
// trickle of background first spams (rate per address per day), returning
// the time reached.
func population(h *harness, rng *rand.Rand, n int, days int, perDay float64, prespam ...int) time.Time {
	for i := 0; i < n; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Millisecond), false, user(i))
	}
	for _, i := range prespam {
		h.obs(t0.Add(time.Minute), true, user(i))
	}
	end := t0.Add(time.Duration(days) * 24 * time.Hour)
	at := t0
	for at.Before(end) {
		at = at.Add(10 * time.Minute)
		// background: each 10 minutes, a few ham and maybe a first spam
		h.obs(at, false, user(rng.IntN(n)))
		if rng.Float64() < perDay*float64(n)/144 {
			h.obs(at, true, user(rng.IntN(n)))
		}
	}
	return at
}

func TestLeakOpensAndResolves(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 5000, 10, 0.002)
	if h.d.WarmingUp() {
		t.Fatal("still warming up after 10 days")
	}
	if n := len(h.events("opened")); n != 0 {
		t.Fatalf("%d incidents on background alone: %+v", n, h.ev[0])
	}
	// Leak: 100 never-spammed addresses (from 4000 up) in 10 minutes.
	leakStart := at.Add(time.Minute)
	leaked := map[addr.ID]bool{}
	for i := 0; i < 100; i++ {
		a := user(4000 + i)
		leaked[h.d.o.Key.Hash(a)] = true
		h.d.Observe(ingest.Observation{Time: leakStart.Add(time.Duration(i) * 6 * time.Second), Rcpt: []string{a}, Spam: true,
			From: "promo@leak.example", ClientIP: "198.51.100.7", Subject: "Hello " + a + " your order 12345",
			MessageID: "<abc@mailer.leak.example>"})
	}
	h.ev = nil
	h.tick(leakStart.Add(11 * time.Minute))
	ins := h.d.Incidents()
	if len(ins) != 1 || ins[0].Kind != KindSurge || ins[0].State != "open" {
		t.Fatalf("incidents after leak: %+v", ins)
	}
	in := ins[0]
	if in.OpenedAt.Sub(leakStart) > 5*time.Minute {
		t.Fatalf("opened %v after the leak started", in.OpenedAt.Sub(leakStart))
	}
	if in.StartedAt.Before(leakStart.Add(-time.Hour)) || in.StartedAt.After(leakStart) {
		t.Fatalf("started at %v, leak at %v", in.StartedAt, leakStart)
	}
	hits := 0
	for _, id := range in.RecipientIDs {
		if leaked[id] {
			hits++
		}
	}
	if hits < 95 || in.Recipients > 110 {
		t.Fatalf("%d of %d recipients are leaked ones", hits, in.Recipients)
	}
	if in.Campaigns.SenderDomain[0].Key != "leak.example" || in.Campaigns.SenderDomain[0].Share < 0.9 {
		t.Fatalf("campaign: %+v", in.Campaigns.SenderDomain)
	}
	if in.Campaigns.ClientNetwork[0].Key != "198.51.100.0/24" || in.Campaigns.MessageIDDomain[0].Key != "mailer.leak.example" {
		t.Fatalf("campaign: %+v %+v", in.Campaigns.ClientNetwork, in.Campaigns.MessageIDDomain)
	}
	if got := in.Campaigns.Subject[0].Key; got != "hello <address> your order #" {
		t.Fatalf("subject key %q", got)
	}
	if in.Observed < 95 || in.Expected >= 5 || in.Score < 1 {
		t.Fatalf("observed %v expected %v score %v (%s, opened %v started %v leak %v)", in.Observed, in.Expected, in.Score, in.Trigger, in.OpenedAt, in.StartedAt, leakStart)
	}
	if testutil.ToFloat64(h.d.m.active.WithLabelValues(KindSurge)) != 1 || testutil.ToFloat64(h.d.m.incidents.WithLabelValues(KindSurge)) != 1 {
		t.Fatal("incident metrics not set")
	}
	b, _ := json.Marshal(in)
	if bytes.Contains(b, []byte("example.net")) || bytes.Contains(b, []byte("user40")) {
		t.Fatalf("plaintext address in incident JSON: %s", b)
	}
	// Quiet again: resolved after the quiet window, once.
	h.tick(leakStart.Add(13 * time.Hour))
	if r := h.events("resolved"); len(r) != 1 || r[0].ID != in.ID || r[0].ResolvedAt == nil {
		t.Fatalf("resolved events: %+v", r)
	}
	if testutil.ToFloat64(h.d.m.active.WithLabelValues(KindSurge)) != 0 {
		t.Fatal("incident still active")
	}
}

func TestNoIncidentDuringWarmup(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), func(o *Options) { o.Learn = 72 * time.Hour })
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 2000, 2, 0.002) // matured, still learning
	if !h.d.WarmingUp() || testutil.ToFloat64(h.d.m.warmup) != 1 {
		t.Fatal("not warming up")
	}
	for i := 0; i < 200; i++ {
		h.obs(at.Add(time.Duration(i)*time.Second), true, user(i))
	}
	if len(h.events("opened")) != 0 {
		t.Fatal("incident opened during warm-up")
	}
	// And the warm-up excess does not carry over past its end.
	h.tick(at.Add(3 * 24 * time.Hour))
	h.obs(at.Add(3*24*time.Hour+time.Minute), true, user(1500))
	if h.d.WarmingUp() || len(h.events("opened")) != 0 {
		t.Fatalf("warm %v, opened %d", h.d.WarmingUp(), len(h.events("opened")))
	}
}

func TestDictionaryAttackAndOrdinaryCampaign(t *testing.T) {
	h := newHarness(t, store.NewMemory(), testKey(t, 1), nil)
	rng := rand.New(rand.NewPCG(3, 4))
	var spammed []int
	for i := 0; i < 50; i++ {
		spammed = append(spammed, i)
	}
	at := population(h, rng, 3000, 8, 0.002, spammed...)
	// Ordinary campaign: already-spammed addresses, again and again.
	for r := 0; r < 5; r++ {
		for i := 0; i < 50; i++ {
			h.obs(at.Add(time.Duration(r)*time.Minute), true, user(i))
		}
	}
	if n := len(h.events("opened")); n != 0 {
		t.Fatalf("ordinary campaign opened %d incidents", n)
	}
	// Dictionary attack: guessed addresses, mostly rejected, some accepted
	// (never seen before).
	at = at.Add(time.Hour)
	for i := 0; i < 300; i++ {
		h.d.Observe(ingest.Observation{Time: at.Add(time.Duration(i) * time.Second), Spam: true,
			Rcpt: []string{fmt.Sprintf("guess%d@example.net", i)}, Rejected: []string{fmt.Sprintf("nope%d@example.net", i)},
			From: "a@dict.example", ClientIP: "192.0.2.1"})
	}
	h.tick(at.Add(10 * time.Minute))
	ins := h.d.Incidents()
	if len(ins) != 1 || ins[0].Kind != KindDictionary {
		t.Fatalf("want one dictionary incident, got %+v", ins)
	}
	if ins[0].Recipients == 0 || testutil.ToFloat64(h.d.m.incidents.WithLabelValues(KindSurge)) != 0 {
		t.Fatalf("dictionary incident: %+v", ins[0])
	}
}

func TestRestartKeepsStateAndKeyChangeWarmsUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	open := func(seed byte) *harness {
		st, err := store.OpenPebble(path)
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, st, testKey(t, seed), nil)
		h.d.closer = st
		return h
	}
	h := open(1)
	rng := rand.New(rand.NewPCG(5, 6))
	at := population(h, rng, 500, 4, 0.002)
	tracked, atRisk := h.d.Tracked(), h.d.AtRisk()
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	h = open(1)
	if h.d.Tracked() != tracked || h.d.AtRisk() != atRisk || h.d.WarmingUp() {
		t.Fatalf("after restart: tracked %d/%d at risk %d/%d warm %v", h.d.Tracked(), tracked, h.d.AtRisk(), atRisk, h.d.WarmingUp())
	}
	// A known address is still known: its spam is a first spam, not new.
	h.obs(at.Add(time.Minute), true, user(499))
	if testutil.ToFloat64(h.d.m.dictionary) != 0 {
		t.Fatal("known address looked new after restart")
	}
	h.d.Close()
	h = open(2) // another key
	if !h.d.WarmingUp() || h.d.Tracked() != 0 || testutil.ToFloat64(h.d.m.warmup) != 1 {
		t.Fatalf("changed key: warm %v tracked %d", h.d.WarmingUp(), h.d.Tracked())
	}
	h.d.Close()
	h = open(1) // the old key brings the old history back
	if h.d.Tracked() != tracked {
		t.Fatalf("old key: tracked %d, want %d", h.d.Tracked(), tracked)
	}
	h.d.Close()
}

func TestCorruptStateRefused(t *testing.T) {
	st := store.NewMemory()
	b := &store.Batch{}
	b.PutMeta(metaState, []byte("{not json"))
	st.Commit(b, true)
	_, err := New(Options{Key: testKey(t, 1), Store: st})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
}

func TestStoreHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenPebble(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, st, testKey(t, 1), nil)
	h.obs(t0, false, "very-distinctive-name@example.net")
	h.obs(t0.Add(time.Hour), true, "very-distinctive-name@example.net")
	h.d.Close()
	st.Close()
	if grepDir(t, dir, "very-distinctive-name") {
		t.Fatal("plaintext address in the store")
	}
}
