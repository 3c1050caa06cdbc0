package smtpd

import (
	"bytes"
	"io"
)

// Normaliser makes a message body safe to hand to a hop that may disagree
// with us about where lines end (SMTP smuggling, CVE-2023-51764/5/6).
//
// go-smtp ends DATA only at CRLF.CRLF, but bare LF and bare CR inside the
// body reach us unchanged. Forwarded raw, "\n.\n" or "\r.\r\n" could end
// the message early at a laxer next hop and start a second, spoofed one.
// The normaliser turns every bare LF and every bare CR into CRLF, so the
// only line ends left are CRLF and our dot-stuffing sees exactly the lines
// any next hop will see. In reject mode it only reports that it saw one;
// the caller then refuses the message after reading to its end.
//
// NUL bytes never pass: a next hop that drops them would see "\r\n\x00.\r\n"
// as the end of the message and the rest as a second, smuggled one. The
// normaliser leaves every NUL out and counts it; the caller strips (sends
// the rest on) or refuses the message (smtp.nul).
//
// It streams: memory is one pending byte whatever the message size. The
// output always ends with CRLF (an unterminated last line gets one), as
// the DATA terminator needs.
type Normaliser struct {
	w       io.Writer
	pending bool // a CR was seen at the end of the previous chunk
	bare    int  // bare CRs and LFs seen
	nul     int  // NUL bytes seen (and left out)
	last    byte // last byte written, to finish with CRLF
	any     bool
	buf     []byte
}

// NewNormaliser writes normalised bytes to w.
func NewNormaliser(w io.Writer) *Normaliser {
	return newNormaliserBuf(w, make([]byte, 0, normBufSize))
}

const normBufSize = 64 * 1024

// newNormaliserBuf uses buf (capacity normBufSize) as its output buffer.
func newNormaliserBuf(w io.Writer, buf []byte) *Normaliser {
	return &Normaliser{w: w, buf: buf[:0]}
}

// Bare is the number of bare CRs and LFs seen so far.
func (n *Normaliser) Bare() int { return n.bare }

// NUL is the number of NUL bytes seen (and left out) so far.
func (n *Normaliser) NUL() int { return n.nul }

// Write normalises p. It returns len(p) unless the underlying writer fails.
//
// Runs of bytes that are neither CR, LF nor NUL are copied in bulk (found
// with bytes.IndexByte); those three go through the state machine a byte
// at a time. The output, and where it is cut into writes, is the same as
// a byte-at-a-time loop's (normalize_ref_test.go holds one as reference).
func (n *Normaliser) Write(p []byte) (int, error) {
	out := n.buf[:0]
	// Flush in bounded pieces so a 64 KiB chunk without line ends never
	// grows the buffer past twice its size: whenever the output reaches
	// limit bytes.
	limit := cap(n.buf) - 2
	// The next CR, LF and NUL at or after i; len(p) when there is none,
	// -1 before the first search.
	cr, lf, nul := -1, -1, -1
	for i := 0; i < len(p); {
		if !n.pending {
			if cr < i {
				cr = indexFrom(p, i, '\r')
			}
			if lf < i {
				lf = indexFrom(p, i, '\n')
			}
			if nul < i {
				nul = indexFrom(p, i, 0)
			}
			if j := min(cr, lf, nul); j > i {
				// Plain bytes, copied as they are, up to the
				// byte that fills the buffer.
				j = min(j, i+max(limit-len(out), 1))
				out = append(out, p[i:j]...)
				i = j
				if len(out) >= limit {
					if err := n.emit(out); err != nil {
						return 0, err
					}
					out = out[:0]
				}
				continue
			}
		}
		// One byte the old way. The buffer is checked after each
		// byte except an LF that completes a CRLF, so up to two bytes
		// over limit can wait for the next byte's check.
		c := p[i]
		i++
		if n.pending {
			n.pending = false
			if c == '\n' {
				out = append(out, '\r', '\n')
				continue
			}
			// The CR before c was bare.
			n.bare++
			out = append(out, '\r', '\n')
		}
		switch c {
		case '\r':
			n.pending = true
		case '\n':
			n.bare++
			out = append(out, '\r', '\n')
		case 0:
			n.nul++
		default:
			out = append(out, c)
		}
		if len(out) >= limit {
			if err := n.emit(out); err != nil {
				return 0, err
			}
			out = out[:0]
		}
		if n.pending && i < len(p) && p[i] == '\n' {
			// The LF of a CRLF: no check after it.
			n.pending = false
			i++
			out = append(out, '\r', '\n')
		}
	}
	if err := n.emit(out); err != nil {
		return 0, err
	}
	n.buf = out[:0]
	return len(p), nil
}

// indexFrom is the index of the first c in p at or after i, len(p) when
// there is none.
func indexFrom(p []byte, i int, c byte) int {
	if k := bytes.IndexByte(p[i:], c); k >= 0 {
		return i + k
	}
	return len(p)
}

func (n *Normaliser) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n.any = true
	n.last = b[len(b)-1]
	_, err := n.w.Write(b)
	return err
}

// Close flushes a trailing CR and terminates an unfinished last line.
func (n *Normaliser) Close() error {
	if n.pending {
		n.pending = false
		n.bare++
		return n.emit([]byte("\r\n"))
	}
	if n.any && n.last != '\n' {
		return n.emit([]byte("\r\n"))
	}
	return nil
}
