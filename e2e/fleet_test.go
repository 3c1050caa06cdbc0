package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/internal/testkit"
)

// startFleetRedis runs a real redis-server on a free loopback port, or
// on the address at ("" for a free port: a restart on the port of one
// that was killed), and returns its address and process (for the fault
// tests' signals).
func startFleetRedis(t *testing.T, at string) (string, *proc) {
	t.Helper()
	bin := testkit.Need(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	if at == "" {
		at = testkit.FreePort(t)
	}
	_, port, _ := net.SplitHostPort(at)
	p := start(t, bin, append([]string{"--port", port, "--dir", t.TempDir()}, testkit.RedisArgs...)...)
	testkit.WaitListening(t, at)
	return at, p
}

// startMember starts one `spamsurge serve` of a fleet: its own SMTP and
// HTTP ports and state directory, the fleet's key file and Redis.
func startMember(t *testing.T, redis, keyFile, sink, am, canaries string) *daemon {
	t.Helper()
	d := &daemon{smtp: testkit.FreePort(t), http: testkit.FreePort(t), dir: t.TempDir()}
	cfg := fmt.Sprintf(`smtp: {listen: %s, hostname: proxy.test}
downstream: {address: %s}
http: {listen: %s}
store: {path: %s, key_file: %s, redis_url: "redis://%s"}
alerting: {alertmanager_url: "http://%s"}
attribution:
  canaries:
    - {source: billing-db, file: %s}
`, d.smtp, sink, d.http, filepath.Join(d.dir, "data"), keyFile, redis, am, canaries)
	path := filepath.Join(d.dir, "spamsurge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.proc = start(t, binary, "serve", "--config", path)
	testkit.WaitListening(t, d.smtp)
	testkit.WaitListening(t, d.http)
	return d
}

func (d *daemon) incidentIDs(t *testing.T, kind string) []string {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Incidents []struct{ ID, Kind string } `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range list.Incidents {
		if in.Kind == kind {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

func (d *daemon) ready(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A fleet of two `serve` instances on one real Redis, with a real
// Alertmanager and smtp-sink: mail to a canary through either instance
// opens one canary incident, with the same id on both APIs, and one
// alert; Redis frozen (SIGSTOP) and then killed and restarted: every
// message is still relayed, the instances say why they are not ready,
// and what they held is written once Redis is back.
func TestFleetOfTwoOnOneRedis(t *testing.T) {
	redis, rp := startFleetRedis(t, "")
	am := startAlertmanager(t)
	sk := startSink(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "fleet.key")
	if _, err := addr.LoadKey(keyFile); err != nil { // created: the fleet's one key
		t.Fatal(err)
	}
	canaries := testkit.WriteFile(t, dir, "canaries.txt", "trap.7f3a@isp.example\n")
	a := startMember(t, redis, keyFile, sk.addr, am, canaries)
	b := startMember(t, redis, keyFile, sk.addr, am, canaries)

	for _, d := range []*daemon{a, b} {
		if out, err := swaks(t, d.smtp, "--to", "alice@isp.example", "--from", "news@shop.example"); err != nil {
			t.Fatalf("relaying: %v\n%s", err, out)
		}
	}
	if out, err := swaks(t, b.smtp, "--to", "trap.7f3a@isp.example", "--from", "x@leak.example"); err != nil {
		t.Fatalf("relaying to the canary: %v\n%s", err, out)
	}
	var ida, idb []string
	waitFor(t, "the canary incident on both instances", 20*time.Second, func() bool {
		ida, idb = a.incidentIDs(t, "canary"), b.incidentIDs(t, "canary")
		return len(ida) > 0 && len(idb) > 0
	})
	if len(ida) != 1 || len(idb) != 1 || ida[0] != idb[0] {
		t.Fatalf("canary incidents: %v on one instance, %v on the other; want one, the same", ida, idb)
	}
	// One alert in Alertmanager, pushed by both.
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	waitFor(t, "the alert in Alertmanager", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + am + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		alerts = nil
		json.NewDecoder(resp.Body).Decode(&alerts)
		return len(alerts) > 0
	})
	time.Sleep(2 * time.Second) // both pushers have pushed by now
	resp, err := http.Get("http://" + am + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	alerts = nil
	json.NewDecoder(resp.Body).Decode(&alerts)
	resp.Body.Close()
	if len(alerts) != 1 || !strings.Contains(fmt.Sprint(alerts[0].Labels), ida[0]) {
		t.Fatalf("alerts: %+v, want one for %s", alerts, ida[0])
	}

	entries := func(d *daemon) float64 { return d.metric(t, "spamsurge_fleet_journal_entries_total") }
	// Redis frozen: mail still flows through both, at once.
	rp.cmd.Process.Signal(syscall.SIGSTOP)
	sent := 0
	for i := range 6 {
		d := []*daemon{a, b}[i%2]
		start := time.Now()
		if out, err := swaks(t, d.smtp, "--to", fmt.Sprintf("user%d@isp.example", i), "--from", "news@shop.example"); err != nil {
			rp.cmd.Process.Signal(syscall.SIGCONT)
			t.Fatalf("relaying with Redis frozen: %v\n%s", err, out)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("a message took %v with Redis frozen", time.Since(start))
		}
		sent++
	}
	waitFor(t, "spamsurge_store_up 0", 15*time.Second, func() bool { return a.metric(t, "spamsurge_store_up") == 0 })
	if code, body := a.ready(t); code != 503 || !strings.Contains(body, "shared store") {
		t.Errorf("/readyz with Redis frozen: %d %q", code, body)
	}
	before := entries(a)
	rp.cmd.Process.Signal(syscall.SIGCONT)
	for _, d := range []*daemon{a, b} {
		waitFor(t, "the store up again", 20*time.Second, func() bool {
			return d.metric(t, "spamsurge_store_up") == 1 && d.metric(t, "spamsurge_store_buffered") == 0
		})
	}
	waitFor(t, "the held messages in the journal", 20*time.Second, func() bool { return entries(a) >= before+float64(sent) })
	if code, _ := a.ready(t); code != 200 {
		t.Errorf("/readyz after Redis came back: %d", code)
	}
	// Killed and restarted (no persistence here: it comes back empty).
	rp.cmd.Process.Kill()
	rp.cmd.Wait()
	for i := range 4 {
		if out, err := swaks(t, []*daemon{a, b}[i%2].smtp, "--to", fmt.Sprintf("late%d@isp.example", i), "--from", "news@shop.example"); err != nil {
			t.Fatalf("relaying with Redis down: %v\n%s", err, out)
		}
		sent++
	}
	startFleetRedis(t, redis)
	for _, d := range []*daemon{a, b} {
		waitFor(t, "the store up after the restart", 30*time.Second, func() bool {
			return d.metric(t, "spamsurge_store_up") == 1 && d.metric(t, "spamsurge_store_buffered") == 0
		})
	}
	if n := len(sk.messages(t)); n != 3+sent {
		t.Fatalf("smtp-sink got %d messages, want %d", n, 3+sent)
	}
	// No surge from any of it.
	if ids := a.incidentIDs(t, "surge"); len(ids) != 0 {
		t.Fatalf("surge incidents: %v", ids)
	}
	if strings.Contains(a.out.String(), "@isp.example") || strings.Contains(b.out.String(), "@isp.example") {
		t.Error("an address in a daemon's log")
	}
}
