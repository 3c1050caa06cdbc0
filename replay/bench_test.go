package replay

import (
	"bytes"
	"context"
	"testing"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/sim"
	"github.com/spamsurge/spamsurge/store"
)

// BenchmarkReplay is replay end to end (JSONL decoding, reorder window,
// detector) on a simulated stream, with the in-memory store.
func BenchmarkReplay(b *testing.B) {
	var buf bytes.Buffer
	tr, err := sim.Run(sim.Config{Scenario: "plusnet", Seed: 1, Addresses: 20000}, &buf)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := addr.NewKey(bytes.Repeat([]byte{1}, 32))
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		d, err := detector.New(detector.Options{Key: key, Store: store.NewMemory(), Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Run(context.Background(), Options{Detector: d}, Input{Name: "sim", R: bytes.NewReader(buf.Bytes())}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tr.Lines)*float64(b.N)/b.Elapsed().Seconds(), "obs/s")
}
