package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/ingest/logs"
	"github.com/spamsurge/spamsurge/sim"
)

// Lines the real programs logged: ingest/logs/testdata (rspamd 3.4,
// amavisd-new 2.13) and docs/logs.md (the same Debian 12 programs).
func realLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "ingest", "logs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

var (
	reStampRspamd = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d `)
	reStampSyslog = regexp.MustCompile(`^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ (/usr/sbin/amavisd|amavis)\[`)
	reAngles      = regexp.MustCompile(`<[^<>]*>`)
	reList        = regexp.MustCompile(`<>(,<>)+`)
	reBrackets    = regexp.MustCompile(`\[[^\[\]]*\]`)
	reAction      = regexp.MustCompile(`\(default: [TFS] \((reject|add header|no action|soft reject|rewrite subject|greylist)\)`)
	reOurAction   = regexp.MustCompile(`action=<[^<>]*>`)
	reMailID      = regexp.MustCompile(`mail_id: [^,]+,`)
	reQueued      = regexp.MustCompile(`queued_as: [^,]+,`)
	reIP          = regexp.MustCompile(`, ip: [0-9A-Fa-f:.]+,`)
	reNumber      = regexp.MustCompile(`-?\d+(\.\d+)?`)
)

// skeleton is a line's shape: what varies between two real lines of the
// same kind (stamps, addresses, ids, numbers, scores and symbols) is
// replaced, what the program always writes stays.
func skeleton(l string) string {
	l = reStampRspamd.ReplaceAllString(l, "STAMP ")
	l = reStampSyslog.ReplaceAllString(l, "STAMP HOST amavis[")
	l = reAction.ReplaceAllString(l, "(default: L (ACTION)")
	l = reOurAction.ReplaceAllString(l, "action=<ACTION>")
	l = reMailID.ReplaceAllString(l, "mail_id: X,")
	l = reQueued.ReplaceAllString(l, "queued_as: X,")
	l = reIP.ReplaceAllString(l, ", ip: IP,")
	l = reAngles.ReplaceAllString(l, "<>")
	l = reList.ReplaceAllString(l, "<>")
	for reBrackets.MatchString(l) {
		l = reBrackets.ReplaceAllString(l, "()")
	}
	// amavisd-new's log template leaves out what is unknown:
	// [?%a||[?%l||LOCAL ]\[%a\] ] and [?%m||, Message-ID: %m].
	l = strings.Replace(l, ", Message-ID: <>", "", 1)
	l = strings.Replace(l, "}, () <", "}, <", 1)
	return reNumber.ReplaceAllString(l, "0")
}

// references are the real lines of each kind the renderer writes.
func references(t *testing.T) map[string][]string {
	rs := realLines(t, "rspamd.log")
	am := realLines(t, "amavis.log")
	// docs/logs.md
	ours := `2026-12-02 04:22:43 #5170(normal) <cf6c10>; task; rspamd_task_write_log: spamsurge: action=<reject> score=<15.00/15.00> qid=<Qspam1> ip=<203.0.113.9> rcpts=<u1@example.net,u2+shop@example.net> from=<sender@example.org> mid=<spam1@example.org>`
	spammy := `Dec  2 04:22:46 amavis.test /usr/sbin/amavisd[5172]: (05172-05) Passed SPAMMY {RelayedTaggedInbound}, [127.0.0.1] <sender@example.org> -> <s@spammy.example.net>, Message-ID: <spammy1@example.org>, mail_id: isisrD3MEV6f, Hits: -0.002, size: 287, queued_as: SINK67067, 84 ms`
	clean := strings.Replace(spammy, "SPAMMY {RelayedTaggedInbound}", "CLEAN {RelayedInbound}", 1)
	return map[string][]string{
		fmtRspamd:     {rs[1], rs[2]}, // spam with ip; clean without, over 8 recipients
		fmtRspamdOurs: {ours},
		fmtAmavis: {
			am[0], // Blocked SPAM {DiscardedInbound}
			strings.Replace(spammy, "SPAMMY", "SPAM", 1), // Passed SPAM {RelayedTaggedInbound}
			clean, // Passed CLEAN {RelayedInbound}
		},
	}
}

// stream is a small simulated month and a half (every kind of line) and the
// observations the logs cannot hold as they are.
func stream(t *testing.T) []ingest.Observation {
	t.Helper()
	var b bytes.Buffer
	if _, err := sim.Run(sim.Config{Scenario: "drip", Seed: 3, Addresses: 1500}, &b); err != nil {
		t.Fatal(err)
	}
	var obs []ingest.Observation
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	end := obs[len(obs)-1].Time
	var many []string
	for i := 0; i < 12; i++ {
		many = append(many, fmt.Sprintf("list%02d@example.net", i))
	}
	obs = append(obs,
		ingest.Observation{Time: end.Add(time.Second), Rcpt: []string{"local@example.net"}, Spam: false, From: "cron@example.net"},   // no ip, no Message-ID
		ingest.Observation{Time: end.Add(2 * time.Second), Rcpt: many, Spam: true, From: "x@spam.example", ClientIP: "198.51.100.7"}, // over 8
		ingest.Observation{Time: end.Add(3 * time.Second), Rejected: []string{"ghost@example.net"}, Spam: true},                      // no line
		ingest.Observation{Time: end.Add(4 * time.Second), Rcpt: []string{"a+tag@example.org"}, Spam: true, From: "b@x.example", ClientIP: "2001:db8::7", MessageID: "<m1@mx.example>"},
	)
	return obs
}

func render(t *testing.T, format string, obs []ingest.Observation) ([]string, *renderer) {
	t.Helper()
	var b bytes.Buffer
	r, err := newRenderer(format, &b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range obs {
		if err := r.write(&obs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n"), r
}

// TestLinesShapedLikeTheRealOnes: every line rendered has the shape of a
// real line of its kind, and every kind is written.
func TestLinesShapedLikeTheRealOnes(t *testing.T) {
	obs := stream(t)
	for format, refs := range references(t) {
		want := map[string]int{}
		for _, l := range refs {
			want[skeleton(l)] = 0
		}
		lines, _ := render(t, format, obs)
		for _, l := range lines {
			s := skeleton(l)
			if _, ok := want[s]; !ok {
				t.Fatalf("%s: line\n  %s\nshaped\n  %s\nlike no real line:\n  %s", format, l, s, strings.Join(slices.Collect(mapsKeys(want)), "\n  "))
			}
			want[s]++
		}
		for s, n := range want {
			if n == 0 {
				t.Errorf("%s: no line shaped like the real\n  %s", format, s)
			}
		}
		t.Logf("%s: %d lines, shapes %v", format, len(lines), want)
	}
}

func mapsKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestParsedBack: ingest/logs reads every rendered line back as the
// observation it came from (to the second), but for what the log cannot
// hold: the subject, and the refused recipients (such an observation has no
// line); rspamd's default format keeps 8 recipients.
func TestParsedBack(t *testing.T) {
	obs := stream(t)
	for _, format := range formats {
		lines, r := render(t, format, obs)
		pf := logs.Rspamd
		if format == fmtAmavis {
			pf = logs.Amavis
		}
		if got := logs.Detect(toBytes(lines[:min(2000, len(lines))])); got != pf {
			t.Errorf("%s: detected as %q", format, got)
		}
		p := logs.NewParser(pf)
		p.Location, p.Reference = time.UTC, r.Last
		var want []ingest.Observation
		for _, o := range obs {
			if len(o.Rcpt) > 0 {
				want = append(want, o)
			}
		}
		if len(lines) != len(want) || r.Skipped != 1 {
			t.Fatalf("%s: %d lines for %d observations with recipients (%d skipped)", format, len(lines), len(want), r.Skipped)
		}
		spam := 0
		for i, l := range lines {
			got, err := p.Parse([]byte(l))
			if err != nil {
				t.Fatalf("%s: line %d %q: %v", format, i+1, l, err)
			}
			w := want[i]
			rc := w.Rcpt
			if format == fmtRspamd && len(rc) > 8 {
				rc = rc[:8]
			}
			if !got.Time.Equal(w.Time.Truncate(time.Second)) || got.Spam != w.Spam || !slices.Equal(got.Rcpt, rc) ||
				got.From != w.From || got.ClientIP != w.ClientIP || got.MessageID != w.MessageID {
				t.Fatalf("%s: line %d\n  %s\nread as %+v\nfrom     %+v", format, i+1, l, got, w)
			}
			if got.Spam {
				spam++
			}
		}
		if wantTrunc := map[bool]int{true: 1, false: 0}[format == fmtRspamd]; p.Truncated != wantTrunc {
			t.Errorf("%s: %d shortened lists", format, p.Truncated)
		}
		t.Logf("%s: %d lines read back, %d spam", format, len(lines), spam)
	}
}

func toBytes(ls []string) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		out[i] = []byte(l)
	}
	return out
}

// TestRunWritesGzipDatedLikeItsLastLine: -o FILE.gz is gzip, its
// modification time its last line's; malformed input lines are skipped.
func TestRunWritesGzipDatedLikeItsLastLine(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"time":"2026-03-02T10:00:00Z","rcpt":["a@example.net"],"spam":true,"from":"s@x.example","client_ip":"192.0.2.1"}
not json
{"time":"2026-03-03T11:30:00Z","rcpt":["b@example.net"],"spam":false}
`), 0o644)
	out := filepath.Join(dir, "mail.log.gz")
	if err := run(fmtAmavis, out, []string{in}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 3, 11, 30, 0, 0, time.UTC); !fi.ModTime().Equal(want) {
		t.Errorf("mtime %s, want %s", fi.ModTime(), want)
	}
	f, _ := os.Open(out)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(zr)
	if n := strings.Count(b.String(), "\n"); n != 2 || !strings.HasPrefix(b.String(), "Mar  2 10:00:00 mx1 amavis[") {
		t.Errorf("wrote %d lines:\n%s", n, b.String())
	}
	if err := run("postfix", filepath.Join(dir, "x"), []string{in}); err == nil {
		t.Error("unknown format accepted")
	}
}
