package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reply is one SMTP reply as the next hop sent it.
type Reply struct {
	Code     int
	Enhanced [3]int // zero when the hop sent none
	Lines    []string
}

// Text joins the reply lines without the enhanced code.
func (r Reply) Text() string { return strings.Join(r.Lines, "\n") }

func (r Reply) String() string {
	if r.Enhanced != [3]int{} {
		return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text())
	}
	return fmt.Sprintf("%d %s", r.Code, r.Text())
}

// Positive reports a 2xx or 3xx reply.
func (r Reply) Positive() bool { return r.Code >= 200 && r.Code < 400 }

// downstreamError is a failure talking to the next hop (not a reply it
// sent): connect, TLS, timeout, broken connection, protocol garbage. The
// client always sees a 4xx for it.
type downstreamError struct {
	reason string // fixed list, used as a metric label
	err    error
}

func (e *downstreamError) Error() string { return "downstream " + e.reason + ": " + e.err.Error() }
func (e *downstreamError) Unwrap() error { return e.err }

// Downstream failure reasons, the label values of
// spamsurge_downstream_failures_total.
const (
	reasonConnect  = "connect"
	reasonTLS      = "tls"
	reasonTimeout  = "timeout"
	reasonIO       = "io"
	reasonProtocol = "protocol"
	reasonGreeting = "greeting"
)

var downstreamReasons = []string{reasonConnect, reasonTLS, reasonTimeout, reasonIO, reasonProtocol, reasonGreeting}

func classify(err error, fallback string) *downstreamError {
	var de *downstreamError
	if errors.As(err, &de) {
		return de
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &downstreamError{reasonTimeout, err}
	}
	return &downstreamError{fallback, err}
}

// DownstreamOptions says how to reach the next hop.
type DownstreamOptions struct {
	Address string
	LMTP    bool
	// TLS follows Postfix's smtp_tls_security_level: none, may, encrypt,
	// verify. With encrypt or verify a hop without STARTTLS, or a failed
	// handshake, is a temporary failure, never silent plaintext.
	TLS       string
	TLSConfig *tls.Config // for verify: roots and server name
	// Hostname is what we say in EHLO/LHLO.
	Hostname       string
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	// DataTimeout bounds each body write and the wait for the final
	// reply(ies) after the dot.
	DataTimeout time.Duration
}

// maxReplyLine bounds one reply line from the next hop (RFC 5321 allows
// 512; be generous but bounded).
const maxReplyLine = 4096

// maxReplyLines bounds a multi-line reply.
const maxReplyLines = 100

// downstream is one connection to the next hop: a minimal lock-step SMTP
// and LMTP client. go-smtp's client is not used because it hides reply texts
// on success, cannot send XFORWARD and sets no deadline on the body.
type downstream struct {
	opts  DownstreamOptions
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	ext   map[string]string // EHLO keywords, upper case
	tls   bool
	dirty bool // a transaction was started and not finished
}

// dialDownstream connects, reads the greeting, says EHLO/LHLO and, as the
// TLS level asks, STARTTLS. A negative greeting is returned as a *Reply
// error so it can be passed to the client.
func dialDownstream(ctx context.Context, o DownstreamOptions) (*downstream, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Address)
	if err != nil {
		return nil, classify(err, reasonConnect)
	}
	ds := &downstream{opts: o}
	ds.setConn(conn)
	if err := ds.handshake(); err != nil {
		conn.Close()
		ds.release()
		return nil, err
	}
	return ds, nil
}

// The buffers of next-hop connections are pooled: with one connection per
// message, 36 KiB of fresh buffers each time was most of what the proxy
// allocated (and the garbage collector then cleared). A downstream takes
// them in setConn and gives them back once closed (close, quit): only the
// session's goroutine uses it, and never after that.
var (
	dsReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	dsWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32*1024) }}
)

// setConn reads and writes through c from now on; what the buffers held
// for an earlier connection (before STARTTLS) is dropped.
func (d *downstream) setConn(c net.Conn) {
	d.conn = c
	if d.r == nil {
		d.r = dsReaders.Get().(*bufio.Reader)
		d.w = dsWriters.Get().(*bufio.Writer)
	}
	d.r.Reset(c)
	d.w.Reset(c)
}

// release returns the buffers to their pools; d must not be used again.
func (d *downstream) release() {
	if d.r == nil {
		return
	}
	d.r.Reset(nil)
	d.w.Reset(nil)
	dsReaders.Put(d.r)
	dsWriters.Put(d.w)
	d.r, d.w = nil, nil
}

func (d *downstream) handshake() error {
	d.conn.SetDeadline(time.Now().Add(d.opts.CommandTimeout))
	greet, err := d.readReply()
	if err != nil {
		return classify(err, reasonGreeting)
	}
	if greet.Code != 220 {
		return &ReplyError{greet}
	}
	if err := d.hello(); err != nil {
		return err
	}
	switch d.opts.TLS {
	case "", "none":
		return nil
	case "may":
		if _, ok := d.ext["STARTTLS"]; !ok {
			return nil
		}
	}
	if _, ok := d.ext["STARTTLS"]; !ok {
		return &downstreamError{reasonTLS, errors.New("next hop does not offer STARTTLS and downstream.tls requires it")}
	}
	rep, err := d.cmd("STARTTLS")
	if err != nil {
		return err
	}
	if rep.Code != 220 {
		if d.opts.TLS == "may" {
			// Opportunistic: the hop refused, carry on in plaintext
			// as Postfix does at level may.
			return nil
		}
		return &downstreamError{reasonTLS, fmt.Errorf("STARTTLS refused: %s", rep)}
	}
	cfg := d.opts.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	if d.opts.TLS != "verify" {
		// encrypt and may: privacy against passive listeners only,
		// like Postfix; no certificate check.
		cfg.InsecureSkipVerify = true
	} else if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(d.opts.Address)
	}
	tc := tls.Client(d.conn, cfg)
	d.conn.SetDeadline(time.Now().Add(d.opts.CommandTimeout))
	if err := tc.Handshake(); err != nil {
		return &downstreamError{reasonTLS, err}
	}
	d.setConn(tc)
	d.tls = true
	return d.hello()
}

func (d *downstream) hello() error {
	verb := "EHLO"
	if d.opts.LMTP {
		verb = "LHLO"
	}
	name := d.opts.Hostname
	if name == "" {
		name = "localhost"
	}
	rep, err := d.cmd(verb + " " + name)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		if d.opts.LMTP || rep.Code/100 != 5 {
			return &ReplyError{rep}
		}
		// An SMTP hop without ESMTP: fall back to HELO.
		if rep, err = d.cmd("HELO " + name); err != nil {
			return err
		}
		if rep.Code != 250 {
			return &ReplyError{rep}
		}
		d.ext = map[string]string{}
		return nil
	}
	d.ext = map[string]string{}
	for _, l := range rep.Lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		d.ext[strings.ToUpper(k)] = v
	}
	return nil
}

// has reports whether the hop offered an EHLO keyword.
func (d *downstream) has(ext string) bool {
	_, ok := d.ext[ext]
	return ok
}

// maxSize is the hop's SIZE limit, 0 when none was announced.
func (d *downstream) maxSize() int64 {
	n, _ := strconv.ParseInt(d.ext["SIZE"], 10, 64)
	return n
}

// ReplyError is a non-success reply from the next hop, passed to the
// client unchanged.
type ReplyError struct{ Reply Reply }

func (e *ReplyError) Error() string { return "next hop replied " + e.Reply.String() }

// cmd sends one command line and reads its reply.
func (d *downstream) cmd(line string) (Reply, error) {
	d.conn.SetDeadline(time.Now().Add(d.opts.CommandTimeout))
	d.w.WriteString(line)
	if _, err := d.w.WriteString("\r\n"); err != nil {
		return Reply{}, classify(err, reasonIO)
	}
	if err := d.w.Flush(); err != nil {
		return Reply{}, classify(err, reasonIO)
	}
	rep, err := d.readReply()
	if err != nil {
		return Reply{}, classify(err, reasonIO)
	}
	return rep, nil
}

var errBadReply = errors.New("malformed reply")

// readReply reads one possibly multi-line reply, bounded in size.
func (d *downstream) readReply() (Reply, error) {
	var rep Reply
	for i := 0; ; i++ {
		if i >= maxReplyLines {
			return Reply{}, &downstreamError{reasonProtocol, errors.New("reply too long")}
		}
		line, err := d.readLine()
		if err != nil {
			return Reply{}, err
		}
		if len(line) < 3 {
			return Reply{}, &downstreamError{reasonProtocol, errBadReply}
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || (i > 0 && code != rep.Code) {
			return Reply{}, &downstreamError{reasonProtocol, errBadReply}
		}
		rep.Code = code
		more := len(line) > 3 && line[3] == '-'
		if len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return Reply{}, &downstreamError{reasonProtocol, errBadReply}
		}
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		// RFC 2034: the enhanced code starts every line; keep the
		// first and strip it from all.
		if ec, rest, ok := parseEnhanced(text, code); ok {
			if i == 0 {
				rep.Enhanced = ec
			}
			text = rest
		}
		rep.Lines = append(rep.Lines, text)
		if !more {
			return rep, nil
		}
	}
}

func (d *downstream) readLine() (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := d.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if !isPrefix && b == nil && len(chunk) <= maxReplyLine {
			// The whole line at once: one allocation.
			return string(chunk), nil
		}
		b = append(b, chunk...)
		if len(b) > maxReplyLine {
			return "", &downstreamError{reasonProtocol, errors.New("reply line too long")}
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// parseEnhanced splits "5.1.1 text" when the class matches the code's.
// Each of the three parts is what strconv.Atoi takes (a sign is allowed),
// at most 3 characters, 0 to 999.
func parseEnhanced(s string, code int) ([3]int, string, bool) {
	head, rest, _ := strings.Cut(s, " ")
	var ec [3]int
	for i := range ec {
		part := head
		if i < 2 {
			k := strings.IndexByte(head, '.')
			if k < 0 {
				return [3]int{}, s, false
			}
			part, head = head[:k], head[k+1:]
		} else if strings.IndexByte(head, '.') >= 0 {
			return [3]int{}, s, false
		}
		n, ok := atoi3(part)
		if !ok || n < 0 || n > 999 {
			return [3]int{}, s, false
		}
		ec[i] = n
	}
	if ec[0] != code/100 {
		return [3]int{}, s, false
	}
	return ec, rest, true
}

// atoi3 is strconv.Atoi for strings of at most 3 bytes (false for longer
// ones): an optional sign, then at least one decimal digit.
func atoi3(p string) (int, bool) {
	if len(p) == 0 || len(p) > 3 {
		return 0, false
	}
	neg := p[0] == '-'
	if p[0] == '-' || p[0] == '+' {
		p = p[1:]
		if len(p) == 0 {
			return 0, false
		}
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	if neg {
		n = -n
	}
	return n, true
}

// xforward sends the XFORWARD attributes the hop accepts, in as many
// commands as needed (Postfix: at most 5 attributes a command is safe).
func (d *downstream) xforward(attrs []xforwardAttr) error {
	offered := strings.Fields(strings.ToUpper(d.ext["XFORWARD"]))
	ok := map[string]bool{}
	for _, a := range offered {
		ok[a] = true
	}
	var line []string
	flush := func() error {
		if len(line) == 0 {
			return nil
		}
		rep, err := d.cmd("XFORWARD " + strings.Join(line, " "))
		line = line[:0]
		if err != nil {
			return err
		}
		if rep.Code != 250 {
			return &ReplyError{rep}
		}
		return nil
	}
	for _, a := range attrs {
		if !ok[a.name] {
			continue
		}
		line = append(line, a.name+"="+xtext(a.value))
		if len(line) == 4 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

type xforwardAttr struct{ name, value string }

// xtext encodes an XFORWARD value (RFC 3461 xtext; Postfix decodes it).
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dotWriter dot-stuffs a body that is already normalised to CRLF lines.
type dotWriter struct {
	d   *downstream
	bol bool // at the beginning of a line
	n   int64
}

func (w *dotWriter) Write(p []byte) (int, error) {
	w.d.conn.SetWriteDeadline(time.Now().Add(w.d.opts.DataTimeout))
	// A dot that starts a line gets another dot before it: the lines
	// start at p[0] (when bol) and after each LF, so the dots to stuff
	// are found with one search for "\n." each rather than byte by byte.
	start, from := 0, 0
	at := -1
	if w.bol && len(p) > 0 && p[0] == '.' {
		at = 0
	}
	for {
		if at < 0 {
			k := bytes.Index(p[from:], lineDot)
			if k < 0 {
				break
			}
			at = from + k + 1
		}
		// (On a failure bol is left as a byte-at-a-time loop would
		// leave it: true, before the dot at p[at].)
		if _, err := w.d.w.Write(p[start:at]); err != nil {
			w.bol = true
			return start, classify(err, reasonIO)
		}
		if err := w.d.w.WriteByte('.'); err != nil {
			w.bol = true
			return at, classify(err, reasonIO)
		}
		start, from, at = at, at, -1
	}
	if len(p) > 0 {
		w.bol = p[len(p)-1] == '\n'
	}
	if _, err := w.d.w.Write(p[start:]); err != nil {
		return start, classify(err, reasonIO)
	}
	w.n += int64(len(p))
	return len(p), nil
}

var lineDot = []byte("\n.")

// finish ends the body with the dot and flushes. The body must end with
// CRLF (the normaliser guarantees it).
func (w *dotWriter) finish() error {
	w.d.conn.SetWriteDeadline(time.Now().Add(w.d.opts.DataTimeout))
	if !w.bol && w.n > 0 {
		w.d.w.WriteString("\r\n")
	}
	w.d.w.WriteString(".\r\n")
	if err := w.d.w.Flush(); err != nil {
		return classify(err, reasonIO)
	}
	return nil
}

// readFinal reads n final replies (1 for SMTP, one per accepted recipient
// for LMTP) after the dot, within DataTimeout.
func (d *downstream) readFinal(n int) ([]Reply, error) {
	d.conn.SetDeadline(time.Now().Add(d.opts.DataTimeout))
	out := make([]Reply, 0, n)
	for i := 0; i < n; i++ {
		rep, err := d.readReply()
		if err != nil {
			return out, classify(err, reasonIO)
		}
		out = append(out, rep)
	}
	return out, nil
}

func (d *downstream) close() error {
	err := d.conn.Close()
	d.release()
	return err
}

// quit says goodbye politely, bounded by a short deadline.
func (d *downstream) quit() {
	d.conn.SetDeadline(time.Now().Add(2 * time.Second))
	d.w.WriteString("QUIT\r\n")
	if d.w.Flush() == nil {
		d.readReply()
	}
	d.conn.Close()
	d.release()
}
