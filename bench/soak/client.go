package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outcome is what the client learnt of one transaction.
type outcome int

const (
	acked    outcome = iota // 250 at the end of DATA (LMTP: for at least one recipient)
	tempfail                // a 4xx at some stage
	rejected                // a 5xx at some stage
	dropped                 // the client closed the connection mid-DATA
	connFail                // the connection failed before the final dot was sent
	noReply                 // the final dot was sent but no reply came: spamsurge must never do that
	nOutcomes
)

var outcomeNames = [...]string{"acked", "tempfail", "rejected", "dropped", "conn_failed", "no_reply"}

func (o outcome) String() string { return outcomeNames[o] }

// txRecord is one transaction as the client saw it.
type txRecord struct {
	id        string
	lane      string
	size      int64  // content bytes the sink must store (0 unless the dot was sent)
	crc       uint32 // and their CRC
	rcpts     int    // RCPTs sent
	rcptOK    int    // RCPTs that got 250
	pipelined bool
	slow      bool
	dotSent   bool
	outcome   outcome
	stage     string // where it ended when not acked
	mixed     bool   // LMTP: some recipients 250, others not
	err       error  // for noReply and connFail
	end       time.Time
}

// ledger collects every transaction of a run.
type ledger struct {
	mu  sync.Mutex
	txs map[string]*txRecord
	seq int
}

func newLedger() *ledger { return &ledger{txs: map[string]*txRecord{}} }

func (l *ledger) nextID(lane string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return fmt.Sprintf("soak-%s-%d", lane, l.seq)
}

func (l *ledger) add(r *txRecord) {
	l.mu.Lock()
	l.txs[r.id] = r
	l.mu.Unlock()
}

// mix is the traffic shape; the zero value is not useful, see defaultMix.
type mix struct {
	Pipelined  float64       // share of transactions sent pipelined
	Slow       float64       // share of connections that read replies slowly
	SlowDelay  time.Duration // the longest wait before reading a reply
	DropData   float64       // share of transactions dropped mid-DATA
	Spam       float64       // share of messages with a spam verdict header
	Abrupt     float64       // share of connections closed without QUIT
	MaxPerConn int           // transactions per connection: 1..MaxPerConn
	MaxSize    int           // largest message, bytes
	MaxRcpts   int
}

func defaultMix() mix {
	return mix{Pipelined: 0.5, Slow: 0.1, SlowDelay: 300 * time.Millisecond, DropData: 0.03, Spam: 0.3, Abrupt: 0.15, MaxPerConn: 5, MaxSize: 10 << 20, MaxRcpts: 50}
}

// size draws a message size, 1 KB to MaxSize, skewed to small as real
// mail is: 70 % up to 16 KB, 20 % to 256 KB, 8 % to 2 MB, 2 % to the max.
func (m mix) size(r *rand.Rand) int {
	logUniform := func(lo, hi float64) int {
		if hi <= lo {
			return int(lo)
		}
		return int(lo * math.Pow(hi/lo, r.Float64()))
	}
	max := float64(m.MaxSize)
	bands := []float64{1 << 10, 16 << 10, 256 << 10, 2 << 20, max}
	p := r.Float64()
	band := 3
	switch {
	case p < 0.70:
		band = 0
	case p < 0.90:
		band = 1
	case p < 0.98:
		band = 2
	}
	return logUniform(min(bands[band], max), min(bands[band+1], max))
}

// rcpts draws a recipient count: 1 for most, up to MaxRcpts for a few.
func (m mix) rcpts(r *rand.Rand) int {
	p := r.Float64()
	var n int
	switch {
	case p < 0.6:
		n = 1
	case p < 0.85:
		n = 2 + r.IntN(4)
	case p < 0.95:
		n = 6 + r.IntN(15)
	default:
		n = 21 + r.IntN(30)
	}
	return min(n, m.MaxRcpts)
}

// client is one simulated sender: it opens connections to one spamsurge,
// runs a few transactions on each and records every one in the ledger.
type client struct {
	lane    string
	addr    string
	lmtp    bool
	mix     mix
	ledger  *ledger
	tokens  <-chan struct{} // one per transaction: the lane's rate
	gate    *gate
	rnd     *rand.Rand
	timeout time.Duration // per reply; longer than any timeout of spamsurge's
}

// run opens connections until ctx ends.
func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !c.gate.wait(ctx) {
			return
		}
		c.session(ctx)
	}
}

// smtpConn is the client side of one connection.
type smtpConn struct {
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	slow    time.Duration
	rnd     *rand.Rand
	timeout time.Duration
}

// reply reads one reply, multi-line or not.
func (s *smtpConn) reply() (int, string, error) {
	if s.slow > 0 {
		time.Sleep(time.Duration(s.rnd.Int64N(int64(s.slow))))
	}
	s.c.SetReadDeadline(time.Now().Add(s.timeout))
	var text strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return 0, text.String(), err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, line, fmt.Errorf("short reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, line, fmt.Errorf("bad reply %q", line)
		}
		text.WriteString(line)
		if len(line) == 3 || line[3] != '-' {
			return code, text.String(), nil
		}
		text.WriteByte('\n')
	}
}

func (s *smtpConn) send(format string, args ...any) error {
	s.c.SetWriteDeadline(time.Now().Add(s.timeout))
	fmt.Fprintf(s.w, format+"\r\n", args...)
	return s.w.Flush()
}

// session runs one connection: greeting, EHLO/LHLO, 1..MaxPerConn
// transactions (rate-limited), then QUIT or an abrupt close.
func (c *client) session(ctx context.Context) {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		// spamsurge is up for the whole run: this happens only at the end.
		time.Sleep(100 * time.Millisecond)
		return
	}
	defer nc.Close()
	s := &smtpConn{c: nc, r: bufio.NewReader(nc), w: bufio.NewWriterSize(nc, 32<<10), rnd: c.rnd, timeout: c.timeout}
	slow := c.rnd.Float64() < c.mix.Slow
	if slow {
		// A small receive buffer and a wait before each reply: replies
		// pile up in spamsurge's socket and its writes wait on us.
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetReadBuffer(2048)
		}
		s.slow = c.mix.SlowDelay
	}
	if code, _, err := s.reply(); err != nil || code != 220 {
		return
	}
	hello := "EHLO"
	if c.lmtp {
		hello = "LHLO"
	}
	if err := s.send("%s client.soak.test", hello); err != nil {
		return
	}
	code, text, err := s.reply()
	if err != nil || code != 250 {
		return
	}
	pipelining := strings.Contains(text, "PIPELINING")
	n := 1 + c.rnd.IntN(c.mix.MaxPerConn)
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			return
		case <-c.tokens:
		}
		rec := c.transaction(s, pipelining, slow)
		c.ledger.add(rec)
		if rec.outcome == dropped || rec.outcome == connFail || rec.outcome == noReply || strings.Contains(rec.stage, "421") {
			return
		}
		if !c.gate.open() {
			break
		}
	}
	if c.rnd.Float64() < c.mix.Abrupt {
		return // no QUIT: the deferred Close
	}
	if s.send("QUIT") == nil {
		s.reply()
	}
}

// transaction runs one MAIL..final reply and says how it went.
func (c *client) transaction(s *smtpConn, pipelining, slow bool) *txRecord {
	r := c.rnd
	m := &message{
		id:    c.ledger.nextID(c.lane),
		from:  fmt.Sprintf("sender%d@source.soak.test", r.IntN(50)),
		spam:  r.Float64() < c.mix.Spam,
		size:  c.mix.size(r),
		start: r.IntN(len(bodyLines)),
	}
	for _, k := range r.Perm(recipientPool)[:c.mix.rcpts(r)] {
		m.rcpts = append(m.rcpts, fmt.Sprintf("user%d@%s.soak.test", k, c.lane))
	}
	rec := &txRecord{id: m.id, lane: c.lane, rcpts: len(m.rcpts), slow: slow}
	rec.pipelined = pipelining && r.Float64() < c.mix.Pipelined
	defer func() { rec.end = time.Now() }()
	cut := -1
	if r.Float64() < c.mix.DropData {
		cut = r.IntN(m.size + 1)
	}
	finish := func(o outcome, stage string, err error) *txRecord {
		rec.outcome, rec.stage, rec.err = o, stage, err
		return rec
	}
	byCode := func(code int, stage, text string) *txRecord {
		o := rejected
		if code/100 == 4 {
			o = tempfail
		}
		return finish(o, fmt.Sprintf("%s %d", stage, code), errors.New(text))
	}

	mail := fmt.Sprintf("MAIL FROM:<%s> BODY=8BITMIME", m.from)
	if r.IntN(2) == 0 {
		mail += fmt.Sprintf(" SIZE=%d", m.size+200)
	}
	// Replies: MAIL, each RCPT, DATA. Pipelined, all commands go in one
	// write and the replies are read afterwards (RFC 2920); otherwise
	// each command waits for its reply, and DATA is not sent when no
	// recipient was accepted.
	var dataCode int
	var failCode int
	var failStage, failText string
	note := func(code int, stage, text string) {
		if failCode == 0 {
			failCode, failStage, failText = code, stage, text
		}
	}
	if rec.pipelined {
		s.c.SetWriteDeadline(time.Now().Add(s.timeout))
		fmt.Fprintf(s.w, "%s\r\n", mail)
		for _, rc := range m.rcpts {
			fmt.Fprintf(s.w, "RCPT TO:<%s>\r\n", rc)
		}
		s.w.WriteString("DATA\r\n")
		if err := s.w.Flush(); err != nil {
			return finish(connFail, "pipeline", err)
		}
		code, text, err := s.reply()
		if err != nil {
			return finish(connFail, "mail", err)
		}
		if code != 250 {
			note(code, "mail", text)
		}
		for range m.rcpts {
			code, text, err := s.reply()
			if err != nil {
				return finish(connFail, "rcpt", err)
			}
			if code == 250 {
				rec.rcptOK++
			} else {
				note(code, "rcpt", text)
			}
		}
		code, text, err = s.reply()
		if err != nil {
			return finish(connFail, "data", err)
		}
		dataCode = code
		if code != 354 {
			note(code, "data", text)
		}
	} else {
		if err := s.send("%s", mail); err != nil {
			return finish(connFail, "mail", err)
		}
		code, text, err := s.reply()
		if err != nil {
			return finish(connFail, "mail", err)
		}
		if code != 250 {
			c.reset(s)
			return byCode(code, "mail", text)
		}
		for _, rc := range m.rcpts {
			if err := s.send("RCPT TO:<%s>", rc); err != nil {
				return finish(connFail, "rcpt", err)
			}
			code, text, err := s.reply()
			if err != nil {
				return finish(connFail, "rcpt", err)
			}
			if code == 250 {
				rec.rcptOK++
			} else {
				note(code, "rcpt", text)
			}
		}
		if rec.rcptOK == 0 {
			c.reset(s)
			return byCode(failCode, failStage, failText)
		}
		if err := s.send("DATA"); err != nil {
			return finish(connFail, "data", err)
		}
		code, text, err = s.reply()
		if err != nil {
			return finish(connFail, "data", err)
		}
		dataCode = code
		if code != 354 {
			note(code, "data", text)
		}
	}
	if dataCode != 354 {
		c.reset(s)
		return byCode(failCode, failStage, failText)
	}

	s.c.SetWriteDeadline(time.Now().Add(s.timeout))
	size, sum, err := m.writeData(s.w, cut)
	if cut >= 0 {
		if err != nil {
			return finish(connFail, "body", err)
		}
		if tc, ok := s.c.(*net.TCPConn); ok && r.IntN(2) == 0 {
			tc.SetLinger(0) // a reset rather than a FIN
		}
		s.c.Close()
		return finish(dropped, "body", nil)
	}
	if err == nil {
		_, err = s.w.WriteString(".\r\n")
	}
	if err == nil {
		err = s.w.Flush()
	}
	if err != nil {
		// Part of the dot may have gone out: that counts as sent.
		rec.dotSent = true
		rec.size, rec.crc = size, sum
		return finish(noReply, "dot write", err)
	}
	rec.dotSent = true
	rec.size, rec.crc = size, sum

	replies := 1
	if c.lmtp {
		replies = rec.rcptOK
	}
	ok, other := 0, 0
	var badCode int
	var badText string
	for i := 0; i < replies; i++ {
		code, text, err := s.reply()
		if err != nil {
			if ok > 0 {
				rec.mixed = true
				break
			}
			return finish(noReply, "final", err)
		}
		if code/100 == 2 {
			ok++
			continue
		}
		other++
		if badCode == 0 {
			badCode, badText = code, text
		}
	}
	if ok > 0 {
		rec.mixed = other > 0 || rec.mixed
		return finish(acked, "", nil)
	}
	return byCode(badCode, "final", badText)
}

// reset ends a failed transaction so the next one starts clean.
func (c *client) reset(s *smtpConn) {
	if s.send("RSET") == nil {
		s.reply()
	}
}

// recipientPool bounds the distinct recipients per lane, so the
// detector's state stops growing once every address has been seen: its
// growth would otherwise look like a leak.
const recipientPool = 2000

// gate pauses traffic for the idle checks.
type gate struct {
	mu     sync.Mutex
	closed bool
	ch     chan struct{} // closed while open
}

func newGate() *gate {
	g := &gate{ch: make(chan struct{})}
	close(g.ch)
	return g
}

func (g *gate) open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open == !g.closed {
		return
	}
	g.closed = !open
	if open {
		close(g.ch)
	} else {
		g.ch = make(chan struct{})
	}
}

// wait blocks while the gate is closed; false when ctx ended.
func (g *gate) wait(ctx context.Context) bool {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
