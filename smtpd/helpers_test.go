package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spamsurge/spamsurge/ingest"
)

// hopTxn is one transaction as the fake next hop received it, raw.
type hopTxn struct {
	Mail  string
	Rcpts []string
	// Data is the dot-stuffed body exactly as received, without the
	// terminating ".\r\n". Complete is true when the dot arrived.
	Data     []byte
	Complete bool
	XForward []string
	TLS      bool // the transaction ran inside STARTTLS
}

// fakeHop is a scripted next hop speaking raw SMTP or LMTP, recording
// exactly what arrives on the wire. Behaviour hooks decide its replies.
type fakeHop struct {
	ln   net.Listener
	lmtp bool
	tls  *tls.Config
	ext  []string // extra EHLO keywords

	mu   sync.Mutex
	txns []*hopTxn
	// reply lets a test override the reply to a command ("MAIL", "RCPT",
	// "DATA", ".", ...); arg is the command's argument or, for ".", the
	// recipient index in LMTP. Return "" for the default reply,
	// "HANGUP" to close the connection without replying, or "SLEEP" to
	// wait until the test ends.
	reply func(cmd, arg string, idx int) string
	conns int
	// discard makes the hop count body bytes instead of keeping them,
	// reading with a fixed buffer (for memory tests).
	discard bool
	// hangupAfterData closes the connection after each final reply, as a
	// next hop whose idle timeout fired between transactions.
	hangupAfterData bool
}

func newFakeHop(t *testing.T, lmtp bool) *fakeHop {
	t.Helper()
	done := make(chan struct{})
	h, err := startFakeHop(lmtp, done)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(done); h.ln.Close() })
	return h
}

// newFuzzHop is a fake hop that lives as long as the process.
func newFuzzHop() *fakeHop {
	h, err := startFakeHop(false, make(chan struct{}))
	if err != nil {
		panic(err)
	}
	return h
}

func startFakeHop(lmtp bool, done chan struct{}) (*fakeHop, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &fakeHop{ln: ln, lmtp: lmtp, ext: []string{"PIPELINING", "8BITMIME", "SIZE 10240000", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "XFORWARD NAME ADDR PROTO HELO"}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns++
			h.mu.Unlock()
			go h.serve(c, done)
		}
	}()
	return h, nil
}

func (h *fakeHop) addr() string { return h.ln.Addr().String() }

func (h *fakeHop) transactions() []*hopTxn {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Copies: the hop goroutine goes on writing to its own.
	out := make([]*hopTxn, len(h.txns))
	for i, tx := range h.txns {
		c := *tx
		c.Rcpts = append([]string(nil), tx.Rcpts...)
		c.Data = append([]byte(nil), tx.Data...)
		c.XForward = append([]string(nil), tx.XForward...)
		out[i] = &c
	}
	return out
}

func (h *fakeHop) completed() []*hopTxn {
	var out []*hopTxn
	for _, tx := range h.transactions() {
		if tx.Complete {
			out = append(out, tx)
		}
	}
	return out
}

func (h *fakeHop) override(cmd, arg string, idx int) string {
	h.mu.Lock()
	f := h.reply
	h.mu.Unlock()
	if f == nil {
		return ""
	}
	return f(cmd, arg, idx)
}

func (h *fakeHop) setReply(f func(cmd, arg string, idx int) string) {
	h.mu.Lock()
	h.reply = f
	h.mu.Unlock()
}

func (h *fakeHop) setExt(ext []string) {
	h.mu.Lock()
	h.ext = ext
	h.mu.Unlock()
}

func (h *fakeHop) setTLS(c *tls.Config) {
	h.mu.Lock()
	h.tls = c
	h.mu.Unlock()
}

func (h *fakeHop) config() ([]string, *tls.Config) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ext, h.tls
}

func (h *fakeHop) serve(c net.Conn, done chan struct{}) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(s string) bool {
		switch s {
		case "HANGUP":
			return false
		case "SLEEP":
			<-done
			return false
		}
		w.WriteString(s + "\r\n")
		return w.Flush() == nil
	}
	if !say(orDefault(h.override("CONNECT", "", 0), "220 fakehop ESMTP")) {
		return
	}
	var tx *hopTxn
	var pendingXF []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if strings.HasPrefix(strings.ToUpper(line), "MAIL FROM:") {
			verb, arg = "MAIL", line[10:]
		} else if strings.HasPrefix(strings.ToUpper(line), "RCPT TO:") {
			verb, arg = "RCPT", line[8:]
		}
		rep := h.override(verb, arg, 0)
		switch verb {
		case "EHLO", "LHLO":
			if rep == "" {
				ext, tlsCfg := h.config()
				lines := []string{"250-fakehop"}
				for _, e := range ext {
					lines = append(lines, "250-"+e)
				}
				if tlsCfg != nil {
					if _, ok := c.(*tls.Conn); !ok {
						lines = append(lines, "250-STARTTLS")
					}
				}
				lines[len(lines)-1] = "250 " + lines[len(lines)-1][4:]
				rep = strings.Join(lines, "\r\n")
			}
		case "STARTTLS":
			_, tlsCfg := h.config()
			if tlsCfg == nil {
				rep = orDefault(rep, "502 5.5.1 no TLS")
				break
			}
			say("220 2.0.0 go ahead")
			tc := tls.Server(c, tlsCfg)
			if tc.Handshake() != nil {
				return
			}
			c = tc
			r = bufio.NewReader(c)
			w = bufio.NewWriter(c)
			continue
		case "XFORWARD":
			pendingXF = append(pendingXF, arg)
			rep = orDefault(rep, "250 2.0.0 Ok")
		case "MAIL":
			if rep == "" || rep[0] == '2' {
				_, isTLS := c.(*tls.Conn)
				tx = &hopTxn{Mail: arg, XForward: pendingXF, TLS: isTLS}
				pendingXF = nil
				h.mu.Lock()
				h.txns = append(h.txns, tx)
				h.mu.Unlock()
			}
			rep = orDefault(rep, "250 2.1.0 Ok")
		case "RCPT":
			if (rep == "" || rep[0] == '2') && tx != nil {
				h.mu.Lock()
				tx.Rcpts = append(tx.Rcpts, arg)
				h.mu.Unlock()
			}
			rep = orDefault(rep, "250 2.1.5 Ok")
		case "DATA":
			if rep != "" {
				break
			}
			if !say("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			if h.discard {
				n, ok := discardBody(r)
				h.mu.Lock()
				tx.Data = []byte(fmt.Sprint(n))
				tx.Complete = ok
				h.mu.Unlock()
				if !ok || !say("250 2.0.0 Ok: counted") {
					return
				}
				tx = nil
				continue
			}
			var data []byte
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					h.mu.Lock()
					tx.Data = append(data, l...)
					h.mu.Unlock()
					return
				}
				if l == ".\r\n" {
					break
				}
				data = append(data, l...)
			}
			h.mu.Lock()
			tx.Data = data
			tx.Complete = true
			n := len(tx.Rcpts)
			h.mu.Unlock()
			if !h.lmtp {
				n = 1
			}
			for i := 0; i < n; i++ {
				if !say(orDefault(h.override(".", "", i), "250 2.0.0 Ok: queued as FAKE1")) {
					return
				}
			}
			if h.hangupAfterData {
				return
			}
			tx = nil
			continue
		case "RSET":
			tx = nil
			rep = orDefault(rep, "250 2.0.0 Ok")
		case "NOOP":
			rep = orDefault(rep, "250 2.0.0 Ok")
		case "QUIT":
			say(orDefault(rep, "221 2.0.0 Bye"))
			return
		default:
			rep = orDefault(rep, "502 5.5.2 Error: command not recognized")
		}
		if !say(rep) {
			return
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// recorder collects observations.
type recorder struct {
	mu  sync.Mutex
	obs []ingest.Observation
}

func (r *recorder) Observe(o ingest.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *recorder) all() []ingest.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ingest.Observation(nil), r.obs...)
}

type testProxy struct {
	*Server
	addr   string
	reg    *prometheus.Registry
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
}

// newTestProxy starts a proxy on a free loopback port in front of hop.
func newTestProxy(t *testing.T, hopAddr string, mod func(*Options)) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	o := Options{
		Listen:     "127.0.0.1:0",
		Hostname:   "proxy.test",
		XForward:   true, // every transcript test also exercises xfConn
		Registerer: reg,
		Sink:       rec,
		Downstream: DownstreamOptions{
			Address:        hopAddr,
			ConnectTimeout: 2 * time.Second,
			CommandTimeout: 5 * time.Second,
			DataTimeout:    5 * time.Second,
		},
		ReadTimeout:     10 * time.Second,
		ShutdownTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testProxy{Server: s, addr: s.Addr().String(), reg: reg, rec: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("proxy did not shut down")
		}
	})
	return p
}

// newFuzzProxy is a proxy that lives as long as the process.
func newFuzzProxy(hopAddr string) *testProxy {
	s, err := New(Options{
		Listen: "127.0.0.1:0", Hostname: "proxy.test", MaxMessageBytes: 1 << 20,
		ReadTimeout: 2 * time.Second, MaxConnections: 10000, XForward: true,
		Downstream: DownstreamOptions{Address: hopAddr, ConnectTimeout: time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second},
	})
	if err != nil {
		panic(err)
	}
	if err := s.Listen(); err != nil {
		panic(err)
	}
	go s.Serve(context.Background())
	return &testProxy{Server: s, addr: s.Addr().String()}
}

// client is a raw wire client for transcript tests.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes raw bytes (no line end added).
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *client) reply() string {
	c.t.Helper()
	var last string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (after %q)", err, last)
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 || l[3] != '-' {
			return l
		}
		last = l
	}
}

// expect sends a command line and checks the reply starts with want.
func (c *client) expect(cmd, want string) string {
	c.t.Helper()
	if cmd != "" {
		c.send(cmd + "\r\n")
	}
	got := c.reply()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%q: got reply %q, want %q", cmd, got, want)
	}
	return got
}

// openData starts a transaction from a@example.org to rcpts, each
// accepted, up to the 354 of DATA.
func (c *client) openData(rcpts ...string) {
	c.t.Helper()
	c.expect("MAIL FROM:<a@example.org>", "250 ")
	for _, r := range rcpts {
		c.expect("RCPT TO:<"+r+">", "250 ")
	}
	c.expect("DATA", "354 ")
}

// hello reads the greeting and says EHLO (or LHLO).
func (c *client) hello(verb string) {
	c.t.Helper()
	c.expect("", "220 ")
	c.expect(verb+" client.test", "250 ")
}

// ehloKeywords returns the EHLO keywords offered.
func (c *client) ehloKeywords(verb string) []string {
	c.t.Helper()
	c.send(verb + " client.test\r\n")
	var kws []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatal(err)
		}
		l = strings.TrimRight(l, "\r\n")
		kws = append(kws, l[4:])
		if l[3] == ' ' {
			return kws[1:]
		}
	}
}

func msg(headers, body string) string {
	return strings.ReplaceAll(headers, "\n", "\r\n") + "\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *client) ehloKeywordsAfterGreeting(verb string) []string {
	c.t.Helper()
	c.expect("", "220 ")
	return c.ehloKeywords(verb)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func itoa(n int) string { return fmt.Sprint(n) }

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func dialMaybe(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}

// discardBody reads a dot-terminated body without keeping it.
func discardBody(r *bufio.Reader) (int64, bool) {
	var n int64
	bol := true
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n += int64(len(line))
			bol = false
			continue
		}
		if err != nil {
			return n, false
		}
		if bol && string(line) == ".\r\n" {
			return n, true
		}
		n += int64(len(line))
		bol = true
	}
}
