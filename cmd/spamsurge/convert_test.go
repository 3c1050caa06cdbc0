package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/spamsurge/spamsurge/ingest"
)

// rotated writes an amavis log rotated three times: mail.log.2.zst (Nov
// 30), mail.log.1.gz (Dec 1, crossing nothing), mail.log (Dec 2).
func rotated(t *testing.T) (dir string, names []string) {
	dir = t.TempDir()
	b, err := os.ReadFile("../../ingest/logs/testdata/amavis.log")
	if err != nil {
		t.Fatal(err)
	}
	day := func(d string) []byte { return bytes.ReplaceAll(b, []byte("Dec  2"), []byte(d)) }
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(day("Dec  1"))
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(day("Nov 30"))
	ze.Close()
	files := map[string][]byte{"mail.log": b, "mail.log.1.gz": gz.Bytes(), "mail.log.2.zst": zs.Bytes(), "cut.log.gz": gz.Bytes()[:gz.Len()-40]}
	mtime := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for n, c := range files {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
	}
	// Given newest first: convert puts them in time order.
	return dir, []string{filepath.Join(dir, "mail.log"), filepath.Join(dir, "mail.log.1.gz"), filepath.Join(dir, "mail.log.2.zst")}
}

func TestConvertRotatedLogs(t *testing.T) {
	dir, names := rotated(t)
	var out, errb bytes.Buffer
	if code := run(append([]string{"convert", "--tz", "UTC"}, names...), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s\n%s", len(lines), out.String(), errb.String())
	}
	var prev time.Time
	for i, l := range lines {
		o, err := ingest.Parse([]byte(l))
		if err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if o.Time.Before(prev) {
			t.Errorf("line %d: %v before %v: not in time order", i, o.Time, prev)
		}
		prev = o.Time
		if wantSpam := i%2 == 0; o.Spam != wantSpam || len(o.Rcpt) != 2 {
			t.Errorf("line %d: %+v", i, o)
		}
	}
	if !strings.HasPrefix(lines[0], `{"time":"2026-11-30T03:10:36Z","rcpt":["u1@example.net","u2+shop@example.net"],"spam":true`) {
		t.Errorf("first line %s", lines[0])
	}
	if s := errb.String(); !strings.Contains(s, "mail.log.2.zst (amavis), "+dir+"/mail.log.1.gz (amavis), "+dir+"/mail.log (amavis): 12 lines, 6 observations (12 recipients)") ||
		!strings.Contains(s, "6 other log lines ignored, 0 verdict lines without recipients skipped, 0 malformed lines skipped") {
		t.Errorf("summary:\n%s", s)
	}
}

func TestConvertTruncatedGzip(t *testing.T) {
	dir, _ := rotated(t)
	var out, errb bytes.Buffer
	if code := run([]string{"convert", "--tz", "UTC", "--format", "amavis", filepath.Join(dir, "cut.log.gz"), filepath.Join(dir, "mail.log")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := errb.String()
	if !strings.Contains(s, "cut.log.gz: read error after ") || !strings.Contains(s, "unexpected EOF; going on with the next file") ||
		!strings.Contains(s, "1 files ended in a read error") {
		t.Errorf("stderr:\n%s", s)
	}
	// The file after it is read whole.
	if n := strings.Count(out.String(), `"time":"2026-12-02T03:10:36Z"`); n != 2 {
		t.Errorf("%d observations of mail.log:\n%s", n, out.String())
	}
}

func TestConvertBadInput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "spamd.log")
	os.WriteFile(p, []byte("Wed Dec  2 03:09:17 2026 [1] info: spamd: result: Y 9 - GTUBE scantime=0.1,user=a@example.net,uid=1,mid=<m@x>,autolearn=no\n"+
		"Wed Dec  2 03:09:18 2026 [1] info: spamd: result: Q broken\n"+
		"garbage without a stamp\n"+
		"Wed Dec  2 03:09:19 2026 [1] info: spamd: result: . 0 - X scantime=0.1,user=alice,uid=1,mid=<n@x>,autolearn=no\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"convert", "--tz", "UTC", p}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := errb.String()
	for _, want := range []string{"1 observations (1 recipients)", "1 verdict lines without recipients skipped, 2 malformed lines skipped",
		"malformed: " + p + ":2: spamd result not", "malformed: " + p + ":3: no timestamp"} {
		if !strings.Contains(s, want) {
			t.Errorf("stderr lacks %q:\n%s", want, s)
		}
	}
	if code := run([]string{"convert", "--format", "postfix", p}, &out, &errb); code != 2 {
		t.Errorf("--format postfix: exit %d", code)
	}
	os.WriteFile(p, []byte("hello\n"), 0o644)
	errb.Reset()
	if code := run([]string{"convert", p}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "give --format") {
		t.Errorf("undetectable: exit %d: %s", code, errb.String())
	}
}

func TestReplayLogs(t *testing.T) {
	_, names := rotated(t)
	var out, errb bytes.Buffer
	if code := run(append([]string{"replay", "--dry-run", "--tz", "UTC"}, names...), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := errb.String()
	if !strings.Contains(s, "replay: 12 lines, 6 observations (12 recipients), 0 malformed, 2026-11-30T03:10:36Z to 2026-12-02T03:10:36Z") ||
		!strings.Contains(s, "files, oldest first: ") || !strings.Contains(s, "6 other log lines ignored") {
		t.Errorf("summary:\n%s", s)
	}
}
