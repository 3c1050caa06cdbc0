package smtpd

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRelayPassesBodyAndRepliesThrough(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("MAIL FROM:<sender@example.org>", "250 ")
	c.expect("RCPT TO:<alice@isp.example>", "250 ")
	c.expect("DATA", "354 ")
	body := msg("Subject: hi\nX-Spam-Flag: YES\nMessage-ID: <m1@example.org>\n", "line one\n..leading dot stays stuffed\n..\nend\n")
	c.send(body + ".\r\n")
	// The next hop's own final reply, text included.
	c.expect("", "250 2.0.0 Ok: queued as FAKE1")
	c.expect("QUIT", "221 ")

	txs := hop.completed()
	if len(txs) != 1 {
		t.Fatalf("next hop got %d messages, want 1", len(txs))
	}
	if got := string(txs[0].Data); got != body {
		t.Errorf("next hop received\n%q\nwant\n%q", got, body)
	}
	if txs[0].Mail != "<sender@example.org>" || len(txs[0].Rcpts) != 1 || txs[0].Rcpts[0] != "<alice@isp.example>" {
		t.Errorf("envelope = %q %q", txs[0].Mail, txs[0].Rcpts)
	}
	eventually(t, "observation", func() bool { return len(p.rec.all()) == 1 })
	o := p.rec.all()[0]
	if !o.Spam || len(o.Rcpt) != 1 || o.Rcpt[0] != "alice@isp.example" || o.From != "sender@example.org" ||
		o.MessageID != "<m1@example.org>" || o.Subject != "hi" || o.ClientIP != "127.0.0.1" || o.Helo != "client.test" {
		t.Errorf("observation = %+v", o)
	}
	if v := testutil.ToFloat64(p.metrics.messages.WithLabelValues("relayed")); v != 1 {
		t.Errorf("relayed = %v, want 1", v)
	}
}

func TestRcptAndMailRepliesPassThrough(t *testing.T) {
	hop := newFakeHop(t, false)
	hop.setReply(func(cmd, arg string, _ int) string {
		switch {
		case cmd == "RCPT" && strings.Contains(arg, "ghost"):
			return "550 5.1.1 <ghost@isp.example>: Recipient address rejected: User unknown"
		case cmd == "RCPT" && strings.Contains(arg, "full"):
			return "452 4.2.2 Mailbox full"
		case cmd == "MAIL" && strings.Contains(arg, "blocked"):
			return "553 5.7.1 Sender blocked"
		}
		return ""
	})
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("MAIL FROM:<blocked@example.org>", "553 5.7.1 Sender blocked")
	c.expect("MAIL FROM:<ok@example.org>", "250 ")
	c.expect("RCPT TO:<ghost@isp.example>", "550 5.1.1 <ghost@isp.example>: Recipient address rejected: User unknown")
	c.expect("RCPT TO:<full@isp.example>", "452 4.2.2 Mailbox full")
	c.expect("RCPT TO:<bob@isp.example>", "250 ")
	c.expect("DATA", "354 ")
	c.send(msg("Subject: x\n", "hello\n") + ".\r\n")
	c.expect("", "250 ")
	eventually(t, "observation", func() bool { return len(p.rec.all()) == 1 })
	o := p.rec.all()[0]
	if len(o.Rcpt) != 1 || o.Rcpt[0] != "bob@isp.example" {
		t.Errorf("accepted = %q, want only bob", o.Rcpt)
	}
	// Only the permanent refusal is dictionary-attack evidence.
	if len(o.Rejected) != 1 || o.Rejected[0] != "ghost@isp.example" {
		t.Errorf("rejected = %q, want only ghost", o.Rejected)
	}
	if got := hop.completed(); len(got) != 1 || len(got[0].Rcpts) != 1 {
		t.Fatalf("hop transactions = %+v", got)
	}
}

func TestFinalRepliesPassThrough(t *testing.T) {
	for _, final := range []string{"554 5.7.1 Message rejected as spam", "452 4.3.1 Insufficient system storage"} {
		t.Run(final[:3], func(t *testing.T) {
			hop := newFakeHop(t, false)
			hop.setReply(func(cmd, _ string, _ int) string {
				if cmd == "." {
					return final
				}
				return ""
			})
			p := newTestProxy(t, hop.addr(), nil)
			c := dial(t, p.addr)
			c.hello("EHLO")
			c.openData("b@isp.example")
			c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			c.expect("", final)
			// The session stays usable.
			c.expect("MAIL FROM:<a@example.org>", "250 ")
			c.expect("RSET", "250 ")
			c.expect("NOOP", "250 ")
			want := map[byte]string{'5': "rejected", '4': "tempfail"}[final[0]]
			if v := testutil.ToFloat64(p.metrics.messages.WithLabelValues(want)); v != 1 {
				t.Errorf("%s = %v, want 1", want, v)
			}
		})
	}
}

func TestDownstreamUnreachableIsTemporary(t *testing.T) {
	hop := newFakeHop(t, false)
	addr := hop.addr()
	hop.ln.Close() // nothing listens there now
	p := newTestProxy(t, addr, nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	got := c.expect("MAIL FROM:<a@example.org>", "451 4.4.1 ")
	if strings.Contains(got, "refused") || strings.Contains(got, "dial") {
		t.Errorf("internal error text leaked: %q", got)
	}
	if v := testutil.ToFloat64(p.metrics.downstreamFails.WithLabelValues(reasonConnect)); v != 1 {
		t.Errorf("connect failures = %v, want 1", v)
	}
}

func TestDownstreamFaultsAreTemporary(t *testing.T) {
	cases := []struct {
		name string
		at   string // command at which the hop misbehaves
		how  string
		want string
	}{
		{"hangup at MAIL", "MAIL", "HANGUP", "451 4.4.1"},
		{"hangup at RCPT", "RCPT", "HANGUP", "451 4.4.1"},
		{"hangup at DATA", "DATA", "HANGUP", "451 4.4.1"},
		{"hangup after dot", ".", "HANGUP", "451 4.4.2"},
		{"silence after dot", ".", "SLEEP", "451 4.4.2"},
		{"garbage after dot", ".", "hello there", "451 4.4.2"},
		{"421 at greeting", "CONNECT", "421 4.3.2 busy", "421 4.3.2 busy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hop := newFakeHop(t, false)
			hop.setReply(func(cmd, _ string, _ int) string {
				if cmd == tc.at {
					return tc.how
				}
				return ""
			})
			p := newTestProxy(t, hop.addr(), func(o *Options) {
				o.Downstream.DataTimeout = 300 * time.Millisecond
				o.Downstream.CommandTimeout = 300 * time.Millisecond
			})
			c := dial(t, p.addr)
			c.hello("EHLO")
			if tc.at == "MAIL" || tc.at == "CONNECT" {
				c.expect("MAIL FROM:<a@example.org>", tc.want)
				return
			}
			c.expect("MAIL FROM:<a@example.org>", "250 ")
			if tc.at == "RCPT" {
				c.expect("RCPT TO:<b@isp.example>", tc.want)
				return
			}
			c.expect("RCPT TO:<b@isp.example>", "250 ")
			if tc.at == "DATA" {
				// go-smtp says 354 before asking us; the failure
				// comes as the final reply.
				c.expect("DATA", "354 ")
				c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
				c.expect("", tc.want)
				return
			}
			c.expect("DATA", "354 ")
			c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			got := c.expect("", tc.want)
			if got[0] != '4' {
				t.Fatalf("got %q: our faults must be 4xx", got)
			}
			// A new transaction on the same session works again.
			hop.setReply(nil)
			c.expect("MAIL FROM:<a@example.org>", "250 ")
		})
	}
}

func TestClientDisconnectMidDataDeliversNothing(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.openData("b@isp.example")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("partial body line\r\n", 5000))
	c.c.Close()
	eventually(t, "hop to see the transfer end", func() bool {
		txs := hop.transactions()
		return len(txs) == 1 && len(txs[0].Data) > 0
	})
	// Give the hop time to (wrongly) see a dot; then check it did not.
	time.Sleep(100 * time.Millisecond)
	if got := hop.completed(); len(got) != 0 {
		t.Fatalf("next hop completed %d messages after the client vanished mid-DATA", len(got))
	}
}

func TestSeveralTransactionsReuseTheDownstream(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	for i := 0; i < 3; i++ {
		c.openData("b@isp.example")
		c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
		c.expect("", "250 ")
	}
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RSET", "250 ")
	c.expect("QUIT", "221 ")
	if n := len(hop.completed()); n != 3 {
		t.Errorf("hop got %d messages, want 3", n)
	}
	hop.mu.Lock()
	conns := hop.conns
	hop.mu.Unlock()
	if conns != 2 { // one probe at start, one for the session
		t.Errorf("hop saw %d connections, want 2 (probe + session)", conns)
	}
}

func TestPipelinedClient(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@isp.example>\r\nRCPT TO:<c@isp.example>\r\nDATA\r\n")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
	c.expect("", "250 ")
	c.expect("", "221 ")
	if txs := hop.completed(); len(txs) != 1 || len(txs[0].Rcpts) != 2 {
		t.Fatalf("hop transactions = %+v", txs)
	}
}

func TestLimits(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) {
		o.MaxMessageBytes = 2000
		o.MaxRecipients = 2
	})
	c := dial(t, p.addr)
	kws := c.ehloKeywordsAfterGreeting("EHLO")
	if !contains(kws, "SIZE 2000") {
		t.Errorf("EHLO keywords %q: want SIZE 2000 (ours, below the hop's)", kws)
	}
	c.expect("MAIL FROM:<a@example.org> SIZE=5000", "552 5.3.4 ")
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RCPT TO:<b1@isp.example>", "250 ")
	c.expect("RCPT TO:<b2@isp.example>", "250 ")
	c.expect("RCPT TO:<b3@isp.example>", "452 4.5.3 ")
	c.expect("DATA", "354 ")
	c.send("Subject: big\r\n\r\n" + strings.Repeat("0123456789\r\n", 400) + ".\r\n")
	c.expect("", "552 5.3.4 ")
	// Still in step: a small message goes through.
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RCPT TO:<b1@isp.example>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: small\r\n\r\nok\r\n.\r\n")
	c.expect("", "250 ")
	if n := len(hop.completed()); n != 1 {
		t.Errorf("hop completed %d messages, want only the small one", n)
	}
}

func TestSizeAdvertisedIsTheHopsWhenSmaller(t *testing.T) {
	hop := newFakeHop(t, false)
	hop.setExt([]string{"PIPELINING", "SIZE 1000", "8BITMIME"})
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	kws := c.ehloKeywordsAfterGreeting("EHLO")
	if !contains(kws, "SIZE 1000") {
		t.Errorf("EHLO keywords %q, want SIZE 1000", kws)
	}
	// The hop offers neither SMTPUTF8 nor DSN: we must not either.
	if contains(kws, "SMTPUTF8") || contains(kws, "DSN") {
		t.Errorf("EHLO keywords %q advertise what the hop lacks", kws)
	}
}

func TestExtensionsFollowTheHop(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	kws := c.ehloKeywordsAfterGreeting("EHLO")
	for _, want := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "CHUNKING"} {
		if !contains(kws, want) {
			t.Errorf("EHLO keywords %q lack %s", kws, want)
		}
	}
	c.expect("MAIL FROM:<a@example.org> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=abc", "250 ")
	c.expect("RCPT TO:<b@isp.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@isp.example", "250 ")
	c.expect("RSET", "250 ")
	txs := hop.transactions()
	if len(txs) != 1 {
		t.Fatalf("hop saw %d transactions", len(txs))
	}
	for _, want := range []string{"SMTPUTF8", "BODY=8BITMIME", "RET=HDRS", "ENVID=abc"} {
		if !strings.Contains(txs[0].Mail, want) {
			t.Errorf("MAIL at hop %q lacks %s", txs[0].Mail, want)
		}
	}
	if r := txs[0].Rcpts[0]; !strings.Contains(r, "NOTIFY=SUCCESS,FAILURE") || !strings.Contains(strings.ToLower(r), "orcpt=rfc822;b@isp.example") {
		t.Errorf("RCPT at hop %q lacks DSN parameters", r)
	}
}

func TestBDATIsRelayedAsData(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("BDAT 5 LAST", "502 5.5.1 ") // no transaction: refused, chunk discarded
	c.send("hello")
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	c.expect("RCPT TO:<b@isp.example>", "250 ")
	part1 := "Subject: chunked\r\n\r\n"
	part2 := ".dot at line start\r\nbare\nLF\r\n"
	c.send("BDAT " + itoa(len(part1)) + "\r\n" + part1)
	c.expect("", "250 ")
	c.expect("DATA", "502 5.5.1 ") // DATA in the middle of BDAT
	c.send("BDAT " + itoa(len(part2)) + " LAST\r\n" + part2)
	c.expect("", "250 2.0.0 Ok: queued as FAKE1")
	txs := hop.completed()
	if len(txs) != 1 {
		t.Fatalf("hop completed %d", len(txs))
	}
	want := "Subject: chunked\r\n\r\n..dot at line start\r\nbare\r\nLF\r\n"
	if got := string(txs[0].Data); got != want {
		t.Errorf("hop got %q, want %q", got, want)
	}
}

func TestGarbageAndLongLines(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.MaxLineLength = 1000 })
	c := dial(t, p.addr)
	c.expect("", "220 ")
	c.expect("MAIL FROM:<a@example.org>", "502 5.5.1 ") // before EHLO
	c.expect("EHLO client.test", "250 ")
	c.expect("FOO bar", "50")
	c.expect("MAIL TO:<a@example.org>", "501 5.5.2 ")
	c.expect("RCPT TO:<b@isp.example>", "502 5.5.1 ")
	c.expect("DATA", "502 5.5.1 ")
	c.send(strings.Repeat("X", 5000) + "\r\n")
	c.expect("", "500 5.4.0 ")
}

func TestMaxConnectionsAndAllowFrom(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.MaxConnections = 1 })
	c1 := dial(t, p.addr)
	c1.expect("", "220 ")
	c2 := dial(t, p.addr)
	c2.expect("", "421 4.4.5 ")
	c1.expect("QUIT", "221 ")
	eventually(t, "slot to free", func() bool { return testutil.ToFloat64(p.metrics.sessionsActive) == 0 })
	c3 := dial(t, p.addr)
	c3.expect("", "220 ")

	p2 := newTestProxy(t, hop.addr(), func(o *Options) { o.AllowFrom = mustPrefixes("192.0.2.0/24") })
	c4 := dial(t, p2.addr)
	c4.expect("", "554 5.7.1 ")
	if v := testutil.ToFloat64(p2.metrics.sessionsRefused.WithLabelValues("allow_from")); v != 1 {
		t.Errorf("refused allow_from = %v", v)
	}
}

func TestGracefulShutdown(t *testing.T) {
	hop := newFakeHop(t, false)
	release := make(chan struct{})
	hop.setReply(func(cmd, _ string, _ int) string {
		if cmd == "." {
			<-release // hold the final reply until shutdown has begun
		}
		return ""
	})
	p := newTestProxy(t, hop.addr(), nil)
	busy := dial(t, p.addr)
	busy.hello("EHLO")
	idle := dial(t, p.addr)
	idle.hello("EHLO")
	busy.expect("MAIL FROM:<a@example.org>", "250 ")
	busy.expect("RCPT TO:<b@isp.example>", "250 ")
	busy.expect("DATA", "354 ")
	busy.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	eventually(t, "hop to hold the dot", func() bool { return len(hop.completed()) == 1 })

	p.cancel()
	idle.expect("", "421 ")
	// New connections are refused once draining.
	if c, err := dialMaybe(p.addr); err == nil {
		c.Close()
		t.Log("listener still accepted; acceptable if it closes immediately")
	}
	close(release)
	busy.expect("", "250 2.0.0 Ok: queued as FAKE1")
	busy.expect("", "421 ")
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last session")
	}
	p.done <- nil // for the cleanup
}

// The body is streamed: relaying a 32 MiB message allocates a small,
// fixed amount, not the message.
func TestBodyIsStreamedNotBuffered(t *testing.T) {
	hop := newFakeHop(t, false)
	hop.discard = true
	hop.setExt([]string{"PIPELINING", "8BITMIME"}) // no SIZE limit of its own
	p := newTestProxy(t, hop.addr(), func(o *Options) {
		o.MaxMessageBytes = 100 << 20
		o.ReadTimeout = 2 * time.Minute // the whole body must arrive within it, even under -race
	})
	c := dial(t, p.addr)
	// 32 MiB under -race on a busy machine can take longer than dial's
	// 20 s; this test is about memory, not speed.
	c.c.SetDeadline(time.Now().Add(2 * time.Minute))
	c.hello("EHLO")
	c.openData("b@isp.example")
	line := []byte(strings.Repeat("x", 998) + "\r\n")
	block := bytes.Repeat(line, 64) // 64 KB
	const size = 32 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send("Subject: big\r\n\r\n")
	sent := 0
	for ; sent < size; sent += len(block) {
		if _, err := c.c.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	c.send(".\r\n")
	c.expect("", "250 2.0.0 Ok: counted")
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("relaying %d MiB allocated %d KiB", size>>20, alloc>>10)
	if alloc > 8<<20 {
		t.Errorf("relaying %d MiB allocated %d MiB: the body is being buffered", size>>20, alloc>>20)
	}
	txs := hop.completed()
	if want := fmt.Sprint(sent + len("Subject: big\r\n\r\n")); len(txs) != 1 || string(txs[0].Data) != want {
		t.Fatalf("hop counted %v, want one message of %s bytes", txs, want)
	}
}

// A kept downstream connection that the next hop closed while idle is
// replaced transparently at the next MAIL.
func TestKeptConnectionClosedByTheHopIsRedialled(t *testing.T) {
	hop := newFakeHop(t, false)
	hop.hangupAfterData = true
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	for i := 0; i < 3; i++ {
		sendTxn(c, "b@isp.example")
		c.expect("", "250 ")
	}
	if n := len(hop.completed()); n != 3 {
		t.Fatalf("hop completed %d, want 3", n)
	}
	if v := testutil.ToFloat64(p.metrics.downstreamFails.WithLabelValues(reasonIO)); v != 0 {
		t.Errorf("a stale kept connection counted as a failure: %v", v)
	}
}
