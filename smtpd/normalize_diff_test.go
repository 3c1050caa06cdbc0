package smtpd

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// recWriter records every Write call and fails the failAt-th (from 1; 0:
// never).
type recWriter struct {
	writes [][]byte
	failAt int
}

var errRecWriter = errors.New("recWriter: failing as told")

func (w *recWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	if len(w.writes) == w.failAt {
		return 0, errRecWriter
	}
	return len(p), nil
}

// normRun is what one normaliser did with one input: every Write it made
// and what each of its calls returned.
type normRun struct {
	writes   [][]byte
	returns  []string
	bare, nl int
}

func runNormaliser(newNorm func(w *recWriter, buf []byte) interface {
	Write([]byte) (int, error)
	Close() error
	Bare() int
	NUL() int
}, in []byte, chunks []int, bufCap, failAt int) normRun {
	w := &recWriter{failAt: failAt}
	n := newNorm(w, make([]byte, 0, bufCap))
	var r normRun
	i := 0
	for _, c := range chunks {
		k, err := n.Write(in[i : i+c])
		r.returns = append(r.returns, fmt.Sprintf("%d %v b%d n%d", k, err, n.Bare(), n.NUL()))
		i += c
	}
	err := n.Close()
	r.returns = append(r.returns, fmt.Sprintf("close %v b%d n%d", err, n.Bare(), n.NUL()))
	r.writes, r.bare, r.nl = w.writes, n.Bare(), n.NUL()
	return r
}

type normaliserI = interface {
	Write([]byte) (int, error)
	Close() error
	Bare() int
	NUL() int
}

func newNormUnderTest(w *recWriter, buf []byte) normaliserI { return newNormaliserBuf(w, buf) }
func newNormRef(w *recWriter, buf []byte) normaliserI       { return newRefNormaliserBuf(w, buf) }

// checkAgainstRef runs both normalisers over in, cut into chunks, and
// fails on any difference: the bytes of each Write, the return values and
// counts after each call.
func checkAgainstRef(t *testing.T, in []byte, chunks []int, bufCap, failAt int) {
	t.Helper()
	got := runNormaliser(newNormUnderTest, in, chunks, bufCap, failAt)
	want := runNormaliser(newNormRef, in, chunks, bufCap, failAt)
	if fmt.Sprintf("%q", got.writes) != fmt.Sprintf("%q", want.writes) || strings.Join(got.returns, "|") != strings.Join(want.returns, "|") {
		t.Fatalf("in %q, chunks %v, buffer %d, failing write %d:\nwrites  %q\nwant    %q\nreturns %q\nwant    %q",
			in, chunks, bufCap, failAt, got.writes, want.writes, got.returns, want.returns)
	}
}

// chunksOf cuts n bytes into pieces of the given sizes, cycling, the last
// piece what is left.
func chunksOf(n int, sizes ...int) []int {
	var out []int
	for i := 0; n > 0; i++ {
		c := min(sizes[i%len(sizes)], n)
		out = append(out, c)
		n -= c
	}
	return out
}

func TestNormaliserMatchesReference(t *testing.T) {
	inputs := []string{
		"", "a", "\r", "\n", "\x00", "\r\n", "\n\r", "\r\r\n", "\r\r", "\n\n",
		"a\r\nb\r\n", "a\nb", "x\r.\r\n", "\n.\n", "\r\n.\r\n", "a\rb\rc", "\r\n\x00.\r\n",
		"Subject: a\r\n\r\nfoo\r\r\n.\r\n", "A\r\n.\r\r\nB\r\n", "\x00\x00\r\x00\n\r\r\r\n\n",
		strings.Repeat("y", 98) + "\r\n",
		strings.Repeat(strings.Repeat("y", 98)+"\r\n", 60),
		strings.Repeat("a\rb\nc\r\n\x00", 40),
		strings.Repeat("\n", 300), strings.Repeat("\r", 300), strings.Repeat("\r\n", 300),
		strings.Repeat("x", 5000),
	}
	for _, s := range inputs {
		in := []byte(s)
		for _, sizes := range [][]int{{len(in) + 1}, {1}, {2}, {3}, {7}, {1, 2, 5}, {64}, {4096}} {
			chunks := chunksOf(len(in), sizes...)
			for _, bufCap := range []int{1, 2, 3, 4, 5, 8, 17, 64, normBufSize} {
				for _, failAt := range []int{0, 1, 2, 3} {
					checkAgainstRef(t, in, chunks, bufCap, failAt)
				}
			}
		}
	}
	// Random mail-like bodies, random chunkings and buffers.
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("ab.\r\n\r\n\r\n\x00 ")
	for range 3000 {
		in := make([]byte, rng.Intn(400))
		for i := range in {
			if rng.Intn(4) == 0 {
				in[i] = alphabet[rng.Intn(len(alphabet))]
			} else {
				in[i] = 'a' + byte(rng.Intn(26))
			}
		}
		chunks := chunksOf(len(in), 1+rng.Intn(50), 1+rng.Intn(5), 1+rng.Intn(200))
		checkAgainstRef(t, in, chunks, 1+rng.Intn(70), rng.Intn(6))
	}
}

// FuzzNormaliserReference: the Normaliser makes the same writes, returns
// and counts as the byte-at-a-time reference, for any input, chunking,
// buffer size and failing write.
func FuzzNormaliserReference(f *testing.F) {
	for _, s := range []string{"", "a\r\nb\r\n", "a\nb", "x\r.\r\n", "\r\r\n", "\n.\n", "\r", "a\rb\rc", "\r\n\x00.\r\n"} {
		f.Add([]byte(s), uint16(1), uint16(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, split, bufSel uint16, failAt uint8) {
		chunks := chunksOf(len(in), int(split%17)+1, int(split/17%5)+1)
		bufCap := int(bufSel%80) + 1
		if bufSel >= 0x8000 {
			bufCap = normBufSize
		}
		checkAgainstRef(t, in, chunks, bufCap, int(failAt%8))
	})
}

// BenchmarkNormaliser5KB: the mail body of BenchmarkRelay5KB in the
// chunks go-smtp's DATA reader returns (its 4 KiB buffer).
func BenchmarkNormaliser5KB(b *testing.B) {
	body := []byte("Subject: bench\r\nX-Spam-Flag: NO\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 50))
	for _, impl := range []struct {
		name string
		new  func(buf []byte) io.Writer
	}{
		{"bulk", func(buf []byte) io.Writer { return newNormaliserBuf(io.Discard, buf) }},
		{"reference", func(buf []byte) io.Writer { return newRefNormaliserBuf(io.Discard, buf) }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			buf := make([]byte, 0, normBufSize)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				n := impl.new(buf)
				for i := 0; i < len(body); i += 4096 {
					n.Write(body[i:min(i+4096, len(body))])
				}
			}
		})
	}
}
