package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/internal/testkit"
)

// testConfig is the default config on free loopback ports, with its store
// in dir and a next hop nothing listens on.
func testConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default()
	cfg.SMTP.Listen = testkit.FreePort(t)
	cfg.Downstream.Address = testkit.FreePort(t)
	cfg.HTTP.Listen = testkit.FreePort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	return cfg
}

// start runs Run with o until the test ends or stop is called; stop
// returns Run's error, and fails the test if Run does not return within
// 20 s of ctx's end. The LogWaiter sees the daemon's log (o.Logger is
// replaced), and the daemon listens.
func start(t *testing.T, o daemon.Options) (w *testkit.LogWaiter, stop func() error) {
	t.Helper()
	w = testkit.NewLogWaiter()
	w.Done = make(chan error, 1)
	o.Logger = w.Log
	ctx, cancel := context.WithCancel(context.Background())
	go func() { w.Done <- daemon.Run(ctx, o) }()
	var err error
	stopped := false
	stop = func() error {
		t.Helper()
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-w.Done:
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return within 20 s of its context's end")
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	w.Wait(t, "http listening")
	return w, stop
}

type incident struct {
	Kind         string `json:"kind"`
	CanarySource string `json:"canary_source"`
	Recipients   int    `json:"recipients"`
}

func incidents(t *testing.T, base string) []incident {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Incidents []incident }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Incidents
}

// post submits one spam observation to rcpt, timed now.
func post(t *testing.T, base, rcpt string) {
	t.Helper()
	line := `{"time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","rcpt":["` + rcpt + `"],"spam":true}` + "\n"
	resp, err := http.Post(base+"/api/v1/observations", "application/x-ndjson", strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST observation: %s", resp.Status)
	}
}

// A receive on Reload reloads the lists, as SIGHUP does for serve: a new
// canary works at once; a vanished file is logged and counted, and the
// old lists stay. Every metric lands in the Registerer given.
func TestReloadReloadsTheLists(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	book := testkit.WriteFile(t, dir, "book.txt", "alice@example.net\n")
	canaries := testkit.WriteFile(t, dir, "canaries.txt", "trap-7f3@example.net\n")
	cfg.Attribution.Tags = []config.TagList{{Name: "addressbook", File: book}}
	cfg.Attribution.Canaries = []config.CanaryList{{Source: "billing-db", File: canaries}}
	reg := prometheus.NewRegistry()
	reload := make(chan struct{})
	w, _ := start(t, daemon.Options{Config: cfg, Registerer: reg, Reload: reload})
	base := "http://" + cfg.HTTP.Listen
	metric := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		t.Fatalf("%s not in the registry given", name)
		return 0
	}

	post(t, base, "trap-7f3@example.net")
	w.Wait(t, "incident")
	testkit.WriteFile(t, dir, "canaries.txt", "trap-7f3@example.net\nbait@example.org\n")
	reload <- struct{}{}
	w.Wait(t, "SIGHUP: attribution lists reloaded")
	if got := metric("spamsurge_attribution_reloads_total"); got != 1 {
		t.Errorf("spamsurge_attribution_reloads_total %v after one reload", got)
	}
	if got := metric("spamsurge_attribution_canary_addresses"); got != 2 {
		t.Errorf("spamsurge_attribution_canary_addresses %v after the reload", got)
	}
	post(t, base, "bait@example.org")
	w.Wait(t, "incident")
	if ins := incidents(t, base); len(ins) != 1 || ins[0].Kind != "canary" || ins[0].CanarySource != "billing-db" || ins[0].Recipients != 2 {
		t.Fatalf("after the reload: %+v", ins)
	}

	// A vanished file: logged and counted, the old lists stay.
	if err := os.Remove(book); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	w.Wait(t, "reloading lists failed; keeping the previous ones")
	if got := metric("spamsurge_attribution_reload_errors_total"); got != 1 {
		t.Errorf("spamsurge_attribution_reload_errors_total %v after a failed reload", got)
	}
	if got := metric("spamsurge_attribution_last_reload_successful"); got != 0 {
		t.Errorf("spamsurge_attribution_last_reload_successful %v after a failed reload", got)
	}
	if got := metric("spamsurge_attribution_canary_addresses"); got != 2 {
		t.Errorf("spamsurge_attribution_canary_addresses %v: the old lists should stay", got)
	}

	for _, e := range w.Obs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "example.net") || strings.Contains(f.String, "example.org") {
				t.Fatalf("address in the log: %v", e)
			}
		}
	}
}

// Run returns nil once its context ends, with or without lists; a reload
// without lists is logged and changes nothing, and a closed Reload is no
// reload at all.
func TestRunReturnsWhenCancelled(t *testing.T) {
	reload := make(chan struct{})
	w, stop := start(t, daemon.Options{Config: testConfig(t, t.TempDir()), Reload: reload})
	reload <- struct{}{}
	w.Wait(t, "SIGHUP: no attribution lists configured, nothing to reload")
	close(reload)
	if err := stop(); err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	if n := w.Obs.FilterMessage("SIGHUP: no attribution lists configured, nothing to reload").Len(); n != 1 {
		t.Fatalf("%d reloads logged for one receive and a close", n)
	}
}

// A missing list file stops the start: Run returns at once, without its
// context ending.
func TestMissingListStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Attribution.Tags = []config.TagList{{Name: "addressbook", File: filepath.Join(dir, "missing.txt")}}
	err := daemon.Run(context.Background(), daemon.Options{Config: cfg, Logger: zap.NewNop()})
	if err == nil || !strings.Contains(err.Error(), "attribution.tags[0] (addressbook)") {
		t.Fatalf("start with a missing list: %v", err)
	}
}

// A Registerer that cannot serve /metrics needs a Gatherer beside it.
func TestRegistererWithoutGatherer(t *testing.T) {
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"instance": "a"}, prometheus.NewRegistry())
	err := daemon.Run(context.Background(), daemon.Options{Config: testConfig(t, t.TempDir()), Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), "Gatherer") {
		t.Fatalf("Registerer without Gatherer: %v", err)
	}
}

// Tried as a new user would: an observation dated 9999-12-01 posted to the
// running daemon is refused with 400 naming the line (it would have moved
// the detector's clock and blinded it), and live-dated ones are taken.
func TestServeRefusesObservationsFromTheFuture(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	start(t, daemon.Options{Config: cfg})
	base := "http://" + cfg.HTTP.Listen
	send := func(ts string) (int, string) {
		body := `{"time":"` + ts + `","rcpt":["alice@example.net"],"spam":false}` + "\n"
		resp, err := http.Post(base+"/api/v1/observations", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send("9999-12-01T00:00:00Z"); code != 400 || !strings.Contains(body, `"line": 1`) || !strings.Contains(body, "max_clock_skew") {
		t.Fatalf("year 9999: %d %s", code, body)
	}
	if code, body := send(time.Now().UTC().Format(time.RFC3339)); code != 202 {
		t.Fatalf("now: %d %s", code, body)
	}
}
