package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/forensics"
)

func incident(state string) detector.Incident {
	start := time.Date(2026, 5, 13, 9, 14, 0, 0, time.UTC)
	in := detector.Incident{
		ID: "20260513T091400-surge", Kind: "surge", State: state, StartedAt: start, OpenedAt: start.Add(3 * time.Minute),
		Recipients: 412, Observed: 412, Expected: 3.5, Score: 9.2, DormantShare: 0.31,
		Campaigns: detector.Campaigns{SenderDomain: []detector.Group{{Key: "spam.example", Count: 300, Share: 0.73}}},
	}
	if state == "resolved" {
		r := start.Add(2 * time.Hour)
		in.ResolvedAt = &r
	}
	return in
}

// A fake Alertmanager: records the posted alerts, can fail.
type fakeAM struct {
	mu    sync.Mutex
	posts [][]amAlert
	fail  bool
}

func (f *fakeAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/api/v2/alerts" || r.Method != "POST" {
		http.Error(w, "bad path", 404)
		return
	}
	if f.fail {
		http.Error(w, "down", 503)
		return
	}
	var as []amAlert
	json.NewDecoder(r.Body).Decode(&as)
	f.posts = append(f.posts, as)
}

func (f *fakeAM) last() []amAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.posts) == 0 {
		return nil
	}
	return f.posts[len(f.posts)-1]
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPusherSendsResendsResolvesAndRetries(t *testing.T) {
	am := &fakeAM{fail: true}
	srv := httptest.NewServer(am)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	p, err := New(Options{URL: srv.URL, Resend: 50 * time.Millisecond, Registerer: reg, APIURL: "http://127.0.0.1:9464"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	p.Update([]detector.Incident{incident("open")})
	waitFor(t, "a failed post", 5*time.Second, func() bool { return testutil.ToFloat64(p.sent.WithLabelValues("error")) >= 1 })
	am.mu.Lock()
	am.fail = false
	am.mu.Unlock()
	waitFor(t, "the retry to succeed", 5*time.Second, func() bool { return len(am.last()) == 1 })
	a := am.last()[0]
	if a.Labels["alertname"] != "SpamSurgeLeakSuspected" || a.Labels["severity"] != "critical" || a.Labels["incident_id"] != "20260513T091400-surge" {
		t.Errorf("labels = %v", a.Labels)
	}
	if _, ok := a.Labels["domain"]; ok || strings.Contains(a.Annotations["summary"], " of ") {
		t.Errorf("an incident about the whole population named a scope: %v %q", a.Labels, a.Annotations["summary"])
	}
	if a.Annotations["observed"] != "412" || a.Annotations["expected"] != "3.5" || !strings.Contains(a.Annotations["top_campaign"], "spam.example (73%)") ||
		!strings.Contains(a.Annotations["runbook_url"], "RUNBOOK.md#spamsurgeleaksuspected") ||
		a.Annotations["incident_url"] != "http://127.0.0.1:9464/ui/incidents/20260513T091400-surge" {
		t.Errorf("annotations = %v", a.Annotations)
	}
	if _, ok := a.Annotations["list_snapshot"]; ok {
		t.Errorf("an undated incident with a list_snapshot annotation: %v", a.Annotations)
	}
	if !a.StartsAt.Equal(incident("open").StartedAt) || !a.EndsAt.After(time.Now()) {
		t.Errorf("startsAt %v endsAt %v: want the incident's start and an end in the future", a.StartsAt, a.EndsAt)
	}
	// Re-sent while open.
	n := func() int { am.mu.Lock(); defer am.mu.Unlock(); return len(am.posts) }
	before := n()
	waitFor(t, "a re-send", 5*time.Second, func() bool { return n() >= before+2 })

	p.Update([]detector.Incident{incident("resolved")})
	waitFor(t, "the resolution", 5*time.Second, func() bool {
		l := am.last()
		return len(l) == 1 && l[0].EndsAt.Equal(*incident("resolved").ResolvedAt)
	})
	// Delivered resolutions are not sent again.
	time.Sleep(200 * time.Millisecond)
	after := n()
	time.Sleep(200 * time.Millisecond)
	if n() != after {
		t.Errorf("kept posting after the resolution was delivered")
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9093", "ftp://x", "http://"} {
		if _, err := New(Options{URL: u}); err == nil || !strings.Contains(err.Error(), "alertmanager_url") {
			t.Errorf("%q: err = %v", u, err)
		}
	}
}

func TestUpdateNeverBlocks(t *testing.T) {
	p, _ := New(Options{URL: "http://127.0.0.1:1"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			p.Update([]detector.Incident{incident("open")}) // no Run: must not block
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Update blocked with nobody pushing (the detector would stall)")
	}
}

// The real thing: Alertmanager receives the alert with its labels and
// annotations, notifies a webhook, and sees it resolved.
func TestRealAlertmanager(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			msg := "\n\n*** prometheus-alertmanager NOT FOUND (apt-get install prometheus-alertmanager) ***\n"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	type note struct {
		Status string `json:"status"`
		Alerts []struct {
			Status      string            `json:"status"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
	}
	var mu sync.Mutex
	var notes []note
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n note
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &n)
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [incident_id]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hook.URL)
	os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+dir,
		"--web.listen-address="+addr, "--cluster.listen-address=")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitFor(t, "alertmanager to listen", 20*time.Second, func() bool {
		r, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})

	p, _ := New(Options{URL: "http://" + addr, Resend: 500 * time.Millisecond, APIURL: "https://spamsurge.example.net/"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	open := incident("open")
	open.StartedAt = time.Now().Add(-time.Minute).UTC()
	// A leak in one customer domain: its alert names the domain.
	open.Trigger, open.Scope = detector.TriggerCUSUMDomain, &detector.Scope{Domain: "shop17.example"}
	open.ListSnapshot = &forensics.Snapshot{NotBefore: time.Date(2026, 4, 2, 16, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 4, 8, 4, 0, 0, 0, time.UTC), Confidence: 0.95}
	p.Update([]detector.Incident{open})
	find := func(status string) *note {
		mu.Lock()
		defer mu.Unlock()
		for i := range notes {
			if notes[i].Status == status {
				return &notes[i]
			}
		}
		return nil
	}
	waitFor(t, "a firing notification", 30*time.Second, func() bool { return find("firing") != nil })
	n := find("firing")
	if len(n.Alerts) != 1 || n.Alerts[0].Labels["alertname"] != "SpamSurgeLeakSuspected" || n.Alerts[0].Labels["incident_id"] != open.ID ||
		n.Alerts[0].Annotations["observed"] != "412" || n.Alerts[0].Annotations["runbook_url"] == "" ||
		n.Alerts[0].Labels["domain"] != "shop17.example" || !strings.Contains(n.Alerts[0].Annotations["summary"], "of domain shop17.example") ||
		n.Alerts[0].Annotations["incident_url"] != "https://spamsurge.example.net/ui/incidents/"+open.ID ||
		n.Alerts[0].Annotations["list_snapshot"] != "copied between 2026-04-02 16:00 and 2026-04-08 04:00 UTC (95 % interval)" {
		t.Fatalf("firing notification = %+v", n)
	}
	// Alertmanager lists it as active.
	r, err := http.Get("http://" + addr + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), open.ID) || !strings.Contains(string(b), `"state":"active"`) {
		t.Errorf("alertmanager's alerts: %s", b)
	}

	res := open
	res.State = "resolved"
	now := time.Now().UTC()
	res.ResolvedAt = &now
	p.Update([]detector.Incident{res})
	waitFor(t, "a resolved notification", 30*time.Second, func() bool { return find("resolved") != nil })
	if t.Failed() {
		t.Logf("alertmanager output:\n%s", out)
	}
}
