package smtp

import (
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// refLineLimitReader is lineLimitReader as released in v0.25.1, byte at a
// time, kept as the reference.
type refLineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *refLineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 {
		return n, nil
	}

	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++

		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}

	return n, nil
}

// chunkReader returns in, at most the next chunk size per Read.
type chunkReader struct {
	in     string
	chunks []int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.in == "" {
		return 0, io.EOF
	}
	k := len(c.in)
	if len(c.chunks) > 0 {
		if c.chunks[0] < k {
			k = c.chunks[0]
		}
		c.chunks = append(c.chunks[1:], c.chunks[0])
	}
	n := copy(p, c.in[:k])
	c.in = c.in[n:]
	return n, nil
}

func TestLineLimitReaderMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for it := 0; it < 20000; it++ {
		var b strings.Builder
		for j := rng.Intn(30); j > 0; j-- {
			b.WriteString(strings.Repeat("x", rng.Intn(20)))
			b.WriteString([]string{"\n", "\r\n", "", "\n\n"}[rng.Intn(4)])
		}
		in := b.String()
		limit := []int{0, 1, 2, 3, 5, 8, 13, 21, 100, -1}[rng.Intn(10)]
		chunks := []int{1 + rng.Intn(30), 1 + rng.Intn(4)}
		size := 1 + rng.Intn(40)
		run := func(r io.Reader) string {
			var out strings.Builder
			buf := make([]byte, size)
			for i := 0; i < 200; i++ {
				n, err := r.Read(buf)
				fmt.Fprintf(&out, "%d %v %q|", n, err, buf[:n])
				if err == io.EOF {
					break
				}
			}
			return out.String()
		}
		got := run(&lineLimitReader{R: &chunkReader{in: in, chunks: append([]int(nil), chunks...)}, LineLimit: limit})
		want := run(&refLineLimitReader{R: &chunkReader{in: in, chunks: append([]int(nil), chunks...)}, LineLimit: limit})
		if got != want {
			t.Fatalf("in %q limit %d chunks %v read size %d:\n got %s\nwant %s", in, limit, chunks, size, got, want)
		}
	}
}

func BenchmarkLineLimitReader(b *testing.B) {
	body := strings.Repeat(strings.Repeat("y", 98)+"\r\n", 50)
	for _, impl := range []struct {
		name string
		new  func(io.Reader) io.Reader
	}{
		{"bulk", func(r io.Reader) io.Reader { return &lineLimitReader{R: r, LineLimit: 64 << 10} }},
		{"reference", func(r io.Reader) io.Reader { return &refLineLimitReader{R: r, LineLimit: 64 << 10} }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				r := impl.new(strings.NewReader(body))
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}
