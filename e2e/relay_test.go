package e2e

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A message with everything a transparent hop must keep: dot-stuffed
// lines, a lone dot, trailing spaces, 8-bit bytes, folded headers.
const testMessage = "Received: from upstream.example by mx.example; Fri, 27 Nov 2026 10:00:00 +0000\r\n" +
	"X-Spam-Flag: YES\r\n" +
	"X-Spam-Status: Yes, score=9.1 required=5.0\r\n" +
	"\ttests=BAYES_99\r\n" +
	"From: Sender <sender@example.org>\r\n" +
	"To: alice@isp.example\r\n" +
	"Subject: =?utf-8?q?caf=C3=A9?=\r\n" +
	"Message-ID: <e2e-1@example.org>\r\n" +
	"\r\n" +
	"first line\r\n" +
	".leading dot\r\n" +
	".\r\n" +
	"..two dots\r\n" +
	"trailing spaces   \r\n" +
	"8-bit: caf\xc3\xa9\r\n"

func writeMessage(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(path, []byte(testMessage), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSwaksThroughProxyToSmtpSinkByteForByte(t *testing.T) {
	sk := startSink(t)
	d := startDaemon(t, sk.addr, conf{})
	out, err := swaks(t, d.smtp, "--from", "sender@example.org", "--to", "alice@isp.example,bob@isp.example", "--data", writeMessage(t), "--pipeline")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(out, "<-  250 2.0.0 Ok: queued") && !strings.Contains(out, "<-  250 2.0.0 Ok") {
		t.Fatalf("swaks did not get the sink's 250:\n%s", out)
	}
	msgs := sk.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	// smtp-sink writes each received line ending in LF; swaks adds one
	// empty line before the dot.
	want := strings.ReplaceAll(testMessage, "\r\n", "\n") + "\n"
	if msgs[0] != want {
		t.Errorf("sink received\n%q\nwant\n%q", msgs[0], want)
	}
	if v := d.metric(t, `spamsurge_messages_total{result="relayed"}`); v != 1 {
		t.Errorf("relayed = %v, want 1", v)
	}
	if v := d.metric(t, `spamsurge_verdicts_total{verdict="spam"}`); v != 1 {
		t.Errorf("spam verdicts = %v, want 1", v)
	}
	if v := d.metric(t, `spamsurge_recipients_total{result="accepted"}`); v != 2 {
		t.Errorf("accepted recipients = %v, want 2", v)
	}
	// The detector took the observation (logged at debug, counts only).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.out.String(), `observation	{"rcpt": 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("the detector never got the observation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Stop it (flushing the store), then: no plaintext address in the
	// logs, the store or anything else the daemon wrote.
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	addrs := []string{"alice@isp.example", "bob@isp.example", "sender@example.org"}
	for _, a := range addrs {
		if strings.Contains(d.out.String(), a) {
			t.Errorf("log contains the address %s", a)
		}
	}
	files := 0
	filepath.Walk(d.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		files++
		b, _ := os.ReadFile(path)
		for _, a := range addrs {
			if strings.Contains(string(b), a) {
				t.Errorf("%s contains the plaintext address %s", path, a)
			}
		}
		return nil
	})
	if files < 3 {
		t.Errorf("only %d files under %s: did the store get written?", files, d.dir)
	}
}

func TestLMTPWithSmtpSink(t *testing.T) {
	sk := startSink(t, "-L")
	for _, inbound := range []string{"SMTP", "LMTP"} {
		t.Run(inbound+"-in", func(t *testing.T) {
			c := conf{downstream: "  protocol: lmtp"}
			args := []string{"--to", "alice@isp.example,bob@isp.example", "--data", writeMessage(t)}
			if inbound == "LMTP" {
				c.smtp = "  protocol: lmtp"
				args = append(args, "--protocol", "LMTP")
			}
			d := startDaemon(t, sk.addr, c)
			before := len(sk.messages(t))
			out, err := swaks(t, d.smtp, args...)
			if err != nil {
				t.Fatalf("swaks: %v\n%s", err, out)
			}
			if inbound == "LMTP" && (!strings.Contains(out, "<-  250 2.2.0 <alice@isp.example>") || !strings.Contains(out, "<-  250 2.2.0 <bob@isp.example>")) {
				t.Errorf("want one 250 per recipient over LMTP:\n%s", out)
			}
			if got := len(sk.messages(t)) - before; got != 1 {
				t.Errorf("sink got %d messages, want 1", got)
			}
		})
	}
}

// smtp-sink's fault options: each fault of the next hop reaches the
// client as the hop's own reply, or as our 4xx when the hop went away.
func TestSmtpSinkFaults(t *testing.T) {
	cases := []struct {
		name string
		sink []string
		conf conf
		want string // in swaks' transcript
	}{
		{"soft reject RCPT", []string{"-r", "RCPT"}, conf{}, "<** 450 4.3.0 Error: command failed"},
		{"hard reject RCPT", []string{"-f", "RCPT"}, conf{}, "<** 500 5.3.0 Error: command failed"},
		{"hard reject MAIL", []string{"-f", "MAIL"}, conf{}, "<** 500 5.3.0 Error: command failed"},
		{"hard reject dot", []string{"-f", "."}, conf{}, "<** 500 5.3.0 Error: command failed"},
		{"soft reject dot", []string{"-r", "."}, conf{}, "<** 450 4.3.0 Error: command failed"},
		{"421 at MAIL", []string{"-Q", "MAIL"}, conf{}, "<** 421 "},
		{"disconnect at RCPT", []string{"-q", "RCPT"}, conf{}, "<** 451 4.4.1 "},
		{"disconnect after dot", []string{"-q", "."}, conf{}, "<** 451 4.4.2 "},
		{"slow final reply", []string{"-W", ".:3"}, conf{downstream: "  data_timeout: 1s"}, "<** 451 4.4.2 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sk := startSink(t, tc.sink...)
			d := startDaemon(t, sk.addr, tc.conf)
			out, _ := swaks(t, d.smtp, "--to", "alice@isp.example", "--data", writeMessage(t))
			if !strings.Contains(out, tc.want) {
				t.Fatalf("want %q in:\n%s", tc.want, out)
			}
			if strings.Contains(out, "<** 5") && tc.want[4] == '4' {
				t.Errorf("a fault became permanent:\n%s", out)
			}
		})
	}
}

// The smuggling payload through the real binary to the real sink: the
// sink must see one message and no second MAIL.
func TestSmugglingAgainstSmtpSink(t *testing.T) {
	sk := startSink(t)
	d := startDaemon(t, sk.addr, conf{})
	c, err := net.Dial("tcp", d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	expect := func(send, want string) {
		t.Helper()
		if send != "" {
			c.Write([]byte(send))
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", send, err)
			}
			if len(l) > 3 && l[3] == '-' {
				continue
			}
			if !strings.HasPrefix(l, want) {
				t.Fatalf("after %q got %q, want %q", send, l, want)
			}
			return
		}
	}
	expect("", "220 ")
	expect("EHLO client.test\r\n", "250 ")
	expect("MAIL FROM:<a@example.org>\r\n", "250 ")
	expect("RCPT TO:<alice@isp.example>\r\n", "250 ")
	expect("DATA\r\n", "354 ")
	expect("Subject: a\r\n\r\nhello\n.\nMAIL FROM:<evil@example.net>\nRCPT TO:<victim@isp.example>\nDATA\nSubject: spoofed\n\n\r.\r\nx\r\n.\r\n", "250 ")
	expect("QUIT\r\n", "221 ")
	msgs := sk.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1: %q", len(msgs), msgs)
	}
	if strings.Contains(msgs[0], "X-Mail-Args: <evil") {
		t.Fatal("smuggled transaction reached the sink")
	}
	// The sink shows content (unstuffed): the fake terminator is an
	// ordinary body line of the one message.
	if !strings.Contains(msgs[0], "hello\n.\nMAIL FROM:<evil@example.net>\n") {
		t.Errorf("body not kept as one message: %q", msgs[0])
	}
}

func TestClientVanishingMidDataLeavesNothingAtSmtpSink(t *testing.T) {
	sk := startSink(t)
	d := startDaemon(t, sk.addr, conf{})
	c, err := net.Dial("tcp", d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@isp.example>\r\nDATA\r\n"))
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "354") {
			break
		}
	}
	c.Write([]byte("Subject: half\r\n\r\n" + strings.Repeat("body body body\r\n", 2000)))
	c.Close()
	// Then a complete message on a new connection, so we know the sink
	// has processed everything before it.
	out, err := swaks(t, d.smtp, "--to", "bob@isp.example", "--data", writeMessage(t))
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := sk.messages(t)
	if len(msgs) != 1 || strings.Contains(msgs[0], "Subject: half") {
		t.Fatalf("sink got %d messages (want only the complete one)", len(msgs))
	}
}

// SIGTERM: a transaction in flight completes with the sink's 250, then the
// daemon exits 0 within the shutdown deadline.
func TestSIGTERMFinishesTransactionsInFlight(t *testing.T) {
	sk := startSink(t, "-W", ".:2")
	d := startDaemon(t, sk.addr, conf{smtp: "  shutdown_timeout: 10s"})
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := swaks(t, d.smtp, "--to", "alice@isp.example", "--data", writeMessage(t))
		done <- result{out, err}
	}()
	// Wait until the body has reached the sink's slow dot.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.out.String(), "") || time.Now().Before(deadline) {
		if b, _ := os.ReadFile(sk.dump); len(b) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	res := <-done
	if res.err != nil || !strings.Contains(res.out, "-> .\n<-  250 ") || !strings.Contains(res.out, "<-  221 ") {
		t.Fatalf("in-flight transaction did not complete: %v\n%s", res.err, res.out)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exited with %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("daemon did not exit within the shutdown deadline")
	}
}
