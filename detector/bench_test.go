package detector

import (
	"strconv"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// BenchmarkObserve is the in-memory hot path: one recipient per
// observation (normalise, keyed hash, state lookup and update, statistics),
// over a population of 1 M addresses, 90 % ham.
// discard is a store that keeps nothing: the benchmark measures the
// detector, not a test store's map.
type discard struct{ *store.Memory }

func (*discard) Commit(*store.Batch, bool) error { return nil }

func BenchmarkObserve(b *testing.B) { observeBench(b, 1<<20) }

// BenchmarkObserveLarge is BenchmarkObserve over 8 M addresses, where the
// table is past its doubling stage and 82 % full (run it with
// -benchtime 25000000x so that every address is seen about three times).
func BenchmarkObserveLarge(b *testing.B) { observeBench(b, 1<<23) }

// BenchmarkObserveStrata is BenchmarkObserveLarge with the per-domain and
// per-tag tests on and the addresses over 500 domains (run it with
// -benchtime 25000000x, like BenchmarkObserveLarge).
func BenchmarkObserveStrata(b *testing.B) {
	h := newHarness(b, &discard{store.NewMemory()}, testKey(b, 1), func(o *Options) {
		o.FlushMax, o.PerDomain, o.PerTag = 10000, true, true
	})
	observeLoopDomains(b, h, 1<<23, 500)
}

func observeBench(b *testing.B, pop int) {
	h := newHarness(b, &discard{store.NewMemory()}, testKey(b, 1), func(o *Options) { o.FlushMax = 10000 })
	observeLoop(b, h, pop)
}

// observeLoop observes one recipient per iteration from a population of
// pop addresses (a power of two), one in ten as spam, and reports rcpt/s.
func observeLoop(b *testing.B, h *harness, pop int) { observeLoopDomains(b, h, pop, 0) }

// observeLoopDomains spreads the addresses over domains domains (0: one).
func observeLoopDomains(b *testing.B, h *harness, pop, domains int) {
	at := t0
	o := ingest.Observation{Rcpt: make([]string, 1), From: "x@spam.example", ClientIP: "203.0.113.9"}
	buf := make([]byte, 0, 64) // room for the whole address: only the string below is allocated
	buf = append(buf, "firstname.lastname"...)
	for i := 0; b.Loop(); i++ {
		at = at.Add(time.Millisecond)
		o.Time = at
		// A fresh string each time, as a decoded observation has.
		a := strconv.AppendInt(buf[:18], int64((i*7919)&(pop-1)), 10)
		if domains > 0 {
			a = append(a, "@cust"...)
			a = strconv.AppendInt(a, int64((i*7919)&(pop-1)%domains), 10)
			a = append(a, ".example"...)
		} else {
			a = append(a, "@example-provider.net"...)
		}
		o.Rcpt[0] = string(a)
		o.Spam = i%10 == 0
		h.d.Observe(o)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rcpt/s")
}
