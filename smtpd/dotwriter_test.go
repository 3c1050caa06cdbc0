package smtpd

import (
	"bufio"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"
)

// refDotWrite is dotWriter.Write as it was before the bulk search (commit
// fd66fb3), byte at a time, kept as the reference.
func refDotWrite(w *dotWriter, p []byte) (int, error) {
	w.d.conn.SetWriteDeadline(time.Now().Add(w.d.opts.DataTimeout))
	start := 0
	for i, c := range p {
		if w.bol && c == '.' {
			if _, err := w.d.w.Write(p[start:i]); err != nil {
				return start, classify(err, reasonIO)
			}
			if err := w.d.w.WriteByte('.'); err != nil {
				return i, classify(err, reasonIO)
			}
			start = i
		}
		w.bol = c == '\n'
	}
	if _, err := w.d.w.Write(p[start:]); err != nil {
		return start, classify(err, reasonIO)
	}
	w.n += int64(len(p))
	return len(p), nil
}

// dotRun feeds chunks of in to a dotWriter over a bufio.Writer of bufSize
// bytes whose underlying writer fails its failAt-th write, and reports
// every write that reached it and every return.
func dotRun(t *testing.T, write func(*dotWriter, []byte) (int, error), in []byte, chunks []int, bufSize, failAt int) string {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	rw := &recWriter{failAt: failAt}
	d := &downstream{conn: c1, w: bufio.NewWriterSize(rw, bufSize), opts: DownstreamOptions{DataTimeout: time.Minute}}
	w := &dotWriter{d: d, bol: true}
	var b strings.Builder
	i := 0
	for _, c := range chunks {
		n, err := write(w, in[i:i+c])
		fmt.Fprintf(&b, "%d %v bol=%v n=%d|", n, err != nil, w.bol, w.n)
		i += c
		if err != nil {
			break
		}
	}
	d.w.Flush()
	fmt.Fprintf(&b, "%q", rw.writes)
	return b.String()
}

func TestDotWriterMatchesReference(t *testing.T) {
	inputs := []string{"", ".", "..", "\n", "\n.", ".\n.", "a\r\n.\r\n", ".a\r\n..b\r\n.\r\n", "\r\n.\r\n.\r\n", "x.y\r\n.z", strings.Repeat("\r\n.", 50)}
	rng := rand.New(rand.NewSource(1))
	for range 2000 {
		in := make([]byte, rng.Intn(300))
		for i := range in {
			in[i] = "ab.\r\n.\n"[rng.Intn(7)]
		}
		inputs = append(inputs, string(in))
	}
	for k, s := range inputs {
		in := []byte(s)
		sizes := [][]int{{len(in) + 1}, {1}, {2}, {3, 1, 7}}
		if k > 10 {
			sizes = [][]int{{1 + rng.Intn(40), 1 + rng.Intn(5)}}
		}
		for _, sz := range sizes {
			chunks := chunksOf(len(in), sz...)
			for _, bufSize := range []int{16, 17, 4096} {
				for _, failAt := range []int{0, 1, 2, 4} {
					got := dotRun(t, (*dotWriter).Write, in, chunks, bufSize, failAt)
					want := dotRun(t, refDotWrite, in, chunks, bufSize, failAt)
					if got != want {
						t.Fatalf("in %q chunks %v buffer %d failing write %d:\n got %s\nwant %s", in, chunks, bufSize, failAt, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkDotWriter5KB: the normalised body of BenchmarkRelay5KB in 4 KiB
// chunks.
func BenchmarkDotWriter5KB(b *testing.B) {
	body := []byte("Subject: bench\r\nX-Spam-Flag: NO\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 50))
	for _, impl := range []struct {
		name  string
		write func(*dotWriter, []byte) (int, error)
	}{{"bulk", (*dotWriter).Write}, {"reference", refDotWrite}} {
		b.Run(impl.name, func(b *testing.B) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			d := &downstream{conn: c1, w: bufio.NewWriterSize(io.Discard, 32*1024), opts: DownstreamOptions{DataTimeout: time.Minute}}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				w := &dotWriter{d: d, bol: true}
				for i := 0; i < len(body); i += 4096 {
					impl.write(w, body[i:min(i+4096, len(body))])
				}
			}
		})
	}
}
