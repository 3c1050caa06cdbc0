package e2e

import (
	"encoding/json"
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

// history writes 30 days of mail for n addresses ending now: every address
// gets ham daily, the first half also gets spam. The other half is "at
// risk": established and never spammed.
func history(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now().UTC().Add(-30 * 24 * time.Hour)
	for day := 0; day < 30; day++ {
		for i := 0; i < n; i++ {
			at := start.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*time.Second)
			fmt.Fprintf(f, `{"time":%q,"rcpt":["user%04d@isp.example"],"spam":false,"from":"friend@example.org"}`+"\n", at.Format(time.RFC3339), i)
			if i < n/2 && day%3 == 0 {
				fmt.Fprintf(f, `{"time":%q,"rcpt":["user%04d@isp.example"],"spam":true,"from":"x@bulk.example","subject":"offer"}`+"\n", at.Add(time.Minute).Format(time.RFC3339), i)
			}
		}
	}
	return path
}

func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := need(t, "prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
	dir := t.TempDir()
	cfg := "route:\n  receiver: none\nreceivers:\n  - name: none\n"
	testkit.WriteFile(t, dir, "am.yml", cfg)
	addr := testkit.FreePort(t)
	start(t, bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	testkit.WaitListening(t, addr)
	return addr
}

// On-call, end to end with the real binary: history bootstrapped with
// `spamsurge replay`, then a leak fed through the API, an incident opened,
// listed by the API behind its token, and pushed to a real Alertmanager.
func TestLeakToAlertmanagerThroughTheRealBinary(t *testing.T) {
	am := startAlertmanager(t)
	sk := startSink(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("t0ps3cret\n"), 0o600)

	d := &daemon{smtp: testkit.FreePort(t), http: testkit.FreePort(t), dir: dir}
	cfgPath := filepath.Join(dir, "spamsurge.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`smtp: {listen: %s}
downstream: {address: %s}
http: {listen: %s, token_file: %s}
store: {path: %s}
alerting: {alertmanager_url: "http://%s"}
`, d.smtp, sk.addr, d.http, token, filepath.Join(dir, "data"), am)), 0o600)

	out, err := exec.Command(binary, "replay", "--config", cfgPath, history(t, 400)).CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	d.proc = start(t, binary, "serve", "--config", cfgPath)
	testkit.WaitListening(t, d.http)
	base := "http://" + d.http

	call := func(method, path, tok, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := call("GET", "/api/v1/incidents", "", ""); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := call("GET", "/api/v1/incidents", "wrong", ""); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, body := call("POST", "/api/v1/observations", "t0ps3cret", "{bad\n"); code != 400 || !strings.Contains(body, `"line": 1`) {
		t.Errorf("bad JSONL: %d %s", code, body)
	}
	if code, _ := call("POST", "/api/v1/observations", "t0ps3cret", strings.Repeat("x", 17<<20)); code != 413 {
		t.Errorf("huge body: %d, want 413", code)
	}

	// The leak: 60 never-spammed, established addresses get their first
	// spam within a minute, from one campaign.
	var leak strings.Builder
	now := time.Now().UTC()
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&leak, `{"time":%q,"rcpt":["user%04d@isp.example"],"spam":true,"from":"promo@leak.example","client_ip":"198.51.100.7","subject":"Your invoice","message_id":"<%d@leak.example>"}`+"\n",
			now.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 200+i, i)
	}
	if code, body := call("POST", "/api/v1/observations", "t0ps3cret", leak.String()); code != 202 {
		t.Fatalf("posting the leak: %d %s", code, body)
	}

	var id string
	deadline := time.Now().Add(20 * time.Second)
	for id == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no surge incident opened; daemon log:\n%s", d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
		_, body := call("GET", "/api/v1/incidents?state=open", "t0ps3cret", "")
		var list struct {
			Incidents []struct {
				ID, Kind string
			} `json:"incidents"`
		}
		json.Unmarshal([]byte(body), &list)
		for _, in := range list.Incidents {
			if in.Kind == "surge" {
				id = in.ID
			}
		}
	}
	code, body := call("GET", "/api/v1/incidents/"+id+"/recipients", "t0ps3cret", "")
	if code != 200 || strings.Count(body, "\n") < 15 || strings.Contains(body, "@") {
		t.Errorf("recipients: %d %q", code, body)
	}

	// Alertmanager has it, with labels and annotations.
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + am + "/api/v2/alerts")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s := string(b)
			if strings.Contains(s, id) {
				for _, want := range []string{`"alertname":"SpamSurgeLeakSuspected"`, `"severity":"critical"`, "leak.example", "runbook_url"} {
					if !strings.Contains(s, want) {
						t.Errorf("alert lacks %s: %s", want, s)
					}
				}
				if strings.Contains(s, "user0") {
					t.Errorf("an address reached Alertmanager: %s", s)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the incident never reached Alertmanager; daemon log:\n%s", d.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// One log line per incident event, without addresses.
	if !strings.Contains(d.out.String(), id) || strings.Contains(d.out.String(), "@isp.example") {
		t.Errorf("daemon log: want the incident id and no address:\n%s", d.out.String())
	}
	if v := d.metric(t, `spamsurge_incident_active{kind="surge"}`); v != 1 {
		t.Errorf("spamsurge_incident_active{kind=surge} = %v", v)
	}
}
