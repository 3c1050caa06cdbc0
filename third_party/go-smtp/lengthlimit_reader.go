package smtp

import (
	"bytes"
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 || n == 0 {
		return n, nil
	}

	// A line's length counts its bytes from the one after the previous
	// LF up to the next LF, the LF itself counted with the line after
	// it. Going from LF to LF with bytes.IndexByte gives the same
	// lengths and the same failure as counting byte by byte.
	p := b[:n]
	if r.curLineLength+n <= r.LineLimit {
		// No line can reach the limit here: only the last one matters.
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			r.curLineLength = n - i
		} else {
			r.curLineLength += n
		}
		return n, nil
	}
	for {
		i := bytes.IndexByte(p, '\n')
		seg := i
		if i < 0 {
			seg = len(p)
		}
		if r.curLineLength+seg > r.LineLimit {
			r.curLineLength = r.LineLimit + 1
			return 0, ErrTooLongLine
		}
		if i < 0 {
			r.curLineLength += seg
			return n, nil
		}
		r.curLineLength = 1
		p = p[i+1:]
	}
}
