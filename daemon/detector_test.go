package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/store"
)

// gauge reads one unlabelled series from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

func TestOpenFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "data")
	d, err := OpenDetector(cfg, prometheus.NewRegistry(), zap.NewNop(), nil)
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
	d.Observe(ingest.Observation{Time: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Rcpt: []string{"a@example.net", "B+x@Example.NET"}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err = OpenDetector(cfg, reg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Tracked() != 2 || gauge(t, reg, "spamsurge_recipients_tracked") != 2 {
		t.Fatalf("tracked after reopen: %d", d.Tracked())
	}
	// Sub-address stripped and case folded by default: b@example.net is known.
	d.Observe(ingest.Observation{Time: time.Date(2026, 5, 1, 1, 0, 0, 0, time.UTC), Rcpt: []string{"b@example.net"}})
	if d.Tracked() != 2 {
		t.Fatalf("b@ not recognised as B+x@: tracked %d", d.Tracked())
	}
	d.Close()

	// With a Redis store the detector is a fleet's shared one: it keeps
	// no recipients of its own, and refuses Observe (the fleet node feeds
	// it ObserveApplied).
	cfg.Store.RedisURL = "redis://127.0.0.1:6379/0"
	sd, err := OpenDetector(cfg, nil, nil, nil)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	if sd.Observe(ingest.Observation{Time: time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC), Rcpt: []string{"c@example.net"}}); sd.Tracked() != 0 {
		t.Fatalf("a shared detector kept a recipient: tracked %d", sd.Tracked())
	}
	sd.Close()
	cfg.Store.RedisURL = ""
	cfg.Store.Path = filepath.Join(dir, "not-a-store")
	os.MkdirAll(cfg.Store.Path, 0o700)
	os.WriteFile(filepath.Join(cfg.Store.Path, "x"), []byte("x"), 0o600)
	if _, err := OpenDetector(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "store.path") {
		t.Fatalf("foreign directory: %v", err)
	}
}

// Only Redis being out of reach is worth a retry: a refused connection or
// a timeout, not a refused password or a broken local store.
func TestRetryable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&redisUnreachable{fmt.Errorf("store.redis: %w", refused)}, true},
		{&redisUnreachable{fmt.Errorf("store.redis: %w", context.DeadlineExceeded)}, true},
		{&redisUnreachable{errors.New("store.redis: WRONGPASS invalid username-password pair")}, false},
		{&redisUnreachable{fmt.Errorf("store.redis: %w", store.ErrCorrupt)}, false},
		{fmt.Errorf("store.redis: %w", refused), false}, // not from OpenFleet's Redis calls
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
