package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/verdict"
)

// session is one inbound SMTP/LMTP connection, relayed in lock-step to one
// downstream connection opened at the first MAIL and reused for the
// session's later transactions.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	log    *zap.Logger
	client string // client IP, for observations (never logged with addresses)

	mu     sync.Mutex // guards inTx and kickAt against the shutdown watcher
	inTx   bool
	ended  bool
	kickAt time.Time

	ds *downstream
	xf *xfConn // nil unless XFORWARD is offered

	// The transaction in progress.
	from     string
	rcpts    []string // accepted by the next hop, in order
	rejected []string // refused by the next hop with 5xx
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.LMTPSession = (*session)(nil)
)

func (s *session) setInTx(v bool) {
	s.mu.Lock()
	s.inTx = v
	s.mu.Unlock()
	if !v && s.srv.draining() {
		s.kick()
	}
}

func (s *session) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.inTx
}

// kickGrace lets a client that is already sending QUIT (or its next
// command) be answered before a draining session is closed.
const kickGrace = 500 * time.Millisecond

// kick makes go-smtp's next command read fail after a short grace, so it
// answers 421 and closes the connection itself, from its own goroutine.
// The deadline is fixed at the first kick: go-smtp re-arms its own read
// deadline before each command, so the shutdown loop kicks repeatedly.
func (s *session) kick() {
	s.mu.Lock()
	if s.kickAt.IsZero() {
		s.kickAt = time.Now().Add(kickGrace)
	}
	at := s.kickAt
	s.mu.Unlock()
	s.conn.Conn().SetReadDeadline(at)
}

// Reset is called on RSET, a new EHLO, after DATA/BDAT and at STARTTLS.
func (s *session) Reset() {
	if s.ds != nil && s.ds.dirty {
		rep, err := s.ds.cmd("RSET")
		if err != nil || rep.Code != 250 {
			s.dropDownstream()
		} else {
			s.ds.dirty = false
		}
	}
	s.from, s.rcpts, s.rejected = "", nil, nil
	s.setInTx(false)
}

// Logout is called when the connection closes.
func (s *session) Logout() error {
	if s.ds != nil {
		if s.ds.dirty {
			// A transaction without its final dot: closing the
			// connection makes the next hop drop it.
			s.ds.close()
		} else {
			s.ds.quit()
		}
		s.ds = nil
	}
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.srv.removeSession(s)
	return nil
}

func (s *session) dropDownstream() {
	if s.ds != nil {
		s.ds.close()
		s.ds = nil
	}
}

// fail counts a downstream failure, drops the connection and returns the
// reply for the client.
func (s *session) fail(stage string, err error) *smtp.SMTPError {
	var de *downstreamError
	if errors.As(err, &de) {
		s.srv.metrics.downstreamFails.WithLabelValues(de.reason).Inc()
		s.log.Warn("next hop failed", zap.String("stage", stage), zap.String("reason", de.reason), zap.Error(de.err))
		s.dropDownstream()
		if stage == "connect" {
			s.srv.nextHopFailed(de)
		}
	}
	var re *ReplyError
	if errors.As(err, &re) && re.Reply.Code == 421 {
		// The next hop is closing the channel.
		s.dropDownstream()
	}
	return toSMTPError(err)
}

// maxPath is the longest reverse-path or forward-path, angle brackets
// included (RFC 5321 section 4.5.3.1.3).
const maxPath = 256

// checkPath refuses a path we must not pass on: too long for RFC 5321, or
// with control characters (a NUL in an address could end the command line
// early at a next hop that drops it).
func (s *session) checkPath(addr string) *smtp.SMTPError {
	if len(addr)+2 > maxPath {
		s.srv.metrics.commandsRefused.WithLabelValues(refusedPathTooLong).Inc()
		return errPathLong
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f {
			s.srv.metrics.commandsRefused.WithLabelValues(refusedControlChar).Inc()
			return errPathCtl
		}
	}
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.srv.draining() {
		defer s.kick()
		return errShutdown
	}
	if err := s.checkPath(from); err != nil {
		return err
	}
	s.setInTx(true)
	if opts == nil {
		opts = &smtp.MailOptions{}
	}
	xf := s.xforwardAttrs()
	// A connection kept from an earlier transaction may have been closed
	// by the next hop meanwhile (its idle timeout): then, as Postfix does
	// with cached connections, try once more on a fresh one.
	reused := s.ds != nil
	err := s.startTransaction(from, opts, xf)
	var de *downstreamError
	var re *ReplyError
	if reused && ((errors.As(err, &de) && de.reason != reasonTimeout) || (errors.As(err, &re) && re.Reply.Code == 421)) {
		s.log.Debug("kept next-hop connection failed; reconnecting", zap.Error(err))
		s.dropDownstream()
		err = s.startTransaction(from, opts, xf)
	}
	if err != nil {
		s.setInTx(false)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		return s.fail("mail", err)
	}
	s.ds.dirty = true
	s.from = from
	return nil
}

// startTransaction connects if needed and sends XFORWARD and MAIL. It
// returns *smtp.SMTPError for refusals of our own, *ReplyError for the
// next hop's, *downstreamError for failures to talk to it.
func (s *session) startTransaction(from string, opts *smtp.MailOptions, xf []xforwardAttr) error {
	if s.ds == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.opts.Downstream.ConnectTimeout+s.srv.opts.Downstream.CommandTimeout)
		ds, err := dialDownstream(ctx, s.srv.opts.Downstream)
		cancel()
		if err != nil {
			return s.fail("connect", err)
		}
		s.ds = ds
	}
	cmd, serr := s.mailCommand(from, opts)
	if serr != nil {
		return serr
	}
	if s.srv.opts.XForward && s.ds.has("XFORWARD") && len(xf) > 0 {
		if err := s.ds.xforward(xf); err != nil {
			return err
		}
	}
	rep, err := s.ds.cmd(cmd)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return &ReplyError{rep}
	}
	return nil
}

// mailCommand builds MAIL FROM with the parameters the client gave that
// the next hop understands.
func (s *session) mailCommand(from string, o *smtp.MailOptions) (string, *smtp.SMTPError) {
	var b strings.Builder
	b.Grow(len("MAIL FROM:<> BODY=8BITMIME SIZE=12345678901") + len(from))
	b.WriteString("MAIL FROM:<")
	b.WriteString(from)
	b.WriteByte('>')
	ds := s.ds
	if o.Body != "" && ds.has("8BITMIME") {
		b.WriteString(" BODY=")
		b.WriteString(string(o.Body))
	}
	if o.Size > 0 && ds.has("SIZE") {
		var num [20]byte
		b.WriteString(" SIZE=")
		b.Write(strconv.AppendInt(num[:0], o.Size, 10))
	}
	if o.UTF8 {
		if !ds.has("SMTPUTF8") {
			return "", errNoExt
		}
		b.WriteString(" SMTPUTF8")
	}
	if o.RequireTLS {
		if !ds.has("REQUIRETLS") || !ds.tls {
			return "", errNoExt
		}
		b.WriteString(" REQUIRETLS")
	}
	if ds.has("DSN") {
		if o.Return != "" {
			b.WriteString(" RET=")
			b.WriteString(string(o.Return))
		}
		if o.EnvelopeID != "" {
			b.WriteString(" ENVID=")
			b.WriteString(xtext(o.EnvelopeID))
		}
	}
	if o.Auth != nil && ds.has("AUTH") {
		v := *o.Auth
		if v == "" {
			v = "<>"
		}
		b.WriteString(" AUTH=")
		b.WriteString(xtext(v))
	}
	return b.String(), nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.ds == nil || !s.ds.dirty {
		return errInternal
	}
	if err := s.checkPath(to); err != nil {
		return err
	}
	var b strings.Builder
	b.Grow(len("RCPT TO:<>") + len(to))
	b.WriteString("RCPT TO:<")
	b.WriteString(to)
	b.WriteByte('>')
	if opts != nil && s.ds.has("DSN") {
		if len(opts.Notify) > 0 {
			n := make([]string, len(opts.Notify))
			for i, v := range opts.Notify {
				n[i] = string(v)
			}
			b.WriteString(" NOTIFY=" + strings.Join(n, ","))
		}
		if opts.OriginalRecipient != "" {
			b.WriteString(" ORCPT=" + string(opts.OriginalRecipientType) + ";" + xtext(opts.OriginalRecipient))
		}
	}
	rep, err := s.ds.cmd(b.String())
	if err != nil {
		s.srv.metrics.rcptTempfail.Inc()
		return s.fail("rcpt", err)
	}
	switch rep.Code / 100 {
	case 2:
		s.srv.metrics.rcptAccepted.Inc()
		s.rcpts = append(s.rcpts, to)
		return nil
	case 5:
		s.srv.metrics.rcptRejected.Inc()
		s.rejected = append(s.rejected, to)
	default:
		s.srv.metrics.rcptTempfail.Inc()
	}
	return s.fail("rcpt", &ReplyError{rep})
}

// Data relays an SMTP transaction: one reply for all recipients.
func (s *session) Data(r io.Reader) error {
	res := s.relay(r)
	return res.smtpReply()
}

// LMTPData relays an LMTP transaction: one reply per recipient.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	res := s.relay(r)
	for i, rcpt := range res.rcpts {
		status.SetStatus(rcpt, res.replyFor(i))
	}
	return nil
}

// relayResult is what the next hop said about a transaction.
type relayResult struct {
	rcpts []string
	// err is a failure for every recipient (ours or a reply before the
	// final dot); when nil, final holds one reply (SMTP next hop) or one
	// per recipient (LMTP next hop).
	err   *smtp.SMTPError
	final []Reply
	lmtp  bool
}

// replyFor is the status of recipient i for an LMTP client.
func (r *relayResult) replyFor(i int) error {
	if r.err != nil {
		return r.err
	}
	if !r.lmtp {
		return replyToSMTP(r.final[0])
	}
	if i < len(r.final) {
		// go-smtp prefixes "<rcpt> " to each LMTP status; LMTP
		// servers such as Dovecot already start with it.
		rep := r.final[i]
		if len(rep.Lines) > 0 {
			rep.Lines = append([]string(nil), rep.Lines...)
			rep.Lines[0] = strings.TrimPrefix(rep.Lines[0], "<"+r.rcpts[i]+"> ")
		}
		return replyToSMTP(rep)
	}
	// The next hop went away before answering for this recipient.
	return errAborted
}

// smtpReply folds the result into one reply for an SMTP client. With an
// LMTP next hop and mixed per-recipient answers we follow amavisd-new:
// any 4xx → that 4xx (the sender retries); all 5xx → the first 5xx.
// Mixed 2xx and 5xx → the first 5xx: a 250 would silently lose the message
// for the refused recipients, and a 4xx would duplicate it to the others at
// every retry; a 5xx makes the sender's MTA report the failure, so nothing
// is lost and the delivered copies are not repeated. All 2xx → the first.
func (r *relayResult) smtpReply() error {
	if r.err != nil {
		return r.err
	}
	if !r.lmtp {
		return replyToSMTP(r.final[0])
	}
	var first2, first4, first5 *Reply
	for i := range r.rcpts {
		if i >= len(r.final) {
			return errAborted
		}
		rep := &r.final[i]
		switch rep.Code / 100 {
		case 2:
			if first2 == nil {
				first2 = rep
			}
		case 4:
			if first4 == nil {
				first4 = rep
			}
		default:
			if first5 == nil {
				first5 = rep
			}
		}
	}
	switch {
	case first4 != nil:
		return replyToSMTP(*first4)
	case first5 != nil:
		return replyToSMTP(*first5)
	case first2 != nil:
		return replyToSMTP(*first2)
	}
	return errAborted
}

// relay streams the body to the next hop and collects its answer.
func (s *session) relay(r io.Reader) relayResult {
	start := time.Now()
	res := relayResult{rcpts: s.rcpts, lmtp: s.srv.opts.Downstream.LMTP}
	defer func() {
		s.srv.metrics.relayDuration.Observe(time.Since(start).Seconds())
	}()
	if s.ds == nil || len(s.rcpts) == 0 {
		io.Copy(io.Discard, r)
		res.err = errInternal
		s.count(&res, nil)
		return res
	}
	rep, err := s.ds.cmd("DATA")
	if err == nil && rep.Code != 354 {
		err = &ReplyError{rep}
	}
	if err != nil {
		io.Copy(io.Discard, r)
		res.err = s.fail("data", err)
		s.count(&res, nil)
		return res
	}

	scan := s.srv.classifier.NewScanner(s.srv.opts.MaxHeaderBytes)
	// In reject mode, bytes streamed before the first bare line end
	// are dropped with the downstream connection: the dot is never sent.
	// Buffers come from a pool: a fresh 96 KiB per message cost a GC
	// cycle every few dozen messages (bench/README.md). So do the
	// normaliser and the writers behind it.
	bufs := bodyBufs.Get().(*bodyBuffers)
	defer bufs.release()
	bufs.dw = dotWriter{d: s.ds, bol: true}
	bufs.tee = bodyTee{scan: scan, dw: &bufs.dw}
	bufs.norm = Normaliser{w: &bufs.tee, buf: bufs.normBuf[:0]}
	dw, norm := &bufs.dw, &bufs.norm
	refuse := func() bool {
		return (s.srv.opts.RejectBareNewline && norm.Bare() > 0) || (!s.srv.opts.StripNUL && norm.NUL() > 0)
	}
	n, rerr, werr := copyBody(norm, r, refuse, bufs.copy[:])
	if rerr == nil && werr == nil && !refuse() {
		werr = norm.Close()
	}
	bare, nul := norm.Bare(), norm.NUL()
	switch {
	case rerr != nil:
		// The client's side failed: too big, too long a line, gone,
		// timed out. Never send the dot: closing the downstream
		// connection aborts its transaction.
		s.dropDownstream()
		res.err = s.clientDataError(rerr)
	case nul > 0 && !s.srv.opts.StripNUL:
		s.dropDownstream()
		s.srv.metrics.nulMessages.WithLabelValues("rejected").Inc()
		s.log.Info("message refused: NUL byte", zap.Int("nul", nul))
		res.err = errNUL
	case bare > 0 && s.srv.opts.RejectBareNewline:
		s.dropDownstream()
		s.srv.metrics.bareNewlines.WithLabelValues("rejected").Inc()
		s.log.Info("message refused: bare CR or LF", zap.Int("bare", bare))
		res.err = errBareLF
	case werr != nil:
		res.err = s.fail("body", werr)
	default:
		if werr = dw.finish(); werr != nil {
			res.err = s.fail("dot", werr)
			break
		}
		want := 1
		if res.lmtp {
			want = len(s.rcpts)
		}
		final, err := s.ds.readFinal(want)
		s.ds.dirty = false
		res.final = final
		if err != nil {
			// Replies already read stand; the others are 4xx. For
			// SMTP, no final reply means we do not know: 4xx.
			s.fail("final", err)
			if !res.lmtp || len(final) == 0 {
				res.final = nil
				res.err = errAborted
				var de *downstreamError
				if errors.As(err, &de) && de.reason == reasonTimeout {
					res.err = errTimeout
				}
			}
		}
		if bare > 0 {
			s.srv.metrics.bareNewlines.WithLabelValues("normalized").Inc()
		}
		if nul > 0 {
			s.srv.metrics.nulMessages.WithLabelValues("stripped").Inc()
		}
		s.srv.metrics.messageBytes.Observe(float64(n))
	}
	s.count(&res, scan)
	return res
}

// copyBody streams src into dst. It returns the read error (client side)
// and the write error (next hop side) apart. After a write error, or once
// refused says the message will be refused (a bare line end or a NUL in
// reject mode), it stops writing but reads on to the real end of DATA, so
// the session stays in step with the client.
func copyBody(dst *Normaliser, src io.Reader, refused func() bool, buf []byte) (n int64, rerr, werr error) {
	writing := true
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n += int64(k)
			if writing {
				_, werr = dst.Write(buf[:k])
				writing = werr == nil && !refused()
			}
		}
		if err == io.EOF {
			return n, nil, werr
		}
		if err != nil {
			return n, err, werr
		}
	}
}

// clientDataError maps a failure reading the client's body.
func (s *session) clientDataError(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		return se // go-smtp's 552 5.3.4 for max_message_bytes
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLongLine
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// go-smtp leaves the connection open after a DATA timeout
		// (its issue #196); the client is out of sync, close it.
		defer s.conn.Close()
	}
	kind := clientErrorKind(err)
	fields := []zap.Field{zap.String("client", s.conn.Conn().RemoteAddr().String()), zap.String("reason", kind)}
	if kind == "other" {
		fields = append(fields, zap.Error(withoutAddrs(err)))
	}
	s.log.Info("client data interrupted", fields...)
	return errAborted
}

// clientErrorKind names why reading the client's body failed, for the log:
// the error's own text (a *net.OpError's) holds both ends' addresses, and
// the client has its own field.
func clientErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, smtp.ErrDataReset):
		// BDAT: RSET, or the connection closed, between chunks.
		return "aborted"
	}
	return "other"
}

// withoutAddrs is err, or a *net.OpError's cause without its addresses.
func withoutAddrs(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// count records the outcome and hands the detector its observation.
func (s *session) count(res *relayResult, scan *verdict.Scanner) {
	var delivered, rejected []string
	rejected = append(rejected, s.rejected...)
	outcome := func(code int, rcpt string) {
		switch code / 100 {
		case 2:
			delivered = append(delivered, rcpt)
		case 5:
			rejected = append(rejected, rcpt)
		}
	}
	for i, rcpt := range res.rcpts {
		switch {
		case res.err != nil:
			outcome(res.err.Code, rcpt)
		case !res.lmtp:
			outcome(res.final[0].Code, rcpt)
		case i < len(res.final):
			outcome(res.final[i].Code, rcpt)
		}
	}
	result := resultTempfail
	switch {
	case len(delivered) > 0:
		result = resultRelayed
	case len(rejected) > len(s.rejected) || (res.err != nil && res.err.Code/100 == 5):
		result = resultRejected
	}
	s.srv.metrics.message(result).Inc()

	if scan == nil || (len(delivered) == 0 && len(rejected) == 0) {
		return
	}
	v := scan.Verdict() // the observation has no use for the header From
	if len(delivered) > 0 {
		if v.Spam {
			s.srv.metrics.verdictSpam.Inc()
		} else {
			s.srv.metrics.verdictHam.Inc()
		}
	}
	s.srv.observe(ingest.Observation{
		Time:      time.Now().UTC(),
		Rcpt:      delivered,
		Rejected:  rejected,
		Spam:      v.Spam,
		From:      s.from,
		ClientIP:  s.client,
		Helo:      s.conn.Hostname(),
		Subject:   v.RawSubject, // decoded by the detector, for first spams only
		MessageID: v.MessageID,
	})
}

// bodyBuffers are the per-message buffers of relay and what writes
// through them, pooled.
type bodyBuffers struct {
	copy    [32 * 1024]byte
	normBuf [normBufSize]byte
	norm    Normaliser
	tee     bodyTee
	dw      dotWriter
}

var bodyBufs = sync.Pool{New: func() any { return new(bodyBuffers) }}

// release returns b to the pool, holding on to no session.
func (b *bodyBuffers) release() {
	b.norm, b.tee, b.dw = Normaliser{}, bodyTee{}, dotWriter{}
	bodyBufs.Put(b)
}

// bodyTee is io.MultiWriter(scan, dw) without its allocations.
type bodyTee struct {
	scan *verdict.Scanner
	dw   *dotWriter
}

func (t *bodyTee) Write(p []byte) (int, error) {
	for _, w := range [...]io.Writer{t.scan, t.dw} {
		n, err := w.Write(p)
		if err != nil {
			return n, err
		}
		if n != len(p) {
			return n, io.ErrShortWrite
		}
	}
	return len(p), nil
}
