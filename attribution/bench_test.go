package attribution

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkLoad loads tag lists of 1 and 2 million addresses (two files:
// one of n, one of n/2 overlapping half of it, as a webmail-login list and
// an address book would) and reports the time and the heap the loaded
// lists keep. bench/README-attribution.md has the figures.
//
//	go test -run '^$' -bench BenchmarkLoad -benchtime 3x ./attribution
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1_000_000, 2_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			big := genList(b, filepath.Join(dir, "login.txt"), 0, n)
			small := genList(b, filepath.Join(dir, "book.txt"), n/2, n/2)
			cfg := Config{Key: testKey(b), Normalizer: norm,
				Tags: []Source{{"webmail-login", big}, {"addressbook", small}}}
			distinct := n // the book lies inside the login list
			b.ResetTimer()
			var heap uint64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				l, _, err := Load(cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap = m1.HeapAlloc - m0.HeapAlloc
				if len(l.mask) != distinct {
					b.Fatalf("%d addresses loaded, want %d", len(l.mask), distinct)
				}
				runtime.KeepAlive(l)
				b.StartTimer()
			}
			b.ReportMetric(float64(n+n/2)/(b.Elapsed().Seconds()/float64(b.N)), "lines/s")
			b.ReportMetric(float64(heap)/float64(distinct), "heap-B/address")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		})
	}
}

// genList writes n addresses starting at index from, in mixed case with
// some sub-addresses, a comment and a blank line, CRLF-terminated.
func genList(b *testing.B, path string, from, n int) string {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "# generated\r\n\r\n")
	for i := from; i < from+n; i++ {
		switch i % 10 {
		case 0:
			fmt.Fprintf(w, "User%d@Example%d.NET\r\n", i, i%97)
		case 1:
			fmt.Fprintf(w, "user%d+shop@example%d.net\r\n", i, i%97)
		default:
			fmt.Fprintf(w, "user%d@example%d.net\r\n", i, i%97)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}
