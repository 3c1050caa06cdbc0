package smtpd

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The DATA sequences the public smuggling scanners send that go-smtp
// v0.25.1 got wrong (third_party/README.md), and NUL. Each case is what the
// client sends after 354, the real end of data included, and what the next
// hop must get in each mode ("" = refused with 550 5.6.0, nothing sent).
var dataEndCases = []struct {
	name          string
	body          string
	normalize     string // bare_newline: normalize, smtp.nul: reject
	reject        string // bare_newline: reject, smtp.nul: reject
	stripNUL      string // bare_newline: normalize, smtp.nul: strip
	stripNULRejLF string // bare_newline: reject, smtp.nul: strip
}{
	{
		// Hung until the read timeout: the message could never be
		// delivered.
		name:          "CR CR LF then the end",
		body:          "Subject: a\r\n\r\nfoo\r\r\n.\r\n",
		normalize:     "Subject: a\r\n\r\nfoo\r\n\r\n",
		stripNUL:      "Subject: a\r\n\r\nfoo\r\n\r\n",
		reject:        "",
		stripNULRejLF: "",
	},
	{
		// Lost the dot and the CR, and reject mode let it through.
		name:          "dot CR CR LF",
		body:          "Subject: a\r\n\r\nA\r\n.\r\r\nB\r\n.\r\n",
		normalize:     "Subject: a\r\n\r\nA\r\n\r\n\r\nB\r\n",
		stripNUL:      "Subject: a\r\n\r\nA\r\n\r\n\r\nB\r\n",
		reject:        "",
		stripNULRejLF: "",
	},
	{
		// ".." after a CR CR LF line was not unstuffed.
		name:          "unstuffing after CR CR LF",
		body:          "Subject: a\r\n\r\nx\r\r\n..bar\r\n.\r\n",
		normalize:     "Subject: a\r\n\r\nx\r\n\r\n..bar\r\n", // ".bar", stuffed again on the wire
		stripNUL:      "Subject: a\r\n\r\nx\r\n\r\n..bar\r\n",
		reject:        "",
		stripNULRejLF: "",
	},
	{
		// A next hop that drops NUL would see the end of data here.
		name:          "NUL before a dot",
		body:          "Subject: a\r\n\r\nA\r\n\x00.\r\nMAIL FROM:<evil@x>\r\n.\r\n",
		normalize:     "",
		reject:        "",
		stripNUL:      "Subject: a\r\n\r\nA\r\n..\r\nMAIL FROM:<evil@x>\r\n",
		stripNULRejLF: "Subject: a\r\n\r\nA\r\n..\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		name:          "NUL in a header",
		body:          "Subject: a\x00b\r\n\r\nbody\r\n.\r\n",
		normalize:     "",
		reject:        "",
		stripNUL:      "Subject: ab\r\n\r\nbody\r\n",
		stripNULRejLF: "Subject: ab\r\n\r\nbody\r\n",
	},
}

func TestDataEndAndNUL(t *testing.T) {
	modes := []struct {
		name           string
		rejectLF, keep bool
		want           func(i int) string
	}{
		{"normalize", false, false, func(i int) string { return dataEndCases[i].normalize }},
		{"reject", true, false, func(i int) string { return dataEndCases[i].reject }},
		{"strip-nul", false, true, func(i int) string { return dataEndCases[i].stripNUL }},
		{"strip-nul+reject", true, true, func(i int) string { return dataEndCases[i].stripNULRejLF }},
	}
	for _, m := range modes {
		for i, tc := range dataEndCases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				hop := newFakeHop(t, false)
				p := newTestProxy(t, hop.addr(), func(o *Options) {
					o.RejectBareNewline = m.rejectLF
					o.StripNUL = m.keep
					// On stock go-smtp the first case waits for
					// this, then fails.
					o.ReadTimeout = 3 * time.Second
				})
				c := dial(t, p.addr)
				c.hello("EHLO")
				c.openData("b@isp.example")
				c.send(tc.body)
				want := m.want(i)
				if want == "" {
					c.expect("", "550 5.6.0 ")
				} else {
					c.expect("", "250 ")
				}
				// In step: what follows the end of data is a command.
				c.expect("NOOP", "250 ")
				c.expect("QUIT", "221 ")
				done := hop.completed()
				if want == "" {
					if len(done) != 0 {
						t.Fatalf("refused message reached the next hop: %q", done[0].Data)
					}
				} else {
					if len(done) != 1 {
						t.Fatalf("next hop completed %d messages, want 1", len(done))
					}
					if got := string(done[0].Data); got != want {
						t.Errorf("next hop received\n%q\nwant\n%q", got, want)
					}
				}
				for _, tx := range hop.transactions() {
					if strings.ContainsRune(string(tx.Data), 0) {
						t.Errorf("a NUL reached the next hop: %q", tx.Data)
					}
				}
			})
		}
	}
}

func TestNULCounted(t *testing.T) {
	for _, strip := range []bool{false, true} {
		hop := newFakeHop(t, false)
		p := newTestProxy(t, hop.addr(), func(o *Options) { o.StripNUL = strip })
		c := dial(t, p.addr)
		c.hello("EHLO")
		c.openData("b@isp.example")
		c.send("Subject: a\r\n\r\n\x00\x00\r\n.\r\n")
		action, reply := "rejected", "550 5.6.0 "
		if strip {
			action, reply = "stripped", "250 "
		}
		c.expect("", reply)
		if v := testutil.ToFloat64(p.metrics.nulMessages.WithLabelValues(action)); v != 1 {
			t.Errorf("strip=%v: spamsurge_nul_messages_total{action=%q} = %v, want 1", strip, action, v)
		}
	}
}

// Command lines and paths longer than RFC 5321 allows are refused by us,
// never passed on, and the session goes on.
func TestCommandLimits(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("MAIL FROM:<"+strings.Repeat("a", 3000)+"@example.org>", "500 5.5.2 ")
	if n := len(hop.transactions()); n != 0 {
		t.Fatalf("the long MAIL reached the next hop (%d transactions)", n)
	}
	// Under the line limit but a path over 256 octets.
	c.expect("MAIL FROM:<"+strings.Repeat("a", 250)+"@example.org>", "501 5.1.3 ")
	c.expect("MAIL FROM:<a\x01b@example.org>", "501 5.1.3 ")
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RCPT TO:<"+strings.Repeat("r", 250)+"@isp.example>", "501 5.1.3 ")
	c.expect("RCPT TO:<"+strings.Repeat("r", 1100)+"@isp.example>", "500 5.5.2 ")
	c.expect("RCPT TO:<b@isp.example>", "250 ")
	c.expect("DATA", "354 ")
	// Body lines keep the generous smtp.max_line_length.
	c.send("Subject: long\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n")
	c.expect("", "250 ")
	c.expect("QUIT", "221 ")
	txs := hop.completed()
	if len(txs) != 1 {
		t.Fatalf("next hop completed %d transactions, want 1", len(txs))
	}
	if len(txs[0].Rcpts) != 1 || !strings.Contains(txs[0].Mail, "<a@example.org>") {
		t.Errorf("next hop saw MAIL %q RCPT %q", txs[0].Mail, txs[0].Rcpts)
	}
	if v := testutil.ToFloat64(p.metrics.commandsRefused.WithLabelValues(refusedPathTooLong)); v != 2 {
		t.Errorf("path_too_long = %v, want 2", v)
	}
	if v := testutil.ToFloat64(p.metrics.commandsRefused.WithLabelValues(refusedControlChar)); v != 1 {
		t.Errorf("control_character = %v, want 1", v)
	}
}
