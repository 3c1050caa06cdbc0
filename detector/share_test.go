package detector

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// campaignWorld: three big ordinary campaigns send spam all day to
// addresses on spammers' lists; about 5 % of their recipients are
// addresses the lists gained lately (first spams), more than the
// campaigns' hourly quota of counted first spams.
type campaignWorld struct {
	t      *testing.T
	h      *harness
	rng    *rand.Rand
	listed []string // on the spammers' lists (spammed already)
	fresh  []string // never spammed
	next   int      // the next fresh address to use
	at     time.Time
}

func newCampaignWorld(t *testing.T, mod func(*Options)) *campaignWorld {
	w := &campaignWorld{t: t, h: newHarness(t, store.NewMemory(), testKey(t, 4), mod), rng: rand.New(rand.NewPCG(3, 4))}
	for i := 0; i < 30000; i++ {
		a := fmt.Sprintf("m%d@isp.example", i)
		if i < 6000 {
			w.listed = append(w.listed, a)
		} else {
			w.fresh = append(w.fresh, a)
		}
		w.h.obs(t0.Add(time.Duration(i)*time.Millisecond), false, a)
	}
	// The listed ones got their first spam in warm-up.
	for i := 0; i < len(w.listed); i += 50 {
		w.h.obs(t0.Add(time.Minute), true, w.listed[i:min(i+50, len(w.listed))]...)
	}
	w.at = t0.Add(time.Hour)
	return w
}

// spam runs the campaigns until end, volume messages every 10 minutes,
// and extra leaked fresh addresses slipped into the campaigns' messages
// (one per message at most, with probability leak).
func (w *campaignWorld) spam(end time.Time, volume int, leak float64) {
	for w.at.Before(end) {
		w.at = w.at.Add(10 * time.Minute)
		w.h.obs(w.at, false, w.fresh[w.rng.IntN(len(w.fresh))])
		for m := 0; m < volume; m++ {
			c := w.rng.IntN(3)
			rcpt := make([]string, 0, 31)
			for k := 0; k < 30; k++ {
				if w.rng.Float64() < 0.05 {
					rcpt = append(rcpt, w.fresh[w.next%len(w.fresh)])
					w.next++
				} else {
					rcpt = append(rcpt, w.listed[w.rng.IntN(len(w.listed))])
				}
			}
			if w.rng.Float64() < leak {
				rcpt = append(rcpt, w.fresh[w.next%len(w.fresh)])
				w.next++
			}
			w.h.ev = append(w.h.ev, w.h.d.Observe(ingest.Observation{Time: w.at, Rcpt: rcpt, Spam: true,
				From: fmt.Sprintf("news@camp%d.example", c), ClientIP: fmt.Sprintf("198.51.100.%d", 10+c), Subject: "Offers"})...)
		}
	}
}

func TestShareFindsDripInOrdinaryCampaigns(t *testing.T) {
	w := newCampaignWorld(t, nil)
	w.spam(t0.Add(8*24*time.Hour), 1, 0)
	if w.h.d.WarmingUp() {
		t.Fatal("still warming up")
	}
	if op := w.h.events(EventOpened); len(op) != 0 {
		t.Fatalf("opened on the background: %s %s", op[0].ID, op[0].Trigger)
	}
	// A busy spam day: twice the volume, and twice the first spams with
	// it. The share does not move.
	w.spam(w.at.Add(24*time.Hour), 2, 0)
	for _, e := range w.h.events(EventOpened) {
		if e.Trigger == TriggerCUSUMShare {
			t.Fatalf("the share test opened %s on a busy day", e.ID)
		}
	}
	w.spam(w.at.Add(24*time.Hour), 1, 0)
	w.h.ev = nil
	// The leak: every one of the campaigns' messages also reaches an
	// address from a leaked list, 6 more first spams an hour over the 9
	// the campaigns bring, all beyond their quota.
	leakAt := w.at
	w.spam(w.at.Add(24*time.Hour), 1, 1)
	op := w.h.events(EventOpened)
	if len(op) != 1 || op[0].Trigger != TriggerCUSUMShare || op[0].Kind != KindSurge {
		for _, e := range op {
			t.Logf("opened %s %s after %v", e.ID, e.Trigger, e.OpenedAt.Sub(leakAt))
		}
		t.Fatalf("%d incidents opened during the drip, want one cusum_share", len(op))
	}
	if d := op[0].OpenedAt.Sub(leakAt); d > 20*time.Hour {
		t.Fatalf("found after %v", d)
	}
	// While open it takes every first spam, not only the counted ones.
	var final Incident
	w.spam(w.at.Add(4*time.Hour), 1, 1)
	for _, in := range w.h.d.Incidents() {
		if in.ID == op[0].ID {
			final = in
		}
	}
	if final.Observed < op[0].Observed+40 || final.Expected <= op[0].Expected {
		t.Fatalf("open incident: observed %v → %v, expected %v → %v", op[0].Observed, final.Observed, op[0].Expected, final.Expected)
	}
}

func TestShareOffLeavesDripUnfound(t *testing.T) {
	w := newCampaignWorld(t, func(o *Options) { o.NoShare = true })
	w.spam(t0.Add(10*24*time.Hour), 1, 0)
	leakAt := w.at
	w.h.ev = nil
	w.spam(w.at.Add(24*time.Hour), 1, 1)
	for _, e := range w.h.events(EventOpened) {
		if e.OpenedAt.Sub(leakAt) < 24*time.Hour {
			t.Fatalf("the other tests found the hidden drip (%s after %v): this world does not need the share test", e.Trigger, e.OpenedAt.Sub(leakAt))
		}
	}
}
