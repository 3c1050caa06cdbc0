package fleet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/store"
)

func testDetector(t *testing.T, key *addr.Key, st detector.Store, shared bool) *detector.Detector {
	t.Helper()
	det, err := detector.New(detector.Options{Key: key, Store: st, Registerer: prometheus.NewRegistry(), Shared: shared, PerDomain: true, PerTag: true,
		Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}})
	if err != nil {
		t.Fatal(err)
	}
	return det
}

// join is a new instance: a fresh embedded store, bootstrapped from the
// fleet's snapshot, and a detector on it.
func join(t *testing.T, in *instance, key *addr.Key) *detector.Detector {
	t.Helper()
	st := store.NewMemory()
	what, err := Bootstrap(context.Background(), in.node.o.Store, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("joiner: %s", what)
	return testDetector(t, key, st, true)
}

// Replay into Redis: the history applied to Redis and fed to the
// replaying detector gives what a single detector's replay gives; an
// instance started afterwards loads that state from the snapshot; a
// second replay may follow the first, but none runs while an instance
// of the fleet does.
func TestReplayIntoRedis(t *testing.T) {
	url := "redis://" + testkit.Redis(t)
	key := newKey(t)
	obs := simLines(t, "shopleak", 3000)
	// The reference: one detector, stopped and started again half-way,
	// as the second replay below starts from the first one's snapshot.
	// (A restart is not exact: the stored incidents keep their top
	// campaign keys only.)
	half := len(obs) / 2
	refStore := store.NewMemory()
	ref := testDetector(t, key, refStore, false)
	for _, o := range obs[:half] {
		ref.Observe(o)
	}
	ref.Close()
	ref = testDetector(t, key, refStore, false)
	for _, o := range obs[half:] {
		ref.Observe(o)
	}

	r := newInstance(t, url, nil, key, store.NewMemory(), nil)
	ctx := context.Background()
	// One message at a time: exactly a single detector's order.
	rp, err := r.node.StartReplay(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs[:half] {
		if _, err := rp.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rp.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	// A second replay right after (the rest of the history) starts from
	// the first one's state: the marker is no running instance.
	// Without the first one's snapshot it is refused.
	if _, err := newInstance(t, url, nil, key, store.NewMemory(), nil).node.StartReplay(ctx, 1); err == nil {
		t.Fatal("a replay from no state started after a replay")
	}
	st2 := store.NewMemory()
	if _, err := Bootstrap(ctx, r.node.o.Store, st2, nil); err != nil {
		t.Fatal(err)
	}
	r2 := newInstance(t, url, nil, key, st2, nil)
	rp, err = r2.node.StartReplay(ctx, 1)
	if err != nil {
		t.Fatalf("a replay after a replay: %v", err)
	}
	for _, o := range obs[half:] {
		if _, err := rp.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rp.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	want := incidentsJSON(ref)
	if got := incidentsJSON(r2.det); got != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("replay into Redis differs from a single detector's at byte %d:\n%.300s\n%.300s", i, got[max(0, i-100):], want[max(0, i-100):])
	}
	if r2.det.AtRisk() != ref.AtRisk() {
		t.Fatalf("at risk %d, single detector %d", r2.det.AtRisk(), ref.AtRisk())
	}
	// A new instance is what a restart of the single detector would be.
	ref.Close()
	again := testDetector(t, key, refStore, false)
	want = incidentsJSON(again)
	j := join(t, r2, key)
	if got := incidentsJSON(j); got != want || j.AtRisk() != ref.AtRisk() {
		t.Fatalf("an instance started after the replay: at risk %d (want %d), incidents\n%s\nwant\n%s", j.AtRisk(), ref.AtRisk(), got, want)
	}
	if len(ref.Incidents()) == 0 {
		t.Fatal("the history opened no incident: the comparison proves nothing")
	}

	// The default window (messages in flight at once) opens the same
	// surge on a third of the history replayed again into a new space.
	key3 := newKey(t)
	r3 := newInstance(t, url, nil, key3, store.NewMemory(), nil)
	// (another key: its own space in the same Redis)
	rp, err = r3.node.StartReplay(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		if _, err := rp.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rp.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if kinds(r3.det) != kinds(ref) {
		t.Fatalf("windowed replay: incidents %s, single detector %s", kinds(r3.det), kinds(ref))
	}

	// An instance running: its ticks are in the journal.
	live := newInstance(t, url, nil, key, store.NewMemory(), func(o *Options) { o.Tick = 10 * time.Millisecond })
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); live.node.Run(lctx) }()
	time.Sleep(200 * time.Millisecond)
	stO := store.NewMemory()
	if _, err := Bootstrap(ctx, r.node.o.Store, stO, nil); err != nil {
		t.Fatal(err)
	}
	other := newInstance(t, url, nil, key, stO, nil)
	if _, err := other.node.StartReplay(ctx, 0); !errors.Is(err, ErrFleetRunning) {
		t.Fatalf("replay while an instance runs: %v", err)
	}
	cancel()
	wg.Wait()
}

func kinds(d *detector.Detector) string {
	s := ""
	for _, in := range d.Incidents() {
		s += in.Kind + " "
	}
	return s
}

// The journal is trimmed: an instance that starts after the entries it
// would need are gone gets the fleet's state from the snapshot the
// running instance wrote; reading the trimmed journal alone would not.
func TestSnapshotAfterTrim(t *testing.T) {
	url := "redis://" + testkit.Redis(t)
	key := newKey(t)
	obs := simLines(t, "shopleak", 3000)
	ast := store.NewMemory()
	a := newInstance(t, url, nil, key, ast, func(o *Options) {
		o.JournalMax, o.Checkpoint, o.SnapshotEvery = 500, 20*time.Millisecond, time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.node.Run(ctx) }()
	for i, o := range obs {
		a.node.Observe(o)
		if i%50 == 49 {
			waitEntries(t, i+1, a)
		}
	}
	waitEntries(t, len(obs), a)
	time.Sleep(100 * time.Millisecond) // a snapshot or two while running
	cancel()
	wg.Wait()
	if n := a.node.m.snapshots; testutil.ToFloat64(n) < 2 {
		t.Fatalf("%v snapshots written", testutil.ToFloat64(n))
	}
	rs := a.node.o.Store
	first, ok, err := rs.First(context.Background())
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// The trimmed journal holds less than the history.
	es, err := rs.Read(context.Background(), "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) >= len(obs) {
		t.Fatalf("journal not trimmed: %d entries", len(es))
	}
	t.Logf("journal: %d entries from %s", len(es), first.ID)

	// The joiner is what a's own restart would be.
	again := testDetector(t, key, ast, true)
	want := incidentsJSON(again)
	j := join(t, a, key)
	if got := incidentsJSON(j); got != want || j.AtRisk() != again.AtRisk() || j.AtRisk() == 0 {
		t.Fatalf("joiner: at risk %d (want %d), incidents\n%s\nwant\n%s", j.AtRisk(), again.AtRisk(), got, want)
	}
	// Without the snapshot: what the journal still has.
	bare := testDetector(t, key, store.NewMemory(), true)
	for _, je := range es {
		e, err := decodeEntry(je.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Tick != nil {
			bare.Tick(*e.Tick)
			continue
		}
		ap, err := e.applied()
		if err != nil {
			t.Fatal(err)
		}
		bare.ObserveApplied(ap)
	}
	if bare.AtRisk() == again.AtRisk() {
		t.Fatalf("the trimmed journal alone gives the same at-risk count (%d): the test shows nothing", bare.AtRisk())
	}
}
