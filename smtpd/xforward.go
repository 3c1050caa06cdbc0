package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"unicode/utf8"
)

// XFORWARD (Postfix's extension for filter chains) carries the original
// client's name, address, HELO and protocol from the MTA in front of us to
// the one behind, so the re-injection smtpd logs and checks the real client
// rather than 127.0.0.1. go-smtp has no XFORWARD, so the front door gets it
// from xfConn, a thin layer between the socket and go-smtp that
//
//   - adds "250-XFORWARD NAME ADDR PROTO HELO SOURCE IDENT" to EHLO/LHLO
//     replies, right after PIPELINING (go-smtp writes each reply in one
//     Write, and PIPELINING is always its first keyword);
//   - takes XFORWARD command lines out of the stream, records their
//     attributes and hands go-smtp a NOOP instead, so go-smtp answers
//     "250" in the right place of a pipelined exchange;
//   - never looks inside a message: it follows the protocol (DATA after a
//     354 reply up to the same CRLF.CRLF go-smtp stops at, BDAT chunks by
//     their size) and passes message bytes through untouched; after
//     STARTTLS it steps aside for good (XFORWARD is for the loopback
//     filter hop, not for TLS sessions).
//
// The attributes are passed on with the next MAIL when the next hop offers
// XFORWARD (downstream.xforward).

// xforwardKeywords are the attributes we accept and pass on.
var xforwardKeywords = []string{"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"}

const xforwardEHLO = "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"

// xfMaxLine bounds how much of one command line xfConn looks at; longer
// lines pass through and go-smtp refuses them (500 5.5.2, see
// StrictCommandLength). Postfix's smtpd takes XFORWARD lines up to its
// line_length_limit, 2048.
const xfMaxLine = 2048

type xfMode int

const (
	xfCommand     xfMode = iota
	xfAwaitData          // DATA sent; the reply decides
	xfAwaitTLS           // STARTTLS sent; the reply decides
	xfData               // inside a DATA body
	xfChunk              // inside a BDAT chunk
	xfLongLine           // passing an over-long command line through
	xfPassThrough        // after STARTTLS: hands off
)

type xfConn struct {
	net.Conn

	mu      sync.Mutex
	attrs   map[string]string
	reading bool // a Read is running (guarded by mu, as are buf and bufp)
	closed  bool

	// Read side; only go-smtp's connection goroutine reads. buf[r:w] has
	// been read from the socket and not yet looked at; out is what go-smtp
	// gets next, a slice of buf (or noopLine), so bytes pass with one copy
	// and no allocation. buf is refilled only once out is empty.
	mode   xfMode
	buf    []byte  // nil once given back to the pool (release)
	bufp   *[]byte // buf's pool entry
	r, w   int
	out    []byte
	chunk  int64 // BDAT bytes left
	dstate int   // DATA terminator state, as go-smtp's dataReader
}

// xfBufSize is the read buffer; it holds a whole command line (xfMaxLine)
// with room to spare.
const xfBufSize = 16 * 1024

var noopLine = []byte("NOOP\r\n")

// xfBufs pools the read buffers: with one connection per message a fresh
// 16 KiB each time was half of what the proxy allocated.
var xfBufs = sync.Pool{New: func() any {
	b := make([]byte, xfBufSize)
	return &b
}}

func newXFConn(c net.Conn) *xfConn {
	bp := xfBufs.Get().(*[]byte)
	return &xfConn{Conn: c, buf: *bp, bufp: bp}
}

// takeXForward returns the attributes received since the last call.
func (c *xfConn) takeXForward() []xforwardAttr {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []xforwardAttr
	for _, k := range xforwardKeywords {
		if v, ok := c.attrs[k]; ok {
			out = append(out, xforwardAttr{k, v})
		}
	}
	c.attrs = nil
	return out
}

func (c *xfConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	// The reply to DATA or STARTTLS decides what the client sends next.
	switch c.mode {
	case xfAwaitData:
		c.mode = replyMode(p, "354", xfData)
	case xfAwaitTLS:
		c.mode = replyMode(p, "220", xfPassThrough)
	}
	mode := c.mode
	c.mu.Unlock()
	if mode == xfCommand && bytes.HasPrefix(p, []byte("250-")) {
		if i := bytes.Index(p, []byte("\r\n250-PIPELINING\r\n")); i >= 0 {
			// The EHLO/LHLO reply, in one write: add our keyword
			// after PIPELINING, still in one write.
			at := i + len("\r\n250-PIPELINING\r\n")
			out := make([]byte, 0, len(p)+len(xforwardEHLO))
			out = append(append(append(out, p[:at]...), xforwardEHLO...), p[at:]...)
			if _, err := c.Conn.Write(out); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// replyMode is next when the reply starts with code, else command mode.
func replyMode(reply []byte, code string, next xfMode) xfMode {
	if bytes.HasPrefix(reply, []byte(code)) {
		return next
	}
	return xfCommand
}

func (c *xfConn) setMode(m xfMode) {
	c.mu.Lock()
	c.mode = m
	c.mu.Unlock()
}

func (c *xfConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.buf == nil {
		// The connection has ended (see release): nothing is
		// buffered and no more bytes can come, only the error again.
		c.mu.Unlock()
		return c.Conn.Read(p)
	}
	c.reading = true
	c.mu.Unlock()
	n, err := c.read(p)
	c.mu.Lock()
	c.reading = false
	if c.closed {
		c.releaseLocked()
	}
	c.mu.Unlock()
	return n, err
}

// Close gives the buffer back unless a Read is using it (that Read then
// does) or bytes are still waiting in it.
func (c *xfConn) Close() error {
	c.mu.Lock()
	c.closed = true
	if !c.reading {
		c.releaseLocked()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// releaseLocked returns the read buffer to the pool once the connection
// has ended with nothing left in it; c.mu is held and no Read is running.
func (c *xfConn) releaseLocked() {
	if c.buf == nil || c.r != c.w || len(c.out) != 0 {
		return
	}
	c.buf, c.r, c.w = nil, 0, 0
	xfBufs.Put(c.bufp)
	c.bufp = nil
}

func (c *xfConn) read(p []byte) (int, error) {
	for len(c.out) == 0 {
		c.mu.Lock()
		mode := c.mode
		c.mu.Unlock()
		if mode == xfPassThrough {
			if c.r < c.w {
				n := copy(p, c.buf[c.r:c.w])
				c.r += n
				return n, nil
			}
			return c.Conn.Read(p)
		}
		if c.r < c.w && c.process(mode) {
			continue
		}
		// More input is needed: only an incomplete command line
		// (at most xfMaxLine bytes) is left, so there is room.
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		n, err := c.Conn.Read(c.buf[c.w:])
		if n > 0 {
			c.w += n
			continue
		}
		if err != nil {
			// Hand over whatever is left, then the error.
			if c.r < c.w {
				c.out, c.r = c.buf[c.r:c.w], c.w
				break
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				// The end: no byte can follow.
				c.mu.Lock()
				c.releaseLocked()
				c.mu.Unlock()
			}
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// process moves bytes from buf[r:w] to out according to mode; it reports
// whether it made progress (false: it needs more input).
func (c *xfConn) process(mode xfMode) bool {
	raw := c.buf[c.r:c.w]
	take := func(n int) {
		c.out = raw[:n]
		c.r += n
	}
	switch mode {
	case xfAwaitData, xfAwaitTLS:
		// go-smtp reads again only after it has replied, so this is a
		// client that sent more before the reply: treat as commands.
		c.setMode(xfCommand)
		return true
	case xfChunk:
		n := int64(len(raw))
		if n > c.chunk {
			n = c.chunk
		}
		take(int(n))
		c.chunk -= n
		if c.chunk == 0 {
			c.setMode(xfCommand)
		}
		return n > 0 || c.chunk == 0
	case xfData:
		i, done := c.scanData(raw)
		take(i)
		if done {
			c.setMode(xfCommand)
		}
		return i > 0 || done
	case xfLongLine:
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			take(len(raw))
			return true
		}
		take(i + 1)
		c.setMode(xfCommand)
		return true
	}
	// Command mode: one whole line at a time.
	i := bytes.IndexByte(raw, '\n')
	if i < 0 {
		if len(raw) > xfMaxLine {
			c.setMode(xfLongLine)
			return true
		}
		return false
	}
	take(i + 1)
	line := c.out
	if len(line) > xfMaxLine {
		return true
	}
	verb, arg, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte{' '})
	switch {
	case verbIs(verb, "XFORWARD"):
		c.record(string(arg))
		c.out = noopLine
	case verbIs(verb, "DATA"):
		c.setMode(xfAwaitData)
		c.dstate = 0
	case verbIs(verb, "STARTTLS"):
		c.setMode(xfAwaitTLS)
	case verbIs(verb, "BDAT"):
		f := strings.Fields(string(arg))
		if len(f) > 0 {
			var n int64
			for _, ch := range f[0] {
				if ch < '0' || ch > '9' || n > 1<<40 {
					n = -1
					break
				}
				n = n*10 + int64(ch-'0')
			}
			// go-smtp reads (or discards) the chunk whatever it
			// answers, if the size parses.
			if n > 0 && n <= 1<<32-1 {
				c.chunk = n
				c.setMode(xfChunk)
			}
		}
	}
	return true
}

// verbIs reports whether strings.ToUpper(string(verb)) == upper (which is
// how go-smtp reads a verb, so "ſtarttls" is STARTTLS for both), without
// the conversion when verb is ASCII.
func verbIs(verb []byte, upper string) bool {
	for _, b := range verb {
		if b >= utf8.RuneSelf {
			return strings.ToUpper(string(verb)) == upper
		}
	}
	if len(verb) != len(upper) {
		return false
	}
	for i, b := range verb {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if b != upper[i] {
			return false
		}
	}
	return true
}

// scanData finds the end of a DATA body exactly as go-smtp's (patched)
// dataReader does, by RFC 5321: lines end only at CRLF (a CR before it may
// follow another CR), and the line "." ends the body. It returns how many
// bytes of b belong to the body, terminator included. Inside a line it
// skips to the next CR with bytes.IndexByte.
func (c *xfConn) scanData(b []byte) (int, bool) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch c.dstate {
		case beginLine:
			switch ch {
			case '.':
				c.dstate = dot
			case '\r':
				c.dstate = cr
			default:
				c.dstate = data
			}
		case dot:
			if ch == '\r' {
				c.dstate = dotCR
			} else {
				c.dstate = data
			}
		case dotCR:
			switch ch {
			case '\n':
				c.dstate = beginLine
				return i + 1, true
			case '\r':
				c.dstate = cr
			default:
				c.dstate = data
			}
		case cr:
			switch ch {
			case '\n':
				c.dstate = beginLine
			case '\r':
				// still a CR that may end the line
			default:
				c.dstate = data
			}
		case data:
			k := bytes.IndexByte(b[i:], '\r')
			if k < 0 {
				return len(b), false
			}
			i += k
			c.dstate = cr
		}
	}
	return len(b), false
}

// record parses "NAME=x ADDR=y" (xtext values) into the attributes.
func (c *xfConn) record(arg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attrs == nil {
		c.attrs = map[string]string{}
	}
	for _, f := range strings.Fields(arg) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToUpper(k)
		for _, known := range xforwardKeywords {
			if k == known && len(v) <= 255 {
				c.attrs[k] = unxtext(v)
			}
		}
	}
}

// unxtext decodes xtext ("+2B" → "+"); malformed escapes are kept as is.
func unxtext(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if v, ok := unhex(s[i+1], s[i+2]); ok {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}

// xforwardAttrs are the attributes to pass on with this MAIL: what the
// client sent with XFORWARD, if anything.
func (s *session) xforwardAttrs() []xforwardAttr {
	if s.xf == nil {
		return nil
	}
	return s.xf.takeXForward()
}
