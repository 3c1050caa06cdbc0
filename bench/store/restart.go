package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/store"
)

// restart fills a store with n recipients under one key and times how long
// the detector takes to load it (a daemon restart), with the heap it holds.
func restart(dir string, n, domains int) {
	path := filepath.Join(dir, "restart")
	k := make([]byte, 32)
	rand.Read(k)
	key, _ := addr.NewKey(k)
	st, err := store.OpenPebble(path)
	must(err)
	b := &store.Batch{Space: key.Fingerprint()}
	b.PutMeta("key_fingerprint", b.Space[:])
	b.PutMeta("detector_state", []byte(fmt.Sprintf(`{"clock":%q,"tracked":%d}`, time.Now().UTC().Format(time.RFC3339), n)))
	now := uint32(time.Now().Unix() / 60)
	if domains > 0 {
		names := []string{""}
		for i := 1; i <= domains; i++ {
			names = append(names, fmt.Sprintf("d%d.example", i))
		}
		raw, _ := json.Marshal(names)
		b.PutMeta(recipients.DomainsMeta(b.Space), raw)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		var id [16]byte
		rand.Read(id[:])
		r := store.Record{FirstMail: now - 100000 + uint32(i%90000), LastMail: now - uint32(i%1000)}
		if domains > 0 {
			r.Domain = uint16(1 + i%domains)
		}
		if i%3 == 0 {
			r.FirstSpam = r.FirstMail + 10
		}
		b.Recs = append(b.Recs, store.Entry{ID: id, Rec: r})
		if len(b.Recs) == 100000 {
			must(st.Commit(b, false))
			b.Reset()
		}
	}
	must(st.Commit(b, true))
	must(st.Close())
	fmt.Printf("restart: wrote %d recipients in %.1fs; %.1f B/recipient on disk\n", n, time.Since(start).Seconds(), float64(du(path))/float64(n))
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f, _ := os.Create(filepath.Join(dir, "cpu.out"))
	pprof.StartCPUProfile(f)
	defer pprof.StopCPUProfile()
	start = time.Now()
	st, err = store.OpenPebble(path)
	must(err)
	d, err := detector.New(detector.Options{Key: key, Store: st})
	must(err)
	el := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	fmt.Printf("restart: open + load of %d recipients (%d at risk) took %.2fs; heap %.1f B/recipient\n", d.Tracked(), d.AtRisk(), el.Seconds(), float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n))
	must(d.Close())
	must(st.Close())
}
