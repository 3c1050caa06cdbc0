package verdict

import (
	"bytes"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/internal/mimeword"
)

// scan feeds msg in one Write and returns the Result.
func scan(t testing.TB, c *Classifier, msg string, bound int) Result {
	t.Helper()
	s := c.NewScanner(bound)
	if n, err := s.Write([]byte(msg)); n != len(msg) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(msg))
	}
	r := s.Result()
	if s.failed != nil {
		t.Fatalf("scanner recovered a panic: %v", s.failed)
	}
	// Verdict is the same without From and Subject, and either may come
	// first; Subject is RawSubject decoded.
	v, want := s.Verdict(), r
	want.From, want.Subject = "", ""
	if v != want {
		t.Fatalf("Verdict() = %+v, want Result() without From and Subject: %+v", v, want)
	}
	if d := mimeword.Subject(r.RawSubject); r.Subject != d {
		t.Fatalf("Subject %q, RawSubject %q decodes to %q", r.Subject, r.RawSubject, d)
	}
	if again := s.Result(); again != r {
		t.Fatalf("Result() after Verdict() = %+v, want %+v", again, r)
	}
	return r
}

func mustNew(t testing.TB, extra ...config.VerdictRule) *Classifier {
	t.Helper()
	c, err := New(extra)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func threshold(f float64) *float64 { return &f }

// crlf turns a readable "\n" message into the wire form.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const body = "\nHello,\nX-Spam-Flag: YES\nthis line is body, not header.\n"

func TestDefaultRules(t *testing.T) {
	c := mustNew(t)
	tests := []struct {
		name   string
		header string
		spam   bool
		rule   string
	}{
		{"none", "Subject: hi\n", false, ""},
		{"flag", "X-Spam-Flag: YES\n", true, "X-Spam-Flag"},
		{"flag lower", "x-spam-flag: yes\n", true, "X-Spam-Flag"},
		{"flag upper name no space", "X-SPAM-FLAG:YES\n", true, "X-Spam-Flag"},
		{"flag spaces", "X-Spam-Flag: \t  YES  \t\n", true, "X-Spam-Flag"},
		{"flag obs space before colon", "X-Spam-Flag \t: YES\n", true, "X-Spam-Flag"},
		{"flag no", "X-Spam-Flag: NO\n", false, "X-Spam-Flag"},
		{"flag empty", "X-Spam-Flag:\n", false, "X-Spam-Flag"},
		{"flag yesterday", "X-Spam-Flag: yesterday\n", false, "X-Spam-Flag"},
		{"flag folded", "X-Spam-Flag:\n   YES\n", true, "X-Spam-Flag"},
		{"longer name is another header", "X-Spam-Flagged: YES\n", false, ""},
		{"status yes", "X-Spam-Status: Yes, score=7.1 required=5.0 tests=BAYES_99,\n\tURIBL_BLACK autolearn=no version=4.0.0\n", true, "X-Spam-Status"},
		{"status no", "X-Spam-Status: No, score=-0.1 required=5.0 tests=DKIM_SIGNED,\n\tDKIM_VALID autolearn=ham version=4.0.0\n", false, "X-Spam-Status"},
		{"status yes folded first", "X-Spam-Status:\n Yes, score=12\n", true, "X-Spam-Status"},
		{"status amavis", "X-Spam-Status: Yes, score=9.3 tag=-999 tag2=5 kill=5\n", true, "X-Spam-Status"},
		{"rspamd x-spam", "X-Spam: Yes\n", true, "X-Spam"},
		{"rspamd x-spam no", "X-Spam: No\n", false, "X-Spam"},
		{"action no action", "X-Rspamd-Action: no action\n", false, "X-Rspamd-Action"},
		{"action spacing and case", "X-Rspamd-Action:   No \t ACTION \n", false, "X-Rspamd-Action"},
		{"action greylist", "X-Rspamd-Action: greylist\n", false, "X-Rspamd-Action"},
		{"action add header", "X-Rspamd-Action: add header\n", true, "X-Rspamd-Action"},
		{"action rewrite subject", "X-Rspamd-Action: rewrite subject\n", true, "X-Rspamd-Action"},
		{"action soft reject", "X-Rspamd-Action: soft reject\n", true, "X-Rspamd-Action"},
		{"action reject", "X-Rspamd-Action: reject\n", true, "X-Rspamd-Action"},
		{"action folded", "X-Rspamd-Action: add\n header\n", true, "X-Rspamd-Action"},
		{"action empty", "X-Rspamd-Action: \n", false, "X-Rspamd-Action"},
		{"after other headers", "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\nDKIM-Signature: v=1; a=rsa-sha256;\n\tb=abc\nX-Spam-Flag: YES\n", true, "X-Spam-Flag"},
		// Topmost wins.
		{"top status no beats flag yes", "X-Spam-Status: No, score=1\nX-Spam-Flag: YES\n", false, "X-Spam-Status"},
		{"top flag yes beats status no", "X-Spam-Flag: YES\nX-Spam-Status: No, score=1\n", true, "X-Spam-Flag"},
		{"top rspamd no action beats x-spam", "X-Rspamd-Action: no action\nX-Spam: Yes\n", false, "X-Rspamd-Action"},
		{"top flag no beats lower flag yes", "X-Spam-Flag: NO\nReceived: x\nX-Spam-Flag: YES\n", false, "X-Spam-Flag"},
		{"top empty flag still decides", "X-Spam-Flag:\nX-Spam: Yes\n", false, "X-Spam-Flag"},
		// Odd lines.
		{"leading fold is no header", " X-Spam-Flag: YES\nX-Spam: no\n", false, "X-Spam"},
		{"line without colon", "garbage line\nX-Spam-Flag: YES\n", true, "X-Spam-Flag"},
		{"fold of skipped header", "Received: x\n X-Spam-Flag: YES\n", false, ""},
		{"lone CR line", "\rX-Spam-Flag: YES\nX-Spam: Yes\n", true, "X-Spam"},
		{"mbox From line", "From someone@example.com Mon Jan  1 00:00:00 2024\nX-Spam: yes\n", true, "X-Spam"},
		{"NUL in name", "X-Spam\x00-Flag: YES\n", false, ""},
	}
	for _, tt := range tests {
		for _, form := range []struct {
			name string
			msg  string
		}{{"LF", tt.header + body}, {"CRLF", crlf(tt.header + body)}} {
			t.Run(tt.name+"/"+form.name, func(t *testing.T) {
				r := scan(t, c, form.msg, 0)
				if r.Spam != tt.spam || r.Rule != tt.rule {
					t.Errorf("Spam, Rule = %v, %q; want %v, %q", r.Spam, r.Rule, tt.spam, tt.rule)
				}
				if r.Truncated {
					t.Error("Truncated")
				}
			})
		}
	}
}

func TestBodyIsNotHeader(t *testing.T) {
	for _, msg := range []string{
		"Subject: x\n\nX-Spam-Flag: YES\n",
		"Subject: x\r\n\r\nX-Spam-Flag: YES\r\n",
		"\nX-Spam-Flag: YES\n",
		"\r\nX-Spam-Flag: YES\r\n",
	} {
		if r := scan(t, nil, msg, 0); r.Spam || r.Rule != "" {
			t.Errorf("%q: %+v, want no verdict", msg, r)
		}
	}
}

func TestConfiguredRules(t *testing.T) {
	c := mustNew(t,
		config.VerdictRule{Name: "X-Filter-Verdict", Pattern: `^spam\b`},
		config.VerdictRule{Name: "X-Spam-Score", Threshold: threshold(5)},
		config.VerdictRule{Name: "x-spamd-result", Threshold: threshold(6)},
		config.VerdictRule{Name: "X-Spam", Pattern: `^suspect`}, // joins the default rule
		config.VerdictRule{Name: "Subject", Pattern: `^\[SPAM\]`},
	)
	tests := []struct {
		name   string
		header string
		spam   bool
		rule   string
	}{
		{"pattern", "X-Filter-Verdict: spam (score 9)\n", true, "X-Filter-Verdict"},
		{"pattern case-insensitive", "x-filter-verdict: SPAM\n", true, "X-Filter-Verdict"},
		{"pattern no match", "X-Filter-Verdict: spammy\n", false, "X-Filter-Verdict"},
		{"pattern on unfolded value", "X-Filter-Verdict:\n\tspam\n", true, "X-Filter-Verdict"},
		{"score above", "X-Spam-Score: 7.1\n", true, "X-Spam-Score"},
		{"score equal", "X-Spam-Score: 5\n", true, "X-Spam-Score"},
		{"score below", "X-Spam-Score: 4.99\n", false, "X-Spam-Score"},
		{"score negative", "X-Spam-Score: -12.5\n", false, "X-Spam-Score"},
		{"score plus sign", "X-Spam-Score: +5.5\n", true, "X-Spam-Score"},
		{"score leading dot", "X-Spam-Score: .5\n", false, "X-Spam-Score"},
		{"score in text", "X-Spam-Score: score=6.2, required 5\n", true, "X-Spam-Score"},
		{"score first number counts", "X-Spam-Score: 1 of 10\n", false, "X-Spam-Score"},
		{"score rspamd result", "X-Spamd-Result: default: False [6.40 / 15.00];\n\tR_SPF_ALLOW(-0.20)[+ip4]\n", true, "x-spamd-result"},
		{"score rspamd result low", "X-Spamd-Result: default: False [-0.10 / 15.00]\n", false, "x-spamd-result"},
		// Bad score values never reach the threshold.
		{"score empty", "X-Spam-Score:\n", false, "X-Spam-Score"},
		{"score words", "X-Spam-Score: high\n", false, "X-Spam-Score"},
		{"score NaN", "X-Spam-Score: NaN\n", false, "X-Spam-Score"},
		{"score Inf", "X-Spam-Score: +Inf\n", false, "X-Spam-Score"},
		{"score overflow", "X-Spam-Score: 1" + strings.Repeat("0", 400) + "\n", false, "X-Spam-Score"},
		{"score lone sign", "X-Spam-Score: - +\n", false, "X-Spam-Score"},
		{"score binary", "X-Spam-Score: \xff\xfe\x00\n", false, "X-Spam-Score"},
		// Configured rules share the topmost-wins order with the defaults.
		{"configured above default", "X-Spam-Score: 1\nX-Spam-Flag: YES\n", false, "X-Spam-Score"},
		{"default above configured", "X-Spam-Status: No, score=1\nX-Spam-Score: 9\n", false, "X-Spam-Status"},
		{"default yes above configured", "X-Spam-Flag: YES\nX-Spam-Score: 1\n", true, "X-Spam-Flag"},
		{"same name: default rule", "X-Spam: yes\n", true, "X-Spam"},
		{"same name: configured rule", "X-Spam: suspect\n", true, "X-Spam"},
		{"same name: neither", "X-Spam: no\n", false, "X-Spam"},
		{"subject rule", "Subject: [SPAM] buy now\n", true, "Subject"},
		{"subject rule no match", "Subject: lunch\n", false, "Subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scan(t, c, crlf(tt.header+body), 0)
			if r.Spam != tt.spam || r.Rule != tt.rule {
				t.Errorf("Spam, Rule = %v, %q; want %v, %q", r.Spam, r.Rule, tt.spam, tt.rule)
			}
		})
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	tests := []struct {
		name string
		rule config.VerdictRule
		want string
	}{
		{"empty name", config.VerdictRule{Pattern: "x"}, "not a header name"},
		{"colon in name", config.VerdictRule{Name: "X-A:", Pattern: "x"}, "not a header name"},
		{"space in name", config.VerdictRule{Name: "X A", Pattern: "x"}, "not a header name"},
		{"both", config.VerdictRule{Name: "X-A", Pattern: "x", Threshold: threshold(1)}, "not both"},
		{"neither", config.VerdictRule{Name: "X-A"}, "set pattern"},
		{"bad pattern", config.VerdictRule{Name: "X-A", Pattern: "("}, "pattern"},
		{"NaN threshold", config.VerdictRule{Name: "X-A", Threshold: threshold(math.NaN())}, "finite"},
		{"Inf threshold", config.VerdictRule{Name: "X-A", Threshold: threshold(math.Inf(1))}, "finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := config.VerdictRule{Name: "X-Ok", Pattern: "y"}
			_, err := New([]config.VerdictRule{ok, tt.rule})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rule 1") {
				t.Errorf("New: %v; want an error about rule 1 containing %q", err, tt.want)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	c := mustNew(t, config.VerdictRule{Name: "X-Spam-Score", Threshold: threshold(5)},
		config.VerdictRule{Name: "x-spam", Pattern: "y"})
	got := strings.Join(c.Headers(), ",")
	want := "X-Spam-Flag,X-Spam-Status,X-Spam,X-Rspamd-Action,X-Spam-Score"
	if got != want {
		t.Errorf("Headers = %s, want %s", got, want)
	}
	if got := len((*Classifier)(nil).Headers()); got != 4 {
		t.Errorf("nil Classifier has %d headers, want 4", got)
	}
}

func TestMetadata(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		name   string
		header string
		want   Result
	}{
		{"plain", "Subject:  Hello world \nMessage-ID: <a1@example.com>\nFrom: Alice <alice@example.com>\n",
			Result{Subject: "Hello world", MessageID: "<a1@example.com>", From: "alice@example.com"}},
		{"encoded utf-8 B", "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\n", Result{Subject: "Grüße"}},
		{"encoded Q, two words", "Subject: =?utf-8?q?Caf=C3=A9?=\n =?utf-8?q?_ouvert?=\n", Result{Subject: "Café ouvert"}},
		{"encoded latin1", "Subject: =?ISO-8859-1?Q?r=E9sum=E9?=\n", Result{Subject: "résumé"}},
		{"encoded cp1252", "Subject: =?windows-1252?Q?=93quoted=94_=80?=\n", Result{Subject: "“quoted” €"}},
		{"encoded windows-1251", "Subject: =?windows-1251?B?0ero5OroIOTuIDkwJSDy7uv86u4g8eXj7uTt/w==?=\n", Result{Subject: "Скидки до 90% только сегодня"}},
		{"encoded ISO-2022-JP, folded", "Subject: Re:\n =?ISO-2022-JP?B?GyRCIVo9RU1XIVsbKEI=?=\n =?ISO-2022-JP?B?GyRCJSIlKyUmJXMlSCROM05HJxsoQg==?=\n", Result{Subject: "Re: 【重要】アカウントの確認"}},
		{"unknown charset stays encoded", "Subject: =?x-klingon?B?AAAA?=\n", Result{Subject: "=?x-klingon?B?AAAA?="}},
		{"folded", "Subject: one\n\ttwo\n  three\n", Result{Subject: "one two  three"}},
		{"raw 8-bit invalid UTF-8", "Subject: caf\xe9\n", Result{Subject: "caf\uFFFD"}},
		{"long subject", "Subject: " + long + "\n", Result{Subject: long[:400]}},
		{"first subject counts", "Subject: first\nSubject: second\n", Result{Subject: "first"}},
		{"empty first subject counts", "Subject:\nSubject: second\n", Result{Subject: ""}},
		{"message-id folded", "Message-ID:\n <x@y>\n", Result{MessageID: "<x@y>"}},
		{"message-id bare CR", "Message-Id: <x\r@y>\n", Result{MessageID: "<x@y>"}},
		{"message-id long", "Message-ID: <" + strings.Repeat("a", 300) + ">\n", Result{MessageID: "<" + strings.Repeat("a", 249)}},
		{"message-id long multibyte", "Message-ID: <" + strings.Repeat("é", 200) + ">\n", Result{MessageID: "<" + strings.Repeat("é", 124)}},
		{"from bare", "From: bob@example.org\n", Result{From: "bob@example.org"}},
		{"from encoded name", "From: =?utf-8?B?w4lyaWM=?= <eric@example.org>\n", Result{From: "eric@example.org"}},
		{"from unknown charset name", "From: =?koi8-r?B?8NLJ18XU?= <ivan@example.ru>\n", Result{From: "ivan@example.ru"}},
		{"from list", "From: a@example.org, b@example.org\n", Result{From: "a@example.org"}},
		{"from unparseable", "From: not an address\n", Result{}},
		{"from folded", "From: \"Carol\"\n <carol@example.net>\n", Result{From: "carol@example.net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scan(t, nil, crlf(tt.header+"\nSubject: body\n"), 0)
			got.RawSubject = "" // scan checked that Subject is it decoded
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if n := utf8.RuneCountInString(got.Subject); n > 200 {
				t.Errorf("Subject has %d runes", n)
			}
			if len(got.MessageID) > 250 {
				t.Errorf("MessageID has %d bytes", len(got.MessageID))
			}
		})
	}
}

// TestRawSubject: the Subject as the mail path passes it on: as written
// (folds unfolded, trimmed), never decoded, at most 4 KiB and a copy of
// them, whatever the field's length; the first Subject counts.
func TestRawSubject(t *testing.T) {
	tests := []struct{ name, header, raw, subject string }{
		{"plain", "Subject:  hello \n", "hello", "hello"},
		{"encoded", "Subject: =?KOI8-R?B?98HbINrBy8HaIDEyMzQ1IM/WycTBxdQgz9DMwdTZ?=\n",
			"=?KOI8-R?B?98HbINrBy8HaIDEyMzQ1IM/WycTBxdQgz9DMwdTZ?=", "Ваш заказ 12345 ожидает оплаты"},
		{"folded", "Subject: =?UTF-8?Q?a?=\n =?UTF-8?Q?b?=\n", "=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"},
		{"8-bit kept", "Subject: caf\xe9\n", "caf\xe9", "caf\uFFFD"},
		{"first counts", "Subject: one\nSubject: two\n", "one", "one"},
		{"long", "Subject: " + strings.Repeat("x", 100<<10) + "\n", strings.Repeat("x", 4<<10), strings.Repeat("x", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scan(t, nil, crlf(tt.header+"\n"), 0)
			if r.RawSubject != tt.raw || r.Subject != tt.subject {
				t.Errorf("RawSubject %q Subject %q, want %q %q", r.RawSubject, r.Subject, tt.raw, tt.subject)
			}
		})
	}
	// A Subject that is also a verdict rule's header is kept the same way.
	c := mustNew(t, config.VerdictRule{Name: "Subject", Pattern: `^\[spam\]`})
	r := scan(t, c, crlf("Subject: [SPAM] "+strings.Repeat("y", 10<<10)+"\n\n"), 0)
	if !r.Spam || r.RawSubject != "[SPAM] "+strings.Repeat("y", 4<<10-7) {
		t.Errorf("rule on Subject: spam %v, RawSubject of %d bytes", r.Spam, len(r.RawSubject))
	}
	// The copy holds no more than itself: 10 000 scans of a 100 KiB Subject
	// keep about 40 MiB, not 1 GiB.
	var keep []Result
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	msg := []byte(crlf("Subject: " + strings.Repeat("z", 100<<10) + "\n\n"))
	for range 1000 {
		s := (*Classifier)(nil).NewScanner(0)
		s.Write(msg)
		keep = append(keep, s.Verdict())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 10<<20 {
		t.Errorf("1000 kept Results hold %d MiB", grown>>20)
	}
	runtime.KeepAlive(keep)
}

func TestNoBlankLine(t *testing.T) {
	for _, msg := range []string{
		"Subject: s\r\nX-Spam-Flag: YES\r\n",
		"Subject: s\r\nX-Spam-Flag: YES",
		"Subject: s\nX-Spam-Flag: YES\n",
		"Subject: s\nX-Spam-Flag:\n YES\r",
	} {
		r := scan(t, nil, msg, 0)
		want := Result{Spam: true, Rule: "X-Spam-Flag", Subject: "s", RawSubject: "s"}
		if r != want {
			t.Errorf("%q: %+v, want %+v", msg, r, want)
		}
	}
	if r := scan(t, nil, "", 0); r != (Result{}) {
		t.Errorf("empty message: %+v", r)
	}
}

// TestResultIsRepeatable checks that Result does not disturb the scan: a
// caller may peek mid-stream.
func TestResultIsRepeatable(t *testing.T) {
	msg := crlf("Subject: a\nX-Spam-Status: Yes,\n score=9\nX-Spam-Flag: NO\n\nbody\n")
	s := (*Classifier)(nil).NewScanner(0)
	for i := range len(msg) {
		s.Write([]byte{msg[i]})
		s.Result()
	}
	want := scan(t, nil, msg, 0)
	if got := s.Result(); got != want || got != s.Result() {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// chunkingMessages exercise every state boundary.
var chunkingMessages = []string{
	realisticMessage,
	crlf("X-Spam-Status: No, score=1\n\ttests=A\nX-Spam-Flag: YES\nSubject: =?utf-8?q?hi?=\n\nX-Spam: Yes\n"),
	"x-spam-flag :\n YES\nFrom: a@b\n",
	"\rjunk\r\nX-Spam: yes\r\n\r",
	"no colon\n X-Spam: yes\nX-Rspamd-Action: add header",
	"X-Spam-Score: 7.5\r\nX-Filter-Verdict: spam\r\n\r\n",
	"\x00\xff\r\r\n:\n\t\n",
}

// feed writes msg in the given chunk sizes (the last one repeats).
func feed(c *Classifier, msg string, bound int, sizes ...int) (Result, *Scanner) {
	s := c.NewScanner(bound)
	b := []byte(msg)
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(b))
		s.Write(b[:n])
		b = b[n:]
	}
	return s.Result(), s
}

func TestChunking(t *testing.T) {
	c := mustNew(t, config.VerdictRule{Name: "X-Spam-Score", Threshold: threshold(5)},
		config.VerdictRule{Name: "X-Filter-Verdict", Pattern: "spam"})
	for _, msg := range chunkingMessages {
		// The small bound puts the cut inside the header of the longer ones.
		for _, bound := range []int{0, 40, 1024} {
			want := scan(t, c, msg, bound)
			check := func(how string, got Result, s *Scanner) {
				t.Helper()
				if got != want || s.failed != nil {
					t.Fatalf("%q bound %d, %s:\ngot  %+v\nwant %+v (panic: %v)", msg[:min(len(msg), 40)], bound, how, got, want, s.failed)
				}
			}
			got, s := feed(c, msg, bound, 1)
			check("1-byte writes", got, s)
			for i := range len(msg) + 1 {
				got, s := feed(c, msg, bound, i, len(msg))
				check("split at "+strconv.Itoa(i), got, s)
			}
			for _, n := range []int{2, 3, 7, 64} {
				got, s := feed(c, msg, bound, n)
				check(strconv.Itoa(n)+"-byte writes", got, s)
			}
		}
	}
}

func TestBoundEdge(t *testing.T) {
	head := "X-Spam-Flag: YES\r\n\r\n" // 20 bytes including the blank line
	if r := scan(t, nil, head+"body", len(head)); r.Truncated || !r.Spam {
		t.Errorf("header exactly at the bound: %+v", r)
	}
	if r := scan(t, nil, head+"body", len(head)-1); !r.Truncated || r.Spam {
		t.Errorf("header one byte over the bound: %+v", r)
	}
	// A field cut by the bound does not count: its value may be incomplete.
	if r := scan(t, nil, "Subject: s\r\nX-Spam-Status: Yes, 9", 30); !r.Truncated || r.Rule != "" || r.Subject != "s" {
		t.Errorf("field cut at the bound: %+v", r)
	}
	// Headers-only message that fits: not truncated.
	if r := scan(t, nil, "X-Spam: yes", 11); r.Truncated || !r.Spam {
		t.Errorf("headers-only message at the bound: %+v", r)
	}
}

// TestBound feeds 10 MB of header without a blank line and checks that the
// scanner keeps no more than the bound.
func TestBound(t *testing.T) {
	const bound = 64 << 10
	const total = 10 << 20
	for _, tc := range []struct {
		name  string
		start string // the first bytes
		chunk string // then repeated
	}{
		{"one huge watched field", "X-Spam-Flag: YES\r\nX-Spam-Status: Yes", strings.Repeat("a", 4096)},
		{"one huge folded field", "Subject: x", strings.Repeat("\r\n  =?utf-8?q?a?=", 256)},
		{"many fields", "", strings.Repeat("X-Junk: 0123456789\r\nSubject: s\r\n", 128)},
		{"one huge name", "", strings.Repeat("N", 4096)},
		{"garbage", "", string(bytes.Repeat([]byte{0, 0xff, '\r', ':', ' '}, 1000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunk := []byte(tc.chunk)
			s := (*Classifier)(nil).NewScanner(bound)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s.Write([]byte(tc.start))
			maxVal := 0
			for written := len(tc.start); written < total; written += len(chunk) {
				if n, err := s.Write(chunk); n != len(chunk) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				maxVal = max(maxVal, cap(s.val), cap(s.name))
			}
			r := s.Result()
			runtime.ReadMemStats(&after)
			if !r.Truncated {
				t.Error("not Truncated")
			}
			if maxVal > bound {
				t.Errorf("buffered %d bytes, bound is %d", maxVal, bound)
			}
			// Growing a slice to the bound allocates about twice the bound.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*bound {
				t.Errorf("allocated %d bytes for a %d-byte bound", alloc, bound)
			}
			if s.failed != nil {
				t.Error(s.failed)
			}
		})
	}
	r := scan(t, nil, "X-Spam-Flag: YES\r\nX-Spam-Status: No"+strings.Repeat("a", 2*bound), bound)
	if !r.Spam || r.Rule != "X-Spam-Flag" {
		t.Errorf("verdict before the bound lost: %+v", r)
	}
}

func TestGarbage(t *testing.T) {
	b := make([]byte, 1<<16)
	x := uint32(1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	r := scan(t, nil, string(b), 0)
	if r.Spam {
		t.Errorf("garbage is spam: %+v", r)
	}
}

func TestWriteAfterEnd(t *testing.T) {
	s := (*Classifier)(nil).NewScanner(0)
	s.Write([]byte("X-Spam: yes\n\n"))
	if n, err := s.Write([]byte("X-Spam-Flag: NO\n")); n != 16 || err != nil {
		t.Errorf("Write after the header = %d, %v", n, err)
	}
	if r := s.Result(); !r.Spam || r.Rule != "X-Spam" {
		t.Errorf("%+v", r)
	}
}

// realisticMessage is a 5 KB spam as it leaves SpamAssassin behind a
// couple of relays.
var realisticMessage = crlf(`X-Spam-Flag: YES
X-Spam-Score: 8.412
X-Spam-Level: ********
X-Spam-Status: Yes, score=8.412 tagged_above=-999 required=5
	tests=[BAYES_99=3.5, BAYES_999=0.2, DKIM_SIGNED=0.1, DKIM_VALID=-0.1,
	HTML_MESSAGE=0.001, MIME_HTML_ONLY=0.1, RCVD_IN_SBL_CSS=3.335,
	URIBL_ABUSE_SURBL=1.25, SPF_PASS=-0.001] autolearn=no autolearn_force=no
Received: from mx.example.net (mx.example.net [198.51.100.7])
	by filter.example.net (Postfix) with ESMTPS id 4XyZ1234
	for <alice@example.net>; Tue, 12 May 2026 09:14:02 +0000 (UTC)
Received: from sender.example.com (unknown [203.0.113.9])
	by mx.example.net (Postfix) with ESMTP id 4XyZ0000
	for <alice@example.net>; Tue, 12 May 2026 09:14:01 +0000 (UTC)
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=spam.example;
	s=sel1; t=1778577241; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	h=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;
	b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaXMgbG9uZyBlbm91Z2gg
	 dG8gbG9vayBsaWtlIG9uZSBpbiBhIGJlbmNobWFyayBvZiBhIGhlYWRlciBwYXJzZXIgdGhh
	 dCBza2lwcyBpdCBlbnRpcmVseSBiZWNhdXNlIGl0IGlzIG5vdCB3YXRjaGVkIGF0IGFsbA==
Authentication-Results: filter.example.net; dkim=pass header.d=spam.example;
	spf=pass smtp.mailfrom=spam.example; dmarc=none
From: "=?UTF-8?B?U3DDqWNpYWwgT2ZmZXJz?=" <offers@spam.example>
To: alice@example.net
Subject: =?UTF-8?Q?Votre_colis_est_en_attente_=E2=80=93_confirmez?=
 =?UTF-8?Q?_la_livraison?=
Date: Tue, 12 May 2026 09:14:00 +0000
Message-ID: <20260512091400.12345.abcdef@spam.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1_abcdef"
List-Unsubscribe: <mailto:unsub@spam.example?subject=unsubscribe>

--b1_abcdef
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

` + strings.Repeat("Votre colis est en attente. Cliquez ici pour confirmer la livraison =\nde votre commande avant expiration du d=C3=A9lai.\n", 27) + `
--b1_abcdef--
`)

func TestRealisticMessage(t *testing.T) {
	r := scan(t, nil, realisticMessage, 0)
	want := Result{
		Spam:       true,
		Rule:       "X-Spam-Flag",
		Subject:    "Votre colis est en attente – confirmez la livraison",
		RawSubject: "=?UTF-8?Q?Votre_colis_est_en_attente_=E2=80=93_confirmez?= =?UTF-8?Q?_la_livraison?=",
		MessageID:  "<20260512091400.12345.abcdef@spam.example>",
		From:       "offers@spam.example",
	}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

func BenchmarkScanner(b *testing.B) {
	c := mustNew(b, config.VerdictRule{Name: "X-Spam-Score", Threshold: threshold(5)})
	msg := []byte(realisticMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		s := c.NewScanner(0)
		// Chunks as a 4 KB bufio.Reader would deliver them.
		for p := msg; len(p) > 0; {
			n := min(len(p), 4096)
			s.Write(p[:n])
			p = p[n:]
		}
		if !s.Result().Spam {
			b.Fatal("not spam")
		}
	}
}

// BenchmarkScannerSubject is the scanner's cost per message by the kind
// of Subject it carries (a short header block, as the relay sees it).
func BenchmarkScannerSubject(b *testing.B) {
	for _, tt := range []struct{ name, subject string }{
		{"plain", "Your account needs attention"},
		{"utf-8-B", "=?UTF-8?B?R3LDvMOfZSDigJMg6ZmQ5pe25LyY5oOg?="},
		{"windows-1251-B", "=?windows-1251?B?0ero5OroIOTuIDkwJSDy7uv86u4g8eXj7uTt/w==?="},
		{"iso-2022-jp-B", "=?ISO-2022-JP?B?GyRCIVo9RU1XIVslIiUrJSYlcyVIJE4zTkcnGyhC?="},
		{"shift_jis-Q", "=?Shift_JIS?Q?=82=A8=93=BE=82=C8=8F=EE=95=F1=82=F0=82=A8=93=CD=82=AF=82=B5=82=DC=82=B7?="},
	} {
		msg := []byte(crlf("Received: from mx.example (mx.example [192.0.2.1])\n\tby mail.isp.example; Tue, 12 May 2026 09:14:00 +0200\n" +
			"From: offers@spam.example\nTo: alice@isp.example\nSubject: " + tt.subject +
			"\nMessage-ID: <a1@spam.example>\nX-Spam-Flag: YES\n\nbody\n"))
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				s := defaultClassifier.NewScanner(0)
				s.Write(msg)
				if !s.Verdict().Spam {
					b.Fatal("not spam")
				}
			}
		})
	}
}
