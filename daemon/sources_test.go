package daemon_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
)

// metric reads one series from /metrics ("" when it is not exported).
func metric(t *testing.T, base, series string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}

// waitMetric waits (10 s at most) for series to read want, and then
// checks it stays there a moment (a duplicate would follow closely).
func waitMetric(t *testing.T, base, series, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, base, series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %s", series, metric(t, base, series), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := metric(t, base, series); got != want {
		t.Fatalf("%s went on to %s, want %s", series, got, want)
	}
}

// rspamdLine is a task line as rspamd 3.4 logs it, stamped now.
func rspamdLine(i int) string {
	return fmt.Sprintf("%s #28563(normal) <6aceb0>; task; rspamd_task_write_log: id: <m%d@example.org>, qid: <QID%d>, ip: 203.0.113.9, from: <sender@example.org>, (default: S (reject): [15.00/15.00] [GTUBE(0.00){}]), len: 161, time: 115.123ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <u%d@example.net>,  mime_rcpt: <b@example.net>, \n",
		time.Now().Format("2006-01-02 15:04:05"), i, i, i)
}

func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i <= to; i++ {
		f.WriteString(rspamdLine(i))
	}
}

// With smtp.listen "" the daemon is a log tailer: no proxy, /readyz
// ready without a next hop, every appended verdict line parsed once; a
// restart resumes at the position committed with the detector's state, so
// the lines written while it was stopped are counted and none twice.
func TestTailOnlyResumesExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "rspamd.log")
	appendLines(t, logf, 1, 2) // history: a first run starts after it
	cfg := testConfig(t, dir)
	cfg.SMTP.Listen = ""
	cfg.Sources.Tail = []config.TailSource{{Path: logf, Format: "rspamd", Name: "rspamd"}}
	base := "http://" + cfg.HTTP.Listen
	parsed := `spamsurge_source_lines_total{result="parsed",source="rspamd"}`

	w, stop := start(t, daemon.Options{Config: cfg, Registerer: prometheus.NewRegistry()})
	w.Wait(t, "following")
	if got := metric(t, base, "spamsurge_source_up{source=\"rspamd\"}"); got != "1" {
		t.Errorf("source_up = %q", got)
	}
	if got := metric(t, base, `spamsurge_messages_total{result="relayed"}`); got != "" {
		t.Errorf("the proxy is off, yet spamsurge_messages_total is exported")
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz without a proxy: %s", resp.Status)
	}
	appendLines(t, logf, 3, 5)
	waitMetric(t, base, parsed, "3")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	appendLines(t, logf, 6, 7) // while stopped
	w, _ = start(t, daemon.Options{Config: cfg, Registerer: prometheus.NewRegistry()})
	w.Wait(t, "resuming")
	waitMetric(t, base, parsed, "2")
	appendLines(t, logf, 8, 8)
	waitMetric(t, base, parsed, "3")
	if got := metric(t, base, `spamsurge_source_lines_total{result="invalid",source="rspamd"}`); got != "0" {
		t.Errorf("invalid = %s", got)
	}
}
