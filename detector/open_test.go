package detector

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/ingest"
)

func TestOpenFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "data")
	d, err := Open(cfg, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "data.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file beside the store: %v %v", st, err)
	}
	if !d.WarmingUp() {
		t.Fatal("new store not warming up")
	}
	d.Observe(ingest.Observation{Time: t0, Rcpt: []string{"a@example.net", "B+x@Example.NET"}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err = Open(cfg, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if d.Tracked() != 2 || testutil.ToFloat64(d.m.tracked) != 2 {
		t.Fatalf("tracked after reopen: %d", d.Tracked())
	}
	// Sub-address stripped and case folded by default: b@example.net is known.
	d.Observe(ingest.Observation{Time: t0.Add(time.Hour), Rcpt: []string{"b@example.net"}})
	if d.Tracked() != 2 {
		t.Fatalf("b@ not recognised as B+x@: tracked %d", d.Tracked())
	}
	d.Close()

	cfg.Store.RedisURL = "redis://127.0.0.1:6379/0"
	if _, err := Open(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "store.redis_url") {
		t.Fatalf("redis: %v", err)
	}
	cfg.Store.RedisURL = ""
	cfg.Store.Path = filepath.Join(dir, "not-a-store")
	os.MkdirAll(cfg.Store.Path, 0o700)
	os.WriteFile(filepath.Join(cfg.Store.Path, "x"), []byte("x"), 0o600)
	if _, err := Open(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "store.path") {
		t.Fatalf("foreign directory: %v", err)
	}
}

func TestIncidentsSnapshotIsSafeConcurrently(t *testing.T) {
	h := newHarness(t, nil2mem(), testKey(t, 1), func(o *Options) { o.Warmup = time.Hour; o.Learn = -1 })
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				for _, in := range h.d.Incidents() {
					_ = len(in.RecipientIDs)
				}
			}
		}
	}()
	for i := 0; i < 300; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	for i := 0; i < 300; i++ {
		h.obs(t0.Add(2*time.Hour+time.Duration(i)*time.Second), true, user(i))
	}
	close(done)
	wg.Wait()
	if len(h.d.Incidents()) == 0 {
		t.Fatal("no incident from 300 first spams in 5 minutes")
	}
}

func TestDormantShare(t *testing.T) {
	h := newHarness(t, nil2mem(), testKey(t, 1), func(o *Options) { o.Warmup = time.Hour; o.Learn = -1; o.Dormant = 24 * time.Hour })
	for i := 0; i < 200; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	for i := 100; i < 200; i++ { // the second half stays active
		h.obs(t0.Add(47*time.Hour+time.Duration(i)*time.Second), false, user(i))
	}
	for i := 0; i < 200; i += 2 {
		h.obs(t0.Add(48*time.Hour+time.Duration(i)*time.Second), true, user(i))
	}
	ins := h.d.Incidents()
	if len(ins) != 1 {
		t.Fatalf("incidents: %d", len(ins))
	}
	if s := ins[0].DormantShare; s < 0.45 || s > 0.55 {
		t.Fatalf("dormant share %.2f of %d, want about 0.5", s, ins[0].Recipients)
	}
}
