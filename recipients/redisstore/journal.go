package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// The fleet's journal is a Redis stream, ss{S:j}, of the messages the
// instances applied (what package fleet writes: outcomes, never an
// address) and of their clock ticks. Every instance appends to it and
// reads all of it, in the one order Redis gives it, and feeds it to its
// own detector: the same input in the same order, so the same incidents.

// Entry is one journal entry: its stream id and data.
type Entry struct {
	ID   string
	Data []byte
}

// streams is what a driver does for the journal and the fleet's key check.
type streams interface {
	xadd(ctx context.Context, key string, maxLen int64, vals [][]byte) ([]string, error)
	xread(ctx context.Context, key, after string, count int64, block time.Duration) ([]Entry, error)
	// setNXGet sets key to v unless it exists, and returns the value it
	// had (nil: none, and set now).
	setNXGet(ctx context.Context, key, v string) ([]byte, error)
	// For the snapshot (snapshot.go).
	eval(ctx context.Context, src, key string, args []string) (int64, error)
	hgetall(ctx context.Context, key string) (map[string]string, error)
	xedge(ctx context.Context, key string, first bool) (Entry, bool, error)
}

// JournalKey is the journal's stream key.
func (s *Store) JournalKey() string { return "ss{" + hex.EncodeToString(s.o.Space[:]) + ":j}" }

// Append adds entries to the journal in one round trip, trimming it to
// about maxLen entries (0: never trimmed).
func (s *Store) Append(ctx context.Context, entries [][]byte, maxLen int64) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	if _, err := s.d.(streams).xadd(ctx, s.JournalKey(), maxLen, entries); err != nil {
		return fmt.Errorf("redisstore: journal: %w", err)
	}
	return nil
}

// Read returns up to count journal entries after id after ("0": from the
// start), waiting up to block for one when there is none (0: no wait).
// The context bounds the call; a block longer than Options.Timeout gets
// that much more time.
func (s *Store) Read(ctx context.Context, after string, count int64, block time.Duration) ([]Entry, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Timeout+block)
		defer cancel()
	}
	es, err := s.d.(streams).xread(ctx, s.JournalKey(), after, count, block)
	if err != nil {
		return nil, fmt.Errorf("redisstore: journal: %w", err)
	}
	return es, nil
}

// ErrOtherKey is Claim's error for a Redis that holds another key's fleet.
var ErrOtherKey = errors.New("redisstore: this Redis holds the state of another address key")

// Claim records this store's key fingerprint as the fleet's, or checks it
// against the one recorded: an instance with another key would count the
// same addresses under other hashes, splitting the population in two.
// (The marker holds the fingerprint only, which reveals nothing.)
func (s *Store) Claim(ctx context.Context) error {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	fp := hex.EncodeToString(s.o.Space[:])
	old, err := s.d.(streams).setNXGet(ctx, FleetKey, fp)
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if old != nil && string(old) != fp {
		return fmt.Errorf("%w: its fleet's key fingerprint is %s, this instance's %s (every instance must use the same store.key_file; to start a new fleet on this Redis, delete the key %q)", ErrOtherKey, old, fp, FleetKey)
	}
	return nil
}

// FleetKey holds the fingerprint of the fleet's address key.
const FleetKey = "spamsurge:fleet:key"

// --- rueidis ---

func (d *rueidisDriver) xadd(ctx context.Context, key string, maxLen int64, vals [][]byte) ([]string, error) {
	cmds := make(rueidis.Commands, len(vals))
	for i, v := range vals {
		var c rueidis.Completed
		if maxLen > 0 {
			c = d.c.B().Arbitrary("XADD").Keys(key).Args("MAXLEN", "~", strconv.FormatInt(maxLen, 10), "*", "e", string(v)).Build()
		} else {
			c = d.c.B().Arbitrary("XADD").Keys(key).Args("*", "e", string(v)).Build()
		}
		cmds[i] = c
	}
	var errs []error
	ids := make([]string, len(vals))
	for i, r := range d.c.DoMulti(ctx, cmds...) {
		ids[i], _ = r.ToString()
		errs = append(errs, r.Error())
	}
	return ids, errors.Join(errs...)
}

func (d *rueidisDriver) xread(ctx context.Context, key, after string, count int64, block time.Duration) ([]Entry, error) {
	tok := []string{"XREAD", "COUNT", strconv.FormatInt(count, 10)}
	var c rueidis.Completed
	if block > 0 {
		tok = append(tok, "BLOCK", strconv.FormatInt(block.Milliseconds(), 10), "STREAMS")
		c = d.c.B().Arbitrary(tok...).Keys(key).Args(after).Blocking()
	} else {
		tok = append(tok, "STREAMS")
		c = d.c.B().Arbitrary(tok...).Keys(key).Args(after).Build()
	}
	m, err := d.c.Do(ctx, c).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	es := m[key]
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{ID: e.ID, Data: []byte(e.FieldValues["e"])}
	}
	return out, nil
}

func (d *rueidisDriver) setNXGet(ctx context.Context, key, v string) ([]byte, error) {
	r := d.c.Do(ctx, d.c.B().Arbitrary("SET").Keys(key).Args(v, "NX", "GET").Build())
	b, err := r.AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	return b, err
}

// --- go-redis ---

func (d *goredisDriver) xadd(ctx context.Context, key string, maxLen int64, vals [][]byte) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(vals))
	_, _ = d.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, v := range vals {
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: maxLen, Approx: maxLen > 0, Values: []string{"e", string(v)}})
		}
		return nil
	})
	var errs []error
	ids := make([]string, len(vals))
	for i, c := range cmds {
		ids[i] = c.Val()
		errs = append(errs, c.Err())
	}
	return ids, errors.Join(errs...)
}

func (d *goredisDriver) xread(ctx context.Context, key, after string, count int64, block time.Duration) ([]Entry, error) {
	if block <= 0 {
		block = -1 // no BLOCK argument
	}
	ss, err := d.c.XRead(ctx, &redis.XReadArgs{Streams: []string{key, after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, st := range ss {
		for _, m := range st.Messages {
			v, _ := m.Values["e"].(string)
			out = append(out, Entry{ID: m.ID, Data: []byte(v)})
		}
	}
	return out, nil
}

func (d *goredisDriver) setNXGet(ctx context.Context, key, v string) ([]byte, error) {
	b, err := d.c.SetArgs(ctx, key, v, redis.SetArgs{Mode: "NX", Get: true}).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}
