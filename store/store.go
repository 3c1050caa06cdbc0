// Package store keeps spamsurge's durable state: one small record per
// recipient (keyed by the address's keyed hash, never the address), plus a
// few named blobs (key fingerprint, learned baseline, incidents).
//
// Pebble is the embedded default (see bench/README-store.md for the
// measurement against bbolt). Memory is for tests.
//
// Durability: Commit with sync=true returns after the write-ahead log is
// fsynced. The detector syncs only state transitions (first mail, first
// spam, a new day of last mail) and flushes them in batches; what a kill -9
// can lose is the batch not yet committed (see detector.Options.FlushEvery).
// A store is never reset or repaired here: a store that cannot be read is
// refused with an error that says so.
package store

import (
	"encoding/binary"
	"errors"
)

// Record is what is kept per recipient. Times are minutes since the Unix
// epoch (uint32 lasts until the year 10136); zero means "never".
type Record struct {
	FirstMail uint32
	FirstSpam uint32
	LastMail  uint32
	// Domain is the recipient's domain as an index into the domain list
	// the recipient state keeps (a meta blob); 0 is unknown (records
	// written before domains were kept).
	Domain uint16
}

// RecordLen is the encoded size of a Record without a domain; with one
// it is RecordLen+2.
const RecordLen = 12

// Encode appends the encoding of r: 12 bytes, or 14 with a domain.
func (r Record) Encode(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.FirstMail)
	b = binary.LittleEndian.AppendUint32(b, r.FirstSpam)
	b = binary.LittleEndian.AppendUint32(b, r.LastMail)
	if r.Domain != 0 {
		b = binary.LittleEndian.AppendUint16(b, r.Domain)
	}
	return b
}

// DecodeRecord reads a Record of either length.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) != RecordLen && len(b) != RecordLen+2 {
		return Record{}, ErrCorrupt
	}
	r := Record{
		FirstMail: binary.LittleEndian.Uint32(b),
		FirstSpam: binary.LittleEndian.Uint32(b[4:]),
		LastMail:  binary.LittleEndian.Uint32(b[8:]),
	}
	if len(b) == RecordLen+2 {
		r.Domain = binary.LittleEndian.Uint16(b[12:])
	}
	return r, nil
}

// ErrCorrupt marks data the store cannot make sense of.
var ErrCorrupt = errors.New("store: corrupt data")

// ErrLocked is a store another process has open.
var ErrLocked = errors.New("store in use")

// Batch collects writes for one Commit. Recipients are namespaced by the key
// fingerprint, so records written under another key are neither loaded nor
// overwritten (they come back if that key is restored).
type Batch struct {
	Space [8]byte
	Recs  []Entry
	Meta  map[string][]byte
}

// Entry is one recipient write. A zero Rec deletes the recipient (every
// stored record has a first mail): a forgotten address.
type Entry struct {
	ID  [16]byte
	Rec Record
}

// Reset empties b for reuse.
func (b *Batch) Reset() {
	b.Recs = b.Recs[:0]
	clear(b.Meta)
}

// PutMeta adds a named blob.
func (b *Batch) PutMeta(name string, v []byte) {
	if b.Meta == nil {
		b.Meta = map[string][]byte{}
	}
	b.Meta[name] = v
}
