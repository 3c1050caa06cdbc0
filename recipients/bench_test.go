package recipients

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/store"
)

// BenchmarkReloadRecount is the pause a SIGHUP reload costs the recipient state:
// recounting the tag populations over 1 M tracked addresses, half tagged.
//
//	go test -run '^$' -bench BenchmarkReloadRecount ./recipients
func BenchmarkReloadRecount(b *testing.B) {
	const n = 1_000_000
	key, err := addr.NewKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		b.Fatal(err)
	}
	p := New(Options{Warmup: time.Hour}, key.Fingerprint())
	var list strings.Builder
	for i := 0; i < n; i++ {
		a := "user" + strconv.Itoa(i) + "@example.net"
		id := key.Hash(a)
		p.tab.insert(&id, recOf(store.Record{FirstMail: 60, LastMail: 60}))
		if i%2 == 0 {
			list.WriteString(a + "\n")
		}
	}
	path := filepath.Join(b.TempDir(), "list")
	if err := os.WriteFile(path, []byte(list.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	l, _, err := attribution.Load(attribution.Config{Key: key, Tags: []attribution.Source{{Name: "t", File: path}}})
	if err != nil {
		b.Fatal(err)
	}
	p.matHr = 1 << 30 // all established
	for b.Loop() {
		p.SetLists(l)
	}
	if p.TagRisk()[0] != n/2 {
		b.Fatalf("recount %v", p.TagRisk())
	}
}

// BenchmarkMemoryPerAddress reports the heap held per tracked address.
func BenchmarkMemoryPerAddress(b *testing.B) {
	for _, c := range []struct {
		n       int
		domains int // 0: none (addresses stored before domains)
	}{{1_000_000, 0}, {10_000_000, 0}, {10_000_000, 500}} {
		n := c.n
		b.Run(fmt.Sprintf("%d/domains=%d", n, c.domains), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				p := New(Options{}, [8]byte{})
				for i := 0; i < n; i++ {
					var id addr.ID
					binary.LittleEndian.PutUint64(id[:], uint64(i+1)*0x9E3779B97F4A7C15)
					// Realistic times (2026), so the state packs as in use.
					fm := uint32(29_500_000 + i%500_000)
					s := p.tab.insert(&id, recOf(store.Record{FirstMail: fm, LastMail: fm + uint32(i%100_000)}))
					if c.domains > 0 {
						p.tab.setDom(s, uint16(1+i%c.domains))
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/address")
				if len(p.tab.big) != 0 {
					b.Fatalf("%d states did not pack", len(p.tab.big))
				}
				runtime.KeepAlive(p)
			}
		})
	}
}
