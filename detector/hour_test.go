package detector

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/store"
)

// TestOnHour: every finished hour is reported once, in order, with the
// first spams it held, the expectation and the at-risk population at its
// end; the debug "hour" line's numbers, for the backtest report.
func TestOnHour(t *testing.T) {
	var hours []Hour
	h := newHarness(t, store.NewMemory(), testKey(t, 1), func(o *Options) { o.OnHour = func(hr Hour) { hours = append(hours, hr) } })
	rng := rand.New(rand.NewPCG(1, 2))
	at := population(h, rng, 2000, 3, 0.002)
	if len(hours) < 71 || len(hours) > 72 {
		t.Fatalf("%d hours reported over 3 days", len(hours))
	}
	for i, hr := range hours {
		if hr.Start.Minute() != 0 || hr.Start.Second() != 0 || hr.Start.Location() != time.UTC {
			t.Fatalf("hour %d starts at %s", i, hr.Start)
		}
		if i > 0 && !hr.Start.Equal(hours[i-1].Start.Add(time.Hour)) {
			t.Fatalf("hour %d at %s after %s", i, hr.Start, hours[i-1].Start)
		}
		if hr.Counted > hr.FirstSpams || hr.Phi < 1 {
			t.Fatalf("hour %d: %+v", i, hr)
		}
	}
	// Warm-up and learning take two days here.
	last := hours[len(hours)-1]
	if !hours[0].Warm || last.Warm || last.AtRisk != h.d.AtRisk() || last.Expected <= 0 {
		t.Fatalf("last hour %+v, detector at risk %d", last, h.d.AtRisk())
	}
	// Ten first spams in one hour are that hour's.
	n := len(hours)
	base := at.Truncate(time.Hour).Add(time.Hour)
	fresh := 0
	for i := 0; i < 2000 && fresh < 10; i++ {
		before := h.d.AtRisk()
		h.obs(base.Add(time.Duration(i)*time.Second), true, user(i))
		if h.d.AtRisk() < before {
			fresh++
		}
	}
	h.tick(base.Add(2 * time.Hour))
	var got *Hour
	for i := n; i < len(hours); i++ {
		if hours[i].Start.Equal(base) {
			got = &hours[i]
		}
	}
	if got == nil || got.FirstSpams != 10 {
		t.Fatalf("hour %s: %+v (want 10 first spams)", base, got)
	}
}
