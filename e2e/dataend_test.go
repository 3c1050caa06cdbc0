package e2e

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// wire is a raw SMTP client for byte-exact cases.
type wire struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialWire(t *testing.T, addr string) *wire {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	w := &wire{t: t, c: c, r: bufio.NewReader(c)}
	w.expect("", "220 ")
	return w
}

// expect sends raw bytes (nothing added) and checks the next reply's last
// line starts with want.
func (w *wire) expect(send, want string) {
	w.t.Helper()
	if send != "" {
		if _, err := w.c.Write([]byte(send)); err != nil {
			w.t.Fatal(err)
		}
	}
	for {
		l, err := w.r.ReadString('\n')
		if err != nil {
			w.t.Fatalf("after %.60q: %v (want %q)", send, err, want)
		}
		if len(l) > 3 && l[3] == '-' {
			continue
		}
		if !strings.HasPrefix(l, want) {
			w.t.Fatalf("after %.60q got %q, want %q", send, l, want)
		}
		return
	}
}

func (w *wire) open() {
	w.t.Helper()
	w.expect("EHLO client.test\r\n", "250 ")
	w.expect("MAIL FROM:<a@example.org>\r\n", "250 ")
	w.expect("RCPT TO:<alice@isp.example>\r\n", "250 ")
	w.expect("DATA\r\n", "354 ")
}

// rfcContent is the content of a DATA body by RFC 5321's line rules (a line
// ends only at CRLF, a leading dot is removed, "." ends it), with the CRLF
// of each line, or ok=false without an end.
func rfcContent(body string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(body, "\r\n")
		if i < 0 {
			return b.String(), false
		}
		line := body[:i]
		body = body[i+2:]
		if line == "." {
			return b.String(), true
		}
		b.WriteString(strings.TrimPrefix(line, "."))
		b.WriteString("\r\n")
	}
}

// normalised is what bare_newline: normalize makes of content: every bare
// CR or LF becomes a line end; written by smtp-sink with LF line ends.
func normalised(content string) string {
	s := strings.ReplaceAll(content, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// The DATA sequences go-smtp v0.25.1 got wrong (one of them never ended),
// three ways: straight to smtp-sink, to show where Postfix ends the data
// and what content it sees; then through the real binary to smtp-sink in
// both bare_newline modes.
func TestDataEndAgainstSmtpSink(t *testing.T) {
	cases := []string{
		"Subject: a\r\n\r\nfoo\r\r\n.\r\n",
		"Subject: a\r\n\r\nA\r\n.\r\r\nB\r\n.\r\n",
		"Subject: a\r\n\r\nx\r\r\n..bar\r\n.\r\n",
		"Subject: a\r\n\r\na\r\n.\r\rX\r\n.\r\n",
		"Subject: a\r\n\r\nend\r\r\r\n.\r\n",
	}
	direct := startSink(t)
	viaNorm := startSink(t)
	viaRej := startSink(t)
	norm := startDaemon(t, viaNorm.addr, conf{})
	rej := startDaemon(t, viaRej.addr, conf{smtp: "  bare_newline: reject"})
	for i, body := range cases {
		content, ok := rfcContent(body)
		if !ok {
			t.Fatalf("case %d has no end", i)
		}
		// Straight to smtp-sink: it answers 250 right there, and the
		// NOOP after it is a command.
		w := dialWire(t, direct.addr)
		w.open()
		w.expect(body, "250 ")
		w.expect("NOOP\r\n", "250 ")
		w.c.Close()
		msgs := direct.messages(t)
		if len(msgs) != i+1 {
			t.Fatalf("case %d: sink holds %d messages, want %d", i, len(msgs), i+1)
		}
		// smtp-sink writes lines with LF and drops the CRs before it,
		// so compare without CRs: the RFC's content is Postfix's.
		if got, want := strings.ReplaceAll(msgs[i], "\r", ""), strings.ReplaceAll(content, "\r", ""); got != want {
			t.Errorf("case %d %q: smtp-sink read %q, the RFC says %q", i, body, got, want)
		}

		// Through spamsurge, normalize: ends at once, 250, bare CRs
		// became line ends.
		w = dialWire(t, norm.smtp)
		w.open()
		w.expect(body, "250 ")
		w.expect("NOOP\r\n", "250 ")
		w.expect("QUIT\r\n", "221 ")
		msgs = viaNorm.messages(t)
		if len(msgs) != i+1 {
			t.Fatalf("case %d: sink behind spamsurge holds %d messages, want %d", i, len(msgs), i+1)
		}
		if got, want := msgs[i], normalised(content); got != want {
			t.Errorf("case %d %q through spamsurge: sink got %q, want %q", i, body, got, want)
		}

		// Through spamsurge, reject: 550 5.6.0 at the real end, in
		// step, nothing delivered.
		w = dialWire(t, rej.smtp)
		w.open()
		w.expect(body, "550 5.6.0 ")
		w.expect("NOOP\r\n", "250 ")
		w.expect("QUIT\r\n", "221 ")
		if n := len(viaRej.messages(t)); n != 0 {
			t.Fatalf("case %d: reject mode delivered %d messages", i, n)
		}
	}
}

// No NUL reaches the next hop: refused by default, left out with
// smtp.nul: strip; a NUL in an address is refused before it is sent on.
func TestNULNeverReachesSmtpSink(t *testing.T) {
	body := "Subject: n\x00ul\r\n\r\nA\r\n\x00.\r\nMAIL FROM:<evil@example.net>\r\n.\r\n"
	for _, mode := range []string{"reject", "strip"} {
		t.Run(mode, func(t *testing.T) {
			sk := startSink(t)
			d := startDaemon(t, sk.addr, conf{smtp: "  nul: " + mode})
			w := dialWire(t, d.smtp)
			w.expect("EHLO client.test\r\n", "250 ")
			w.expect("MAIL FROM:<a\x00b@example.org>\r\n", "501 5.1.3 ")
			w.expect("MAIL FROM:<a@example.org>\r\n", "250 ")
			w.expect("RCPT TO:<alice\x00@isp.example>\r\n", "501 5.1.3 ")
			w.expect("RCPT TO:<alice@isp.example>\r\n", "250 ")
			w.expect("DATA\r\n", "354 ")
			if mode == "reject" {
				w.expect(body, "550 5.6.0 ")
			} else {
				w.expect(body, "250 ")
			}
			w.expect("QUIT\r\n", "221 ")
			msgs := sk.messages(t)
			for _, m := range msgs {
				if strings.ContainsRune(m, 0) {
					t.Fatalf("a NUL reached smtp-sink: %q", m)
				}
			}
			switch {
			case mode == "reject" && len(msgs) != 0:
				t.Fatalf("refused message delivered: %q", msgs)
			case mode == "strip" && (len(msgs) != 1 || !strings.HasPrefix(msgs[0], "Subject: nul\n") || !strings.Contains(msgs[0], "\nA\n.\nMAIL FROM:<evil@example.net>\n")):
				t.Fatalf("stripped message: %q", msgs)
			}
			action := "rejected"
			if mode == "strip" {
				action = "stripped"
			}
			if v := d.metric(t, `spamsurge_nul_messages_total{action="`+action+`"}`); v != 1 {
				t.Errorf("spamsurge_nul_messages_total{action=%q} = %v, want 1", action, v)
			}
		})
	}
}

// A 3,000-character MAIL FROM is refused by spamsurge, never forwarded, and
// the session goes on.
func TestLongCommandNotForwarded(t *testing.T) {
	sk := startSink(t)
	d := startDaemon(t, sk.addr, conf{})
	w := dialWire(t, d.smtp)
	w.expect("EHLO client.test\r\n", "250 ")
	w.expect("MAIL FROM:<"+strings.Repeat("x", 3000)+"@example.org>\r\n", "500 5.5.2 ")
	w.expect("MAIL FROM:<"+strings.Repeat("y", 300)+"@example.org>\r\n", "501 5.1.3 ")
	w.expect("MAIL FROM:<a@example.org>\r\n", "250 ")
	w.expect("RCPT TO:<alice@isp.example>\r\n", "250 ")
	w.expect("DATA\r\n", "354 ")
	w.expect("Subject: x\r\n\r\nok\r\n.\r\n", "250 ")
	w.expect("QUIT\r\n", "221 ")
	msgs := sk.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages", len(msgs))
	}
	if strings.Contains(msgs[0], "xxxxxxxxxx") || strings.Contains(msgs[0], "yyyyyyyyyy") {
		t.Fatalf("a refused path reached the sink: %q", msgs[0][:200])
	}
}
