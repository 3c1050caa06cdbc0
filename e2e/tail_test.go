package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest/logs"
	"github.com/spamsurge/spamsurge/internal/testkit"
)

// serveOnly is a `spamsurge serve` without the proxy (smtp.listen "").
type serveOnly struct {
	*proc
	http string
	dir  string
}

// startServeOnly runs the binary with cfg (which must set http.listen to
// addr) and waits for its HTTP side.
func startServeOnly(t *testing.T, dir, addr, cfg string) *serveOnly {
	t.Helper()
	path := filepath.Join(dir, "spamsurge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &serveOnly{http: addr, dir: dir}
	s.proc = start(t, binary, "serve", "--config", path, "--log-level", "debug", "--log-format", "json")
	testkit.WaitListening(t, addr)
	return s
}

func (s *serveOnly) metric(t *testing.T, series string) float64 {
	t.Helper()
	return (&daemon{http: s.http}).metric(t, series)
}

// waitMetric waits (20 s at most) until series reads want, then checks
// it stays there a moment (a duplicate would follow closely).
func (s *serveOnly) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.metric(t, series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v\n%s", series, s.metric(t, series), want, s.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if got := s.metric(t, series); got != want {
		t.Fatalf("%s went on to %v, want %v", series, got, want)
	}
}

// stop ends the daemon with SIGTERM, as systemd does, and waits.
func (s *serveOnly) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("spamsurge serve: %v\n%s", err, s.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("spamsurge serve did not stop within 20 s of SIGTERM")
	}
}

// fixtureLine returns the line of ingest/logs/testdata/NAME that contains
// marker.
func fixtureLine(t *testing.T, name, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ingest", "logs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, marker) {
			return l
		}
	}
	t.Fatalf("%s: no line with %q", name, marker)
	return ""
}

// restamp gives an rspamd line the time at and the recipients rcpts.
func restamp(line string, at time.Time, rcpts []string) string {
	const stamp = "2006-01-02 15:04:05"
	line = at.Format(stamp) + line[len(stamp):]
	i := strings.Index(line, "rcpts: <")
	j := strings.Index(line[i:], ">")
	return line[:i] + "rcpts: <" + strings.Join(rcpts, ",") + line[i+j:] + "\n"
}

func appendFile(t *testing.T, path string, text ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(text, "")); err != nil {
		t.Fatal(err)
	}
}

// parseCounts is what the parser makes of a fixture, line by line, as the
// tailer counts it: parsed, skipped, invalid.
func parseCounts(t *testing.T, name string, f logs.Format) (parsed, skipped, invalid float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ingest", "logs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p := logs.Parser{Format: f, Reference: time.Now(), Domain: "example.net"}
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		_, err := p.Parse(l)
		switch {
		case err == nil:
			parsed++
		case errors.Is(err, logs.ErrIgnored), errors.Is(err, logs.ErrNoRecipients):
			skipped++
		default:
			invalid++
		}
	}
	return
}

// TestTailServe: `spamsurge serve` with the proxy off follows rspamd,
// amavisd-new and spamd logs (lines as the real programs logged them,
// ingest/logs/testdata). The rspamd log is backfilled: ham three hours
// ago makes its recipients established (warmup 1h), so the spam appended
// now is their first spam and spamsurge_first_spam_total moves. The log
// is rotated logrotate-style on the way, the daemon restarted with lines
// written while it was stopped, and killed: each line is counted once.
func TestTailServe(t *testing.T) {
	dir := t.TempDir()
	addr := testkit.FreePort(t)
	rspamdLog := filepath.Join(dir, "rspamd.log")
	amavisLog := filepath.Join(dir, "mail.log")
	spamdLog := filepath.Join(dir, "spamd.log")
	var rcpts []string
	for i := 1; i <= 8; i++ {
		rcpts = append(rcpts, fmt.Sprintf("r%d@example.net", i))
	}
	ham := fixtureLine(t, "rspamd.log", "(no action)")
	spam := fixtureLine(t, "rspamd.log", "(reject)")
	now := time.Now()
	appendFile(t, rspamdLog, restamp(ham, now.Add(-3*time.Hour), rcpts))
	appendFile(t, amavisLog, "") // followed from its end: nothing yet
	// spamd.log is absent at the start.
	cfg := fmt.Sprintf(`smtp:
  listen: ""
http:
  listen: %s
store:
  path: %s
detector:
  warmup: 1h
  learn: 0s
sources:
  tail:
    - {path: %s, format: rspamd, name: rspamd, backfill: true}
    - {path: %s, name: amavis}
    - {path: %s, format: spamd, name: spamd, domain: example.net}
`, addr, filepath.Join(dir, "data"), rspamdLog, amavisLog, spamdLog)
	d := startServeOnly(t, dir, addr, cfg)
	lines := func(src, result string) string {
		return fmt.Sprintf(`spamsurge_source_lines_total{result=%q,source=%q}`, result, src)
	}
	d.waitMetric(t, lines("rspamd", "parsed"), 1)
	if v := d.metric(t, `spamsurge_source_up{source="spamd"}`); v != 0 {
		t.Errorf("spamd.log is absent, source_up = %v", v)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz with the proxy off: %s", resp.Status)
	}

	// The first spam to the 8 established addresses.
	appendFile(t, rspamdLog, restamp(spam, time.Now(), rcpts))
	d.waitMetric(t, lines("rspamd", "parsed"), 2)
	d.waitMetric(t, "spamsurge_first_spam_total", 8)
	if lag := d.metric(t, `spamsurge_source_lag_seconds{source="rspamd"}`); lag < 0 || lag > 10 {
		t.Errorf("lag %v s for a line logged just now", lag)
	}

	// The other formats, as their programs logged them.
	b, _ := os.ReadFile(filepath.Join("..", "ingest", "logs", "testdata", "amavis.log"))
	appendFile(t, amavisLog, string(b))
	ap, as, ai := parseCounts(t, "amavis.log", logs.Amavis)
	d.waitMetric(t, lines("amavis", "parsed"), ap)
	if s, i := d.metric(t, lines("amavis", "skipped")), d.metric(t, lines("amavis", "invalid")); s != as || i != ai {
		t.Errorf("amavis skipped %v invalid %v, want %v %v", s, i, as, ai)
	}
	b, _ = os.ReadFile(filepath.Join("..", "ingest", "logs", "testdata", "spamd.log"))
	appendFile(t, spamdLog, string(b)) // appears now: read from its start
	sp, _, _ := parseCounts(t, "spamd.log", logs.Spamd)
	d.waitMetric(t, lines("spamd", "parsed"), sp)
	if v := d.metric(t, `spamsurge_source_up{source="spamd"}`); v != 1 {
		t.Errorf("spamd.log appeared, source_up = %v", v)
	}

	// logrotate: rename, create, the writer reopens.
	if err := os.Rename(rspamdLog, rspamdLog+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, rspamdLog, restamp(spam, time.Now(), []string{"n1@example.net"}))
	d.waitMetric(t, lines("rspamd", "parsed"), 3)
	if v := d.metric(t, `spamsurge_source_rotations_total{reason="rename",source="rspamd"}`); v != 1 {
		t.Errorf("rotations = %v", v)
	}

	// Stopped, two lines logged meanwhile, started again: exactly those
	// two are read (the counters start at 0 in the new process).
	d.stop(t)
	appendFile(t, rspamdLog, restamp(spam, time.Now(), []string{"n2@example.net"}), restamp(ham, time.Now(), []string{"n3@example.net"}))
	d = startServeOnly(t, dir, addr, cfg)
	d.waitMetric(t, lines("rspamd", "parsed"), 2)
	if v := d.metric(t, lines("amavis", "parsed")) + d.metric(t, lines("spamd", "parsed")); v != 0 {
		t.Errorf("after the restart, %v lines of the other logs were read again", v)
	}

	// Killed (kill -9) a while after its last line, so the commit with
	// the position was made (detector.flush_interval, 1s): the next run
	// reads only what came after.
	appendFile(t, rspamdLog, restamp(spam, time.Now(), []string{"n4@example.net"}))
	d.waitMetric(t, lines("rspamd", "parsed"), 3)
	time.Sleep(2500 * time.Millisecond)
	d.cmd.Process.Kill()
	d.cmd.Wait()
	appendFile(t, rspamdLog, restamp(spam, time.Now(), []string{"n5@example.net"}), restamp(ham, time.Now(), []string{"n6@example.net"}))
	d = startServeOnly(t, dir, addr, cfg)
	d.waitMetric(t, lines("rspamd", "parsed"), 2)
	for _, l := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(l, "@example.net") {
			t.Errorf("an address in the log: %s", l)
		}
	}
}
