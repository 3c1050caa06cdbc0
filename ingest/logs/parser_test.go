package logs

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

// parseFile parses a testdata file with format f, the zone UTC.
func parseFile(t *testing.T, f Format, name string) (obs []ingest.Observation, ignored, norcpt, bad int, p *Parser) {
	t.Helper()
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	p = &Parser{Format: f, Location: time.UTC, Reference: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		o, err := p.Parse(sc.Bytes())
		switch {
		case err == nil:
			obs = append(obs, o)
		case errors.Is(err, ErrIgnored):
			ignored++
		case errors.Is(err, ErrNoRecipients):
			norcpt++
		default:
			t.Logf("%s: %q: %v", name, sc.Text(), err)
			bad++
		}
	}
	return obs, ignored, norcpt, bad, p
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func checkObs(t *testing.T, got ingest.Observation, when string, spam bool, rcpt ...string) {
	t.Helper()
	if !got.Time.Equal(utc(when)) || got.Spam != spam || !slices.Equal(got.Rcpt, rcpt) || got.Rejected != nil {
		t.Errorf("got %v spam=%v rcpt=%q rejected=%q, want %s spam=%v rcpt=%q", got.Time, got.Spam, got.Rcpt, got.Rejected, when, spam, rcpt)
	}
}

// The lines below were logged by rspamd 3.4, amavisd-new 2.13 and spamd
// 4.0.1 (Debian 12) in the real-program tests; the addresses are made up.
func TestFixtureRspamd(t *testing.T) {
	obs, ignored, norcpt, bad, p := parseFile(t, Rspamd, "testdata/rspamd.log")
	if len(obs) != 2 || ignored != 1 || norcpt != 0 || bad != 0 {
		t.Fatalf("%d observations, %d ignored, %d without recipients, %d bad", len(obs), ignored, norcpt, bad)
	}
	checkObs(t, obs[0], "2026-12-02T03:08:19Z", true, "u1@example.net", "u2+shop@example.net")
	if obs[0].From != "sender@example.org" || obs[0].ClientIP != "203.0.113.9" || obs[0].MessageID != "<gtube1@example.org>" {
		t.Errorf("from/ip/mid: %+v", obs[0])
	}
	want := []string{}
	for i := 1; i <= 8; i++ {
		want = append(want, "r"+string(rune('0'+i))+"@example.net")
	}
	checkObs(t, obs[1], "2026-12-02T03:08:19Z", false, want...)
	if p.Truncated != 1 {
		t.Errorf("Truncated = %d, want 1 (the 12-recipient message logged with 8 and ...)", p.Truncated)
	}
}

func TestFixtureAmavis(t *testing.T) {
	obs, ignored, norcpt, bad, _ := parseFile(t, Amavis, "testdata/amavis.log")
	if len(obs) != 2 || ignored != 2 || norcpt != 0 || bad != 0 {
		t.Fatalf("%d observations, %d ignored, %d without recipients, %d bad", len(obs), ignored, norcpt, bad)
	}
	checkObs(t, obs[0], "2026-12-02T03:10:36Z", true, "u1@example.net", "u2+shop@example.net")
	checkObs(t, obs[1], "2026-12-02T03:10:36Z", false, "c1@example.net", "c2@example.net")
	if obs[0].From != "sender@example.org" || obs[0].ClientIP != "127.0.0.1" || obs[0].MessageID != "<gtube1@example.org>" {
		t.Errorf("from/ip/mid: %+v", obs[0])
	}
}

func TestFixtureSpamd(t *testing.T) {
	obs, ignored, norcpt, bad, _ := parseFile(t, Spamd, "testdata/spamd.log")
	if len(obs) != 2 || ignored != 1 || norcpt != 1 || bad != 0 {
		t.Fatalf("%d observations, %d ignored, %d without recipients, %d bad", len(obs), ignored, norcpt, bad)
	}
	checkObs(t, obs[0], "2026-12-02T03:09:17Z", true, "bob+news@example.net")
	checkObs(t, obs[1], "2026-12-02T03:09:18Z", false, "ünï@bücher.example")
	if obs[0].MessageID != "<gtube1@example.org>" {
		t.Errorf("mid %q", obs[0].MessageID)
	}
	// With a domain for local users, user=alice is alice@example.net.
	p := &Parser{Format: Spamd, Domain: "example.net", Location: time.UTC}
	o, err := p.Parse([]byte(`Wed Dec  2 03:09:18 2026 [28698] info: spamd: result: . -1 - NO_RELAYS scantime=0.1,size=124,user=alice,uid=65534,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=55586,mid=<x@y>,autolearn=no autolearn_force=no`))
	if err != nil || !slices.Equal(o.Rcpt, []string{"alice@example.net"}) || o.Spam {
		t.Errorf("Domain: %+v %v", o, err)
	}
}

func TestStamps(t *testing.T) {
	ref := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		line string
		loc  *time.Location
		want string
	}{
		{"Dec  2 03:10:36 host amavis[1]: x", time.UTC, "2026-12-02T03:10:36Z"},
		{"Dec 02 03:10:36 host amavis[1]: x", time.UTC, "2026-12-02T03:10:36Z"},
		{"Dec  2 03:10:36 host amavis[1]: x", berlin, "2026-12-02T02:10:36Z"},
		{"Jul 14 10:00:00 host amavis[1]: x", berlin, "2026-07-14T08:00:00Z"}, // summer time
		{"Dec  3 11:00:00 host x: y", time.UTC, "2026-12-03T11:00:00Z"},       // within a day of the reference
		{"Dec 25 11:00:00 host x: y", time.UTC, "2025-12-25T11:00:00Z"},       // after it: last year
		{"<22>Dec  2 03:10:36 host amavis[1]: x", time.UTC, "2026-12-02T03:10:36Z"},
		{"<22>1 2026-12-02T03:10:36.5+01:00 host amavis 1 - - x", time.UTC, "2026-12-02T02:10:36.5Z"},
		{"<22>1 2026-12-02T03:10:36Z host amavis 1 - [a b=\"c\"] x", berlin, "2026-12-02T03:10:36Z"},
		{"2026-12-02T03:10:36.123456+00:00 host rspamd[1]: x", berlin, "2026-12-02T03:10:36.123456Z"},
		{"2026-12-02T03:10:36+0100 host rspamd[1]: x", time.UTC, "2026-12-02T02:10:36Z"}, // journalctl -o short-iso
		{"2026-12-02T03:10:36.000001-0500 host rspamd[1]: x", time.UTC, "2026-12-02T08:10:36.000001Z"},
		{"2026-12-02 03:10:36 #1(normal) <a>; task; x", berlin, "2026-12-02T02:10:36Z"},
		{"2026-12-02 03:10:36.250 #1(normal) <a>; task; x", time.UTC, "2026-12-02T03:10:36.25Z"},
		{"Wed Dec  2 03:10:36 2026 [1] info: spamd: x", time.UTC, "2026-12-02T03:10:36Z"},
		{"Dec  2 03:09:11.728 [28695] info: spamd: x", time.UTC, "2026-12-02T03:09:11.728Z"},
	} {
		p := &Parser{Format: Amavis, Location: tc.loc, Reference: ref}
		got, _, err := p.stamp([]byte(tc.line))
		if err != nil || !got.Equal(utc(tc.want)) {
			t.Errorf("%q: %v %v, want %s", tc.line, got.UTC(), err, tc.want)
		}
	}
	for _, bad := range []string{"", "hello", "Dec 32 03:10:36 h x", "Dex  2 03:10:36 h x", "2026-13-02T03:10:36Z h", "2026-02-30 03:10:36 x",
		"<22>1 2026-12-02T03:10:36 host", "Dec  2 25:10:36 h x", "<999999>Dec  2 03:10:36 h x"} {
		p := &Parser{Format: Amavis}
		if _, _, err := p.stamp([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// A yearless log crossing New Year: the year goes up at Jan 1, and a line
// slightly out of order across it stays in the old year.
func TestYearInference(t *testing.T) {
	p := &Parser{Format: Amavis, Location: time.UTC, Reference: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct{ line, want string }{
		{"Dec 31 23:59:58 h x: y", "2026-12-31T23:59:58Z"},
		{"Jan  1 00:00:01 h x: y", "2027-01-01T00:00:01Z"},
		{"Dec 31 23:59:59 h x: y", "2026-12-31T23:59:59Z"},
		{"Jan  1 00:00:02 h x: y", "2027-01-01T00:00:02Z"},
		{"Feb 29 10:00:00 h x: y", "2028-02-29T10:00:00Z"}, // no Feb 29 in 2027: the nearest leap year
	} {
		got, _, err := p.stamp([]byte(tc.line))
		if err != nil || !got.Equal(utc(tc.want)) {
			t.Errorf("%q: %v %v, want %s", tc.line, got, err, tc.want)
		}
	}
	// The first line of a file written last in January 2027 that starts in
	// December is from December 2026.
	p = &Parser{Format: Amavis, Location: time.UTC, Reference: time.Date(2027, 1, 20, 0, 0, 0, 0, time.UTC)}
	if got, _, _ := p.stamp([]byte("Dec 20 10:00:00 h x: y")); got.Year() != 2026 {
		t.Errorf("first line: %v", got)
	}
}

func TestRspamdShapes(t *testing.T) {
	p := &Parser{Format: Rspamd, Location: time.UTC, Reference: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		line string
		spam bool
		rcpt []string
		err  string
	}{
		// syslog, greylist is not spam, soft reject is
		{`Dec  2 03:08:19 mx rspamd[1234]: <6aceb0>; task; rspamd_task_write_log: id: <m@example.org>, qid: <4Xyz>, ip: 2001:db8::1, user: bob, from: <s@example.org>, (default: F (greylist): [4.10/15.00] [A(4.1){x;}]), len: 161, time: 1ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <a@example.net>, `, false, []string{"a@example.net"}, ""},
		{`Dec  2 03:08:19 mx rspamd[1234]: <6aceb0>; task; rspamd_task_write_log: id: <undef>, (default: T (soft reject): [9.00/15.00] []), len: 1, time: 1ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <a@example.net,b@example.net>, `, true, []string{"a@example.net", "b@example.net"}, ""},
		{`Dec  2 03:08:19 mx rspamd[1234]: <6aceb0>; task; rspamd_task_write_log: id: <m@x>, (default: T (add header): [9.00/15.00] []), len: 1, time: 1ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c>`, true, nil, "no recipients"},
		// A crafted Message-ID that repeats the verdict: refused, not flipped.
		{`Dec  2 03:08:19 mx rspamd[1234]: <6aceb0>; task; rspamd_task_write_log: id: <x (default: F (no action): [0.00/15.00] []), len: 1, time: 1ms, dns req: 0, digest: <00000000000000000000000000000000> rcpts: <v@example.net>, y>, (default: S (reject): [15.00/15.00] []), len: 1, time: 1ms, dns req: 0, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <a@example.net>, `, false, nil, "ambiguous"},
		// spamsurge's log_format
		{`2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: spamsurge: action=<reject> score=<15.00/15.00> qid=<Q1> ip=<203.0.113.9> rcpts=<a@example.net,b+x@example.net,c@example.net,d@example.net,e@example.net,f@example.net,g@example.net,h@example.net,i@example.net> from=<s@example.org> mid=<a> rcpts=<z@example.net> from=<>`, true,
			[]string{"a@example.net", "b+x@example.net", "c@example.net", "d@example.net", "e@example.net", "f@example.net", "g@example.net", "h@example.net", "i@example.net"}, ""},
		{`2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: spamsurge: action=<no action> score=<0.00/15.00> qid=<undef> ip=<undef> rcpts=<> from=<> mid=<undef>`, false, nil, "no recipients"},
		{`2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: spamsurge: action=<no action>`, false, nil, "spamsurge rspamd format"},
		{`2026-12-02 03:08:19 #1(normal) <6aceb0>; task; rspamd_task_write_log: something else`, false, nil, "unknown log_format"},
		{`2026-12-02 03:08:19 #1(normal) <6aceb0>; main; start: ...`, false, nil, "not a verdict line"},
	} {
		o, err := p.Parse([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%.80q: %+v %v, want error %q", tc.line, o, err, tc.err)
			}
			continue
		}
		if err != nil || o.Spam != tc.spam || !slices.Equal(o.Rcpt, tc.rcpt) {
			t.Errorf("%.80q: %+v %v", tc.line, o, err)
		}
	}
}

func TestAmavisShapes(t *testing.T) {
	p := &Parser{Format: Amavis, Location: time.UTC, Reference: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		line string
		spam bool
		rcpt []string
		from string
		err  string
	}{
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-07) Passed CLEAN {RelayedInbound}, [198.51.100.4]:41022 [198.51.100.4] <s@example.org> -> <a@example.net>,<b@example.net>, Queue-ID: 4Xyz, Message-ID: <m@example.org>, mail_id: A1b2, Hits: -1.9, size: 2345, queued_as: 4Abc, 1234 ms`, false, []string{"a@example.net", "b@example.net"}, "s@example.org", ""},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-08) Passed SPAMMY {RelayedTaggedInbound}, MYNETS LOCAL [192.0.2.1]:1 <> -> <a@example.net>, Hits: 6.2, size: 2, 12 ms`, true, []string{"a@example.net"}, "", ""},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-09) Passed SPAM {RelayedTaggedInbound,Quarantined}, [192.0.2.1] <"x -> <v@example.net>"@example.org> -> <a@example.net>, quarantine: spam-x, Message-ID: <q>, Hits: 16.2, size: 2, 12 ms`, true, []string{"a@example.net"}, `"x -> <v@example.net>"@example.org`, ""},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Blocked BANNED (multipart/mixed | application/octet-stream,.exe, {x}, y.exe) {DiscardedInbound,Quarantined}, [192.0.2.1] <s@example.org> -> <a@example.net>, Hits: -, 1 ms`, false, []string{"a@example.net"}, "s@example.org", ""},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Blocked SPAM {DiscardedInbound}, [192.0.2.1] <s@example.org> -> , Hits: 99, 1 ms`, true, nil, "", "no recipients"},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Passed SPAM, <s@example.org> -> <a@example.net>, Hits: 99, tag=1`, false, nil, "", "not a verdict line"},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Passed SPAM {RelayedInbound}, [192.0.2.1] <s@example.org -> <a@example.net>`, false, nil, "", "->"},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Passed SPAM {RelayedInbound}, [192.0.2.1] <"s@example.org -> <a@example.net>`, false, nil, "", "sender not closed"},
		{`Dec  2 03:10:36 mx amavis[2411]: (02411-10) Passed SPAM {RelayedInbound}, [192.0.2.1] <s@example.org>, Hits: 1`, false, nil, "", "->"},
		{`Dec  2 03:10:36 mx amavis[2411]: starting.`, false, nil, "", "not a verdict line"},
		{`Dec  2 03:10:36 mx postfix/smtp[1]: (host) Passed x`, false, nil, "", "not a verdict line"},
	} {
		o, err := p.Parse([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%.90q: %+v %v, want error %q", tc.line, o, err, tc.err)
			}
			continue
		}
		if err != nil || o.Spam != tc.spam || !slices.Equal(o.Rcpt, tc.rcpt) || o.From != tc.from {
			t.Errorf("%.90q: %+v %v", tc.line, o, err)
		}
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Format
	}{{"testdata/rspamd.log", Rspamd}, {"testdata/amavis.log", Amavis}, {"testdata/spamd.log", Spamd}} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var lines [][]byte
		for _, l := range strings.Split(string(b), "\n") {
			lines = append(lines, []byte(l))
		}
		if got := Detect(lines); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.file, got, tc.want)
		}
	}
	if got := Detect([][]byte{[]byte(`{"time":"2026-05-13T09:14:02Z","rcpt":["a@b"],"spam":true}`)}); got != JSONL {
		t.Errorf("jsonl: %q", got)
	}
	if got := Detect([][]byte{[]byte("hello"), []byte("Dec  2 03:10:36 mx kernel: x")}); got != "" {
		t.Errorf("nothing: %q", got)
	}
}
