package smtpd

import (
	"net"
	"strings"
	"testing"
)

func TestXForwardPassThrough(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.XForward = true })
	c := dial(t, p.addr)
	kws := c.ehloKeywordsAfterGreeting("EHLO")
	if !contains(kws, "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE") {
		t.Fatalf("EHLO keywords %q lack XFORWARD", kws)
	}
	// Pipelined as Postfix's smtp client sends it.
	c.send("XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP\r\n" +
		"XFORWARD HELO=spike.porcupine.org IDENT=abc+2Bdef\r\n" +
		"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@isp.example>\r\nDATA\r\n")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "354 ")
	// A body line that looks like the command must pass untouched.
	body := "Subject: x\r\n\r\nXFORWARD NAME=evil\r\nDATA\r\nBDAT 5\r\n.\r\n"
	c.send(strings.Replace(body, "\r\n.\r\n", "\r\n..\r\n", 1) + ".\r\n")
	c.expect("", "250 ")
	// A second transaction without XFORWARD sends none.
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RSET", "250 ")

	txs := hop.transactions()
	if len(txs) != 2 {
		t.Fatalf("hop saw %d transactions", len(txs))
	}
	got := strings.Join(txs[0].XForward, " ")
	// The hop offers NAME ADDR PROTO HELO only: IDENT is not sent.
	for _, want := range []string{"NAME=spike.porcupine.org", "ADDR=168.100.189.2", "PROTO=ESMTP", "HELO=spike.porcupine.org"} {
		if !strings.Contains(got, want) {
			t.Errorf("hop XFORWARD %q lacks %s", got, want)
		}
	}
	if strings.Contains(got, "IDENT") {
		t.Errorf("sent an attribute the hop did not offer: %q", got)
	}
	if want := "Subject: x\r\n\r\nXFORWARD NAME=evil\r\nDATA\r\nBDAT 5\r\n..\r\n"; string(txs[0].Data) != want {
		t.Errorf("body changed: %q, want %q", txs[0].Data, want)
	}
	if len(txs[1].XForward) != 0 {
		t.Errorf("attributes leaked into the next transaction: %q", txs[1].XForward)
	}
}

func TestXForwardNotOfferedWhenHopLacksIt(t *testing.T) {
	hop := newFakeHop(t, false)
	hop.setExt([]string{"PIPELINING", "8BITMIME"})
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.XForward = true })
	c := dial(t, p.addr)
	if kws := c.ehloKeywordsAfterGreeting("EHLO"); contains(kws, "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE") {
		t.Fatalf("XFORWARD offered though the next hop lacks it: %q", kws)
	}
	// An XFORWARD anyway is an unknown command, as go-smtp says.
	c.expect("XFORWARD NAME=x", "50")
}

func TestXForwardWithBDAT(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.XForward = true })
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("XFORWARD ADDR=192.0.2.7", "250 ")
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RCPT TO:<b@isp.example>", "250 ")
	chunk := "Subject: y\r\n\r\nXFORWARD ADDR=6.6.6.6\r\n"
	c.send("BDAT " + itoa(len(chunk)) + " LAST\r\n" + chunk)
	c.expect("", "250 ")
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	txs := hop.transactions()
	if len(txs) != 2 || strings.Join(txs[0].XForward, " ") != "ADDR=192.0.2.7" || len(txs[1].XForward) != 0 {
		t.Fatalf("XFORWARD at hop: %+v", txs)
	}
}

// A next hop that is down when we start is probed again; once it answers,
// new sessions are offered what it supports (here SMTPUTF8 and XFORWARD).
func TestCapsFollowAHopThatComesUpLater(t *testing.T) {
	hop := newFakeHop(t, false)
	addr := hop.addr()
	hop.ln.Close()
	p := newTestProxy(t, addr, nil)
	c := dial(t, p.addr)
	if kws := c.ehloKeywordsAfterGreeting("EHLO"); contains(kws, "SMTPUTF8") {
		t.Fatalf("SMTPUTF8 offered before the hop was ever seen: %q", kws)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot reuse %s: %v", addr, err)
	}
	hop2 := newFakeHop(t, false)
	hop2.ln.Close()
	hop2.ln = ln
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go hop2.serve(conn, make(chan struct{}))
		}
	}()
	t.Cleanup(func() { ln.Close() })
	eventually(t, "re-probe", func() bool {
		c := p.caps.Load()
		return c != nil && c.probed
	})
	c2 := dial(t, p.addr)
	kws := c2.ehloKeywordsAfterGreeting("EHLO")
	if !contains(kws, "SMTPUTF8") || !contains(kws, "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE") {
		t.Fatalf("after the hop came up, EHLO offers %q", kws)
	}
}

func TestReadyFollowsTheNextHop(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	eventually(t, "ready", func() bool { return p.Ready() == nil })
	hop.ln.Close()
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("MAIL FROM:<a@example.org>", "451 4.4.1 ")
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Ready() = %v after a failed connect", err)
	}
}

// writeCounter records each Write.
type writeCounter struct {
	net.Conn
	writes []string
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// The EHLO reply stays one write when xfConn adds its keyword.
func TestXForwardKeywordKeepsOneWrite(t *testing.T) {
	wc := &writeCounter{}
	xf := newXFConn(wc)
	reply := "250-proxy.test Hello\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100\r\n"
	if n, err := xf.Write([]byte(reply)); n != len(reply) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	want := "250-proxy.test Hello\r\n250-PIPELINING\r\n" + xforwardEHLO + "250-8BITMIME\r\n250 SIZE 100\r\n"
	if len(wc.writes) != 1 || wc.writes[0] != want {
		t.Fatalf("writes %q, want one %q", wc.writes, want)
	}
}
