package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

// The DATA reader's states (RFC 5321 section 4.1.1.4 and 4.5.2). A line
// ends only at CRLF; a bare CR or LF is content. At the start of a line a
// dot is removed (dot-unstuffing), unless the line is exactly "." (the end
// of data).
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// The state machine runs over what the bufio.Reader already holds,
	// a span at a time: the bytes of a line up to its next CR are copied
	// in one go, and the bytes after the end marker are never consumed
	// (they are the client's next commands).
	for n < len(b) && r.state != stateEOF {
		if r.r.Buffered() == 0 {
			// Block for more input only when nothing has been
			// produced yet, so a reader never sits on bytes it
			// could return.
			if n > 0 {
				break
			}
			if _, err = r.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				break
			}
		}
		in, _ := r.r.Peek(r.r.Buffered())
		used := 0
		for used < len(in) && n < len(b) && r.state != stateEOF {
			c := in[used]
			switch r.state {
			case stateBeginLine:
				if c == '.' {
					r.state = stateDot
					used++
					continue
				}
				r.state = stateData
				if c == '\r' {
					r.state = stateCR
				}
			case stateDot:
				if c == '\r' {
					r.state = stateDotCR
					used++
					continue
				}
				// The leading dot is gone; c is line content.
				r.state = stateData
			case stateDotCR:
				if c == '\n' {
					r.state = stateEOF
					used++
					continue
				}
				// ".\r" then not LF: the dot is gone, the CR is
				// content and may itself end the line; c is
				// looked at again in stateCR.
				b[n] = '\r'
				n++
				r.state = stateCR
				continue
			case stateCR:
				switch c {
				case '\n':
					r.state = stateBeginLine
				case '\r':
					// Still a CR that may end the line.
				default:
					r.state = stateData
				}
			case stateData:
				// Copy up to the next CR in one go.
				span := in[used:]
				if len(span) > len(b)-n {
					span = span[:len(b)-n]
				}
				k := bytes.IndexByte(span, '\r')
				if k < 0 {
					k = len(span)
				} else {
					r.state = stateCR
					k++
				}
				n += copy(b[n:], span[:k])
				used += k
				continue
			}
			b[n] = c
			n++
			used++
		}
		r.r.Discard(used)
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}
