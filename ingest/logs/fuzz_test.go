package logs

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// seeds adds every line of a testdata file.
func seeds(f *testing.F, name string, add func(line []byte)) {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		add(l)
	}
}

// anyLine checks what holds for every input: no panic; an observation has
// a time and recipients; the same line through a fresh parser gives the
// same answer; and a chunk of several lines gives at most one observation
// per line, whatever the bytes in it.
func anyLine(t *testing.T, f Format, b []byte) {
	p := &Parser{Format: f, Location: time.UTC, Reference: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	o, err := p.Parse(b)
	if err == nil && (o.Time.IsZero() || len(o.Rcpt) == 0) {
		t.Fatalf("%q: observation without time or recipients: %+v", b, o)
	}
	q := &Parser{Format: f, Location: time.UTC, Reference: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	o2, err2 := q.Parse(b)
	if (err == nil) != (err2 == nil) || !o.Time.Equal(o2.Time) || !slices.Equal(o.Rcpt, o2.Rcpt) || o.Spam != o2.Spam {
		t.Fatalf("%q: not deterministic: %+v %v / %+v %v", b, o, err, o2, err2)
	}
	lines, obs := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	r := &Parser{Format: f, Location: time.UTC}
	for sc.Scan() {
		lines++
		if _, err := r.Parse(sc.Bytes()); err == nil {
			obs++
		}
	}
	if obs > lines {
		t.Fatalf("%q: %d observations from %d lines", b, obs, lines)
	}
}

// crafted checks that a field the sender controls (Message-ID, envelope
// sender, symbol options) cannot change a line's recipients or verdict:
// the line parses to exactly those, or it is refused (never ErrIgnored
// nor another observation).
func crafted(t *testing.T, f Format, line string, spam bool, rcpt []string) {
	p := &Parser{Format: f, Location: time.UTC, Reference: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	o, err := p.Parse([]byte(line))
	if errors.Is(err, ErrIgnored) {
		t.Fatalf("%q: ignored", line)
	}
	if err == nil && (o.Spam != spam || !slices.Equal(o.Rcpt, rcpt)) {
		t.Fatalf("%q: spam=%v rcpt=%q, want spam=%v rcpt=%q", line, o.Spam, o.Rcpt, spam, rcpt)
	}
}

// clean makes a value a log line can hold: one line (the log writer breaks
// none), no NUL.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

func FuzzRspamd(f *testing.F) {
	seeds(f, "testdata/rspamd.log", func(l []byte) { f.Add(l, "m@example.org", "x;", true) })
	f.Add([]byte("Dec  2 03:08:19 mx rspamd[1]: <a>; task; rspamd_task_write_log: spamsurge: action=<reject> score=<1/2> qid=<q> ip=<undef> rcpts=<a@b> from=<> mid=<x>"), "a> rcpts=<v@x> from=<", "", false)
	f.Add([]byte("x"), "x (default: F (no action): [0.00/15.00] []), len: 1, time: 1ms, dns req: 0, digest: <00000000000000000000000000000000> rcpts: <v@example.net>, ", "a, digest: <1> rcpts: <w@x>, ", true)
	f.Fuzz(func(t *testing.T, b []byte, mid, opt string, spam bool) {
		anyLine(t, Rspamd, b)
		mid, opt = clean(mid), clean(opt)
		act := "no action"
		if spam {
			act = "reject"
		}
		crafted(t, Rspamd, "2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: id: <"+mid+">, qid: <Q>, ip: 192.0.2.1, from: <s@example.org>, (default: F ("+act+"): [0.00/15.00] [SYM(1.00){"+opt+"}]), len: 161, time: 1ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <a@example.net,b@example.net>,  mime_rcpt: <"+opt+">, ",
			spam, []string{"a@example.net", "b@example.net"})
		crafted(t, Rspamd, "2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: spamsurge: action=<"+act+"> score=<0.00/15.00> qid=<Q> ip=<192.0.2.1> rcpts=<a@example.net,b@example.net> from=<"+opt+"> mid=<"+mid+">",
			spam, []string{"a@example.net", "b@example.net"})
	})
}

func FuzzAmavis(f *testing.F) {
	seeds(f, "testdata/amavis.log", func(l []byte) { f.Add(l, "s@example.org", "m@example.org", true) })
	f.Add([]byte("Dec  2 03:10:36 mx amavis[1]: (1-1) Passed SPAM {X}, <> -> <a>"), `"x -> <v@x>"@y`, "a>, Hits: 1", false)
	f.Fuzz(func(t *testing.T, b []byte, sender, mid string, spam bool) {
		anyLine(t, Amavis, b)
		sender, mid = clean(sender), clean(mid)
		// amavis writes the sender as an RFC 5321 path: a local part with
		// specials is quoted, and a quote or backslash in it escaped.
		if strings.ContainsAny(sender, `<>"\`) {
			sender = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(sender) + `"@example.org`
		}
		cat := "CLEAN"
		if spam {
			cat = "SPAM"
		}
		crafted(t, Amavis, "Dec  2 03:10:36 mx amavis[2411]: (02411-07) Passed "+cat+" {RelayedInbound}, [198.51.100.4]:41022 [198.51.100.4] <"+sender+"> -> <a@example.net>,<b@example.net>, Queue-ID: 4Xyz, Message-ID: <"+mid+">, mail_id: A1b2, Hits: -1.9, size: 2345, queued_as: 4Abc, 1234 ms",
			spam, []string{"a@example.net", "b@example.net"})
	})
}

func FuzzSpamd(f *testing.F) {
	seeds(f, "testdata/spamd.log", func(l []byte) { f.Add(l, "m@example.org", true) })
	f.Add([]byte("Dec  2 03:09:17 mx spamd[1]: spamd: result: Y 5 - A user=a,mid=x"), "x,user=v@example.net,autolearn=no", false)
	f.Fuzz(func(t *testing.T, b []byte, mid string, spam bool) {
		anyLine(t, Spamd, b)
		mid = clean(mid)
		flag := "."
		if spam {
			flag = "Y"
		}
		crafted(t, Spamd, "Wed Dec  2 03:09:17 2026 [28698] info: spamd: result: "+flag+" 12 - GTUBE scantime=0.1,size=161,user=bob+news@example.net,uid=65534,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=55570,mid=<"+mid+">,autolearn=no autolearn_force=no",
			spam, []string{"bob+news@example.net"})
	})
}

// FuzzStamp: a parsed stamp is a real time, and its rest is a suffix of
// the line.
func FuzzStamp(f *testing.F) {
	for _, s := range []string{"Dec  2 03:10:36 h x", "<22>1 2026-12-02T03:10:36.5+01:00 h", "2026-12-02T03:10:36+0100 h", "2026-12-02 03:10:36.250 #1", "Wed Dec  2 03:10:36 2026 [1]", "Feb 29 00:00:00 x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &Parser{Format: Amavis, Location: time.UTC}
		tm, rest, err := p.stamp(b)
		if err != nil {
			return
		}
		if tm.IsZero() || tm.Year() < 1970 || !bytes.HasSuffix(b, rest) {
			t.Fatalf("%q: %v, rest %q", b, tm, rest)
		}
	})
}
