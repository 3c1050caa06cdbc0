package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/sim"
)

type apiIncident struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	State        string `json:"state"`
	CanarySource string `json:"canary_source"`
	Recipients   int    `json:"recipients"`
}

func incidentsOf(t *testing.T, base string) []apiIncident {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Incidents []apiIncident }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Incidents
}

func postObservation(t *testing.T, base, line string) {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/observations", "application/x-ndjson", strings.NewReader(line+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST observation: %s", resp.Status)
	}
}

// startServe runs the daemon in-process, as serve does, until the test
// ends (its error fails the test); reload is its Options.Reload. The
// returned LogWaiter sees the daemon's log, and the daemon listens.
func startServe(t *testing.T, cfg config.Config, reload <-chan struct{}) *testkit.LogWaiter {
	t.Helper()
	w := testkit.NewLogWaiter()
	w.Done = make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { w.Done <- daemon.Run(ctx, daemon.Options{Config: cfg, Logger: w.Log, Reload: reload}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-w.Done; err != nil {
			t.Errorf("daemon.Run: %v", err)
		}
	})
	w.Wait(t, "http listening")
	return w
}

// The real daemon: a canary hit through the API opens a canary incident
// naming its source; resolve turns it into the address from a customer
// file; SIGHUP, turned into a reload as serve does, reloads the lists (a
// new canary works at once). daemon's tests cover the rest of reloading
// and a missing list file.
func TestServeCanaryResolveAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	canaries := testkit.WriteFile(t, dir, "canaries.txt", "# billing-db fake row\ntrap-7f3@example.net\n")
	book := testkit.WriteFile(t, dir, "book.txt", "alice@example.net\n")
	cfg := config.Default()
	cfg.SMTP.Listen = closedPort(t)
	cfg.Downstream.Address = closedPort(t)
	cfg.HTTP.Listen = closedPort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.Attribution.Tags = []config.TagList{{Name: "addressbook", File: book}}
	cfg.Attribution.Canaries = []config.CanaryList{{Source: "billing-db", File: canaries}}
	cfgFile := testkit.WriteFile(t, dir, "spamsurge.yaml", "store: {path: "+cfg.Store.Path+"}\nhttp: {listen: \""+cfg.HTTP.Listen+"\"}\n")

	reload, stopReload := notifyReload()
	defer stopReload()
	w := startServe(t, cfg, reload)
	base := "http://" + cfg.HTTP.Listen

	sent := time.Now()
	postObservation(t, base, `{"time":"`+sent.UTC().Format(time.RFC3339Nano)+`","rcpt":["alice@example.net","Trap-7F3@example.net"],"spam":false}`)
	w.Wait(t, "incident")
	t.Logf("canary hit to incident log line: %v wall time", time.Since(sent))
	ins := incidentsOf(t, base)
	if len(ins) != 1 || ins[0].Kind != "canary" || ins[0].CanarySource != "billing-db" || ins[0].State != "open" || ins[0].Recipients != 1 {
		t.Fatalf("incidents %+v", ins)
	}
	if w.Obs.FilterMessage("incident").FilterField(zap.String("canary_source", "billing-db")).Len() != 1 {
		t.Fatalf("incident log line without its source: %v", w.Obs.FilterMessage("incident").All())
	}

	customers := testkit.WriteFile(t, dir, "customers.txt", "alice@example.net\ntrap-7f3@example.net\nbob@example.net\n")
	var out, errb bytes.Buffer
	if code := run([]string{"resolve", "--config", cfgFile, "--incident", ins[0].ID, "--addresses", customers}, &out, &errb); code != 0 || out.String() != "trap-7f3@example.net\n" {
		t.Fatalf("resolve: exit %d stdout %q stderr %s", code, out.String(), errb.String())
	}

	// SIGHUP with a new canary source's address: it works at once.
	testkit.WriteFile(t, dir, "canaries.txt", "trap-7f3@example.net\nbait@example.org\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "SIGHUP: attribution lists reloaded")
	postObservation(t, base, `{"time":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","rcpt":["bait@example.org"],"spam":true}`)
	w.Wait(t, "incident")
	if ins := incidentsOf(t, base); len(ins) != 1 || ins[0].Recipients != 2 {
		t.Fatalf("after reload: %+v", ins)
	}

	for _, e := range w.Obs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "example.net") || strings.Contains(f.String, "example.org") {
				t.Fatalf("address in the log: %v", e)
			}
		}
	}
}

// simulated writes a sim scenario of n addresses and returns the stream's
// path and the leaked addresses' indexes.
func simulated(t *testing.T, dir, scenario string, n int) (string, []int) {
	t.Helper()
	path := filepath.Join(dir, scenario+".jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := sim.Run(sim.Config{Scenario: scenario, Seed: 1, Addresses: n}, f)
	if err != nil {
		t.Fatal(err)
	}
	var leaked []int
	for _, l := range tr.Leaks {
		for _, a := range l.Addresses {
			i, err := strconv.Atoi(strings.TrimPrefix(a[:strings.IndexByte(a, '@')], "user"))
			if err != nil {
				t.Fatalf("sim address form changed: %v", err)
			}
			leaked = append(leaked, i)
		}
	}
	return path, leaked
}

// simAddress is sim's address of user i.
func simAddress(i int) string {
	return fmt.Sprintf("user%06d@%s", i, []string{"example.net", "example.org", "mail.example.com"}[i%3])
}

func writeAddresses(t *testing.T, path string, keep func(i int) bool, n int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		if keep(i) {
			b.WriteString(simAddress(i) + "\n")
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The "done when", without the daemon: a replayed plusnet scenario
// (one customer segment's list leaks) opens an incident naming that
// segment's tag, and resolve turns it into the affected customers; a leak
// drawn evenly from the population (drip) names no source.
func TestReplayNamesTheLeakedSourceAndResolveListsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("replays two simulated scenarios")
	}
	const n = 20000
	dir := t.TempDir()
	plus, leaked := simulated(t, dir, "plusnet", n)
	lo, hi := slices.Min(leaked), slices.Max(leaked)
	writeAddresses(t, filepath.Join(dir, "segment.txt"), func(i int) bool { return i >= lo && i <= hi }, n)
	writeAddresses(t, filepath.Join(dir, "webmail.txt"), func(i int) bool { return i%2 == 0 }, n)
	writeAddresses(t, filepath.Join(dir, "newsletter.txt"), func(i int) bool { return i%7 < 2 }, n)
	writeAddresses(t, filepath.Join(dir, "customers.txt"), func(int) bool { return true }, n)
	cfgFile := filepath.Join(dir, "spamsurge.yaml")
	os.WriteFile(cfgFile, []byte(`store: {path: `+filepath.Join(dir, "data")+`}
http: {listen: "`+closedPort(t)+`"}
attribution:
  tags:
    - {name: webmail-login, file: `+filepath.Join(dir, "webmail.txt")+`}
    - {name: billing-segment, file: `+filepath.Join(dir, "segment.txt")+`}
    - {name: newsletter, file: `+filepath.Join(dir, "newsletter.txt")+`}
`), 0o600)

	surges := func(out string) []map[string]any {
		var evs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("replay --json line %q: %v", line, err)
			}
			if ev["kind"] == "surge" && ev["event"] == "opened" {
				evs = append(evs, ev)
			}
		}
		return evs
	}

	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", cfgFile, "--json", plus}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	evs := surges(out.String())
	if len(evs) != 1 || evs[0]["top_tag"] != "billing-segment" {
		t.Fatalf("plusnet: surge incidents %v", evs)
	}
	t.Logf("plusnet: %v", evs[0]["top_source"])

	out.Reset()
	errb.Reset()
	id := evs[0]["id"].(string)
	if code := run([]string{"resolve", "--config", cfgFile, "--incident", id, "--addresses", filepath.Join(dir, "customers.txt"), "--tag", "billing-segment"}, &out, &errb); code != 0 {
		t.Fatalf("resolve: exit %d: %s", code, errb.String())
	}
	isLeaked := map[string]bool{}
	for _, i := range leaked {
		isLeaked[simAddress(i)] = true
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, a := range got {
		if !isLeaked[a] {
			t.Errorf("resolve printed %s, not a leaked address", a)
		}
	}
	if len(got) < 50 {
		t.Fatalf("resolve printed %d addresses: %s", len(got), errb.String())
	}
	t.Logf("resolve: %s", strings.TrimSpace(errb.String()))

	drip, _ := simulated(t, dir, "drip", n)
	out.Reset()
	if code := run([]string{"replay", "--config", cfgFile, "--dry-run", "--json", drip}, &out, &errb); code != 0 {
		t.Fatalf("replay drip: exit %d: %s", code, errb.String())
	}
	for _, ev := range surges(out.String()) {
		if ev["top_tag"] != nil {
			t.Fatalf("even leak attributed to %v: %v", ev["top_tag"], ev["top_source"])
		}
	}
}

// The issue's "a canary hit through the live proxy pages within a
// second": one ordinary (ham) message through the real SMTP proxy to a
// canary reaches the next hop and becomes a critical alert naming the
// canary's source at Alertmanager (a recording stand-in). The wall time is
// logged, not asserted.
func TestCanaryThroughTheProxyPages(t *testing.T) {
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{}
	sink := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{d: d}, nil }))
	sink.Domain, sink.ErrorLog = "sink.test", zap.NewStdLog(zap.NewNop())
	go sink.Serve(sinkLn)
	defer sink.Close()

	alerts := make(chan []map[string]any, 100)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []map[string]any
		json.NewDecoder(r.Body).Decode(&as)
		alerts <- as
	}))
	defer am.Close()

	dir := t.TempDir()
	canaries := filepath.Join(dir, "canaries.txt")
	os.WriteFile(canaries, []byte("office-42@example.net\n"), 0o600)
	cfg := config.Default()
	cfg.SMTP.Listen = closedPort(t)
	cfg.Downstream.Address = sinkLn.Addr().String()
	cfg.HTTP.Listen = closedPort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.Alerting.AlertmanagerURL = am.URL
	cfg.Attribution.Canaries = []config.CanaryList{{Source: "addressbook-export", File: canaries}}
	startServe(t, cfg, nil)

	sent := time.Now()
	msg := "From: a@partner.example\r\nTo: office-42@example.net\r\nSubject: hello\r\n\r\nhi\r\n"
	c, err := smtp.Dial(cfg.SMTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("mx-in.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@partner.example", []string{"office-42@example.net"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if d.sinkGot.Load() != 1 {
		t.Fatal("the message did not reach the next hop")
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case as := <-alerts:
			for _, a := range as {
				labels, _ := a["labels"].(map[string]any)
				ann, _ := a["annotations"].(map[string]any)
				if labels["kind"] == "canary" {
					t.Logf("SMTP message to canary → Alertmanager POST: %v wall time", time.Since(sent))
					if labels["severity"] != "critical" || ann["canary_source"] != "addressbook-export" {
						t.Fatalf("alert %v", a)
					}
					b, _ := json.Marshal(a)
					if strings.Contains(string(b), "office-42") {
						t.Fatalf("alert carries the address: %s", b)
					}
					return
				}
			}
		case <-deadline:
			t.Fatal("no canary alert")
		}
	}
}

// simulate --lists writes the population's source lists and canaries;
// replaying plusnet with them attributes the leak to the leaked source,
// with the sub-address evidence, and opens the source's canary incident.
func TestSimulatedListsAttributePlusnet(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a simulated scenario")
	}
	dir := t.TempDir()
	var out, errb bytes.Buffer
	stream, lists := filepath.Join(dir, "plusnet.jsonl"), filepath.Join(dir, "lists")
	if code := run([]string{"simulate", "--scenario", "plusnet", "--addresses", "20000", "--subaddresses", "--lists", lists, "--out", stream}, &out, &errb); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errb.String())
	}
	section, err := os.ReadFile(filepath.Join(lists, "attribution.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "spamsurge.yaml")
	os.WriteFile(cfgFile, append([]byte("store: {path: "+filepath.Join(dir, "data")+"}\ndetector: {subaddress_separators: \"+\"}\n"), section...), 0o600)
	out.Reset()
	if code := run([]string{"replay", "--config", cfgFile, "--dry-run", "--json", stream}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	var surge, canary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev map[string]any
		json.Unmarshal([]byte(line), &ev)
		switch {
		case ev["kind"] == "surge" && ev["event"] == "resolved":
			surge = ev
		case ev["kind"] == "canary" && ev["event"] == "opened":
			canary = ev
		}
	}
	if surge == nil || surge["top_tag"] != "billing-db" {
		t.Fatalf("surge incident %v", surge)
	}
	details, _ := surge["subaddress_details"].([]any)
	if len(details) == 0 || details[0].(map[string]any)["detail"] != "shop" || details[0].(map[string]any)["known"] != true {
		t.Fatalf("sub-address details %v", surge["subaddress_details"])
	}
	if canary == nil || canary["canary_source"] != "billing-db" {
		t.Fatalf("canary incident %v", canary)
	}
	t.Logf("%v; canary incident at %v", surge["top_source"], canary["at"])
}
