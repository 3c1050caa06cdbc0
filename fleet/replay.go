package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
)

// Replay into Redis (a fleet's warm start): recorded history is applied
// to the fleet's recipients in Redis, message by message, and the
// outcomes go, in the history's order, to the replaying node's own
// detector, as journal entries would. Nothing of it goes into the
// journal, which would make every instance read a month at start:
// instead the replay ends with a marker in the journal and its
// detector's state as the fleet's snapshot at that marker, which every
// instance then loads at its next start (its own state is older).
//
// The fleet's instances must be stopped: their own mail would interleave
// with the history in Redis, and their state would not have the
// history's.

// ErrFleetRunning is StartReplay's error for a journal written to
// recently: an instance of the fleet is running.
var ErrFleetRunning = errors.New("fleet: an instance of the fleet is running")

// Replayer is a replay into Redis (Node.StartReplay).
type Replayer struct {
	n      *Node
	window int
	q      []*pending
	last   string // the journal's last entry when the replay started
	clock  time.Time
}

type pending struct {
	m     *msg
	done  chan struct{}
	outs  []recipients.Outcome
	hours []int64
	err   error
}

// markReplay marks the end of a replay (entry.Mark).
const markReplay = "replay"

// quiet is how long the journal must have been unwritten for the fleet
// to count as stopped (a running instance ticks every second).
const quiet = 30 * time.Second

// StartReplay checks that the fleet is stopped, brings the node's
// detector to the fleet's latest state (the journal after the snapshot
// it was bootstrapped from), and returns the replayer. window is how
// many messages are in flight to Redis at once (default 64).
func (n *Node) StartReplay(ctx context.Context, window int) (*Replayer, error) {
	if window <= 0 {
		window = 64
	}
	last, ok, err := n.o.Store.Last(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		e, _ := decodeEntry(last.Data)
		if age := time.Since(redisstore.IDTime(last.ID)); age < quiet && (e == nil || e.Mark != markReplay) {
			return nil, fmt.Errorf("%w: its journal was written %s ago; stop every instance before replaying into their Redis", ErrFleetRunning, age.Round(time.Second))
		}
	}
	snap, err := n.o.Store.GetSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	if snap != nil && redisstore.CompareIDs(snap.Position, n.after) > 0 {
		// The detector would start from less than the fleet's state.
		return nil, fmt.Errorf("fleet: the detector's state is older than the fleet's snapshot (%s): open it with Bootstrap", snap.Position)
	}
	if _, err := n.CatchUp(ctx); err != nil {
		return nil, err
	}
	r := &Replayer{n: n, window: window, last: n.after}
	return r, nil
}

// Observe applies one recorded message and returns the incident events
// of the messages whose outcomes came back (the oldest first).
func (r *Replayer) Observe(ob ingest.Observation) ([]detector.Event, error) {
	m := r.n.prepare(ob)
	if m == nil {
		return nil, nil
	}
	p := &pending{m: m, done: make(chan struct{})}
	go r.apply(p)
	r.q = append(r.q, p)
	var evs []detector.Event
	for len(r.q) >= r.window {
		e, err := r.next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, e...)
	}
	return evs, nil
}

// apply applies p, retrying a store that fails for a few seconds.
func (r *Replayer) apply(p *pending) {
	defer close(p.done)
	for try := 1; ; try++ {
		p.outs, p.hours, p.err = r.n.o.Store.ApplyHours(context.Background(), p.m.obs.Time, p.m.rc, p.m.obs.Spam, p.outs[:0], p.hours[:0])
		if p.err == nil || try == 5 {
			return
		}
		time.Sleep(time.Duration(try) * 500 * time.Millisecond)
	}
}

// next feeds the oldest message in flight to the detector.
func (r *Replayer) next() ([]detector.Event, error) {
	p := r.q[0]
	<-p.done
	r.q[0] = nil
	r.q = r.q[1:]
	if p.err != nil {
		r.n.o.Detector.CountError()
		return nil, fmt.Errorf("fleet: replay into Redis: %w", p.err)
	}
	e := newEntry(&p.m.obs, p.m.rc, p.outs, p.hours, p.m.rejected, p.m.rejCanaries)
	a, err := e.applied()
	if err != nil {
		return nil, err
	}
	if p.m.obs.Time.After(r.clock) {
		r.clock = p.m.obs.Time
	}
	return r.n.o.Detector.ObserveApplied(a), nil
}

// Finish waits for the messages in flight, then puts the marker into
// the journal and the detector's state into Redis as the fleet's
// snapshot at it. It fails, and writes no snapshot, if the journal grew
// meanwhile (an instance started).
func (r *Replayer) Finish(ctx context.Context) ([]detector.Event, error) {
	var evs []detector.Event
	for len(r.q) > 0 {
		e, err := r.next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, e...)
	}
	last, ok, err := r.n.o.Store.Last(ctx)
	if err != nil {
		return evs, err
	}
	if ok && redisstore.CompareIDs(last.ID, r.last) > 0 {
		return evs, fmt.Errorf("%w: the journal grew during the replay (to %s); the history is in Redis's recipients but not in the fleet's statistics: stop every instance and replay again", ErrFleetRunning, last.ID)
	}
	// The marker is a tick at the history's end: an instance that
	// reads it rather than load the snapshot sees a clock in its past,
	// which changes nothing.
	at := r.clock.UTC()
	if at.IsZero() {
		at = time.Unix(0, 0).UTC()
	}
	b, _ := json.Marshal(&entry{Tick: &at, Mark: markReplay})
	id, err := r.n.o.Store.AppendOne(ctx, b, r.n.o.JournalMax)
	if err != nil {
		return evs, err
	}
	r.n.after = id
	r.n.o.Detector.StageMeta(PositionMeta, []byte(id))
	if err := r.n.checkpoint(); err != nil {
		return evs, err
	}
	snap, err := r.n.takeSnapshot()
	if err != nil {
		return evs, err
	}
	wrote, err := r.n.o.Store.PutSnapshot(ctx, snap)
	if err != nil {
		return evs, err
	}
	if !wrote {
		return evs, fmt.Errorf("%w: a newer snapshot than the replay's is in Redis", ErrFleetRunning)
	}
	return evs, nil
}
