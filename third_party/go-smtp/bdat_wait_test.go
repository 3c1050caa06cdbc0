package smtp_test

import (
	"bufio"
	"io"
	"io/ioutil"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// The BDAT goroutine runs Session.Data; Reset and Logout must not be called
// until it has returned. These tests give the session a field that Data
// writes after its reader fails (as a backend that records the outcome of
// the transaction would) and Reset and Logout write too: under -race they
// fail if Reset or Logout is not ordered after the end of Data.

type bdatWaitBackend struct {
	dataDone chan error
	logout   chan struct{}
}

func (be *bdatWaitBackend) NewSession(_ *smtp.Conn) (smtp.Session, error) {
	return &bdatWaitSession{be: be}, nil
}

type bdatWaitSession struct {
	be *bdatWaitBackend

	// state is the session's own, unsynchronised: go-smtp calls the
	// Session methods one at a time.
	state string
}

func (s *bdatWaitSession) Mail(from string, opts *smtp.MailOptions) error {
	s.state = "mail"
	return nil
}

func (s *bdatWaitSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.state = "rcpt"
	return nil
}

func (s *bdatWaitSession) Data(r io.Reader) error {
	_, err := io.Copy(ioutil.Discard, r)
	// Give Reset or Logout, if they are not waiting, time to run first.
	time.Sleep(20 * time.Millisecond)
	s.state = "data: " + errString(err)
	s.be.dataDone <- err
	return err
}

func (s *bdatWaitSession) Reset() {
	s.state = "reset"
}

func (s *bdatWaitSession) Logout() error {
	s.state = "logout"
	close(s.be.logout)
	return nil
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func testServerBdatWait(t *testing.T) (be *bdatWaitBackend, s *smtp.Server, c net.Conn, scanner *bufio.Scanner) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be = &bdatWaitBackend{dataDone: make(chan error, 1), logout: make(chan struct{})}
	s = smtp.NewServer(be)
	s.Domain = "localhost"
	go s.Serve(l)

	c, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	scanner = bufio.NewScanner(c)
	expect := func(cmd, prefix string) {
		t.Helper()
		if cmd != "" {
			io.WriteString(c, cmd)
		}
		for scanner.Scan() {
			line := scanner.Text()
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("after %q: got %q, want %q", cmd, line, prefix)
			}
			if len(line) < 4 || line[3] == ' ' {
				return
			}
		}
		t.Fatalf("after %q: %v", cmd, scanner.Err())
	}
	expect("", "220 ")
	expect("EHLO localhost\r\n", "250")
	expect("MAIL FROM:<root@nsa.gov>\r\n", "250 ")
	expect("RCPT TO:<root@gchq.gov.uk>\r\n", "250 ")
	expect("BDAT 8\r\nHey <3\r\n", "250 ")
	return be, s, c, scanner
}

func waitBdatData(t *testing.T, be *bdatWaitBackend) {
	t.Helper()
	select {
	case err := <-be.dataDone:
		if err != smtp.ErrDataReset {
			t.Fatalf("Data's reader failed with %v, want %v", err, smtp.ErrDataReset)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Data did not return")
	}
}

// The client goes away between two chunks: Logout waits for Data.
func TestServer_Chunking_CloseWaitsForData(t *testing.T) {
	be, s, c, _ := testServerBdatWait(t)
	defer s.Close()

	c.Close()

	waitBdatData(t, be)
	select {
	case <-be.logout:
	case <-time.After(10 * time.Second):
		t.Fatal("Logout was not called")
	}
}

// RSET between two chunks: Reset waits for Data, and the session goes on.
func TestServer_Chunking_ResetWaitsForData(t *testing.T) {
	be, s, c, scanner := testServerBdatWait(t)
	defer s.Close()
	defer c.Close()

	io.WriteString(c, "RSET\r\n")
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "250 ") {
		t.Fatalf("Invalid RSET response: %q %v", scanner.Text(), scanner.Err())
	}
	waitBdatData(t, be)

	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\n")
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "250 ") {
		t.Fatalf("Invalid MAIL response: %q %v", scanner.Text(), scanner.Err())
	}
}
