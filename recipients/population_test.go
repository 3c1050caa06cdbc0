package recipients

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/store"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func testKey(t testing.TB) *addr.Key {
	k, err := addr.NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rcpt(k *addr.Key, i int) Rcpt {
	return Rcpt{ID: k.Hash("user" + strconv.Itoa(i) + "@example.net")}
}

// tagList loads one tag, name, of every step-th of the addresses user0
// to user<n-1> (rcpt's).
func tagList(t *testing.T, k *addr.Key, name string, step, n int) *attribution.Lists {
	t.Helper()
	var list bytes.Buffer
	for i := 0; i < n; i += step {
		list.WriteString("user" + strconv.Itoa(i) + "@example.net\n")
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, list.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	l, _, err := attribution.Load(attribution.Config{Key: k, Tags: []attribution.Source{{Name: name, File: path}}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func kinds(out []Outcome) []Kind {
	var ks []Kind
	for _, o := range out {
		ks = append(ks, o.Kind)
	}
	return ks
}

// The life of an address: new, maturing, at risk, first spam (which
// leaves the at-risk population only when Spent), then ordinary spam; an
// address spammed before it matured never becomes at risk; a first mail
// that is spam never does either.
func TestApplyOutcomes(t *testing.T) {
	k := testKey(t)
	p := New(Options{Warmup: 2 * time.Hour, Dormant: 30 * 24 * time.Hour}, k.Fingerprint())
	a, b, c := rcpt(k, 1), rcpt(k, 2), rcpt(k, 3)
	out := p.Apply(t0, []Rcpt{a, b}, false, nil)
	if !slices.Equal(kinds(out), []Kind{NewMail, NewMail}) {
		t.Fatalf("first mails: %v", kinds(out))
	}
	out = p.Apply(t0.Add(time.Minute), []Rcpt{c}, true, nil)
	if !slices.Equal(kinds(out), []Kind{NewSpam}) {
		t.Fatalf("spam as first mail: %v", kinds(out))
	}
	// b is spammed before it matures.
	out = p.Apply(t0.Add(time.Hour), []Rcpt{b}, true, nil)
	if !slices.Equal(kinds(out), []Kind{EarlySpam}) {
		t.Fatalf("early spam: %v", kinds(out))
	}
	p.Mature(t0.Add(3*time.Hour).Unix() / 3600)
	if p.AtRisk() != 1 || p.Tracked() != 3 {
		t.Fatalf("at risk %d (want 1: only a), tracked %d", p.AtRisk(), p.Tracked())
	}
	out = p.Apply(t0.Add(4*time.Hour), []Rcpt{a, b, c}, true, nil)
	if !slices.Equal(kinds(out), []Kind{FirstSpam, Spam, Spam}) {
		t.Fatalf("spam to all: %v", kinds(out))
	}
	if out[0].ID != a.ID || out[0].Dormant {
		t.Fatalf("first spam %+v", out[0])
	}
	if p.AtRisk() != 1 {
		t.Fatalf("at risk %d before Spent, want 1", p.AtRisk())
	}
	p.Spent(&out[0])
	p.Spent(&out[1]) // not a first spam: no effect
	if p.AtRisk() != 0 {
		t.Fatalf("at risk %d after Spent, want 0", p.AtRisk())
	}
	if n := p.Pending(); n != 5 {
		t.Fatalf("%d pending writes, want 5 (3 first mails, 2 first spams)", n)
	}
}

// A dormant address's first spam says so.
func TestDormantFirstSpam(t *testing.T) {
	k := testKey(t)
	p := New(Options{Warmup: time.Hour, Dormant: 30 * 24 * time.Hour}, k.Fingerprint())
	a := rcpt(k, 1)
	p.Apply(t0, []Rcpt{a}, false, nil)
	later := t0.Add(40 * 24 * time.Hour)
	p.Mature(later.Unix() / 3600)
	out := p.Apply(later, []Rcpt{a}, true, nil)
	if out[0].Kind != FirstSpam || !out[0].Dormant {
		t.Fatalf("got %+v, want a dormant first spam", out[0])
	}
}

// What is committed loads back to the same counts.
func TestLoadRestoresCounts(t *testing.T) {
	k := testKey(t)
	st := store.NewMemory()
	p := New(Options{Warmup: time.Hour}, k.Fingerprint())
	var rs []Rcpt
	for i := 0; i < 50; i++ {
		rs = append(rs, rcpt(k, i))
	}
	p.Apply(t0, rs, false, nil)
	p.Apply(t0.Add(30*time.Minute), rs[40:], false, nil)
	p.Mature(t0.Add(2*time.Hour).Unix() / 3600)
	out := p.Apply(t0.Add(2*time.Hour), rs[:10], true, nil)
	for i := range out {
		p.Spent(&out[i])
	}
	if err := st.Commit(p.Batch(), true); err != nil {
		t.Fatal(err)
	}
	q := New(Options{Warmup: time.Hour}, k.Fingerprint())
	if err := q.Load(st, t0.Add(2*time.Hour), p.Tracked()); err != nil {
		t.Fatal(err)
	}
	if q.Tracked() != 50 || q.AtRisk() != p.AtRisk() || q.AtRisk() != 40 {
		t.Fatalf("loaded tracked %d at risk %d, want 50 and %d", q.Tracked(), q.AtRisk(), p.AtRisk())
	}
}

// The incremental per-list counts, maturation buckets included, equal a
// recount from the table after any mix of mail, spam and maturation.
func TestTagCountsMatchRecount(t *testing.T) {
	k := testKey(t)
	l := tagList(t, k, "even", 2, 400)
	p := New(Options{Warmup: 3 * time.Hour}, k.Fingerprint())
	p.SetLists(l)
	at := t0
	for step := 0; step < 40; step++ {
		var rs []Rcpt
		for i := step * 7; i < step*7+25; i++ {
			rs = append(rs, rcpt(k, i%400))
		}
		out := p.Apply(at, rs, step%3 == 0, nil)
		for i := range out {
			p.Spent(&out[i])
		}
		at = at.Add(17 * time.Minute)
		p.Mature(at.Unix() / 3600)
	}
	risk, atRisk := slices.Clone(p.TagRisk()), p.AtRisk()
	buckets := map[int64][]int32{}
	for h, b := range p.tags.buckets {
		if slices.ContainsFunc(b, func(n int32) bool { return n != 0 }) {
			buckets[h] = slices.Clone(b)
		}
	}
	p.SetLists(l)
	if !slices.Equal(risk, p.TagRisk()) || atRisk != p.AtRisk() {
		t.Fatalf("incremental %v (at risk %d), recount %v (%d)", risk, atRisk, p.TagRisk(), p.AtRisk())
	}
	for h, b := range p.tags.buckets {
		if !slices.Equal(buckets[h], b) && slices.ContainsFunc(b, func(n int32) bool { return n != 0 }) {
			t.Fatalf("maturation bucket %d: incremental %v, recount %v", h, buckets[h], b)
		}
	}
	if risk[0] == 0 || risk[0] == risk[1]+1 {
		t.Logf("risk %v", risk)
	}
}

// Addresses without mail for ForgetAfter are dropped from the table, the
// at-risk count and the store; one that comes back is new (its spam is
// not an established address's first spam), and the others are untouched.
func TestForgetDropsSilentAddresses(t *testing.T) {
	k := testKey(t)
	st := store.NewMemory()
	p := New(Options{Warmup: time.Hour, ForgetAfter: 400 * 24 * time.Hour}, k.Fingerprint())
	var rs []Rcpt
	for i := 0; i < 100; i++ {
		rs = append(rs, rcpt(k, i))
	}
	p.Apply(t0, rs, false, nil)
	p.Apply(t0, rs[90:], true, nil) // spammed before maturing: never at risk
	commit := func() {
		t.Helper()
		if err := st.Commit(p.Batch(), true); err != nil {
			t.Fatal(err)
		}
		p.Batch().Reset()
	}
	commit()
	p.Mature(t0.Add(2*time.Hour).Unix() / 3600)
	if p.AtRisk() != 90 {
		t.Fatalf("at risk %d, want 90", p.AtRisk())
	}
	// A year later the first 40 get mail again.
	later := t0.Add(365 * 24 * time.Hour)
	p.Apply(later, rs[:40], false, nil)
	commit()
	if n, err := p.Forget(st, later.Add(30*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("forgot %d (%v) at 395 days, want none", n, err)
	}
	// 401 days after the first mail: the 60 silent ones go, 10 of them
	// (the spammed) were not at risk.
	at := t0.Add(401 * 24 * time.Hour)
	n, err := p.Forget(st, at)
	if err != nil || n != 60 {
		t.Fatalf("forgot %d (%v), want 60", n, err)
	}
	if p.Tracked() != 40 || p.AtRisk() != 40 {
		t.Fatalf("tracked %d at risk %d, want 40 and 40", p.Tracked(), p.AtRisk())
	}
	commit()
	left := 0
	st.Recipients(k.Fingerprint(), func([16]byte, store.Record) error { left++; return nil })
	if left != 40 {
		t.Fatalf("store holds %d recipients, want 40", left)
	}
	// A forgotten address comes back with spam: it is new, not a first
	// spam of an established address.
	p.Mature(at.Unix() / 3600)
	out := p.Apply(at, []Rcpt{rs[50], rs[10]}, true, nil)
	if !slices.Equal(kinds(out), []Kind{NewSpam, FirstSpam}) {
		t.Fatalf("after forgetting: %v, want [NewSpam FirstSpam]", kinds(out))
	}
	// And Forget does not scan again until something can be old enough.
	if n, _ := p.Forget(failingSource{t}, at.Add(24*time.Hour)); n != 0 {
		t.Fatalf("forgot %d the next day", n)
	}
}

// failingSource fails the test if Forget reads the store.
type failingSource struct{ t *testing.T }

func (f failingSource) Meta(string) ([]byte, error) { return nil, nil }

func (f failingSource) Recipients([8]byte, func([16]byte, store.Record) error) error {
	f.t.Fatal("Forget scanned the store with nothing old enough to forget")
	return nil
}

// recountDomains counts the at-risk addresses per domain from the table.
func recountDomains(p *Population) []int {
	c := make([]int, p.Domains())
	p.tab.each(func(_ uint64, s *slot, r rec) {
		if r.firstSpam == 0 && p.established(r.firstMail) {
			c[p.tab.dom(s)]++
		}
	})
	return c
}

func domainRisks(p *Population) []int {
	var c []int
	for d := 0; d < p.Domains(); d++ {
		c = append(c, p.DomainRisk(uint16(d)))
	}
	return c
}

// The per-domain at-risk counts follow mail, spam, maturation and
// retention exactly (a recount from the table agrees), and survive a
// restart from the store.
func TestDomainCountsMatchRecount(t *testing.T) {
	k := testKey(t)
	st := store.NewMemory()
	o := Options{Warmup: 3 * time.Hour, ForgetAfter: 400 * 24 * time.Hour, Domains: true}
	p := New(o, k.Fingerprint())
	domains := []string{"a.example", "b.example", "c.example", ""}
	rc := func(i int) Rcpt {
		r := rcpt(k, i)
		r.Domain = domains[i%len(domains)]
		return r
	}
	at := t0
	for step := 0; step < 60; step++ {
		var rs []Rcpt
		for i := step * 5; i < step*5+20; i++ {
			rs = append(rs, rc(i%300))
		}
		out := p.Apply(at, rs, step%4 == 0, nil)
		for i := range out {
			if out[i].Kind == FirstSpam && out[i].Domain != p.doms.ids[rs[i].Domain] {
				t.Fatalf("first spam counted under domain %d, its domain is %q", out[i].Domain, rs[i].Domain)
			}
			p.Spent(&out[i])
		}
		at = at.Add(23 * time.Minute)
		p.Mature(at.Unix() / 3600)
	}
	if got, want := domainRisks(p), recountDomains(p); !slices.Equal(got, want) {
		t.Fatalf("incremental per-domain at risk %v, recount %v", got, want)
	}
	total := 0
	for _, n := range domainRisks(p) {
		total += n
	}
	if total != p.AtRisk() {
		t.Fatalf("domains sum to %d, at risk %d", total, p.AtRisk())
	}
	if err := st.Commit(p.Batch(), true); err != nil {
		t.Fatal(err)
	}
	q := New(o, k.Fingerprint())
	if err := q.Load(st, at, p.Tracked()); err != nil {
		t.Fatal(err)
	}
	q.Mature(at.Unix() / 3600)
	if got, want := domainRisks(q), domainRisks(p); !slices.Equal(got, want) {
		t.Fatalf("after a restart per-domain at risk %v, want %v", got, want)
	}
	// The first-seen histograms are rebuilt from the records as they
	// were kept.
	ps, pr := p.FirstSeen()
	qs, qr := q.FirstSeen()
	if sum(pr.N) != int32(p.AtRisk()) || sum(ps.N) == 0 || !sameHours(ps, qs) || !sameHours(pr, qr) {
		t.Fatalf("first seen %v at risk %v (at risk %d), after a restart %v %v", ps, pr, p.AtRisk(), qs, qr)
	}
	for d := 1; d < q.Domains(); d++ {
		if q.DomainName(uint16(d)) != p.DomainName(uint16(d)) {
			t.Fatalf("domain %d is %q after a restart, was %q", d, q.DomainName(uint16(d)), p.DomainName(uint16(d)))
		}
	}
}

// Addresses stored before domains were kept count as unknown, and move to
// their domain when they are next written (a first spam, or their last
// mail moving a week).
func TestLegacyAddressAdoptsItsDomain(t *testing.T) {
	k := testKey(t)
	st := store.NewMemory()
	a := rcpt(k, 1)
	b := store.Batch{Space: k.Fingerprint()}
	b.Recs = append(b.Recs, store.Entry{ID: a.ID, Rec: store.Record{FirstMail: Minutes(t0), LastMail: Minutes(t0)}})
	if err := st.Commit(&b, true); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Warmup: time.Hour, Domains: true}, k.Fingerprint())
	later := t0.Add(2 * time.Hour)
	if err := p.Load(st, later, 1); err != nil {
		t.Fatal(err)
	}
	if p.Domains() != 1 || p.DomainRisk(0) != 1 {
		t.Fatalf("legacy address: %d domains, unknown at risk %d", p.Domains(), p.DomainRisk(0))
	}
	a.Domain = "shop.example"
	p.Apply(later, []Rcpt{a}, false, nil) // no write: nothing moves yet
	if p.DomainRisk(0) != 1 || p.Pending() != 0 {
		t.Fatalf("mail without a write moved the address (unknown %d, %d writes)", p.DomainRisk(0), p.Pending())
	}
	later = later.Add(8 * 24 * time.Hour) // the last mail moved a week: written
	p.Mature(later.Unix() / 3600)
	p.Apply(later, []Rcpt{a}, false, nil)
	if p.DomainRisk(0) != 0 || p.DomainRisk(1) != 1 || p.DomainName(1) != "shop.example" {
		t.Fatalf("after mail: unknown %d, %q %d", p.DomainRisk(0), p.DomainName(1), p.DomainRisk(1))
	}
	if p.Pending() != 1 || p.Batch().Recs[0].Rec.Domain != 1 {
		t.Fatalf("the adopted domain is not written: %+v", p.Batch().Recs)
	}
}

// Without Options.Domains nothing of the domains is kept or written.
func TestDomainsOff(t *testing.T) {
	k := testKey(t)
	p := New(Options{Warmup: time.Hour}, k.Fingerprint())
	a := rcpt(k, 1)
	a.Domain = "shop.example"
	p.Apply(t0, []Rcpt{a}, false, nil)
	if p.Domains() != 1 || p.tab.doms != nil || p.Batch().Recs[0].Rec.Domain != 0 || len(p.Batch().Meta) != 0 {
		t.Fatalf("domains kept while off: %d domains, array %v, record %+v, meta %v", p.Domains(), p.tab.doms != nil, p.Batch().Recs[0].Rec, p.Batch().Meta)
	}
}

func TestIdleFor(t *testing.T) {
	const month = 30 * 24 * time.Hour
	day := uint16(t0.Unix() / 86400)
	for _, c := range []struct {
		later         time.Duration
		dormant, long bool
	}{
		{29 * 24 * time.Hour, false, false},
		{32 * 24 * time.Hour, true, false},
		{170 * 24 * time.Hour, true, false},
		{182 * 24 * time.Hour, true, true},
	} {
		d, l := IdleFor(t0.Add(c.later), day, month)
		if d != c.dormant || l != c.long {
			t.Errorf("%s after the last mail: dormant %v long %v, want %v %v", c.later, d, l, c.dormant, c.long)
		}
	}
}
