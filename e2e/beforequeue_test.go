package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// spamsurge as Postfix's before-queue filter (deploy/postfix/
// master-before-queue.cf), for real: swaks → Postfix smtpd → (proxy)
// spamsurge → the after-filter smtpd → queue → smtp-sink. The sender gets
// spamsurge's answers, which are the after-filter's: accepted mail arrives
// once, a recipient the after-filter refuses is refused to the sender, and
// with the next hop down the sender gets a 4xx (it keeps the mail).
func TestPostfixBeforeQueueEndToEnd(t *testing.T) {
	sk := startSink(t)
	afterFilter := testkit.FreePort(t)
	d := startDaemon(t, afterFilter, conf{})
	// A second spamsurge whose next hop is down, behind a second public
	// smtpd.
	down := startDaemon(t, testkit.FreePort(t), conf{})
	submitDown := testkit.FreePort(t)
	pf := startPostfixWith(t, d.smtp, afterFilter, sk.addr, "", "master-before-queue.cf", false,
		"127.0.0.1:"+portOf(submitDown)+" inet n - n - - smtpd\n  -o smtpd_proxy_filter=127.0.0.1:"+portOf(down.smtp)+"\n",
		map[string]string{
			// The after-filter refuses one recipient: its refusal
			// must reach the sender through spamsurge and Postfix.
			"-o smtpd_recipient_restrictions=permit_mynetworks,reject": "-o smtpd_recipient_restrictions=$test_after_filter_rcpt",
			"main.cf": "test_after_filter_rcpt = check_recipient_access inline:{ refused@isp.example=REJECT }, permit_mynetworks, reject\n",
		})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.out.String(), "next hop extensions") {
		if time.Now().After(deadline) {
			t.Fatal("spamsurge never saw the after-filter smtpd come up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Accepted, with one recipient refused by the after-filter.
	out, err := swaks(t, pf.submit, "--helo", "original-client.test", "--from", "sender@example.org",
		"--to", "alice@isp.example,refused@isp.example", "--data", writeMessage(t))
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(out, "<** 554") || !strings.Contains(out, "refused@isp.example") {
		t.Errorf("the after-filter's refusal of refused@isp.example did not reach the sender:\n%s", out)
	}
	if !strings.Contains(out, "<-  250 2.0.0 Ok: queued") {
		t.Errorf("the message was not queued:\n%s", out)
	}
	msgs := sk.delivered(t)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Message-ID: <e2e-1@example.org>") {
		t.Fatalf("sink got %d messages, want the one: %q", len(msgs), msgs)
	}
	log, _ := os.ReadFile(pf.maillog)
	// XFORWARD went Postfix → spamsurge → after-filter: the after-filter
	// (the smtpd that queued the message) logs the original client and
	// counts the XFORWARD commands it got from spamsurge.
	if !strings.Contains(string(log), "orig_client=localhost[127.0.0.1]") || !strings.Contains(string(log), " xforward=") {
		t.Errorf("XFORWARD did not reach the after-filter smtpd (no orig_client / xforward= in the maillog):\n%s", log)
	}
	if strings.Contains(string(log), "to=<refused@isp.example>, relay=") {
		t.Errorf("the refused recipient was delivered")
	}

	// Next hop down: the sender gets a 4xx and keeps the mail.
	out, err = swaks(t, submitDown, "--from", "sender@example.org", "--to", "bob@isp.example", "--data", writeMessage(t))
	if err == nil {
		t.Fatalf("swaks succeeded with the next hop down:\n%s", out)
	}
	if !strings.Contains(out, "<** 4") || strings.Contains(out, "<** 5") {
		t.Errorf("with the next hop down the sender must get a 4xx, never a 5xx:\n%s", out)
	}
	if n := len(sk.messages(t)); n != 1 {
		t.Errorf("sink has %d messages after the failed one, want 1", n)
	}
}
