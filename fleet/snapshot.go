package fleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
	"github.com/spamsurge/spamsurge/store"
)

// Snapshots. The journal is trimmed (Options.JournalMax), so it cannot
// bring an instance from nothing to the fleet's state by itself: every
// instance also writes its detector's state, as of a journal position,
// to Redis every Options.SnapshotEvery and at shutdown (the newest
// wins; every instance's is the same, the detector being deterministic).
// An instance whose own state is older than that snapshot (a new one, one
// started again after the journal moved past it, or any after a replay
// into Redis) loads the snapshot before its detector opens and reads the
// journal on from there (Bootstrap).

// snapshotter is what writing a snapshot needs of the node.
type snapshotter struct {
	inflight atomic.Bool    // one write at a time
	writes   sync.WaitGroup // the write in the background, if any
	last     time.Time
	lastPos  string
}

// takeSnapshot reads the detector's committed state as of the node's
// position (call it after a checkpoint, from the reader).
func (n *Node) takeSnapshot() (redisstore.Snapshot, error) {
	snap := redisstore.Snapshot{Position: n.after, Written: time.Now(), Blobs: map[string][]byte{}}
	for _, name := range n.o.Detector.StateNames() {
		b, err := n.o.Detector.Meta(name)
		if err != nil {
			return snap, err
		}
		snap.Blobs[name] = b // nil (absent) too: it clears an older one's
	}
	return snap, nil
}

// maybeSnapshot writes a snapshot when one is due, in the background.
func (n *Node) maybeSnapshot() {
	if n.o.SnapshotEvery < 0 || n.after == "0" || n.after == n.snap.lastPos || time.Since(n.snap.last) < n.o.SnapshotEvery {
		return
	}
	if !n.snap.inflight.CompareAndSwap(false, true) {
		return
	}
	snap, err := n.takeSnapshot()
	if err != nil {
		n.snap.inflight.Store(false)
		n.log.Error("snapshot", zap.Error(err))
		return
	}
	n.snap.last, n.snap.lastPos = time.Now(), n.after
	n.snap.writes.Add(1)
	go func() {
		defer n.snap.writes.Done()
		defer n.snap.inflight.Store(false)
		n.writeSnapshot(context.Background(), snap)
	}()
}

func (n *Node) writeSnapshot(ctx context.Context, snap redisstore.Snapshot) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.o.Store.PutSnapshot(ctx, snap); err != nil {
		n.log.Warn("snapshot not written", zap.Error(err))
		return
	}
	n.m.snapshots.Inc()
}

// Bootstrap prepares an instance's embedded store st (before its
// detector opens on it) from the fleet's snapshot in Redis when the
// snapshot is newer than st's own journal position: the snapshot's
// blobs and position replace st's (its own other blobs, a log tailer's
// position, stay). It says what it did, for the log.
func Bootstrap(ctx context.Context, rs *redisstore.Store, st detector.Store, log *zap.Logger) (string, error) {
	if log == nil {
		log = zap.NewNop()
	}
	pos, err := st.Meta(PositionMeta)
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	own := string(pos)
	if own == "" {
		own = "0"
	}
	snap, err := rs.GetSnapshot(ctx)
	if err != nil {
		return "", err
	}
	first, ok, err := rs.First(ctx)
	if err != nil {
		return "", err
	}
	if snap != nil && redisstore.CompareIDs(snap.Position, own) > 0 {
		b := &store.Batch{}
		for name, v := range snap.Blobs {
			b.PutMeta(name, v)
		}
		b.PutMeta(PositionMeta, []byte(snap.Position))
		if err := st.Commit(b, true); err != nil {
			return "", fmt.Errorf("fleet: loading the snapshot: %w", err)
		}
		if ok && redisstore.CompareIDs(snap.Position, first.ID) < 0 {
			log.Warn("the fleet's snapshot is older than the journal's first entry: the entries between are lost to this instance",
				zap.String("snapshot", snap.Position), zap.String("journal_first", first.ID))
		}
		return fmt.Sprintf("loaded the fleet's snapshot at journal entry %s (written %s)", snap.Position, snap.Written.Format(time.RFC3339)), nil
	}
	if ok && own != "0" && redisstore.CompareIDs(own, first.ID) < 0 {
		log.Warn("the journal was trimmed past this instance's position and no newer snapshot exists: its state misses the entries between",
			zap.String("position", own), zap.String("journal_first", first.ID))
	}
	if own == "0" {
		return "no snapshot: reading the journal from its start", nil
	}
	return "going on from journal entry " + own, nil
}

// CatchUp feeds the journal after the node's position to its end to the
// detector and checkpoints it (replay into Redis starts from the
// fleet's latest state so).
func (n *Node) CatchUp(ctx context.Context) (int, error) {
	fed := 0
	for {
		es, err := n.o.Store.Read(ctx, n.after, 512, 0)
		if err != nil {
			return fed, err
		}
		if len(es) == 0 {
			return fed, n.checkpoint()
		}
		for _, je := range es {
			n.feed(je)
		}
		fed += len(es)
	}
}
