package smtpd

import (
	"bytes"
	"net"
	"strings"
	"sync"
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

	mu    sync.Mutex
	attrs map[string]string

	// Read side; only go-smtp's connection goroutine reads.
	mode    xfMode
	raw     []byte // read from the socket, not yet handed to go-smtp
	out     []byte // ready for go-smtp
	chunk   int64  // BDAT bytes left
	dstate  int    // DATA terminator state, as go-smtp's dataReader
	readBuf []byte
}

func newXFConn(c net.Conn) *xfConn {
	return &xfConn{Conn: c, readBuf: make([]byte, 16*1024)}
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
	for len(c.out) == 0 {
		c.mu.Lock()
		mode := c.mode
		c.mu.Unlock()
		if mode == xfPassThrough {
			if len(c.raw) > 0 {
				n := copy(p, c.raw)
				c.raw = c.raw[n:]
				return n, nil
			}
			return c.Conn.Read(p)
		}
		if len(c.raw) > 0 && c.process(mode) {
			continue
		}
		n, err := c.Conn.Read(c.readBuf)
		if n > 0 {
			c.raw = append(c.raw, c.readBuf[:n]...)
			continue
		}
		if err != nil {
			// Hand over whatever is left, then the error.
			if len(c.raw) > 0 {
				c.out, c.raw = c.raw, nil
				break
			}
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// process moves bytes from raw to out according to mode; it reports
// whether it made progress (false: it needs more input).
func (c *xfConn) process(mode xfMode) bool {
	switch mode {
	case xfAwaitData, xfAwaitTLS:
		// go-smtp reads again only after it has replied, so this is a
		// client that sent more before the reply: treat as commands.
		c.setMode(xfCommand)
		return true
	case xfChunk:
		n := int64(len(c.raw))
		if n > c.chunk {
			n = c.chunk
		}
		c.out = append(c.out, c.raw[:n]...)
		c.raw = c.raw[n:]
		c.chunk -= n
		if c.chunk == 0 {
			c.setMode(xfCommand)
		}
		return n > 0 || c.chunk == 0
	case xfData:
		i, done := c.scanData(c.raw)
		c.out = append(c.out, c.raw[:i]...)
		c.raw = c.raw[i:]
		if done {
			c.setMode(xfCommand)
		}
		return i > 0 || done
	case xfLongLine:
		i := bytes.IndexByte(c.raw, '\n')
		if i < 0 {
			c.out, c.raw = append(c.out, c.raw...), c.raw[:0]
			return true
		}
		c.out = append(c.out, c.raw[:i+1]...)
		c.raw = c.raw[i+1:]
		c.setMode(xfCommand)
		return true
	}
	// Command mode: one whole line at a time.
	i := bytes.IndexByte(c.raw, '\n')
	if i < 0 {
		if len(c.raw) > xfMaxLine {
			c.setMode(xfLongLine)
			return true
		}
		return false
	}
	line := c.raw[:i+1]
	c.raw = c.raw[i+1:]
	if len(line) > xfMaxLine {
		c.out = append(c.out, line...)
		return true
	}
	verb, arg, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
	switch strings.ToUpper(verb) {
	case "XFORWARD":
		c.record(arg)
		c.out = append(c.out, "NOOP\r\n"...)
		return true
	case "DATA":
		c.setMode(xfAwaitData)
		c.dstate = 0
	case "STARTTLS":
		c.setMode(xfAwaitTLS)
	case "BDAT":
		f := strings.Fields(arg)
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
	c.out = append(c.out, line...)
	return true
}

// scanData finds the end of a DATA body exactly as go-smtp's (patched)
// dataReader does, by RFC 5321: lines end only at CRLF (a CR before it may
// follow another CR), and the line "." ends the body. It returns how many
// bytes of b belong to the body, terminator included.
func (c *xfConn) scanData(b []byte) (int, bool) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	for i, ch := range b {
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
			if ch == '\r' {
				c.dstate = cr
			}
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
