package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
)

// Options configure a Node.
type Options struct {
	// Store is the fleet's Redis; Detector this instance's, in shared
	// mode (detector.Options.Shared), committing to its own embedded
	// store (the journal position goes with its state).
	Store    *redisstore.Store
	Detector *detector.Detector
	// Lists gives the current source lists (canaries are checked here,
	// before the store); nil: none.
	Lists func() *attribution.Lists
	// OnEvents sees the incident events of every journal entry (the
	// daemon logs them and updates the alerts). Called from Run's reader.
	OnEvents func([]detector.Event)
	// NotAfter, when set, refuses observations dated later (the wall
	// clock plus detector.max_clock_skew): they never reach the journal.
	NotAfter func() time.Time

	// Workers is how many messages may be in flight to Redis at once
	// (default 16): the store batches those into few round trips.
	Workers int
	// Buffer is how many observations are held while Redis is away
	// (default 100,000); beyond it they are lost (counted).
	Buffer int
	// JournalMax trims the journal to about that many entries (default
	// 2,000,000, about 400 MB of Redis memory at 200 bytes an entry).
	JournalMax int64
	// Tick is how often this instance puts its clock into the journal
	// (default 1 s), Lag how far behind the wall clock (default 2 s).
	Tick, Lag time.Duration
	// Checkpoint is how often the detector's state and the journal
	// position are committed (default 1 s).
	Checkpoint time.Duration
	// SnapshotEvery is how often the detector's state is written to
	// Redis for instances that start behind (default 5 minutes;
	// negative: only at shutdown). The journal must hold more entries
	// than the fleet writes in that time.
	SnapshotEvery time.Duration

	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Buffer <= 0 {
		o.Buffer = 100_000
	}
	if o.JournalMax == 0 {
		o.JournalMax = 2_000_000
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Lag <= 0 {
		o.Lag = 2 * time.Second
	}
	if o.Checkpoint <= 0 {
		o.Checkpoint = time.Second
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// PositionMeta names the detector meta blob holding the id of the last
// journal entry its state includes.
const PositionMeta = "fleet:journal"

// msg is an observation hashed and ready for the store.
type msg struct {
	obs         ingest.Observation // Rcpt and Rejected dropped
	rc          []recipients.Rcpt
	rejected    int
	rejCanaries []recipients.Outcome
}

// Node is one instance of a fleet: it applies this instance's messages
// to the shared store and journals the outcomes, and feeds the whole
// fleet's journal to its detector.
type Node struct {
	o   Options
	log *zap.Logger
	m   metrics

	work    chan *msg
	entries chan []byte
	workers sync.WaitGroup

	// Held while the store is away, oldest first; while any are held,
	// new messages queue behind them (the journal keeps each instance's
	// order).
	mu      sync.Mutex
	held    []*msg
	holding atomic.Bool

	upMu    sync.Mutex
	downErr error // nil: up

	after      string             // the reader's position
	storeLists *attribution.Lists // the lists the store has (Observe's)

	stMu   sync.Mutex
	staged map[string][]byte // Stage's blobs, for the reader's next checkpoint

	snap snapshotter
}

type metrics struct {
	up        prometheus.Gauge
	buffered  prometheus.Gauge
	lost      *prometheus.CounterVec
	refused   prometheus.Counter
	entries   prometheus.Counter
	snapshots prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_store_up",
			Help: "1 when the shared store (Redis) answered the last call, 0 while it is away."}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_store_buffered",
			Help: "Observations held locally until the shared store is back."}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spamsurge_store_lost_total",
			Help: "Observations and journal entries lost: beyond the local buffer while the shared store was away, or held at shutdown."}, []string{"what"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "spamsurge_fleet_future_total",
			Help: "Observations refused for being dated beyond detector.max_clock_skew."}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{Name: "spamsurge_fleet_journal_entries_total",
			Help: "Journal entries of the whole fleet fed to this instance's detector."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "spamsurge_fleet_snapshots_total",
			Help: "Snapshots of the detector's state this instance wrote to the shared store."}),
	}
	m.lost.WithLabelValues("observation")
	m.lost.WithLabelValues("entry")
	if reg != nil {
		reg.MustRegister(m.up, m.buffered, m.lost, m.refused, m.entries, m.snapshots)
	}
	return m
}

// New prepares a node; Run runs it. The detector's stored journal
// position says where its state ends: the reader goes on from there.
func New(o Options) (*Node, error) {
	o.setDefaults()
	if o.Store == nil || o.Detector == nil {
		return nil, errors.New("fleet: a store and a detector are required")
	}
	pos, err := o.Detector.Meta(PositionMeta)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	n := &Node{o: o, log: o.Logger.Named("fleet"), m: newMetrics(o.Registerer), after: "0"}
	if len(pos) > 0 {
		n.after = string(pos)
	}
	n.snap.lastPos = n.after // (a snapshot there is in Redis, or was loaded from it)
	n.work = make(chan *msg, o.Workers)
	n.entries = make(chan []byte, 4096)
	n.m.up.Set(1)
	return n, nil
}

// Observe hashes an observation's recipients and hands it to a worker,
// waiting while all are busy (the ingest queue in front of it is the
// bound). Call it from one goroutine, before Run's context ends.
func (n *Node) Observe(ob ingest.Observation) {
	if m := n.prepare(ob); m != nil {
		n.work <- m
	}
}

// prepare hashes ob's recipients for the store (nil: refused).
func (n *Node) prepare(ob ingest.Observation) *msg {
	if ob.Time.IsZero() {
		n.o.Detector.CountError()
		return nil
	}
	if n.o.NotAfter != nil && ob.Time.After(n.o.NotAfter()) {
		n.m.refused.Inc()
		return nil
	}
	m := &msg{obs: ob, rejected: len(ob.Rejected)}
	m.obs.Rcpt, m.obs.Rejected = nil, nil
	for _, raw := range ob.Rcpt {
		r, ok := n.o.Detector.Recipient(raw)
		if !ok {
			n.o.Detector.CountInvalid()
			continue
		}
		m.rc = append(m.rc, r)
	}
	l := n.lists()
	if l != n.storeLists {
		n.o.Store.SetLists(l) // the recipients' canaries are checked there
		n.storeLists = l
	}
	if l != nil && l.NumCanaries() > 0 {
		for _, raw := range ob.Rejected {
			if r, ok := n.o.Detector.Recipient(raw); ok {
				if src, ok := l.Canary(r.ID); ok {
					m.rejCanaries = append(m.rejCanaries, recipients.Outcome{Kind: recipients.Canary, ID: r.ID, Source: src})
				}
			}
		}
	}
	return m
}

func (n *Node) lists() *attribution.Lists {
	if n.o.Lists == nil {
		return nil
	}
	return n.o.Lists()
}

// Ready says why the node is not ready: the store is away.
func (n *Node) Ready() error {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	if n.downErr != nil {
		return fmt.Errorf("shared store unavailable: %w", n.downErr)
	}
	return nil
}

func (n *Node) setUp(err error) {
	n.upMu.Lock()
	was := n.downErr
	n.downErr = err
	n.upMu.Unlock()
	switch {
	case err != nil && was == nil:
		n.m.up.Set(0)
		n.log.Error("shared store unavailable: holding observations locally", zap.Error(err), zap.Int("buffer", n.o.Buffer))
	case err == nil && was != nil:
		n.m.up.Set(1)
		n.log.Info("shared store back")
	}
	if err != nil {
		n.o.Detector.CountError()
	}
}

// Run runs the workers, the journal writer, the ticker and the reader
// until ctx ends, which must be after the last Observe call has
// returned; then it applies and journals what it was given, reads the
// journal a moment longer, and checkpoints the detector. Observations
// still held for the store are lost (counted).
func (n *Node) Run(ctx context.Context) {
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	for range n.o.Workers {
		n.workers.Add(1)
		go n.worker(wctx)
	}
	var bg sync.WaitGroup
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		n.writer(wctx)
	}()
	bg.Add(2)
	go func() { defer bg.Done(); n.retry(ctx) }()
	go func() { defer bg.Done(); n.ticker(ctx) }()
	readerDone, drain := make(chan struct{}), make(chan struct{})
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	go func() {
		defer close(readerDone)
		n.reader(rctx, drain)
	}()
	<-ctx.Done()
	close(n.work)
	n.workers.Wait()
	bg.Wait()
	close(n.entries)
	<-writerDone
	n.mu.Lock()
	if len(n.held) > 0 {
		n.m.lost.WithLabelValues("observation").Add(float64(len(n.held)))
		n.log.Warn("shared store away at shutdown: held observations lost", zap.Int("held", len(n.held)))
		n.held = nil
	}
	n.mu.Unlock()
	// The reader reads to the journal's end (what was just written
	// included), for 5 seconds at most.
	close(drain)
	select {
	case <-readerDone:
	case <-time.After(5 * time.Second):
		rcancel()
		<-readerDone
	}
	if err := n.checkpoint(); err != nil {
		n.log.Error("checkpoint at shutdown", zap.Error(err))
		return
	}
	// The last state goes to Redis (resolve reads incidents from it
	// while the fleet is stopped).
	n.snap.writes.Wait()
	if n.after != "0" && n.after != n.snap.lastPos {
		if snap, err := n.takeSnapshot(); err == nil {
			n.writeSnapshot(context.Background(), snap)
		}
	}
}

func (n *Node) worker(ctx context.Context) {
	defer n.workers.Done()
	var outs []recipients.Outcome
	var hours []int64
	for m := range n.work {
		if n.holding.Load() {
			n.hold(m)
			continue
		}
		var err error
		outs, hours, err = n.apply(ctx, m, outs[:0], hours[:0])
		if err != nil {
			n.setUp(err)
			n.hold(m)
			continue
		}
		n.setUp(nil)
	}
}

// apply applies m to the store and journals it.
func (n *Node) apply(ctx context.Context, m *msg, outs []recipients.Outcome, hours []int64) ([]recipients.Outcome, []int64, error) {
	outs, hours, err := n.o.Store.ApplyHours(ctx, m.obs.Time, m.rc, m.obs.Spam, outs, hours)
	if err != nil {
		return outs, hours, err
	}
	e := newEntry(&m.obs, m.rc, outs, hours, m.rejected, m.rejCanaries)
	b, _ := json.Marshal(&e)
	n.entries <- b
	return outs, hours, nil
}

// hold keeps m until the store is back (retry).
func (n *Node) hold(m *msg) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.held) >= n.o.Buffer {
		n.m.lost.WithLabelValues("observation").Inc()
		return
	}
	n.held = append(n.held, m)
	n.holding.Store(true)
	n.m.buffered.Set(float64(len(n.held)))
}

// retry applies the held observations, oldest first, once the store
// answers again.
func (n *Node) retry(ctx context.Context) {
	var outs []recipients.Outcome
	var hours []int64
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n.mu.Lock()
			if len(n.held) == 0 {
				n.holding.Store(false)
				n.m.buffered.Set(0)
				n.mu.Unlock()
				break
			}
			m := n.held[0]
			n.mu.Unlock()
			var err error
			outs, hours, err = n.apply(ctx, m, outs[:0], hours[:0])
			if err != nil {
				n.setUp(err)
				break
			}
			n.setUp(nil)
			n.mu.Lock()
			n.held = n.held[1:]
			n.m.buffered.Set(float64(len(n.held)))
			n.mu.Unlock()
		}
	}
}

// writer appends the entries to the journal, a batch a round trip;
// while the store is away it keeps up to Options.Buffer of them.
func (n *Node) writer(ctx context.Context) {
	var batch [][]byte
	flush := func() {
		for len(batch) > 0 {
			if err := n.o.Store.Append(ctx, batch, n.o.JournalMax); err != nil {
				n.setUp(err)
				if len(batch) > n.o.Buffer {
					n.m.lost.WithLabelValues("entry").Add(float64(len(batch) - n.o.Buffer))
					batch = batch[len(batch)-n.o.Buffer:]
				}
				return
			}
			batch = batch[:0]
		}
	}
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	closed := false
	for !closed {
		select {
		case b, ok := <-n.entries:
			if !ok {
				closed = true
				break
			}
			// Whatever else is queued goes in the same round trip.
			batch = append(batch, b)
		more:
			for len(batch) < 512 {
				select {
				case b, ok := <-n.entries:
					if !ok {
						closed = true
						break more
					}
					batch = append(batch, b)
				default:
					break more
				}
			}
			flush()
		case <-retry.C:
			flush()
		}
	}
	for i := 0; i < 10 && len(batch) > 0; i++ {
		flush()
		if len(batch) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(batch) > 0 {
		n.m.lost.WithLabelValues("entry").Add(float64(len(batch)))
	}
}

// ticker puts this instance's clock into the journal, Lag behind the
// wall clock, unless it holds observations older than that (its clock
// must not run ahead of its own messages).
func (n *Node) ticker(ctx context.Context) {
	t := time.NewTicker(n.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n.holding.Load() {
				continue
			}
			at := now.Add(-n.o.Lag).UTC().Truncate(time.Millisecond)
			b, _ := json.Marshal(&entry{Tick: &at})
			select {
			case n.entries <- b:
			default:
			}
		}
	}
}

// reader feeds the fleet's journal, in order, to the detector; once
// drain is closed, it returns at the journal's end.
func (n *Node) reader(ctx context.Context, drain <-chan struct{}) {
	last := time.Now()
	for ctx.Err() == nil {
		block := time.Second
		select {
		case <-drain:
			block = 0
		default:
		}
		es, err := n.o.Store.Read(ctx, n.after, 512, block)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			n.setUp(err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if len(es) == 0 && block == 0 {
			return
		}
		for _, je := range es {
			n.feed(je)
		}
		if time.Since(last) >= n.o.Checkpoint {
			if err := n.checkpoint(); err != nil {
				n.log.Error("checkpoint", zap.Error(err))
			} else {
				n.maybeSnapshot()
			}
			last = time.Now()
		}
	}
}

// Stage puts a named blob (a log tailer's position) into the detector's
// next checkpoint. Safe from any goroutine. The observations before it
// may still be on their way to the journal: a crash can lose them (at
// most once), where a single instance's position is exact.
func (n *Node) Stage(name string, v []byte) {
	n.stMu.Lock()
	if n.staged == nil {
		n.staged = map[string][]byte{}
	}
	n.staged[name] = v
	n.stMu.Unlock()
}

func (n *Node) checkpoint() error {
	n.stMu.Lock()
	for k, v := range n.staged {
		n.o.Detector.StageMeta(k, v)
	}
	n.staged = nil
	n.stMu.Unlock()
	return n.o.Detector.Checkpoint()
}

// feed gives one journal entry to the detector; its position is staged
// first, so that a checkpoint holds exactly the entries before it.
func (n *Node) feed(je redisstore.Entry) {
	n.after = je.ID
	n.o.Detector.StageMeta(PositionMeta, []byte(je.ID))
	n.m.entries.Inc()
	e, err := decodeEntry(je.Data)
	if err != nil {
		n.o.Detector.CountError()
		n.log.Warn("journal entry unreadable: skipped", zap.String("id", je.ID))
		return
	}
	var evs []detector.Event
	if e.Tick != nil {
		evs = n.o.Detector.Tick(*e.Tick)
	} else {
		a, err := e.applied()
		if err != nil {
			n.o.Detector.CountError()
			n.log.Warn("journal entry unreadable: skipped", zap.String("id", je.ID))
			return
		}
		evs = n.o.Detector.ObserveApplied(a)
	}
	if len(evs) > 0 && n.o.OnEvents != nil {
		n.o.OnEvents(evs)
	}
}
