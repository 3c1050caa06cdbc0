package detector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/sim"
	"github.com/spamsurge/spamsurge/store"
)

// The backup scenario's list, copied weeks before its use, dated by the
// real detector from its own state: the surge incident's list_snapshot
// brackets the true copy time, on every seed it dates, and it dates most.
// (forensics.TestDateCoverage checks the estimator on many more seeds.)
func TestListSnapshotBracketsCopy(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if testing.Short() {
		seeds = seeds[:2]
	}
	dated := 0
	for _, seed := range seeds {
		age := time.Duration(14+3*int(seed%3)) * 24 * time.Hour
		var buf bytes.Buffer
		tr, err := sim.Run(sim.Config{Scenario: "backup", Seed: seed, Addresses: 6000, CopyAge: age}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, store.NewMemory(), testKey(t, 5), func(o *Options) { o.Warmup, o.Learn = 168*time.Hour, 72*time.Hour })
		h.feed(&buf)
		var last *Incident
		for _, in := range h.d.Incidents() {
			if in.Kind == KindSurge && !in.StartedAt.Before(tr.Leaks[0].Start.Add(-time.Hour)) {
				last = &in
			}
		}
		if last == nil {
			t.Fatalf("seed %d: no surge incident for the leak at %s", seed, tr.Leaks[0].Start)
		}
		raw, _ := json.Marshal(last)
		var back struct {
			Snap   json.RawMessage `json:"list_snapshot"`
			Reason string          `json:"list_snapshot_reason"`
		}
		if err := json.Unmarshal(raw, &back); err != nil || back.Snap == nil {
			t.Fatalf("seed %d: incident JSON without list_snapshot: %.300s", seed, raw)
		}
		s := last.ListSnapshot
		copied := *tr.ListCopiedAt
		if s == nil {
			if back.Reason == "" || string(back.Snap) != "null" {
				t.Fatalf("seed %d: list_snapshot %s without a reason", seed, back.Snap)
			}
			t.Logf("seed %d (copied %s before use): %d recipients, not dated: %s", seed, age, last.Recipients, back.Reason)
			continue
		}
		dated++
		t.Logf("seed %d: copied %s, %d recipients: %s", seed, copied.Format(time.DateTime), last.Recipients, s)
		if copied.Before(s.NotBefore) || copied.After(s.NotAfter) {
			t.Errorf("seed %d: copied %s, outside %s … %s", seed, copied, s.NotBefore, s.NotAfter)
		}
	}
	if dated*2 < len(seeds) {
		t.Errorf("%d of %d leaks dated", dated, len(seeds))
	}
}

// The profile of a small domain's leak (shopleak, per-domain counts on)
// names the domain, with its lift, and estimates the candidates to notify
// from that domain's at-risk addresses.
func TestProfileNamesTheDomain(t *testing.T) {
	var buf bytes.Buffer
	tr, err := sim.Run(sim.Config{Scenario: "shopleak", Seed: 2, Addresses: 20000}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, store.NewMemory(), testKey(t, 6), func(o *Options) {
		o.PerDomain, o.Warmup, o.Learn = true, 168*time.Hour, 72*time.Hour
	})
	h.feed(&buf)
	var in *Incident
	for _, x := range h.d.Incidents() {
		if x.Kind == KindSurge && x.Profile != nil && len(x.Profile.Domains) > 0 {
			in = &x
		}
	}
	if in == nil {
		t.Fatalf("no surge incident with a domain profile (leaked domain %s)", tr.LeakedDomain)
	}
	p := in.Profile
	top := p.Domains[0]
	t.Logf("%s: %d recipients, domains %+v, candidates %s, dormant %.2f long %.2f", in.ID, in.Recipients, p.Domains, p.Candidates, p.DormantShare, p.LongDormantShare)
	if top.Domain != tr.LeakedDomain || top.Lift < 5 || top.InIncident > in.Recipients || top.Share <= top.PopulationShare {
		t.Fatalf("top domain %+v, the leak was in %s (%d addresses)", top, tr.LeakedDomain, tr.LeakedDomainSize)
	}
	c := p.Candidates
	if c == nil || !strings.Contains(c.Basis, tr.LeakedDomain) || c.Low > c.Estimate || c.Estimate > c.High {
		t.Fatalf("candidates %+v", c)
	}
	// The domain's at-risk addresses: fewer than its addresses, more than
	// the hits.
	if c.Estimate > tr.LeakedDomainSize || c.Estimate < in.Recipients {
		t.Errorf("candidates %d for a domain of %d addresses and %d hits", c.Estimate, tr.LeakedDomainSize, in.Recipients)
	}
	if p.DormantShare != in.DormantShare || p.LongDormantShare > p.DormantShare {
		t.Errorf("dormant %.2f, long dormant %.2f (incident %.2f)", p.DormantShare, p.LongDormantShare, in.DormantShare)
	}
}

// feed observes a JSONL stream (sim's).
func (h *harness) feed(r io.Reader) {
	h.t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			h.t.Fatal(err)
		}
		h.ev = append(h.ev, h.d.Observe(o)...)
	}
}
