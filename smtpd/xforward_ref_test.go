package smtpd

import (
	"bytes"
	"net"
	"strings"
	"sync"
)

// refXFConn is xfConn as it was before it read into one fixed buffer
// (commit fd66fb3), kept unchanged as the reference for
// TestXFConnMatchesReference: it appended what it read to raw, copied each
// line or span to out and scanned DATA a byte at a time.
type refXFConn struct {
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

func newRefXFConn(c net.Conn) *refXFConn {
	return &refXFConn{Conn: c, readBuf: make([]byte, 16*1024)}
}

// takeXForward returns the attributes received since the last call.
func (c *refXFConn) takeXForward() []xforwardAttr {
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

func (c *refXFConn) Write(p []byte) (int, error) {
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

func (c *refXFConn) setMode(m xfMode) {
	c.mu.Lock()
	c.mode = m
	c.mu.Unlock()
}

func (c *refXFConn) Read(p []byte) (int, error) {
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
func (c *refXFConn) process(mode xfMode) bool {
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
func (c *refXFConn) scanData(b []byte) (int, bool) {
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
func (c *refXFConn) record(arg string) {
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
