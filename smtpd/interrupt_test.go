package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A client that stops in the middle of its body is logged with why (the
// kind of failure) and who, in its own field; the network error's text,
// which holds both ends' addresses, is not.
func TestClientDataInterruptedIsLoggedByKind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		bdat   bool
		stop   func(c *client)
	}{
		{"eof", "eof", false, func(c *client) { c.c.Close() }},
		{"reset", "reset", false, func(c *client) {
			c.c.(*net.TCPConn).SetLinger(0) // close sends RST
			c.c.Close()
		}},
		{"timeout", "timeout", false, func(c *client) {}},
		{"bdat-close", "aborted", true, func(c *client) { c.c.Close() }},
		{"bdat-rset", "aborted", true, func(c *client) { c.expect("RSET", "250 ") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hop := newFakeHop(t, false)
			core, logs := observer.New(zap.InfoLevel)
			p := newTestProxy(t, hop.addr(), func(o *Options) {
				o.Logger = zap.New(core)
				o.ReadTimeout = 500 * time.Millisecond
			})
			c := dial(t, p.addr)
			defer c.c.Close()
			c.hello("EHLO")
			if tc.bdat {
				c.expect("MAIL FROM:<a@example.org>", "250 ")
				c.expect("RCPT TO:<b@isp.example>", "250 ")
				c.send("BDAT 9\r\nSubject: ")
				c.expect("", "250 ")
			} else {
				c.openData("b@isp.example")
				c.send("Subject: x\r\n\r\nhalf a bo")
			}
			client := c.c.LocalAddr().String()
			tc.stop(c)

			var e observer.LoggedEntry
			eventually(t, "the log line", func() bool {
				l := logs.FilterMessage("client data interrupted").All()
				if len(l) > 0 {
					e = l[0]
				}
				return len(l) > 0
			})
			f := e.ContextMap()
			if f["client"] != client || f["reason"] != tc.reason {
				t.Fatalf("logged %v, want client %s and reason %s", f, client, tc.reason)
			}
			_, port, _ := net.SplitHostPort(client)
			for k, v := range f {
				if s := fmt.Sprint(v); k != "client" && (strings.Contains(s, port) || strings.Contains(s, p.addr)) {
					t.Errorf("field %s = %q holds an address", k, s)
				}
			}
		})
	}
}

func TestClientErrorKind(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp",
			Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25},
			Addr:   &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}, Err: err}
	}
	other := opErr(errors.New("something odd"))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{io.ErrUnexpectedEOF, "eof"},
		{fmt.Errorf("wrapped: %w", io.EOF), "eof"},
		{opErr(errTimeoutForTest{}), "timeout"},
		{net.ErrClosed, "closed"},
		{smtp.ErrDataReset, "aborted"},
		{other, "other"},
	} {
		if got := clientErrorKind(tc.err); got != tc.want {
			t.Errorf("clientErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := withoutAddrs(other).Error(); got != "something odd" {
		t.Errorf("withoutAddrs = %q", got)
	}
}

type errTimeoutForTest struct{}

func (errTimeoutForTest) Error() string   { return "i/o timeout" }
func (errTimeoutForTest) Timeout() bool   { return true }
func (errTimeoutForTest) Temporary() bool { return true }
