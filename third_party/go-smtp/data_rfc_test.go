package smtp

// Tests of the DATA reader against a reference written from RFC 5321
// (sections 4.1.1.4 and 4.5.2), added with the spamsurge patch.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// refData reads a DATA body the way RFC 5321 defines it, one line at a
// time: a line ends at CRLF and nowhere else; the line "." ends the data;
// a line that starts with a dot loses that dot. It returns the content, the
// input bytes consumed through the end marker, and whether there was one.
func refData(in []byte) (out []byte, used int, ok bool) {
	out = []byte{}
	pos := 0
	for {
		i := bytes.Index(in[pos:], []byte("\r\n"))
		if i < 0 {
			return out, 0, false
		}
		line := in[pos : pos+i]
		pos += i + 2
		if string(line) == "." {
			return out, pos, true
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
}

// readData runs the DATA reader over in, delivered through src (a reader
// wrapper that decides the segments) and read with an output buffer of
// size bufSize. It returns the content, the error that ended it, and the
// bytes the reader left for the next command.
func readData(in []byte, src func(io.Reader) io.Reader, bufSize int) (out []byte, err error, rest []byte) {
	br := bufio.NewReaderSize(src(bytes.NewReader(in)), 16)
	dr := &dataReader{r: br}
	buf := make([]byte, bufSize)
	out = []byte{}
	for {
		n, rerr := dr.Read(buf)
		out = append(out, buf[:n]...)
		if rerr != nil {
			err = rerr
			break
		}
		if n == 0 {
			return out, errors.New("Read returned 0, nil"), nil
		}
	}
	rest, _ = io.ReadAll(br)
	return out, err, rest
}

var segmenters = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one-byte": iotest.OneByteReader,
	"half":     iotest.HalfReader,
}

// checkAgainstRFC compares the reader with the reference on in, for every
// way of segmenting the input and several output buffer sizes.
func checkAgainstRFC(t *testing.T, in []byte) {
	t.Helper()
	want, used, ok := refData(in)
	for name, seg := range segmenters {
		for _, size := range []int{1, 2, 3, 7, 4096} {
			got, err, rest := readData(in, seg, size)
			if !ok {
				// No end marker: everything is read, the
				// data so far is what the complete lines say,
				// and the end is unexpected.
				if err != io.ErrUnexpectedEOF {
					t.Fatalf("%q (%s, buf %d): err %v, want ErrUnexpectedEOF", in, name, size, err)
				}
				if !bytes.HasPrefix(got, want) {
					t.Fatalf("%q (%s, buf %d): got %q, want a prefix %q", in, name, size, got, want)
				}
				continue
			}
			if err != io.EOF {
				t.Fatalf("%q (%s, buf %d): err %v, want EOF", in, name, size, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%q (%s, buf %d): content %q, want %q", in, name, size, got, want)
			}
			if !bytes.Equal(rest, in[used:]) {
				t.Fatalf("%q (%s, buf %d): left %q for the next command, want %q", in, name, size, rest, in[used:])
			}
		}
	}
}

// The sequences the SMTP smuggling scanners send, and the ones that hung
// or changed content in go-smtp v0.25.1.
var rfcCases = []string{
	"foo\r\r\n.\r\n",               // CR CR LF ends a line: the message ends
	"A\r\n.\r\r\nB\r\n.\r\n",       // ".\r" then CRLF: the dot goes, the CR stays
	"x\r\r\n..bar\r\n.\r\n",        // after CR CR LF, ".." is unstuffed
	"a\r\n.\r\rX\r\n.\r\n",         // ".\r\r" then content
	".\r\n",                        // empty message
	"..\r\n.\r\n",                  // a lone (stuffed) dot
	"\r\n.\r\n",                    // one empty line
	"a\n.\nb\r\n.\r\n",             // bare LF is content, not a line end
	"a\r.\rb\r\n.\r\n",             // bare CR too
	"a\r\n.\rb\r\n.\r\n",           // ".\r" then content
	"\r\r\r\n.\r\nQUIT\r\n",        // the next command is left alone
	"a\r\n\x00.\r\n.\r\n",          // NUL is content here (the caller decides)
	"..a\r\n...\r\n.\r\n.\r\nRSET", // several stuffed dots
	"no end\r\n",
	"no end\r\n.\r",
	"no end\r\n.",
}

func TestDataReaderAgreesWithRFC5321(t *testing.T) {
	for _, c := range rfcCases {
		checkAgainstRFC(t, []byte(c))
	}
}

// The three defects of v0.25.1, spelled out.
func TestDataReaderStrayCR(t *testing.T) {
	for _, tc := range []struct{ in, want, rest string }{
		{"foo\r\r\n.\r\nNOOP\r\n", "foo\r\r\n", "NOOP\r\n"},
		{"A\r\n.\r\r\nB\r\n.\r\n", "A\r\n\r\r\nB\r\n", ""},
		{"x\r\r\n..bar\r\n.\r\n", "x\r\r\n.bar\r\n", ""},
	} {
		got, err, rest := readData([]byte(tc.in), segmenters["whole"], 4096)
		if err != io.EOF || string(got) != tc.want || string(rest) != tc.rest {
			t.Errorf("%q: got %q, %v, rest %q; want %q, EOF, rest %q", tc.in, got, err, rest, tc.want, tc.rest)
		}
	}
}

// The limit counts content bytes, as before.
func TestDataReaderLimit(t *testing.T) {
	dr := &dataReader{r: bufio.NewReader(bytes.NewReader([]byte("0123456789\r\n.\r\n"))), limited: true, n: 5}
	got, err := io.ReadAll(dr)
	if err != ErrDataTooLarge || string(got) != "01234" {
		t.Fatalf("got %q, %v; want %q, ErrDataTooLarge", got, err, "01234")
	}
}

// FuzzDataReader: for any input and any segmentation, the reader gives
// exactly the reference's content and end, and leaves exactly the bytes
// after the end marker.
func FuzzDataReader(f *testing.F) {
	for _, c := range rfcCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		checkAgainstRFC(t, in)
	})
}

// A body goes through in spans, not a byte at a time.
func BenchmarkDataReader(b *testing.B) {
	line := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n"), 1)
	var body []byte
	for len(body) < 64<<10 {
		body = append(body, line...)
	}
	body = append(body, ".\r\n"...)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		dr := &dataReader{r: bufio.NewReaderSize(bytes.NewReader(body), 4096)}
		for {
			_, err := dr.Read(buf)
			if err != nil {
				break
			}
		}
	}
}
