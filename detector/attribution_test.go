package detector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// lists is an Attributor whose lists a test swaps (as a SIGHUP would).
type lists struct{ l *attribution.Lists }

func (s *lists) Current() *attribution.Lists { return s.l }

// loadLists writes the files and loads them: tags maps a name to user
// indexes, canaries a source to addresses.
func loadLists(t *testing.T, key *addr.Key, tags map[string][]int, canaries map[string][]string, known ...string) *attribution.Lists {
	t.Helper()
	dir := t.TempDir()
	c := attribution.Config{Key: key, Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}}
	names := make([]string, 0, len(tags))
	for n := range tags {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var b strings.Builder
		for _, i := range tags[n] {
			fmt.Fprintln(&b, user(i))
		}
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(b.String()), 0o600)
		c.Tags = append(c.Tags, attribution.Source{Name: n, File: p})
	}
	for src, as := range canaries {
		p := filepath.Join(dir, "canary-"+src)
		os.WriteFile(p, []byte(strings.Join(as, "\n")), 0o600)
		c.Canaries = append(c.Canaries, attribution.Source{Name: src, File: p})
	}
	if len(known) > 0 {
		c.KnownDetails = filepath.Join(dir, "known")
		os.WriteFile(c.KnownDetails, []byte(strings.Join(known, "\n")), 0o600)
	}
	l, _, err := attribution.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func span(from, to int) []int {
	var v []int
	for i := from; i < to; i++ {
		v = append(v, i)
	}
	return v
}

// checkRecount asserts the incremental tag populations equal a recount
// (recipients has the bucket-level check).
func checkRecount(t *testing.T, d *Detector) {
	t.Helper()
	risk, atRisk := slices.Clone(d.pop.TagRisk()), d.pop.AtRisk()
	d.attrSync(d.attr.lists)
	if !slices.Equal(risk, d.pop.TagRisk()) || atRisk != d.pop.AtRisk() {
		t.Fatalf("incremental tag populations %v (at risk %d), recount %v (%d)", risk, atRisk, d.pop.TagRisk(), d.pop.AtRisk())
	}
}

// leak sends first spams to the given users, 6 s apart, and returns the
// surge incident.
func leak(t *testing.T, h *harness, at time.Time, users []int, rcpt func(int) string) Incident {
	t.Helper()
	for n, i := range users {
		h.obs(at.Add(time.Duration(n)*6*time.Second), true, rcpt(i))
	}
	h.tick(at.Add(time.Duration(len(users))*6*time.Second + time.Minute))
	for _, in := range h.d.Incidents() {
		if in.Kind == KindSurge {
			return in
		}
	}
	t.Fatalf("no surge incident: %+v", h.d.Incidents())
	return Incident{}
}

func TestLeakedSourceRankedFirst(t *testing.T) {
	key := testKey(t, 1)
	src := &lists{loadLists(t, key, map[string][]int{
		"webmail-login": span(0, 4000),
		"addressbook":   span(3800, 4400), // 200 also have a login
		"newsletter":    span(100, 600),
	}, nil, "shop")}
	h := newHarness(t, store.NewMemory(), key, func(o *Options) { o.Attribution = src })
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 5000, 10, 0.002)
	checkRecount(t, h.d)
	if h.d.pop.TagRisk()[len(h.d.pop.TagRisk())-1] > h.d.AtRisk() {
		t.Fatalf("tagged at-risk %v over the population %d", h.d.pop.TagRisk(), h.d.AtRisk())
	}

	// The address book leaks (only its own part: 4000..4399), half
	// handed out as user+shop@.
	in := leak(t, h, at.Add(time.Minute), span(4000, 4100), func(i int) string {
		if i%2 == 0 {
			return strings.Replace(user(i), "@", "+shop@", 1)
		}
		return user(i)
	})
	checkRecount(t, h.d)
	t.Logf("%s\n%+v\n%+v single %d dormant %d", in.TopSource, in.Tags, in.SubaddressDetails, in.SingleSource, in.Dormant)
	if in.TopTag != "addressbook" || in.Tags[0].Tag != "addressbook" || in.Tags[0].Lift < 5 {
		t.Fatalf("attribution: top %q, ranking %+v", in.TopTag, in.Tags)
	}
	if !strings.Contains(in.TopSource, "of newly spammed addresses are in `addressbook` (") {
		t.Fatalf("sentence %q", in.TopSource)
	}
	if len(in.Tags) != 4 { // three tags and untagged
		t.Fatalf("ranking %+v", in.Tags)
	}
	if len(in.SubaddressDetails) == 0 || in.SubaddressDetails[0].Detail != "shop" || !in.SubaddressDetails[0].Known ||
		in.SubaddressDetails[0].Count < 45 {
		t.Fatalf("sub-address details %+v", in.SubaddressDetails)
	}
	if in.SingleSource < in.Recipients*9/10 {
		t.Fatalf("single source %d of %d", in.SingleSource, in.Recipients)
	}
	b, _ := json.Marshal(in)
	for _, want := range []string{`"top_tag":"addressbook"`, `"tags":[{"tag":"addressbook","in_incident":`, `"population_share":`, `"subaddress_details":[{"detail":"shop","known":true`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Fatalf("incident JSON lacks %s: %s", want, b)
		}
	}
	if bytes.Contains(b, []byte("example.net")) {
		t.Fatalf("plaintext in incident JSON: %s", b)
	}
	// The opened event carried it too.
	if op := h.events("opened"); len(op) != 1 || op[0].TopTag != "addressbook" {
		t.Fatalf("opened events %+v", op)
	}
	// Lists reloaded (the book renamed): the open incident is re-ranked
	// at its next update even without new recipients.
	src.l = loadLists(t, key, map[string][]int{"webmail-login": span(0, 4000), "book-2026": span(3800, 4400)}, nil)
	h.obs(at.Add(time.Hour), false, user(1))
	h.d.attrAnnotate()
	if live := h.d.open[KindSurge]; live == nil || live.TopTag != "book-2026" || len(live.Tags) != 3 {
		t.Fatalf("after reload: %+v", live)
	}
}

func TestEvenLeakNamesNoSource(t *testing.T) {
	key := testKey(t, 1)
	src := &lists{loadLists(t, key, map[string][]int{
		"webmail-login": span(0, 2500),
		"addressbook":   span(2500, 3000),
	}, nil)}
	h := newHarness(t, store.NewMemory(), key, func(o *Options) { o.Attribution = src })
	rng := rand.New(rand.NewPCG(3, 4))
	at := population(h, rng, 5000, 10, 0.002)
	// Every 41st address: drawn evenly from the population.
	var us []int
	for i := 7; i < 5000 && len(us) < 120; i += 41 {
		us = append(us, i)
	}
	in := leak(t, h, at.Add(time.Minute), us, user)
	if in.TopTag != "" || !strings.HasPrefix(in.TopSource, "no source list stands out") {
		t.Fatalf("even leak attributed: %q %q %+v", in.TopTag, in.TopSource, in.Tags)
	}
	if len(in.SubaddressDetails) != 0 {
		t.Fatalf("details %+v", in.SubaddressDetails)
	}
}

func TestCanaryOpensAtOnceAndStaysOutOfStatistics(t *testing.T) {
	key := testKey(t, 1)
	st := store.NewMemory()
	src := &lists{loadLists(t, key, nil, map[string][]string{"billing-db": {"trap-7f3@example.net"}, "crm": {"bait@example.org"}})}
	h := newHarness(t, st, key, func(o *Options) { o.Attribution = src })
	// Fresh store, warming up: a ham message to a canary still opens.
	evs := h.d.Observe(ingest.Observation{Time: t0, Rcpt: []string{"alice@example.net", "Trap-7F3@Example.NET"}, Spam: false,
		From: "crm@partner.example", ClientIP: "192.0.2.1"})
	if len(evs) != 1 || evs[0].Event != "opened" || evs[0].Kind != KindCanary || evs[0].CanarySource != "billing-db" ||
		evs[0].Recipients != 1 || evs[0].OpenedAt != t0 {
		t.Fatalf("events %+v", evs)
	}
	if h.d.Tracked() != 1 {
		t.Fatalf("the canary got recipient state: tracked %d", h.d.Tracked())
	}
	if testutil.ToFloat64(h.d.m.active.WithLabelValues(KindCanary)) != 1 || testutil.ToFloat64(h.d.m.incidents.WithLabelValues(KindCanary)) != 1 ||
		testutil.ToFloat64(h.d.attr.hits) != 1 {
		t.Fatal("canary metrics")
	}
	if ins := h.d.Incidents(); len(ins) != 1 || ins[0].Kind != KindCanary {
		t.Fatalf("incidents %+v", ins)
	}
	// Spam to it a minute later: the same incident, counted.
	h.d.Observe(ingest.Observation{Time: t0.Add(time.Minute), Rcpt: []string{"trap-7f3@example.net"}, Spam: true})
	// Another source: its own incident.
	evs = h.d.Observe(ingest.Observation{Time: t0.Add(2 * time.Minute), Rcpt: []string{"bait@example.org"}, Spam: true})
	if len(evs) != 1 || evs[0].CanarySource != "crm" {
		t.Fatalf("second source: %+v", evs)
	}
	ins := h.d.Incidents()
	if len(ins) != 2 || ins[0].Observed != 2 || ins[0].CanarySource != "billing-db" {
		t.Fatalf("incidents %+v", ins)
	}
	b, _ := json.Marshal(ins)
	if bytes.Contains(b, []byte("trap")) || bytes.Contains(b, []byte("bait")) {
		t.Fatalf("plaintext canary in JSON: %s", b)
	}
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart keeps them open; quiet for CanaryQuiet resolves them.
	h = newHarness(t, st, key, func(o *Options) { o.Attribution = src })
	if ins := h.d.Incidents(); len(ins) != 2 || ins[0].State != "open" || ins[1].CanarySource != "crm" {
		t.Fatalf("after restart: %+v", ins)
	}
	h.obs(t0.Add(3*time.Minute), false, "alice@example.net")
	h.tick(t0.Add(CanaryQuiet + 3*time.Minute))
	if r := h.events("resolved"); len(r) != 2 || r[0].Kind != KindCanary {
		t.Fatalf("resolved %+v", r)
	}
	if testutil.ToFloat64(h.d.m.active.WithLabelValues(KindCanary)) != 0 {
		t.Fatal("canary still active")
	}
	if ins := h.d.Incidents(); len(ins) != 2 || ins[0].State != "resolved" {
		t.Fatalf("after resolution: %+v", ins)
	}
}

func TestReloadRecountsAndRemovesNewCanaries(t *testing.T) {
	key := testKey(t, 1)
	src := &lists{loadLists(t, key, map[string][]int{"book": span(0, 100)}, nil)}
	h := newHarness(t, store.NewMemory(), key, func(o *Options) { o.Attribution = src })
	for i := 0; i < 300; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	h.tick(t0.Add(25 * time.Hour))
	if h.d.AtRisk() != 300 || h.d.pop.TagRisk()[0] != 100 {
		t.Fatalf("at risk %d, book %v", h.d.AtRisk(), h.d.pop.TagRisk())
	}
	h.obs(t0.Add(25*time.Hour+time.Minute), true, user(5)) // first spam in the book
	if h.d.pop.TagRisk()[0] != 99 {
		t.Fatalf("book after a first spam %v", h.d.pop.TagRisk())
	}
	// SIGHUP: the book grows, user(7) becomes a canary.
	src.l = loadLists(t, key, map[string][]int{"book": span(0, 200)}, map[string][]string{"web": {user(7)}})
	evs := h.d.Observe(ingest.Observation{Time: t0.Add(25*time.Hour + 2*time.Minute), Rcpt: []string{user(250)}})
	if len(evs) != 0 || h.d.AtRisk() != 298 || h.d.pop.TagRisk()[0] != 198 {
		t.Fatalf("after reload: at risk %d, book %v, events %v", h.d.AtRisk(), h.d.pop.TagRisk(), evs)
	}
	checkRecount(t, h.d)
	evs = h.d.Observe(ingest.Observation{Time: t0.Add(25*time.Hour + 3*time.Minute), Rcpt: []string{user(7)}, Spam: true})
	if len(evs) != 1 || evs[0].Kind != KindCanary || h.d.AtRisk() != 298 {
		t.Fatalf("canary after reload: %+v, at risk %d", evs, h.d.AtRisk())
	}
}

func TestRejectedCanaryOpens(t *testing.T) {
	key := testKey(t, 1)
	src := &lists{loadLists(t, key, nil, map[string][]string{"webmail-users": {"ghost-row@example.net"}})}
	h := newHarness(t, store.NewMemory(), key, func(o *Options) { o.Attribution = src })
	evs := h.d.Observe(ingest.Observation{Time: t0, Rcpt: []string{"alice@example.net"}, Rejected: []string{"Ghost-Row@example.net"}, Spam: true})
	if len(evs) != 1 || evs[0].Kind != KindCanary || evs[0].CanarySource != "webmail-users" {
		t.Fatalf("events %+v", evs)
	}
}

// BenchmarkObserveWithLists is BenchmarkObserve with attribution on: two
// tag lists over half the population (one inside the other) and 1,000
// canaries, so every recipient is checked against the canaries and every
// new address and first spam against the tags.
//
//	go test -run '^$' -bench 'BenchmarkObserve' ./detector
func BenchmarkObserveWithLists(b *testing.B) {
	const pop = 1 << 20
	key := testKey(b, 1)
	dir := b.TempDir()
	name := func(i int) string { return "firstname.lastname" + strconv.Itoa(i) + "@example-provider.net" }
	var big, small, can strings.Builder
	for i := 0; i < pop/2; i++ {
		fmt.Fprintln(&big, name(2*i))
		if i%4 == 0 {
			fmt.Fprintln(&small, name(2*i))
		}
	}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&can, "trap%d@example-provider.net\n", i)
	}
	for p, s := range map[string]*strings.Builder{"big": &big, "small": &small, "can": &can} {
		os.WriteFile(filepath.Join(dir, p), []byte(s.String()), 0o600)
	}
	l, _, err := attribution.Load(attribution.Config{Key: key, Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"},
		Tags:     []attribution.Source{{Name: "webmail-login", File: filepath.Join(dir, "big")}, {Name: "addressbook", File: filepath.Join(dir, "small")}},
		Canaries: []attribution.Source{{Name: "billing-db", File: filepath.Join(dir, "can")}}})
	if err != nil {
		b.Fatal(err)
	}
	h := newHarness(b, store.NewMemory(), key, func(o *Options) { o.Attribution = &lists{l} })
	observeLoop(b, h, pop)
}
