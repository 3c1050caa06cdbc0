package smtpd

import (
	"strings"
	"testing"
)

// perRecipient makes an LMTP hop answer the final dot per recipient:
// recipients containing "over" get 452, "gone" get 550, others 250.
func perRecipient(hop *fakeHop) {
	hop.setReply(func(cmd, _ string, idx int) string {
		if cmd != "." {
			return ""
		}
		txs := hop.transactions()
		rcpt := txs[len(txs)-1].Rcpts[idx]
		switch {
		case strings.Contains(rcpt, "over"):
			return "452 4.2.2 " + rcpt + " Mailbox over quota"
		case strings.Contains(rcpt, "gone"):
			return "550 5.1.1 " + rcpt + " Mailbox removed"
		}
		return "250 2.0.0 " + rcpt + " Saved"
	})
}

func sendTxn(c *client, rcpts ...string) {
	c.t.Helper()
	c.openData(rcpts...)
	c.send("Subject: x\r\nX-Spam-Flag: NO\r\n\r\nbody\r\n.\r\n")
}

func TestLMTPToLMTPMapsEachRecipient(t *testing.T) {
	hop := newFakeHop(t, true)
	perRecipient(hop)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.LMTP = true; o.Downstream.LMTP = true })
	c := dial(t, p.addr)
	c.hello("LHLO")
	sendTxn(c, "ok@isp.example", "over@isp.example", "gone@isp.example")
	c.expect("", "250 2.0.0 <ok@isp.example> Saved")
	c.expect("", "452 4.2.2 <over@isp.example> Mailbox over quota")
	c.expect("", "550 5.1.1 <gone@isp.example> Mailbox removed")
	eventually(t, "observation", func() bool { return len(p.rec.all()) == 1 })
	o := p.rec.all()[0]
	if len(o.Rcpt) != 1 || o.Rcpt[0] != "ok@isp.example" || len(o.Rejected) != 1 || o.Rejected[0] != "gone@isp.example" {
		t.Errorf("observation rcpt=%q rejected=%q", o.Rcpt, o.Rejected)
	}
}

func TestLMTPToSMTPRepeatsTheOneReply(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.LMTP = true })
	c := dial(t, p.addr)
	c.hello("LHLO")
	sendTxn(c, "a@isp.example", "b@isp.example")
	c.expect("", "250 2.0.0 <a@isp.example> Ok: queued as FAKE1")
	c.expect("", "250 2.0.0 <b@isp.example> Ok: queued as FAKE1")
}

func TestSMTPToLMTPFoldsReplies(t *testing.T) {
	cases := []struct {
		rcpts []string
		want  string
	}{
		{[]string{"a@isp.example", "b@isp.example"}, "250 2.0.0 <a@isp.example> Saved"},
		{[]string{"a@isp.example", "over@isp.example", "gone@isp.example"}, "452 4.2.2 <over@isp.example>"},
		{[]string{"gone1@isp.example", "gone2@isp.example"}, "550 5.1.1 <gone1@isp.example>"},
		// Mixed delivered and refused: the 5xx, so the sender learns of
		// the failure (see relayResult.smtpReply).
		{[]string{"a@isp.example", "gone@isp.example"}, "550 5.1.1 <gone@isp.example>"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.rcpts, ","), func(t *testing.T) {
			hop := newFakeHop(t, true)
			perRecipient(hop)
			p := newTestProxy(t, hop.addr(), func(o *Options) { o.Downstream.LMTP = true })
			c := dial(t, p.addr)
			c.hello("EHLO")
			sendTxn(c, tc.rcpts...)
			c.expect("", tc.want)
		})
	}
}

func TestLMTPHopVanishingMidReplies(t *testing.T) {
	hop := newFakeHop(t, true)
	hop.setReply(func(cmd, _ string, idx int) string {
		if cmd == "." && idx == 1 {
			return "HANGUP"
		}
		return ""
	})
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.LMTP = true; o.Downstream.LMTP = true })
	c := dial(t, p.addr)
	c.hello("LHLO")
	sendTxn(c, "a@isp.example", "b@isp.example")
	c.expect("", "250 ")
	c.expect("", "451 4.4.2 ") // no answer for b: temporary
}
