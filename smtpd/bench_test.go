package smtpd

import (
	"strings"
	"testing"
)

// BenchmarkRelay5KB relays 5 KB messages over one reused session to a hop
// that discards them: per-message time and allocations of the whole path
// (client and hop included). bench/relay measures against smtp-sink.
func BenchmarkRelay5KB(b *testing.B) { relayBench(b, "bench") }

// BenchmarkRelay5KBEncodedSubject is BenchmarkRelay5KB with a Subject in
// an encoded word of a charset beyond the standard library's (windows-1251).
func BenchmarkRelay5KBEncodedSubject(b *testing.B) {
	relayBench(b, "=?windows-1251?B?0ero5OroIOTuIDkwJSDy7uv86u4g8eXj7uTt/w==?=")
}

func relayBench(b *testing.B, subject string) {
	hop, err := startFakeHop(false, make(chan struct{}))
	if err != nil {
		b.Fatal(err)
	}
	hop.discard = true
	p := newFuzzProxy(hop.addr())
	c := dial(b, p.addr)
	body := "Subject: " + subject + "\r\nX-Spam-Flag: NO\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 50) + ".\r\n"
	c.expect("", "220 ")
	c.expect("EHLO bench", "250 ")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@isp.example>\r\nDATA\r\n")
		c.expect("", "250 ")
		c.expect("", "250 ")
		c.expect("", "354 ")
		c.send(body)
		c.expect("", "250 ")
	}
}
