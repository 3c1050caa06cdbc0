package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// A fleet's snapshot is one instance's detector state (package fleet:
// the statistics' blobs, never a recipient) as of a journal entry, in a
// hash beside the journal: an instance that starts with no state, or with
// state older than the snapshot, or whose position the journal has
// trimmed, loads it and reads the journal on from its position; replay
// writes one to start a fleet warm; resolve reads incidents from it.

// Snapshot is a detector state as of the journal entry Position.
type Snapshot struct {
	Position string
	// Written is when the instance wrote it (wall clock).
	Written time.Time
	Blobs   map[string][]byte
}

// SnapshotKey is the snapshot's hash key.
func (s *Store) SnapshotKey() string { return s.JournalKey() + ":snap" }

// snapshotScript writes the snapshot unless the stored one is at the same
// journal position or later: instances write theirs at about the same
// moments, and an older one must never replace a newer.
const snapshotScript = `
local function id(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  if not ms then return -1, -1 end
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('HGET', KEYS[1], 'pos')
if cur then
  local am, as = id(ARGV[2])
  local bm, bs = id(cur)
  if am < bm or (am == bm and as <= bs) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`

// PutSnapshot stores snap unless the stored snapshot is as recent or
// more (false). Blob names must not be empty.
func (s *Store) PutSnapshot(ctx context.Context, snap Snapshot) (bool, error) {
	args := []string{"pos", snap.Position, "at", strconv.FormatInt(snap.Written.UnixMilli(), 10)}
	for name, b := range snap.Blobs {
		if name == "" {
			return false, errors.New("redisstore: snapshot blob without a name")
		}
		args = append(args, "m:"+name, string(b))
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	n, err := s.d.(streams).eval(ctx, snapshotScript, s.SnapshotKey(), args)
	if err != nil {
		return false, fmt.Errorf("redisstore: snapshot: %w", err)
	}
	return n == 1, nil
}

// GetSnapshot reads the stored snapshot (nil: none).
func (s *Store) GetSnapshot(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	m, err := s.d.(streams).hgetall(ctx, s.SnapshotKey())
	if err != nil {
		return nil, fmt.Errorf("redisstore: snapshot: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	snap := &Snapshot{Position: m["pos"], Blobs: map[string][]byte{}}
	if snap.Position == "" {
		return nil, fmt.Errorf("redisstore: snapshot %s has no position", s.SnapshotKey())
	}
	if ms, err := strconv.ParseInt(m["at"], 10, 64); err == nil {
		snap.Written = time.UnixMilli(ms).UTC()
	}
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, "m:"); ok {
			snap.Blobs[name] = []byte(v)
		}
	}
	return snap, nil
}

// Last returns the journal's newest entry (false: the journal is empty).
func (s *Store) Last(ctx context.Context) (Entry, bool, error) { return s.edge(ctx, false) }

// First returns the journal's oldest entry, the first one trimming has
// left (false: the journal is empty).
func (s *Store) First(ctx context.Context) (Entry, bool, error) { return s.edge(ctx, true) }

func (s *Store) edge(ctx context.Context, first bool) (Entry, bool, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	e, ok, err := s.d.(streams).xedge(ctx, s.JournalKey(), first)
	if err != nil {
		return Entry{}, false, fmt.Errorf("redisstore: journal: %w", err)
	}
	return e, ok, nil
}

// AppendOne adds one entry to the journal and returns its id.
func (s *Store) AppendOne(ctx context.Context, entry []byte, maxLen int64) (string, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	ids, err := s.d.(streams).xadd(ctx, s.JournalKey(), maxLen, [][]byte{entry})
	if err != nil {
		return "", fmt.Errorf("redisstore: journal: %w", err)
	}
	return ids[0], nil
}

// CompareIDs orders two journal (stream) ids: -1, 0 or 1. "0" and other
// ids without a sequence number are the start, before every entry.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am < bm || am == bm && as < bs:
		return -1
	case am == bm && as == bs:
		return 0
	}
	return 1
}

func splitID(s string) (uint64, uint64) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return a, b
}

// IDTime is the wall-clock time Redis gave a journal id.
func IDTime(id string) time.Time {
	ms, _ := splitID(id)
	return time.UnixMilli(int64(ms)).UTC()
}

// --- rueidis ---

func (d *rueidisDriver) eval(ctx context.Context, src, key string, args []string) (int64, error) {
	return d.c.Do(ctx, d.c.B().Eval().Script(src).Numkeys(1).Key(key).Arg(args...).Build()).AsInt64()
}

func (d *rueidisDriver) hgetall(ctx context.Context, key string) (map[string]string, error) {
	return d.c.Do(ctx, d.c.B().Hgetall().Key(key).Build()).AsStrMap()
}

func (d *rueidisDriver) xedge(ctx context.Context, key string, first bool) (Entry, bool, error) {
	var c rueidis.Completed
	if first {
		c = d.c.B().Xrange().Key(key).Start("-").End("+").Count(1).Build()
	} else {
		c = d.c.B().Xrevrange().Key(key).End("+").Start("-").Count(1).Build()
	}
	es, err := d.c.Do(ctx, c).AsXRange()
	if err != nil || len(es) == 0 {
		return Entry{}, false, err
	}
	return Entry{ID: es[0].ID, Data: []byte(es[0].FieldValues["e"])}, true, nil
}

// --- go-redis ---

func (d *goredisDriver) eval(ctx context.Context, src, key string, args []string) (int64, error) {
	a := make([]any, len(args))
	for i, v := range args {
		a[i] = v
	}
	return d.c.Eval(ctx, src, []string{key}, a...).Int64()
}

func (d *goredisDriver) hgetall(ctx context.Context, key string) (map[string]string, error) {
	return d.c.HGetAll(ctx, key).Result()
}

func (d *goredisDriver) xedge(ctx context.Context, key string, first bool) (Entry, bool, error) {
	var ms []redis.XMessage
	var err error
	if first {
		ms, err = d.c.XRangeN(ctx, key, "-", "+", 1).Result()
	} else {
		ms, err = d.c.XRevRangeN(ctx, key, "+", "-", 1).Result()
	}
	if err != nil || len(ms) == 0 {
		return Entry{}, false, err
	}
	v, _ := ms[0].Values["e"].(string)
	return Entry{ID: ms[0].ID, Data: []byte(v)}, true, nil
}
