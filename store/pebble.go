package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble"
)

// Key layout: "f" format marker; "m"+name meta blobs; "r"+space(8)+id(16)
// recipient records.
var formatKey, formatV1 = []byte("f"), []byte("spamsurge-store-v1")

// Pebble is the embedded store.
type Pebble struct {
	db   *pebble.DB
	path string
}

// OpenPebble opens or creates the store at path. An existing directory that
// is not a readable spamsurge store is refused, never reset.
func OpenPebble(path string) (*Pebble, error) {
	fresh := false
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fresh = true
	}
	opts := &pebble.Options{Logger: quietLogger{}}
	if !fresh {
		// Refuse a directory that is not a Pebble store instead of
		// creating one inside it (a mistyped store.path).
		if _, err := os.Stat(path + "/CURRENT"); err != nil {
			ents, _ := os.ReadDir(path)
			if len(ents) > 0 {
				return nil, fmt.Errorf("store: %s exists but is not a spamsurge store (no CURRENT file); refusing to use it", path)
			}
		}
	}
	db, err := pebble.Open(path, opts)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || strings.Contains(err.Error(), "lock held by current process") {
			// Not damage: another process (a running serve) has it.
			return nil, fmt.Errorf("store: %s is in use by another process (a running spamsurge serve?): stop it first, or use replay --dry-run: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: %s cannot be opened (%w); it is left untouched: restore it from a backup or move it aside to start afresh", path, err)
	}
	p := &Pebble{db: db, path: path}
	v, closer, err := db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if !p.empty() {
			db.Close()
			return nil, fmt.Errorf("store: %s holds data but no spamsurge format marker; refusing to use it", path)
		}
		if err := db.Set(formatKey, formatV1, pebble.Sync); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: %s: %w", path, err)
		}
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("store: %s is unreadable (%w); it is left untouched: restore it from a backup or move it aside", path, err)
	default:
		ok := bytes.Equal(v, formatV1)
		closer.Close()
		if !ok {
			db.Close()
			return nil, fmt.Errorf("store: %s has an unknown format %q; refusing to use it", path, v)
		}
	}
	return p, nil
}

func (p *Pebble) empty() bool {
	it, err := p.db.NewIter(nil)
	if err != nil {
		return false
	}
	defer it.Close()
	return !it.First()
}

func recKey(dst []byte, space [8]byte, id [16]byte) []byte {
	dst = append(dst, 'r')
	dst = append(dst, space[:]...)
	return append(dst, id[:]...)
}

// Recipients calls fn for every record in space, in key order.
func (p *Pebble) Recipients(space [8]byte, fn func(id [16]byte, r Record) error) error {
	lo := append([]byte{'r'}, space[:]...)
	hi := append([]byte{'r'}, space[:]...)
	hi = append(hi, bytes.Repeat([]byte{0xff}, 17)...)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 1+8+16 {
			it.Close()
			return fmt.Errorf("store: %s: recipient key of %d bytes: %w", p.path, len(k), ErrCorrupt)
		}
		r, err := DecodeRecord(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("store: %s: recipient record: %w", p.path, err)
		}
		var id [16]byte
		copy(id[:], k[9:])
		if err := fn(id, r); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("store: %s: %w", p.path, err)
	}
	return it.Close()
}

// Meta returns a named blob, nil if absent.
func (p *Pebble) Meta(name string) ([]byte, error) {
	v, closer, err := p.db.Get(append([]byte{'m'}, name...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", p.path, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// Commit writes b atomically; with sync it returns after the WAL is on disk.
func (p *Pebble) Commit(b *Batch, sync bool) error {
	pb := p.db.NewBatch()
	defer pb.Close()
	var k, v []byte
	for _, e := range b.Recs {
		k = recKey(k[:0], b.Space, e.ID)
		if e.Rec == (Record{}) {
			if err := pb.Delete(k, nil); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			continue
		}
		v = e.Rec.Encode(v[:0])
		if err := pb.Set(k, v, nil); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	for name, val := range b.Meta {
		if err := pb.Set(append([]byte{'m'}, name...), val, nil); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := pb.Commit(wo); err != nil {
		return fmt.Errorf("store: %s: %w", p.path, err)
	}
	return nil
}

// Close flushes and closes the store.
func (p *Pebble) Close() error {
	if err := p.db.Flush(); err != nil {
		p.db.Close()
		return fmt.Errorf("store: %w", err)
	}
	return p.db.Close()
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
