package smtp_test

// Tests of StrictCommandLength and one-write replies, added with the
// spamsurge patch.

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestServer_StrictCommandLength(t *testing.T) {
	be, _, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) {
		s.StrictCommandLength = true
		s.EnableDSN = true
		s.MaxLineLength = 64 << 10
	})
	defer c.Close()
	expect := func(send, want string) {
		t.Helper()
		io.WriteString(c, send)
		scanner.Scan()
		if !strings.HasPrefix(scanner.Text(), want) {
			t.Fatalf("after %.40q: got %q, want %q", send, scanner.Text(), want)
		}
	}
	long := strings.Repeat("a", 3000)
	expect("MAIL FROM:<"+long+"@example.org>\r\n", "500 5.5.2 ")
	// 512 + SIZE + BODY + DSN is allowed for MAIL.
	okFrom := "MAIL FROM:<root@localhost> ENVID=" + strings.Repeat("x", 600-35) + "\r\n"
	if len(okFrom) != 600 {
		t.Fatalf("test line is %d octets", len(okFrom))
	}
	expect(okFrom, "250 ")
	// 512 + 500 (DSN) for RCPT: 1013 is one too many.
	expect("RCPT TO:<root@gchq.gov.uk> ORCPT=rfc822;"+strings.Repeat("y", 1013-42)+"\r\n", "500 5.5.2 ")
	expect("RCPT TO:<root@gchq.gov.uk>\r\n", "250 ")
	expect("NOOP "+strings.Repeat("z", 600)+"\r\n", "500 5.5.2 ")
	expect("DATA\r\n", "354 ")
	// Body lines are not command lines.
	expect("Subject: x\r\n\r\n"+strings.Repeat("b", 1500)+"\r\n.\r\n", "250 ")
	if len(be.anonmsgs) != 1 || len(be.anonmsgs[0].To) != 1 {
		t.Fatalf("backend got %d messages", len(be.anonmsgs))
	}
}

// A multi-line reply goes out in one write, so a client that reads one
// segment per reply stays in step.
func TestServer_ReplyInOneWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: l, writes: make(chan string, 100)}
	s := smtp.NewServer(new(backend))
	s.Domain = "localhost"
	go s.Serve(rl)
	defer s.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "EHLO localhost\r\nQUIT\r\n")
	io.ReadAll(c)
	var writes []string
	for len(rl.writes) > 0 {
		writes = append(writes, <-rl.writes)
	}
	if len(writes) != 3 {
		t.Fatalf("server wrote %d times, want 3 (greeting, EHLO reply, QUIT reply): %q", len(writes), writes)
	}
	if !strings.HasPrefix(writes[1], "250-Hello localhost\r\n") || !strings.Contains(writes[1], "\r\n250 ") {
		t.Fatalf("EHLO reply not in one write: %q", writes[1])
	}
}

type recordingListener struct {
	net.Listener
	writes chan string
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, writes: l.writes}, nil
}

type recordingConn struct {
	net.Conn
	writes chan string
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes <- string(p)
	return c.Conn.Write(p)
}
