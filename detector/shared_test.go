package detector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/sim"
	"github.com/spamsurge/spamsurge/store"
)

// sharedStore stands in for a fleet's Redis in unit tests: a Population
// decides the outcomes, and the first-mail times give an early spam's
// maturation hour, as the Redis script returns it.
type sharedStore struct {
	pop       *recipients.Population
	firstMail map[recipients.Rcpt]uint32
}

// apply turns an observation into what a fleet's journal carries.
func (s *sharedStore) apply(d *Detector, o ingest.Observation) *Applied {
	a := &Applied{Obs: o, Rejected: len(o.Rejected)}
	a.Obs.Rcpt, a.Obs.Rejected = nil, nil
	var rc []recipients.Rcpt
	for _, raw := range o.Rcpt {
		if r, ok := d.Recipient(raw); ok {
			rc = append(rc, r)
		}
	}
	s.pop.Mature(o.Time.Unix() / 3600)
	outs := s.pop.Apply(o.Time, rc, o.Spam, nil)
	for i := range outs {
		oc := recipients.Outcome{Kind: outs[i].Kind, ID: outs[i].ID, Detail: outs[i].Detail, Dormant: outs[i].Dormant, LongDormant: outs[i].LongDormant, Source: outs[i].Source}
		key := recipients.Rcpt{ID: oc.ID}
		var h int64
		switch oc.Kind {
		case recipients.NewMail, recipients.NewSpam:
			s.firstMail[key] = recipients.Minutes(o.Time)
		case recipients.EarlySpam, recipients.FirstSpam:
			h = s.pop.MatureHour(s.firstMail[key])
		}
		a.Outs = append(a.Outs, oc)
		a.Domains = append(a.Domains, rc[i].Domain)
		a.Hours = append(a.Hours, h)
		s.pop.Spent(&outs[i])
	}
	return a
}

// A shared detector fed the outcomes a store decided gives the same
// incident events, byte for byte, as a detector that keeps the
// recipients itself: here on a small domain's leak, with the per-domain
// strata on.
func TestSharedMatchesObserve(t *testing.T) {
	var buf bytes.Buffer
	if _, err := sim.Run(sim.Config{Scenario: "shopleak", Seed: 2, Addresses: 20000}, &buf); err != nil {
		t.Fatal(err)
	}
	key := testKey(t, 3)
	mod := func(o *Options) { o.PerDomain, o.PerTag, o.Warmup, o.Learn = true, true, 168*time.Hour, 72*time.Hour }
	own := newHarness(t, store.NewMemory(), key, mod)
	shared := newHarness(t, store.NewMemory(), key, func(o *Options) { mod(o); o.Shared = true })
	ss := &sharedStore{
		pop:       recipients.New(recipients.Options{Warmup: own.d.o.Warmup, Dormant: own.d.o.Dormant, Domains: true}, key.Fingerprint()),
		firstMail: map[recipients.Rcpt]uint32{},
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		own.ev = append(own.ev, own.d.Observe(o)...)
		shared.ev = append(shared.ev, shared.d.ObserveApplied(ss.apply(shared.d, o))...)
		n++
	}
	if len(own.ev) == 0 {
		t.Fatalf("%d observations opened nothing: the test compares nothing", n)
	}
	a, _ := json.Marshal(own.ev)
	b, _ := json.Marshal(shared.ev)
	if !bytes.Equal(a, b) {
		t.Fatalf("events differ:\nown    %.600s\nshared %.600s", a, b)
	}
	if own.d.AtRisk() != shared.d.AtRisk() || own.d.Tracked() != shared.d.Tracked() {
		t.Fatalf("at risk %d tracked %d, shared %d %d", own.d.AtRisk(), own.d.Tracked(), shared.d.AtRisk(), shared.d.Tracked())
	}
	t.Logf("%d observations, %d events, at risk %d", n, len(own.ev), own.d.AtRisk())
	// Observe is refused on a shared detector, ObserveApplied on another.
	if ev := shared.d.Observe(ingest.Observation{Time: t0, Rcpt: []string{"a@b.example"}}); ev != nil {
		t.Fatal("Observe on a shared detector")
	}
}
