package recipients

import (
	"slices"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/store"
)

// A tally fed the outcomes a Population's Apply gave, with the domains
// and (for early spam) the maturation hours a shared store would send,
// keeps the same counts as that Population: the total, per tag and per
// domain, through maturation, first spams and a restart from its meta
// blob.
func TestTallyMatchesApply(t *testing.T) {
	k := testKey(t)
	l := tagList(t, k, "third", 3, 300)
	o := Options{Warmup: 3 * time.Hour, Domains: true}
	p := New(o, k.Fingerprint())
	o.Tally = true
	q := New(o, k.Fingerprint())
	p.SetLists(l)
	q.SetLists(l)
	domains := []string{"a.example", "b.example", ""}
	firstMail := map[int]uint32{}
	check := func(step int, q *Population) {
		t.Helper()
		if p.AtRisk() != q.AtRisk() || p.Tracked() != q.Tracked() {
			t.Fatalf("step %d: at risk %d tracked %d, tally %d and %d", step, p.AtRisk(), p.Tracked(), q.AtRisk(), q.Tracked())
		}
		if !slices.Equal(p.TagRisk(), q.TagRisk()) {
			t.Fatalf("step %d: per tag %v, tally %v", step, p.TagRisk(), q.TagRisk())
		}
		if !slices.Equal(domainRisks(p), domainRisks(q)) {
			t.Fatalf("step %d: per domain %v, tally %v", step, domainRisks(p), domainRisks(q))
		}
		ps, pr := p.FirstSeen()
		qs, qr := q.FirstSeen()
		if !sameHours(ps, qs) || !sameHours(pr, qr) {
			t.Fatalf("step %d: first seen %v at risk %v, tally %v %v", step, ps, pr, qs, qr)
		}
	}
	at := t0
	kindsSeen := map[Kind]int{}
	for step := 0; step < 80; step++ {
		var rs []Rcpt
		var idx []int
		for i := step * 4; i < step*4+15; i++ {
			n := (i * 7) % 300
			r := rcpt(k, n)
			r.Domain = domains[n%len(domains)]
			rs = append(rs, r)
			idx = append(idx, n)
		}
		spam := step%7 == 0 || (step > 40 && step%3 == 0)
		out := p.Apply(at, rs, spam, nil)
		for i := range out {
			oc := Outcome{Kind: out[i].Kind, ID: out[i].ID, Dormant: out[i].Dormant}
			kindsSeen[oc.Kind]++
			var mh int64
			if oc.Kind == NewMail || oc.Kind == NewSpam {
				firstMail[idx[i]] = Minutes(at)
			}
			if oc.Kind == EarlySpam || oc.Kind == FirstSpam {
				mh = q.MatureHour(firstMail[idx[i]])
			}
			q.Tally(at, &oc, rs[i].Domain, mh)
			if oc.Kind == FirstSpam && (oc.Domain != out[i].Domain || oc.TagMask() != out[i].TagMask()) {
				t.Fatalf("first spam: tally says domain %d mask %x, Apply %d %x", oc.Domain, oc.TagMask(), out[i].Domain, out[i].TagMask())
			}
			p.Spent(&out[i])
			q.Spent(&oc)
		}
		at = at.Add(13 * time.Minute)
		p.Mature(at.Unix() / 3600)
		q.Mature(at.Unix() / 3600)
		check(step, q)
	}
	if seen, risk := p.FirstSeen(); sum(seen.N) == 0 || sum(risk.N) == 0 || sum(risk.N) != int32(p.AtRisk()) {
		t.Fatalf("first seen %d, at risk by first mail %d (at risk %d): the histograms are not compared", sum(seen.N), sum(risk.N), p.AtRisk())
	}
	for _, kd := range []Kind{NewMail, NewSpam, Mail, Spam, EarlySpam, FirstSpam} {
		if kindsSeen[kd] == 0 {
			t.Fatalf("the history never gave kind %d: %v", kd, kindsSeen)
		}
	}
	if p.TagRisk()[0] == 0 {
		t.Fatal("no tagged address at risk: the test proves nothing about tags")
	}
	// A restart: the counts come back from the tally's blob.
	st := store.NewMemory()
	q.StageTally()
	if err := st.Commit(q.Batch(), true); err != nil {
		t.Fatal(err)
	}
	r := New(o, k.Fingerprint())
	if err := r.Load(st, at, 0); err != nil {
		t.Fatal(err)
	}
	r.SetLists(l)
	check(-1, r)
	// Other tags: the per-tag counts restart from zero.
	l2 := tagList(t, k, "other", 3, 300)
	r.SetLists(l2)
	if got := r.TagRisk(); len(got) != 2 || got[0] != 0 {
		t.Fatalf("per-tag counts after the tags changed: %v, want zeros", got)
	}
}

// sameHours compares hour histograms by their counts (a zero count and
// no count are the same).
func sameHours(a, b Hours) bool {
	get := func(h Hours, hr int64) int32 {
		if i := hr - h.From; i >= 0 && i < int64(len(h.N)) {
			return h.N[i]
		}
		return 0
	}
	lo, hi := min(a.From, b.From), max(a.From+int64(len(a.N)), b.From+int64(len(b.N)))
	for hr := lo; hr < hi; hr++ {
		if get(a, hr) != get(b, hr) {
			return false
		}
	}
	return true
}

func sum(n []int32) (s int32) {
	for _, x := range n {
		s += x
	}
	return s
}
