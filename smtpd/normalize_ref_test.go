package smtpd

import "io"

// refNormaliser is the byte-at-a-time Normaliser as it was before the bulk
// scan (commit fd66fb3), kept unchanged as the reference that
// TestNormaliserMatchesReference and FuzzNormaliserReference hold the
// current one to: the same bytes in the same Write calls, the same counts,
// the same errors.
type refNormaliser struct {
	w       io.Writer
	pending bool // a CR was seen at the end of the previous chunk
	bare    int  // bare CRs and LFs seen
	nul     int  // NUL bytes seen (and left out)
	last    byte // last byte written, to finish with CRLF
	any     bool
	buf     []byte
}

func newRefNormaliserBuf(w io.Writer, buf []byte) *refNormaliser {
	return &refNormaliser{w: w, buf: buf[:0]}
}

func (n *refNormaliser) Bare() int { return n.bare }
func (n *refNormaliser) NUL() int  { return n.nul }

func (n *refNormaliser) Write(p []byte) (int, error) {
	out := n.buf[:0]
	for _, c := range p {
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
		// Flush in bounded pieces so a 64 KiB chunk without line
		// ends never grows the buffer past twice its size.
		if len(out) >= cap(n.buf)-2 {
			if err := n.emit(out); err != nil {
				return 0, err
			}
			out = out[:0]
		}
	}
	if err := n.emit(out); err != nil {
		return 0, err
	}
	n.buf = out[:0]
	return len(p), nil
}

func (n *refNormaliser) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n.any = true
	n.last = b[len(b)-1]
	_, err := n.w.Write(b)
	return err
}

func (n *refNormaliser) Close() error {
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
