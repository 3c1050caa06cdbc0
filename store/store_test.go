package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type backend interface {
	Recipients(space [8]byte, fn func(id [16]byte, r Record) error) error
	Meta(name string) ([]byte, error)
	Commit(b *Batch, sync bool) error
	Close() error
}

var (
	_ backend = (*Pebble)(nil)
	_ backend = (*Memory)(nil)
)

func load(t *testing.T, s backend, space [8]byte) map[[16]byte]Record {
	t.Helper()
	got := map[[16]byte]Record{}
	if err := s.Recipients(space, func(id [16]byte, r Record) error { got[id] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func exercise(t *testing.T, s backend, reopen func() backend) {
	a, b := [8]byte{1}, [8]byte{2}
	batch := &Batch{Space: a}
	for i := 0; i < 100; i++ {
		batch.Recs = append(batch.Recs, Entry{ID: [16]byte{byte(i), 7}, Rec: Record{FirstMail: uint32(i), FirstSpam: 0, LastMail: uint32(i + 1)}})
	}
	batch.PutMeta("fp", []byte("abc"))
	if err := s.Commit(batch, true); err != nil {
		t.Fatal(err)
	}
	batch.Reset()
	batch.Space = b
	batch.Recs = append(batch.Recs, Entry{ID: [16]byte{9}, Rec: Record{FirstMail: 5}})
	if err := s.Commit(batch, false); err != nil {
		t.Fatal(err)
	}
	// A zero record deletes (a forgotten address), even one written in
	// the same batch.
	batch.Reset()
	batch.Space = a
	batch.Recs = append(batch.Recs, Entry{ID: [16]byte{200, 7}, Rec: Record{FirstMail: 1}}, Entry{ID: [16]byte{200, 7}}, Entry{ID: [16]byte{3, 7}})
	if err := s.Commit(batch, true); err != nil {
		t.Fatal(err)
	}
	if reopen != nil {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = reopen()
	}
	defer s.Close()
	got := load(t, s, a)
	if len(got) != 99 || got[[16]byte{42, 7}] != (Record{FirstMail: 42, LastMail: 43}) {
		t.Fatalf("space a: %d records (want 99), rec 42 = %+v", len(got), got[[16]byte{42, 7}])
	}
	if _, ok := got[[16]byte{3, 7}]; ok {
		t.Fatal("deleted record 3 still stored")
	}
	if _, ok := got[[16]byte{200, 7}]; ok {
		t.Fatal("record written and deleted in one batch still stored")
	}
	if got := load(t, s, b); len(got) != 1 {
		t.Fatalf("space b: %d records", len(got))
	}
	if got := load(t, s, [8]byte{3}); len(got) != 0 {
		t.Fatalf("empty space: %d records", len(got))
	}
	v, err := s.Meta("fp")
	if err != nil || string(v) != "abc" {
		t.Fatalf("meta fp = %q, %v", v, err)
	}
	if v, err := s.Meta("nope"); v != nil || err != nil {
		t.Fatalf("absent meta = %q, %v", v, err)
	}
}

func TestMemory(t *testing.T) { exercise(t, NewMemory(), nil) }

func TestPebbleReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	s, err := OpenPebble(path)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s, func() backend {
		s, err := OpenPebble(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPebbleRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	_, err := OpenPebble(dir)
	if err == nil || !strings.Contains(err.Error(), "not a spamsurge store") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Fatal("foreign directory touched")
	}
}

func TestPebbleRefusesCorruptStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	s, err := OpenPebble(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(&Batch{Recs: []Entry{{ID: [16]byte{1}, Rec: Record{FirstMail: 1}}}}, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Garble every MANIFEST: the store's table of contents.
	ents, _ := os.ReadDir(path)
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "MANIFEST") {
			os.WriteFile(filepath.Join(path, e.Name()), []byte(strings.Repeat("garbage!", 64)), 0o600)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no MANIFEST found")
	}
	before, _ := os.ReadDir(path)
	_, err = OpenPebble(path)
	if err == nil || !strings.Contains(err.Error(), "left untouched") {
		t.Fatalf("corrupt store opened: err = %v", err)
	}
	after, _ := os.ReadDir(path)
	if len(after) != len(before) {
		t.Fatalf("refusal changed the directory: %d -> %d entries", len(before), len(after))
	}
}

func TestDecodeRecordRejectsBadLength(t *testing.T) {
	if _, err := DecodeRecord([]byte{1, 2, 3}); err != ErrCorrupt {
		t.Fatalf("err = %v", err)
	}
	r := Record{FirstMail: 1, FirstSpam: 2, LastMail: 3}
	got, err := DecodeRecord(r.Encode(nil))
	if err != nil || got != r {
		t.Fatalf("round trip %+v, %v", got, err)
	}
}

// A record with a domain is two bytes longer; both lengths decode, and a
// record without one encodes as before.
func TestRecordWithDomain(t *testing.T) {
	for _, r := range []Record{{FirstMail: 1, FirstSpam: 2, LastMail: 3}, {FirstMail: 1, LastMail: 3, Domain: 513}} {
		b := r.Encode(nil)
		if want := RecordLen + map[bool]int{true: 2}[r.Domain != 0]; len(b) != want {
			t.Fatalf("%+v encodes to %d bytes, want %d", r, len(b), want)
		}
		got, err := DecodeRecord(b)
		if err != nil || got != r {
			t.Fatalf("%+v round trip: %+v, %v", r, got, err)
		}
	}
	if _, err := DecodeRecord(make([]byte, 13)); err == nil {
		t.Fatal("a 13-byte record decoded")
	}
}

// A store open elsewhere is "in use", not damaged.
func TestPebbleInUseIsNotCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	s, err := OpenPebble(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = OpenPebble(path)
	if !errors.Is(err, ErrLocked) || strings.Contains(err.Error(), "restore it from a backup") {
		t.Fatalf("second open: %v", err)
	}
}
