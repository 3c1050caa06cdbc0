package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReplayReport: replay --report on a simulated leak writes one page
// that names the incidents the --json lines opened, with their times, and
// holds no address; the replay's own output is unchanged by it.
func TestReplayReport(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a simulated scenario")
	}
	dir := t.TempDir()
	stream, _ := simulated(t, dir, "plusnet", 20000)
	page := filepath.Join(dir, "report.html")
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--dry-run", "--json", "--report", page, stream}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	opened := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev struct {
			Event     string    `json:"event"`
			ID        string    `json:"id"`
			StartedAt time.Time `json:"started_at"`
			OpenedAt  time.Time `json:"opened_at"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("--json line %q: %v", line, err)
		}
		if ev.Event != "opened" {
			continue
		}
		opened++
		for _, want := range []string{ev.ID, ev.StartedAt.UTC().Format("2006-01-02 15:04Z"), ev.OpenedAt.UTC().Format("2006-01-02 15:04Z")} {
			if !strings.Contains(html, want) {
				t.Errorf("report lacks %q of incident %s", want, ev.ID)
			}
		}
	}
	if opened == 0 {
		t.Fatalf("plusnet opened no incident: %s", errb.String())
	}
	if n := strings.Count(html, "<svg "); n != 2+opened {
		t.Errorf("%d charts for %d incidents", n, opened)
	}
	if a := regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+`).FindString(html); a != "" {
		t.Errorf("report holds an address: %q", a)
	}
	if !strings.Contains(errb.String(), "  report: "+page+" (") {
		t.Errorf("no report line on stderr: %s", errb.String())
	}
	t.Logf("%d bytes, %d incidents opened", len(b), opened)
}

// TestReplayReportBadInput: garbage in makes a report all the same (it
// says what was read), and a report path that cannot be written fails
// before the replay, leaving nothing behind.
func TestReplayReportBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.jsonl")
	os.WriteFile(junk, []byte("not json\n{\"time\":\"2026-03-02T00:00:00Z\",\"rcpt\":[\"a@example.net\"],\"spam\":false}\n\x00\xff\n"), 0o644)
	page := filepath.Join(dir, "r.html")
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--dry-run", "--quiet", "--report", page, junk}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "No complete hour replayed.") || !strings.Contains(s, "2 malformed skipped") || strings.Contains(s, "example.net") {
		t.Errorf("report of junk:\n%s", s)
	}
	errb.Reset()
	if code := run([]string{"replay", "--dry-run", "--report", filepath.Join(dir, "no", "r.html"), junk}, &out, &errb); code != 1 ||
		!strings.HasPrefix(errb.String(), "spamsurge replay: --report: ") || strings.Contains(errb.String(), "replay: 3 lines") {
		t.Errorf("unwritable --report: exit %d: %s", code, errb.String())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}
