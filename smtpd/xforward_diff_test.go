package smtpd

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
)

// scriptConn hands out in, a chunk of the scripted size per Read (less if
// p is smaller), then io.EOF; it records what is written to it.
type scriptConn struct {
	net.Conn
	in     []byte
	chunks []int
	writes []string
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	k := len(c.in)
	if len(c.chunks) > 0 {
		k = min(k, c.chunks[0])
		c.chunks = c.chunks[1:]
	}
	n := copy(p, c.in[:k])
	c.in = c.in[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

type xfUnderTest interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	takeXForward() []xforwardAttr
}

func xfModeOf(c xfUnderTest) xfMode {
	switch c := c.(type) {
	case *xfConn:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.mode
	case *refXFConn:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.mode
	}
	panic("unknown")
}

// xfSession plays go-smtp's part over c: reads of the given sizes, the
// reply to DATA and STARTTLS once one is handed out (354 or 554, 220 or
// 454, in the order of replies), and a takeXForward now and then. It
// returns a transcript of all of it.
func xfSession(c xfUnderTest, sc *scriptConn, reads []int, replies []bool) string {
	var b strings.Builder
	buf := make([]byte, 8192)
	for step := 0; ; step++ {
		size := reads[step%len(reads)]
		n, err := c.Read(buf[:size])
		fmt.Fprintf(&b, "read %d %v %q mode %d\n", n, err, buf[:n], xfModeOf(c))
		if err != nil {
			// Reading on after the end gives the end again.
			for range 2 {
				n, err := c.Read(buf[:size])
				fmt.Fprintf(&b, "read again %d %v %q\n", n, err, buf[:n])
			}
			break
		}
		ok := replies[step%len(replies)]
		switch xfModeOf(c) {
		case xfAwaitData:
			if ok {
				c.Write([]byte("354 go ahead\r\n"))
			} else {
				c.Write([]byte("554 no\r\n"))
			}
		case xfAwaitTLS:
			if ok && step%7 == 0 {
				c.Write([]byte("220 ready\r\n"))
			} else {
				c.Write([]byte("454 no TLS\r\n"))
			}
		}
		if step%5 == 0 {
			c.Write([]byte("250-x\r\n250-PIPELINING\r\n250 8BITMIME\r\n"))
			fmt.Fprintf(&b, "attrs %q\n", c.takeXForward())
		}
		if step > 100000 {
			b.WriteString("runaway\n")
			break
		}
	}
	fmt.Fprintf(&b, "attrs %q\nwrites %q\n", c.takeXForward(), sc.writes)
	return b.String()
}

var xfPieces = []string{
	"EHLO x", "XFORWARD NAME=a.example ADDR=192.0.2.1", "xforward helo=h+2Bx PROTO=ESMTP", "XFORWARD",
	"MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA", "data", "DATA x", "BDAT 5", "BDAT 5 LAST", "BDAT x", "BDAT 0",
	"bdat 12", "STARTTLS", "\u017ftarttls", "NOOP", "QUIT", strings.Repeat("X", 2100), "\u017fTARTTLS x",
	"body line", ".", "..dot", ".\r", "x\r", "\x00", "", "XFORWARD NAME=evil",
}

var xfEnds = []string{"\r\n", "\r\n", "\r\n", "\n", "\r\r\n", "\r", ""}

func randomXFInput(rng *rand.Rand) []byte {
	var b strings.Builder
	for range rng.Intn(40) {
		b.WriteString(xfPieces[rng.Intn(len(xfPieces))])
		b.WriteString(xfEnds[rng.Intn(len(xfEnds))])
		if rng.Intn(6) == 0 {
			b.WriteString(".\r\n")
		}
	}
	return []byte(b.String())
}

func TestXFConnMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for it := range 4000 {
		in := randomXFInput(rng)
		chunks := chunksOf(len(in), 1+rng.Intn(3000), 1+rng.Intn(7), 1+rng.Intn(100))
		reads := []int{1 + rng.Intn(4096), 1 + rng.Intn(9), 4096, 1 + rng.Intn(600)}
		replies := []bool{rng.Intn(4) != 0, rng.Intn(4) != 0, true}
		if it%3 == 0 {
			reads = []int{4096}
		}
		sc1 := &scriptConn{in: in, chunks: append([]int(nil), chunks...)}
		got := xfSession(newXFConn(sc1), sc1, reads, replies)
		sc2 := &scriptConn{in: in, chunks: append([]int(nil), chunks...)}
		want := xfSession(newRefXFConn(sc2), sc2, reads, replies)
		if got != want {
			t.Fatalf("input %q, chunks %v, reads %v, replies %v:\n--- got\n%s\n--- want\n%s", in, chunks, reads, replies, got, want)
		}
	}
}
