package main

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"time"
)

// bodyLines is the text messages are cut from: lines of many lengths, some
// starting with a dot (the client stuffs them, the sink unstuffs them), a
// lone dot, trailing spaces, 8-bit bytes and empty lines, so every message
// also checks that the hop is transparent.
var bodyLines = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:-_=+"
	lines := make([]string, 4096)
	for i := range lines {
		var b strings.Builder
		n := r.IntN(120)
		switch r.IntN(40) {
		case 0:
			b.WriteString(".")
		case 1:
			b.WriteString("..")
		case 2:
			b.WriteString("caf\xc3\xa9 ")
		case 3:
			n = 0
		}
		for b.Len() < n {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		if r.IntN(30) == 0 {
			b.WriteString("   ")
		}
		lines[i] = b.String()
	}
	lines[7] = "."
	return lines
}()

// message is one generated mail. Its content (headers and body, each line
// ended by LF, no dot-stuffing: what smtp-sink writes to its dump) has
// Bytes bytes and CRC-32 CRC; the last line, the trailer, carries the
// message's ID and both figures, so the dump alone tells whether it is
// complete and intact.
type message struct {
	id    string
	from  string
	rcpts []string
	spam  bool
	size  int // wanted content size, before the trailer
	start int // first body line
}

const trailerPrefix = "SOAK-END "

// writeData writes the message as DATA content to w, CRLF line ends and
// dot-stuffed, without the final dot. With cut >= 0 it stops after about cut
// bytes (a client dropping mid-DATA). It returns the content's length and
// CRC as the sink must store them.
func (m *message) writeData(w *bufio.Writer, cut int) (n int64, sum uint32, err error) {
	written := 0
	line := func(s string) error {
		n += int64(len(s)) + 1
		sum = crc32.Update(sum, crc32.IEEETable, []byte(s))
		sum = crc32.Update(sum, crc32.IEEETable, lf)
		if strings.HasPrefix(s, ".") {
			w.WriteByte('.')
			written++
		}
		w.WriteString(s)
		_, err := w.WriteString("\r\n")
		written += len(s) + 2
		return err
	}
	hdr := []string{
		"Message-ID: <" + m.id + "@soak.test>",
		"Date: " + time.Now().UTC().Format(time.RFC1123Z),
		"From: <" + m.from + ">",
		"To: <" + m.rcpts[0] + ">",
		"Subject: soak " + m.id,
	}
	if m.spam {
		hdr = append(hdr, "X-Spam-Flag: YES", "X-Spam-Status: Yes, score=9.9 required=5.0")
	}
	hdr = append(hdr, "")
	for _, h := range hdr {
		if err := line(h); err != nil {
			return n, sum, err
		}
	}
	for i := m.start; n < int64(m.size); i++ {
		if cut >= 0 && written >= cut {
			return n, sum, w.Flush()
		}
		if err := line(bodyLines[i%len(bodyLines)]); err != nil {
			return n, sum, err
		}
	}
	if cut >= 0 {
		return n, sum, w.Flush()
	}
	_, err = fmt.Fprintf(w, "%s%s %d %08x\r\n", trailerPrefix, m.id, n, sum)
	return n, sum, err
}

var lf = []byte{'\n'}
