package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
	"github.com/spamsurge/spamsurge/sim"
	"github.com/spamsurge/spamsurge/store"
)

// instance is one member of a test fleet: its own detector (memory
// store), its own Redis client, one Node.
type instance struct {
	node *Node
	det  *detector.Detector
	reg  *prometheus.Registry
	mu   sync.Mutex
	evs  []detector.Event
}

func newInstance(t testing.TB, url string, cluster []string, key *addr.Key, st detector.Store, mod func(*Options)) *instance {
	t.Helper()
	reg := prometheus.NewRegistry()
	det, err := detector.New(detector.Options{Key: key, Store: st, Registerer: reg, Shared: true, PerDomain: true, PerTag: true,
		Normalizer: addr.Normalizer{FoldLocal: true, Separators: "+"}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := redisstore.Open(context.Background(), redisstore.Options{URL: url, Cluster: cluster, Space: key.Fingerprint(),
		Warmup: 168 * time.Hour, Dormant: 30 * 24 * time.Hour, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Close)
	in := &instance{det: det, reg: reg}
	o := Options{Store: rs, Detector: det, Registerer: reg, Tick: time.Hour, OnEvents: func(evs []detector.Event) {
		in.mu.Lock()
		in.evs = append(in.evs, evs...)
		in.mu.Unlock()
	}}
	if mod != nil {
		mod(&o)
	}
	if in.node, err = New(o); err != nil {
		t.Fatal(err)
	}
	return in
}

func newKey(t testing.TB) *addr.Key {
	b := make([]byte, 32)
	rand.Read(b)
	k, err := addr.NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func simLines(t testing.TB, scenario string, n int) []ingest.Observation {
	var buf bytes.Buffer
	if _, err := sim.Run(sim.Config{Scenario: scenario, Seed: 1, Addresses: n}, &buf); err != nil {
		t.Fatal(err)
	}
	var obs []ingest.Observation
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	return obs
}

// waitEntries waits until every instance's detector has read n journal
// entries.
func waitEntries(t testing.TB, n int, ins ...*instance) { waitEntriesFor(t, n, 20*time.Second, ins...) }

func waitEntriesFor(t testing.TB, n int, wait time.Duration, ins ...*instance) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, in := range ins {
		for testutil.ToFloat64(in.node.m.entries) < float64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("read %v of %d journal entries", testutil.ToFloat64(in.node.m.entries), n)
			}
			time.Sleep(500 * time.Microsecond)
		}
	}
}

func incidentsJSON(d *detector.Detector) string {
	b, err := json.Marshal(d.Incidents())
	if err != nil {
		return fmt.Sprintf("unmarshallable: %v: %+v", err, d.Incidents())
	}
	return string(b)
}

// Two instances on one Redis, the mail split between them (each message
// to one of the two, as behind one MX name): one population, one
// baseline, one incident, the same on both, with the same id.
func TestTwoInstancesOneIncident(t *testing.T) {
	twoInstances(t, "redis://"+testkit.Redis(t), nil)
}

// The same on a real 3-node Redis Cluster.
func TestTwoInstancesOneIncidentCluster(t *testing.T) {
	twoInstances(t, "", testkit.RedisCluster(t, 3))
}

func twoInstances(t *testing.T, url string, cluster []string) {
	key := newKey(t)
	a := newInstance(t, url, cluster, key, store.NewMemory(), nil)
	b := newInstance(t, url, cluster, key, store.NewMemory(), nil)
	obs := simLines(t, "shopleak", 3000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, in := range []*instance{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); in.node.Run(ctx) }()
	}
	// Live mail reaches both instances at the same time, so their
	// journal entries interleave in time order give or take the
	// milliseconds of a round trip; fed as fast as they go, one would
	// race hours ahead of the other. The history goes in steps of 10
	// messages, each step in the journal before the next.
	for i, o := range obs {
		if i%2 == 0 {
			a.node.Observe(o)
		} else {
			b.node.Observe(o)
		}
		if i%10 == 9 {
			waitEntries(t, i+1, a, b)
		}
	}
	waitEntries(t, len(obs), a, b)
	cancel()
	wg.Wait()
	ia := a.det.Incidents()
	surges := 0
	for _, in := range ia {
		if in.Kind == detector.KindSurge {
			surges++
		}
	}
	if surges != 1 {
		t.Fatalf("%d surge incidents, want the leak's one: %s (at risk %d, tracked %d)", surges, incidentsJSON(a.det), a.det.AtRisk(), a.det.Tracked())
	}
	if ja, jb := incidentsJSON(a.det), incidentsJSON(b.det); ja != jb {
		t.Fatalf("the instances differ:\n%s\n%s", ja, jb)
	}
	if a.det.AtRisk() != b.det.AtRisk() || a.det.AtRisk() == 0 {
		t.Fatalf("at risk %d and %d", a.det.AtRisk(), b.det.AtRisk())
	}
	t.Logf("%d observations; incidents %d, first %s (%s), at risk %d", len(obs), len(ia), ia[0].ID, ia[0].Trigger, a.det.AtRisk())
}
