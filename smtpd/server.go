// Package smtpd is spamsurge's mail path: a transparent SMTP/LMTP proxy that
// relays every transaction in lock-step to the next hop and reports what it
// saw to the detector.
//
// It must never lose mail: the reply to the end of DATA is the next hop's
// reply (we have no queue), our own faults are 4xx, a message refused or
// interrupted mid-DATA is never completed downstream (the final dot is not
// sent), and the detector is fed through a non-blocking Sink so it can never
// hold mail back. README.md ("The mail path, and why it cannot lose mail")
// explains each rule.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/verdict"
)

// Options configure the proxy. The zero value of a field means its default.
type Options struct {
	Listen   string // host:port
	LMTP     bool
	Hostname string

	MaxMessageBytes int64
	MaxRecipients   int
	MaxConnections  int
	MaxLineLength   int
	MaxHeaderBytes  int
	AllowFrom       []netip.Prefix
	TLSConfig       *tls.Config // offer STARTTLS when set

	RejectBareNewline bool
	// StripNUL sends a message on with its NUL bytes left out; by
	// default such a message is refused (550 5.6.0).
	StripNUL bool

	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration

	Downstream DownstreamOptions
	XForward   bool

	Classifier *verdict.Classifier
	// Sink receives one observation per transaction. It must not block
	// (see Queue).
	Sink ingest.Sink

	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:2525"
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 50 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 1000
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 1000
	}
	if o.MaxLineLength == 0 {
		o.MaxLineLength = 64 << 10
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 256 << 10
	}
	if o.AllowFrom == nil {
		o.AllowFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Minute
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = time.Minute
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	d := &o.Downstream
	if d.Address == "" {
		d.Address = "127.0.0.1:10026"
	}
	if d.TLS == "" {
		d.TLS = "none"
	}
	if d.Hostname == "" {
		d.Hostname = o.Hostname
	}
	if d.ConnectTimeout == 0 {
		d.ConnectTimeout = 10 * time.Second
	}
	if d.CommandTimeout == 0 {
		d.CommandTimeout = 60 * time.Second
	}
	if d.DataTimeout == 0 {
		d.DataTimeout = 80 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Sink == nil {
		o.Sink = ingest.SinkFunc(func(ingest.Observation) {})
	}
}

// Server is the proxy.
type Server struct {
	opts       Options
	log        *zap.Logger
	metrics    *metrics
	classifier *verdict.Classifier
	goSMTPLog  *log.Logger

	ln       net.Listener
	caps     atomic.Pointer[caps]
	probeErr atomic.Pointer[error] // last probe's failure, nil when it answered
	reprobe  chan struct{}         // a session saw the next hop fail: check now
	conns    sync.WaitGroup
	drain    atomic.Bool
	mu       sync.Mutex
	sessions map[*session]struct{}
	live     map[*countedConn]struct{}
}

// New checks the options and builds a Server; it does not listen yet.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{
		opts:       opts,
		log:        opts.Logger.Named("smtpd"),
		metrics:    newMetrics(opts.Registerer),
		classifier: opts.Classifier,
		sessions:   map[*session]struct{}{},
		live:       map[*countedConn]struct{}{},
		reprobe:    make(chan struct{}, 1),
	}
	s.goSMTPLog = zap.NewStdLog(s.log.Named("go-smtp"))
	if s.classifier == nil {
		c, err := verdict.New(nil)
		if err != nil {
			return nil, err
		}
		s.classifier = c
	}
	return s, nil
}

// Addr is the address the server listens on, once Listen succeeded.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Listen binds the SMTP port. It is separate from Serve so a caller can
// learn the address (port 0 in tests) before serving.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// caps is what we advertise, learnt from the next hop.
type caps struct {
	probed                          bool
	size                            int64
	utf8, dsn, requiretls, xforward bool
}

// probe learns what the next hop offers, so we advertise SIZE, SMTPUTF8,
// DSN, REQUIRETLS and XFORWARD only as far as it supports them.
func (s *Server) probe(ctx context.Context) (caps, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Downstream.ConnectTimeout)
	defer cancel()
	ds, err := dialDownstream(ctx, s.opts.Downstream)
	if err != nil {
		return caps{size: s.opts.MaxMessageBytes}, err
	}
	defer ds.quit()
	c := caps{probed: true, size: s.opts.MaxMessageBytes}
	if n := ds.maxSize(); n > 0 && n < c.size {
		c.size = n
	}
	c.utf8, c.dsn, c.xforward = ds.has("SMTPUTF8"), ds.has("DSN"), ds.has("XFORWARD") && s.opts.XForward
	c.requiretls = ds.has("REQUIRETLS") && ds.tls && s.opts.TLSConfig != nil
	return c, nil
}

// reprobeEvery is how often the next hop's extensions are checked again
// (sooner while it cannot be reached).
const (
	reprobeEvery      = 5 * time.Minute
	reprobeWhenFailed = 2 * time.Second
)

// watchCaps keeps s.caps current. go-smtp reads what to advertise from its
// Server, so each connection gets its own go-smtp Server built from the
// caps of the moment: a next hop that was down when we started, or that
// gained or lost an extension, is followed without a restart.
//
// Each outage is logged once when it starts and once when it ends: warned
// is set by the first failed check and cleared by the next good one (with
// the same extensions or not), so the next outage is logged again.
func (s *Server) watchCaps(ctx context.Context, err error) {
	warned := err != nil // Serve has said so already
	for {
		wait := reprobeEvery
		if err != nil {
			wait = reprobeWhenFailed
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-s.reprobe:
		}
		var c caps
		c, err = s.probe(ctx)
		s.setProbeErr(err)
		if err != nil {
			if !warned {
				s.log.Warn("next hop unreachable; checking again every 2s", zap.String("address", s.opts.Downstream.Address), zap.Error(err))
				warned = true
			}
			if old := s.caps.Load(); old != nil && old.probed {
				c = *old // keep what we knew
			}
		} else {
			if warned {
				s.log.Info("next hop reachable", zap.String("address", s.opts.Downstream.Address))
				warned = false
			}
			if old := s.caps.Load(); old == nil || *old != c {
				s.log.Info("next hop extensions", zap.Int64("size", c.size), zap.Bool("smtputf8", c.utf8), zap.Bool("dsn", c.dsn), zap.Bool("requiretls", c.requiretls), zap.Bool("xforward", c.xforward))
			}
		}
		s.caps.Store(&c)
	}
}

func (s *Server) setProbeErr(err error) {
	if err == nil {
		s.probeErr.Store(nil)
		return
	}
	s.probeErr.Store(&err)
}

// nextHopFailed is called by sessions that could not reach the next hop:
// readiness changes at once and the next check comes now.
func (s *Server) nextHopFailed(err error) {
	s.setProbeErr(err)
	select {
	case s.reprobe <- struct{}{}:
	default:
	}
}

// Ready reports why the mail path cannot work now: the next hop did not
// answer the last check (every 2 s while failing, at once when a session
// could not connect, else every 5 min). nil when it can.
func (s *Server) Ready() error {
	if s.caps.Load() == nil {
		return errors.New("smtp proxy not started")
	}
	if p := s.probeErr.Load(); p != nil {
		return fmt.Errorf("next hop %s unreachable: %v", s.opts.Downstream.Address, *p)
	}
	if s.draining() {
		return errors.New("shutting down")
	}
	return nil
}

func (s *Server) goSMTP(c *caps) *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.opts.Hostname
	srv.LMTP = s.opts.LMTP
	srv.MaxMessageBytes = c.size
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = s.opts.MaxLineLength
	srv.ReadTimeout = s.opts.ReadTimeout
	srv.WriteTimeout = s.opts.WriteTimeout
	srv.TLSConfig = s.opts.TLSConfig
	srv.EnableSMTPUTF8 = c.utf8
	srv.EnableDSN = c.dsn
	srv.EnableREQUIRETLS = c.requiretls
	srv.StrictCommandLength = true
	srv.ErrorLog = s.goSMTPLog
	return srv
}

// Serve runs until ctx is cancelled, then shuts down gracefully: it stops
// accepting, lets transactions in flight finish (idle sessions get 421),
// and after ShutdownTimeout closes what is left. Listen must have been
// called.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("smtpd: Serve before Listen")
	}
	pctx, stopProbe := context.WithCancel(context.Background())
	defer stopProbe()
	first, err := s.probe(ctx)
	s.setProbeErr(err)
	if err != nil {
		s.log.Warn("next hop unreachable; advertising only PIPELINING, 8BITMIME, SIZE until it answers", zap.String("address", s.opts.Downstream.Address), zap.Error(err))
	}
	s.caps.Store(&first)
	go s.watchCaps(pctx, err)

	ln := &guardListener{Listener: s.ln, s: s}
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				// One go-smtp server per connection, built from the
				// current caps; Serve returns when the connection ends.
				one := &oneConnListener{c: c.(*countedConn), addr: s.ln.Addr()}
				s.goSMTP(s.caps.Load()).Serve(one)
			}()
		}
	}()
	s.log.Info("listening", zap.String("address", s.ln.Addr().String()), zap.Bool("lmtp", s.opts.LMTP), zap.String("next_hop", s.opts.Downstream.Address))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.ln.Close()
	<-errc
	return s.shutdown()
}

func (s *Server) shutdown() error {
	s.drain.Store(true)
	s.log.Info("shutting down: finishing transactions in flight", zap.Duration("deadline", s.opts.ShutdownTimeout))
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	deadline := time.After(s.opts.ShutdownTimeout)
	// Idle sessions are told 421 at once; busy ones when their
	// transaction ends (session.setInTx). Repeat in case a kick raced
	// with go-smtp re-arming its read deadline.
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		s.kickIdle()
		select {
		case <-done:
			s.log.Info("all sessions finished")
			return nil
		case <-deadline:
			s.log.Warn("shutdown deadline passed; closing remaining sessions")
			s.closeAll()
			<-done
			return nil
		case <-t.C:
		}
	}
}

// closeAll closes every client connection; their transactions are
// aborted (the next hop never gets the final dot) and senders retry.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.live {
		c.Conn.Close()
	}
}

func (s *Server) kickIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if sess.idle() {
			sess.kick()
		}
	}
}

func (s *Server) draining() bool { return s.drain.Load() }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, conn: c, log: s.log}
	if cc, ok := c.Conn().(*countedConn); ok {
		sess.xf, _ = cc.Conn.(*xfConn)
	}
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.client = ap.Addr().Unmap().String()
	}
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	return sess, nil
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

func (s *Server) observe(o ingest.Observation) { s.opts.Sink.Observe(o) }

// guardListener enforces allow_from and max_connections before go-smtp
// sees a connection, and counts sessions.
type guardListener struct {
	net.Listener
	s      *Server
	active atomic.Int64
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return nil, err
		}
		m := l.s.metrics
		if !l.allowed(conn.RemoteAddr()) {
			m.sessionsRefused.WithLabelValues("allow_from").Inc()
			l.s.log.Warn("connection refused: client not in smtp.allow_from", zap.String("client", conn.RemoteAddr().String()))
			go refuse(conn, "554 5.7.1 Access denied\r\n")
			continue
		}
		if l.active.Load() >= int64(l.s.opts.MaxConnections) {
			m.sessionsRefused.WithLabelValues("max_connections").Inc()
			go refuse(conn, "421 4.4.5 Too many connections, try again later\r\n")
			continue
		}
		l.active.Add(1)
		m.sessionsActive.Inc()
		m.sessionsTotal.Inc()
		if c := l.s.caps.Load(); c != nil && c.xforward {
			conn = newXFConn(conn)
		}
		cc := &countedConn{Conn: conn, l: l, closed: make(chan struct{})}
		l.s.mu.Lock()
		l.s.live[cc] = struct{}{}
		l.s.mu.Unlock()
		return cc, nil
	}
}

func (l *guardListener) allowed(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.s.opts.AllowFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func refuse(c net.Conn, reply string) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(reply))
	c.Close()
}

type countedConn struct {
	net.Conn
	l      *guardListener
	once   sync.Once
	closed chan struct{}
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.active.Add(-1)
		c.l.s.metrics.sessionsActive.Dec()
		c.l.s.mu.Lock()
		delete(c.l.s.live, c)
		c.l.s.mu.Unlock()
		close(c.closed)
	})
	return c.Conn.Close()
}

// oneConnListener hands one connection to a go-smtp Server, then makes its
// accept loop return once that connection is closed.
type oneConnListener struct {
	c    *countedConn
	addr net.Addr
	used bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.used {
		l.used = true
		return l.c, nil
	}
	<-l.c.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.addr }
