// Command latency measures, per message, the time from sending the final
// "." of DATA to reading the server's reply, over plain SMTP without
// pipelining (lock-step, like smtp-source). smtp-source reports no
// latency; this fills that gap for the relay benchmark (bench/relay).
//
//	latency -addr 127.0.0.1:2525 -n 2000 -c 1 -size 5120 -rcpt 1
//
// It prints one line of key=value pairs (durations in microseconds):
//
//	n=2000 errors=0 p50_us=95 p90_us=120 p99_us=210 max_us=900 tx_p50_us=310 tx_p99_us=700 msgs_per_s=3100
//
// tx_* is the whole transaction (MAIL FROM to the reply to "."). The first
// -warmup messages of each session are sent but not measured. A reply
// other than the expected one counts as an error, is printed to stderr,
// and the session reconnects; the exit status is 1 when errors > 0.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type config struct {
	addr    string
	n       int
	c       int
	size    int
	rcpt    int
	reuse   bool
	warmup  int
	timeout time.Duration
	from    string
	to      string
}

func main() {
	var cf config
	flag.StringVar(&cf.addr, "addr", "127.0.0.1:2525", "SMTP server `host:port`")
	flag.IntVar(&cf.n, "n", 1000, "messages to measure (over all sessions)")
	flag.IntVar(&cf.c, "c", 1, "parallel sessions")
	flag.IntVar(&cf.size, "size", 5120, "message body size in bytes (headers excluded)")
	flag.IntVar(&cf.rcpt, "rcpt", 1, "recipients per message")
	flag.BoolVar(&cf.reuse, "reuse", true, "send all of a session's messages over one connection (false: one connection per message)")
	flag.IntVar(&cf.warmup, "warmup", 20, "unmeasured messages per session before measuring")
	flag.DurationVar(&cf.timeout, "timeout", 30*time.Second, "per-reply timeout")
	flag.StringVar(&cf.from, "from", "bench@source.example", "envelope sender")
	flag.StringVar(&cf.to, "to", "rcpt@sink.example", "recipient; with -rcpt N>1, N, N-1, ... is prepended to the local part")
	flag.Parse()
	if cf.n < 1 || cf.c < 1 || cf.rcpt < 1 || cf.size < 0 {
		fmt.Fprintln(os.Stderr, "latency: -n, -c and -rcpt must be positive, -size not negative")
		os.Exit(2)
	}

	body := makeBody(cf.size)
	var (
		mu      sync.Mutex
		dot, tx []time.Duration
		nerr    int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for i := range cf.c {
		// Spread n over the sessions.
		count := cf.n / cf.c
		if i < cf.n%cf.c {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, t, e := session(cf, body, count)
			mu.Lock()
			dot = append(dot, d...)
			tx = append(tx, t...)
			nerr += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(dot)
	slices.Sort(tx)
	total := len(dot) + cf.c*cf.warmup
	fmt.Printf("n=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d tx_p50_us=%d tx_p99_us=%d msgs_per_s=%.0f\n",
		len(dot), nerr, pct(dot, 50), pct(dot, 90), pct(dot, 99), pct(dot, 100), pct(tx, 50), pct(tx, 99),
		float64(total)/elapsed.Seconds())
	if nerr > 0 {
		os.Exit(1)
	}
}

// pct is the p-th percentile (nearest rank) in microseconds.
func pct(s []time.Duration, p int) int64 {
	if len(s) == 0 {
		return -1
	}
	i := (p*len(s)+99)/100 - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Microseconds()
}

// makeBody returns size bytes of 76-character lines (CRLF included),
// none starting with ".".
func makeBody(size int) []byte {
	const line = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmn\r\n"
	b := make([]byte, 0, size+len(line))
	for len(b) < size {
		b = append(b, line...)
	}
	b = b[:size]
	if size >= 2 {
		b[size-2], b[size-1] = '\r', '\n'
	}
	return b
}

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	cf  config
	buf []byte
}

func dial(cf config) (*conn, error) {
	c, err := net.DialTimeout("tcp", cf.addr, cf.timeout)
	if err != nil {
		return nil, err
	}
	k := &conn{c: c, r: bufio.NewReader(c), w: bufio.NewWriterSize(c, 16<<10), cf: cf}
	if err := k.expect(220); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := k.cmd("EHLO latency.example", 250); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return k, nil
}

// reply reads one (possibly multi-line) reply and returns its code.
func (k *conn) reply() (int, string, error) {
	k.c.SetReadDeadline(time.Now().Add(k.cf.timeout))
	var all []string
	for {
		line, err := k.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(all, " | "), err
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 {
			return 0, line, errors.New("short reply line")
		}
		if line[3] != '-' {
			var code int
			fmt.Sscanf(line[:3], "%d", &code)
			return code, strings.Join(all, " | "), nil
		}
	}
}

func (k *conn) expect(code int) error {
	got, text, err := k.reply()
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("want %d, got %q", code, text)
	}
	return nil
}

func (k *conn) cmd(line string, code int) error {
	k.c.SetWriteDeadline(time.Now().Add(k.cf.timeout))
	k.w.WriteString(line)
	k.w.WriteString("\r\n")
	if err := k.w.Flush(); err != nil {
		return err
	}
	return k.expect(code)
}

// send runs one transaction and returns the dot-to-reply and the whole
// transaction times.
func (k *conn) send(seq int, body []byte) (dot, tx time.Duration, err error) {
	t0 := time.Now()
	if err := k.cmd("MAIL FROM:<"+k.cf.from+">", 250); err != nil {
		return 0, 0, fmt.Errorf("MAIL: %w", err)
	}
	for i := k.cf.rcpt; i >= 1; i-- {
		to := k.cf.to
		if k.cf.rcpt > 1 {
			to = fmt.Sprint(i) + to
		}
		if err := k.cmd("RCPT TO:<"+to+">", 250); err != nil {
			return 0, 0, fmt.Errorf("RCPT: %w", err)
		}
	}
	if err := k.cmd("DATA", 354); err != nil {
		return 0, 0, fmt.Errorf("DATA: %w", err)
	}
	k.c.SetWriteDeadline(time.Now().Add(k.cf.timeout))
	fmt.Fprintf(k.w, "From: <%s>\r\nTo: <%s>\r\nSubject: latency %d\r\nMessage-ID: <%d.%d@latency.example>\r\n\r\n", k.cf.from, k.cf.to, seq, time.Now().UnixNano(), seq)
	k.w.Write(body)
	if err := k.w.Flush(); err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	k.w.WriteString(".\r\n")
	if err := k.w.Flush(); err != nil {
		return 0, 0, err
	}
	if err := k.expect(250); err != nil {
		return 0, 0, fmt.Errorf("end of data: %w", err)
	}
	t2 := time.Now()
	return t2.Sub(t1), t2.Sub(t0), nil
}

func (k *conn) quit() {
	k.cmd("QUIT", 221)
	k.c.Close()
}

func session(cf config, body []byte, count int) (dot, tx []time.Duration, nerr int) {
	var k *conn
	defer func() {
		if k != nil {
			k.quit()
		}
	}()
	for i := 0; i < cf.warmup+count; {
		if k == nil {
			var err error
			if k, err = dial(cf); err != nil {
				fmt.Fprintln(os.Stderr, "latency:", err)
				nerr++
				if nerr > 100 {
					return
				}
				time.Sleep(10 * time.Millisecond)
				i++
				continue
			}
		}
		d, t, err := k.send(i, body)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latency:", err)
			nerr++
			k.c.Close()
			k = nil
			i++
			continue
		}
		if i >= cf.warmup {
			dot = append(dot, d)
			tx = append(tx, t)
		}
		if !cf.reuse {
			k.quit()
			k = nil
		}
		i++
	}
	return
}
