package smtpd

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzNormaliser: whatever the input and however it is chunked, the output
// has only CRLF line ends, ends with CRLF, and does not depend on chunking.
func FuzzNormaliser(f *testing.F) {
	for _, s := range []string{"", "a", "a\r\nb\r\n", "a\nb", "x\r.\r\n", "\r\r\n", "\n.\n", "\r", "\r\n.\r\n", "a\rb\rc", "\r\n\x00.\r\n"} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		var whole bytes.Buffer
		n := NewNormaliser(&whole)
		n.Write(in)
		n.Close()

		var chunked bytes.Buffer
		m := NewNormaliser(&chunked)
		step := int(split%17) + 1
		for i := 0; i < len(in); i += step {
			m.Write(in[i:min(i+step, len(in))])
		}
		m.Close()

		out := whole.Bytes()
		if !bytes.Equal(out, chunked.Bytes()) {
			t.Fatalf("chunking changed the output: %q vs %q", out, chunked.Bytes())
		}
		if n.Bare() != m.Bare() {
			t.Fatalf("bare counts differ: %d vs %d", n.Bare(), m.Bare())
		}
		stripped := bytes.ReplaceAll(out, []byte("\r\n"), nil)
		if bytes.ContainsAny(stripped, "\r\n") {
			t.Fatalf("bare CR or LF left in %q", out)
		}
		content := bytes.ReplaceAll(in, []byte{0}, nil)
		if len(content) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("output %q does not end with CRLF", out)
		}
		if len(content) == 0 && len(out) != 0 {
			t.Fatalf("empty input gave %q", out)
		}
		if bytes.IndexByte(out, 0) >= 0 || n.NUL() != bytes.Count(in, []byte{0}) {
			t.Fatalf("NUL: %d in, %d counted, output %q", bytes.Count(in, []byte{0}), n.NUL(), out)
		}
		// Nothing but line ends and NULs changes.
		if !bytes.Equal(withoutCRLFNUL(in), withoutCRLFNUL(out)) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}

// withoutCRLFNUL is b without CR, LF and NUL bytes (byte-wise: joining
// bytes must not make new runes).
func withoutCRLFNUL(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\r' && c != '\n' && c != 0 {
			out = append(out, c)
		}
	}
	return out
}

var (
	fuzzOnce  sync.Once
	fuzzHop   *fakeHop
	fuzzProxy *testProxy
)

// FuzzSession throws arbitrary bytes at the SMTP front door. The proxy must
// not crash or hang, must never answer 5xx for its own faults (no
// "Internal" or Go error text), must keep serving, and whatever the next hop
// completes must have only CRLF line ends.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: s\r\n\r\nbody\n.\nMAIL FROM:<e@f>\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nhelloQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\nDATA\r\n\r.\r\n.\r\n",
		"EHLO x\r\nBDAT 99999999999\r\nDATA\r\nSTARTTLS\r\nAUTH PLAIN\r\n",
		"\x00\xff\r\n\r\n\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzOnce.Do(func() {
			// One proxy for the whole run: shared across iterations
			// like a long-running daemon.
			fuzzHop = newFuzzHop()
			fuzzProxy = newFuzzProxy(fuzzHop.addr())
		})
		c, err := net.Dial("tcp", fuzzProxy.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("proxy hung on %q", in)
		}
		for _, line := range strings.Split(string(out), "\r\n") {
			if strings.Contains(line, "Internal") || strings.Contains(line, "transaction failed") || strings.Contains(line, "smtp:") {
				t.Fatalf("internal error reached the client: %q", line)
			}
		}
		for _, tx := range fuzzHop.completed() {
			s := strings.ReplaceAll(string(tx.Data), "\r\n", "")
			if strings.ContainsAny(s, "\r\n") {
				t.Fatalf("bare line end reached the next hop: %q", tx.Data)
			}
		}
		// Still serving.
		c2, err := net.Dial("tcp", fuzzProxy.addr)
		if err != nil {
			t.Fatalf("proxy stopped accepting: %v", err)
		}
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "220 " {
			t.Fatalf("no greeting after fuzz input: %q %v", buf, err)
		}
		c2.Close()
	})
}
