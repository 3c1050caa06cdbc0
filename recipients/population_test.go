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
	var list bytes.Buffer
	for i := 0; i < 400; i += 2 {
		list.WriteString("user" + strconv.Itoa(i) + "@example.net\n")
	}
	path := filepath.Join(t.TempDir(), "even")
	if err := os.WriteFile(path, list.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	l, _, err := attribution.Load(attribution.Config{Key: k, Tags: []attribution.Source{{Name: "even", File: path}},
		Canaries: nil})
	if err != nil {
		t.Fatal(err)
	}
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

func (f failingSource) Recipients([8]byte, func([16]byte, store.Record) error) error {
	f.t.Fatal("Forget scanned the store with nothing old enough to forget")
	return nil
}
