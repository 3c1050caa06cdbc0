// Command store compares the embedded engines for spamsurge's recipient
// state: N random 16-byte ids (under a 9-byte prefix, as the store lays them
// out) with 12-byte records, written in synced batches, then reports writes
// per second and bytes on disk per key. See bench/README-store.md.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble"
	bolt "go.etcd.io/bbolt"
)

func main() {
	n := flag.Int("n", 1_000_000, "keys to write")
	batch := flag.Int("batch", 1000, "keys per synced batch")
	dir := flag.String("dir", "", "scratch directory (default: a temp dir, removed after)")
	restartN := flag.Int("restart", 0, "instead: time a detector restart over this many stored recipients")
	domains := flag.Int("domains", 0, "with -restart: the recipients spread over this many domains (their per-domain at-risk counts are rebuilt at load)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "storebench")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *restartN > 0 {
		restart(*dir, *restartN, *domains)
		return
	}
	keys := make([][]byte, *n)
	for i := range keys {
		k := make([]byte, 25)
		k[0] = 'r'
		rand.Read(k[9:])
		keys[i] = k
	}
	val := make([]byte, 12)
	for _, e := range []struct {
		name string
		run  func(path string) (time.Duration, time.Duration)
	}{
		{"pebble", func(path string) (time.Duration, time.Duration) {
			db, err := pebble.Open(path, &pebble.Options{})
			must(err)
			start := time.Now()
			for i := 0; i < len(keys); i += *batch {
				b := db.NewBatch()
				for _, k := range keys[i:min(i+*batch, len(keys))] {
					must(b.Set(k, val, nil))
				}
				must(b.Commit(pebble.Sync))
			}
			w := time.Since(start)
			must(db.Close())
			start = time.Now()
			db, err = pebble.Open(path, &pebble.Options{})
			must(err)
			it, _ := db.NewIter(nil)
			c := 0
			for it.First(); it.Valid(); it.Next() {
				c++
			}
			it.Close()
			r := time.Since(start)
			must(db.Compact([]byte{0}, []byte{0xff}, true))
			must(db.Close())
			return w, r
		}},
		{"bbolt", func(path string) (time.Duration, time.Duration) {
			db, err := bolt.Open(path, 0o600, nil)
			must(err)
			start := time.Now()
			for i := 0; i < len(keys); i += *batch {
				must(db.Update(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("r"))
					if err != nil {
						return err
					}
					for _, k := range keys[i:min(i+*batch, len(keys))] {
						if err := bk.Put(k, val); err != nil {
							return err
						}
					}
					return nil
				}))
			}
			w := time.Since(start)
			must(db.Close())
			start = time.Now()
			db, err = bolt.Open(path, 0o600, nil)
			must(err)
			must(db.View(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("r")).ForEach(func(k, v []byte) error { return nil })
			}))
			r := time.Since(start)
			must(db.Close())
			return w, r
		}},
	} {
		path := filepath.Join(*dir, e.name)
		w, r := e.run(path)
		size := du(path)
		fmt.Printf("%-7s %d keys, batches of %d, synced: %8.0f writes/s  (%.1fs); reopen+scan %.2fs; %.1f B/key on disk\n",
			e.name, *n, *batch, float64(*n)/w.Seconds(), w.Seconds(), r.Seconds(), float64(size)/float64(*n))
	}
}

func du(path string) int64 {
	var total int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
