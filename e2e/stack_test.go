package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// The compose stack's wiring without Docker (no engine runs here): the
// shipped deploy/prometheus/prometheus.yml and rules.yml, with the compose
// service names replaced by loopback addresses, run by a real Prometheus
// that scrapes the real daemon and sends to a real Alertmanager. A leak
// opens an incident; Alertmanager then shows both the daemon's own alert
// and Prometheus' rule alert.
func TestStackPrometheusScrapesAndAlertmanagerShowsTheAlert(t *testing.T) {
	prom := need(t, "prometheus", "/usr/bin/prometheus")
	am := startAlertmanager(t)
	sk := startSink(t)
	dir := t.TempDir()

	d := &daemon{smtp: testkit.FreePort(t), http: testkit.FreePort(t), dir: dir}
	cfgPath := filepath.Join(dir, "spamsurge.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`smtp: {listen: %s}
downstream: {address: %s}
http: {listen: %s}
store: {path: %s}
alerting: {alertmanager_url: "http://%s"}
`, d.smtp, sk.addr, d.http, filepath.Join(dir, "data"), am)), 0o600)
	if out, err := exec.Command(binary, "replay", "--config", cfgPath, history(t, 400)).CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	d.proc = start(t, binary, "serve", "--config", cfgPath)
	testkit.WaitListening(t, d.http)

	// The shipped Prometheus config, pointed at loopback and sped up.
	shipped, err := os.ReadFile("../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := testkit.FreePort(t)
	pcfg := strings.NewReplacer(
		"spamsurge:9464", d.http, "alertmanager:9093", am, "localhost:9090", promAddr,
		"scrape_interval: 15s", "scrape_interval: 1s", "evaluation_interval: 15s", "evaluation_interval: 1s",
	).Replace(string(shipped))
	if pcfg == string(shipped) || strings.Contains(pcfg, "spamsurge:9464") {
		t.Fatal("deploy/prometheus/prometheus.yml changed shape; update this test")
	}
	rules, err := os.ReadFile("../deploy/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	pdir := t.TempDir()
	testkit.WriteFile(t, pdir, "prometheus.yml", pcfg)
	testkit.WriteFile(t, pdir, "rules.yml", string(rules))
	start(t, prom, "--config.file="+filepath.Join(pdir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(pdir, "tsdb"),
		"--web.listen-address="+promAddr)
	testkit.WaitListening(t, promAddr)

	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitUntil := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	// Prometheus scrapes spamsurge.
	waitUntil("Prometheus to scrape spamsurge", func() bool {
		return strings.Contains(get("http://"+promAddr+"/api/v1/query?query=up%7Bjob%3D%22spamsurge%22%7D"), `"value":[`) &&
			strings.Contains(get("http://"+promAddr+"/api/v1/query?query=spamsurge_recipients_at_risk"), `"value":[`)
	})

	// The leak, fed through the API as in the on-call test.
	var leak strings.Builder
	now := time.Now().UTC()
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&leak, `{"time":%q,"rcpt":["user%04d@isp.example"],"spam":true,"from":"promo@leak.example","client_ip":"198.51.100.7","subject":"Your invoice"}`+"\n",
			now.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 200+i)
	}
	resp, err := http.Post("http://"+d.http+"/api/v1/observations", "application/x-ndjson", strings.NewReader(leak.String()))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("posting the leak: %v %v", err, resp)
	}
	resp.Body.Close()

	// Alertmanager shows the daemon's alert and Prometheus' rule alert.
	waitUntil("both alerts at Alertmanager", func() bool {
		s := get("http://" + am + "/api/v2/alerts")
		return strings.Contains(s, `"alertname":"SpamSurgeLeakSuspected"`) && strings.Contains(s, `"alertname":"SpamSurgeIncidentOpen"`)
	})
}
