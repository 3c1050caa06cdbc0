package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/store"
)

// BenchmarkNode: the whole fleet path on a real loopback redis-server,
// one and two instances (the mail split between them, each reading the
// whole journal), against a detector keeping its recipients itself on
// the same history (plusnet, 20,000 addresses). Reports recipient
// observations per second per instance: the mail this instance took in,
// applied to Redis, journaled and read back by every instance.
//
//	go test ./fleet -run XXX -bench BenchmarkNode -benchtime 1x
func BenchmarkNode(b *testing.B) {
	obs := simLines(b, "plusnet", 20000)
	rcpts := 0
	for _, o := range obs {
		rcpts += len(o.Rcpt)
	}
	b.Run("embedded", func(b *testing.B) {
		for b.Loop() {
			det, err := detector.New(detector.Options{Key: newKey(b), Store: store.NewMemory(), PerDomain: true, PerTag: true,
				Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for _, o := range obs {
				det.Observe(o)
			}
			b.ReportMetric(float64(rcpts)/time.Since(start).Seconds(), "obs/s/instance")
		}
	})
	for _, n := range []int{1, 2} {
		b.Run(map[int]string{1: "instances=1", 2: "instances=2"}[n], func(b *testing.B) {
			for b.Loop() {
				url := "redis://" + testkit.Redis(b)
				key := newKey(b)
				var ins []*instance
				for range n {
					ins = append(ins, newInstance(b, url, nil, key, store.NewMemory(), nil))
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for _, in := range ins {
					wg.Go(func() { in.node.Run(ctx) })
				}
				start := time.Now()
				for i, o := range obs {
					ins[i%n].node.Observe(o)
				}
				waitEntriesFor(b, len(obs), 10*time.Minute, ins...)
				el := time.Since(start)
				cancel()
				wg.Wait()
				b.ReportMetric(float64(rcpts)/float64(n)/el.Seconds(), "obs/s/instance")
				b.ReportMetric(float64(rcpts)/el.Seconds(), "obs/s/fleet")
			}
		})
	}
}
