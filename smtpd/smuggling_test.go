package smtpd

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The smuggling variants of CVE-2023-51764/5/6: each tries to end the
// message early at a lax next hop and start a second, spoofed one. After
// us, the next hop must receive exactly one message, whose lines end only
// in CRLF, with the would-be terminator dot-stuffed.
var smugglingCases = []struct {
	name string
	body string // what the client sends between 354 and the real CRLF.CRLF
	want string // what the next hop must receive (dot-stuffed, before the dot)
}{
	{
		"LF.LF",
		"Subject: a\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n",
		"Subject: a\r\n\r\nhello\r\n..\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		"LF.CRLF",
		"Subject: a\r\n\r\nhello\n.\r\nMAIL FROM:<evil@x>\r\n",
		"Subject: a\r\n\r\nhello\r\n..\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		"CRLF.LF",
		"Subject: a\r\n\r\nhello\r\n.\nMAIL FROM:<evil@x>\r\n",
		// go-smtp elides the leading dot it reads at the start of a
		// line (dot-unstuffing), so ".\n" arrives as "\n".
		"Subject: a\r\n\r\nhello\r\n\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		"CR.CR",
		"Subject: a\r\n\r\nhello\r.\rMAIL FROM:<evil@x>\r\n",
		"Subject: a\r\n\r\nhello\r\n..\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		"CR.CRLF",
		"Subject: a\r\n\r\nhello\r.\r\nMAIL FROM:<evil@x>\r\n",
		"Subject: a\r\n\r\nhello\r\n..\r\nMAIL FROM:<evil@x>\r\n",
	},
	{
		"bare CR in header",
		"Subject: a\rX-Injected: yes\r\n\r\nbody\r\n",
		"Subject: a\r\nX-Injected: yes\r\n\r\nbody\r\n",
	},
}

func TestSmugglingIsNormalised(t *testing.T) {
	for _, tc := range smugglingCases {
		t.Run(tc.name, func(t *testing.T) {
			hop := newFakeHop(t, false)
			p := newTestProxy(t, hop.addr(), nil)
			c := dial(t, p.addr)
			c.hello("EHLO")
			c.openData("b@isp.example")
			c.send(tc.body + ".\r\n")
			c.expect("", "250 ")
			c.expect("QUIT", "221 ")
			txs := hop.transactions()
			if len(txs) != 1 || !txs[0].Complete {
				t.Fatalf("next hop saw %d transactions, want exactly 1 complete", len(txs))
			}
			got := string(txs[0].Data)
			if got != tc.want {
				t.Errorf("next hop received\n%q\nwant\n%q", got, tc.want)
			}
			if strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\r") || strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\n") {
				t.Errorf("bare CR or LF reached the next hop: %q", got)
			}
			if v := testutil.ToFloat64(p.metrics.bareNewlines.WithLabelValues("normalized")); v != 1 {
				t.Errorf("normalized counter = %v, want 1", v)
			}
		})
	}
}

func TestSmugglingRejectMode(t *testing.T) {
	for _, tc := range smugglingCases {
		t.Run(tc.name, func(t *testing.T) {
			hop := newFakeHop(t, false)
			p := newTestProxy(t, hop.addr(), func(o *Options) { o.RejectBareNewline = true })
			c := dial(t, p.addr)
			c.hello("EHLO")
			c.openData("b@isp.example")
			c.send(tc.body + ".\r\n")
			c.expect("", "550 5.6.0 ")
			// Refused after reading to the real end: in step, the
			// smuggled "MAIL FROM" was never taken as a command.
			c.expect("NOOP", "250 ")
			c.openData("b@isp.example")
			c.send("Subject: clean\r\n\r\nbody\r\n.\r\n")
			c.expect("", "250 ")
			txs := hop.completed()
			if len(txs) != 1 || !strings.Contains(string(txs[0].Data), "clean") {
				t.Fatalf("next hop completed %d messages; want only the clean one", len(txs))
			}
		})
	}
}
