package detector

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/store"
)

// BenchmarkObserve is the in-memory hot path: one recipient per
// observation (normalise, keyed hash, state lookup and update, statistics),
// over a population of 1 M addresses, 90 % ham.
// discard is a store that keeps nothing: the benchmark measures the
// detector, not a test store's map.
type discard struct{ *store.Memory }

func (*discard) Commit(*store.Batch, bool) error { return nil }

func BenchmarkObserve(b *testing.B) {
	const pop = 1 << 20
	h := newHarness(b, &discard{store.NewMemory()}, testKey(b, 1), func(o *Options) { o.FlushMax = 10000 })
	at := t0
	o := Observation{Rcpt: make([]string, 1), From: "x@spam.example", ClientIP: "203.0.113.9"}
	buf := []byte("firstname.lastname")
	for i := 0; b.Loop(); i++ {
		at = at.Add(time.Millisecond)
		o.Time = at
		// A fresh string each time, as a decoded observation has.
		a := strconv.AppendInt(buf[:18], int64((i*7919)&(pop-1)), 10)
		a = append(a, "@example-provider.net"...)
		o.Rcpt[0] = string(a)
		o.Spam = i%10 == 0
		h.d.Observe(o)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rcpt/s")
}

// BenchmarkMemoryPerAddress reports the heap held per tracked address.
func BenchmarkMemoryPerAddress(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				d := &Detector{tab: newTable(0)}
				for i := 0; i < n; i++ {
					var id addr.ID
					binary.LittleEndian.PutUint64(id[:], uint64(i+1)*0x9E3779B97F4A7C15)
					d.tab.insert(&id).set(store.Record{FirstMail: 1, LastMail: 2})
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/address")
				runtime.KeepAlive(d)
			}
		})
	}
}
