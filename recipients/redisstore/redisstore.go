package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/recipients"
)

// Options of a Store.
type Options struct {
	// URL is a standalone Redis: redis://[user:password@]host:port/db,
	// or rediss:// for TLS. Exactly one of URL and Cluster is set.
	URL string
	// Cluster is the seed nodes (host:port) of a Redis Cluster.
	Cluster []string
	// Password, when set, is used instead of the URL's.
	Password string
	// TLS, when set, is used for the connections (rediss:// alone gives
	// the system roots and the host name).
	TLS *tls.Config

	// Space is the key fingerprint: the state of one key lives apart
	// from another's, as in the embedded store.
	Space [8]byte
	// Warmup, Dormant and ForgetAfter as in recipients.Options; every
	// instance of a fleet must use the same.
	Warmup, Dormant, ForgetAfter time.Duration

	// Timeout bounds each call whose context has no deadline (default
	// 1 s): a slow Redis must not hold mail.
	Timeout time.Duration
	// Client is "rueidis" (the default) or "go-redis" (see bench/README.md:
	// both are kept for the comparison).
	Client string
	// Groups is the number of hash-tag groups the buckets are in, a
	// power of two up to 256 (default 16). It is part of the key layout:
	// every instance must use the same, and changing it starts from an
	// empty state. In a cluster a message costs one script call per group
	// it touches, and a script call costs Redis about as much as 5
	// recipients (bench/README.md): fewer groups batch better, more spread
	// better over many masters (a group is one slot).
	Groups int
	// Flushers is how many batches of concurrent Apply calls may be in
	// flight at once (default 2; see Apply).
	Flushers int
	// PoolSize is go-redis's connection pool size (0: its default).
	PoolSize int
	// Dial, for tests and benchmarks, replaces the TCP dial (TLS, if any,
	// is put on top of what it returns).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Key layout (see the package doc): 65 536 buckets in Options.Groups
// hash-tag groups (at most 256).
const (
	maxGroups      = 256
	buckets        = 1 << 16
	defaultGroups  = 16
	fieldLen       = 6 // bytes 2-7 of the id; bytes 0-1 pick the bucket
	defaultTimeout = time.Second
)

// Store is the recipient state of a fleet in Redis. Safe for concurrent
// use.
type Store struct {
	o       Options
	d       driver
	cluster bool
	warm    string

	bucketKeys []string // by the id's first two bytes, big-endian
	riskKeys   []string // by group
	groupShift uint     // a bucket's group is its index >> groupShift

	atRisk atomic.Int64
	matHr  atomic.Int64
	lists  atomic.Pointer[attribution.Lists]

	reqs  sync.Pool
	queue chan *request
	quit  chan struct{}
	wg    sync.WaitGroup
}

// Open connects to Redis (or the cluster) and checks that it answers.
// ctx bounds the check.
func Open(ctx context.Context, o Options) (*Store, error) {
	e, err := o.endpoint()
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	d, err := newDriver(o.Client, e)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Groups == 0:
		o.Groups = defaultGroups
	case o.Groups < 1 || o.Groups > maxGroups || o.Groups&(o.Groups-1) != 0:
		d.close()
		return nil, fmt.Errorf("redisstore: %d groups: a power of two from 1 to %d", o.Groups, maxGroups)
	}
	s := &Store{o: o, d: d, cluster: e.cluster, warm: strconv.FormatInt(int64(o.Warmup/time.Minute), 10)}
	s.layout()
	s.reqs.New = func() any { return &request{done: make(chan struct{}, 1)} }
	s.queue, s.quit = make(chan *request, 1024), make(chan struct{})
	if o.Flushers <= 0 {
		o.Flushers = 2
	}
	for range o.Flushers {
		s.wg.Add(1)
		go s.flusher()
	}
	// The at-risk count as it is now, and a round trip that proves the
	// server (every node, in a cluster) answers the scripts.
	if _, err := s.Mature(ctx, 0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections. Apply calls waiting then fail.
func (s *Store) Close() {
	close(s.quit)
	s.wg.Wait()
	s.d.close()
}

func (o *Options) endpoint() (*endpoint, error) {
	e := &endpoint{tls: o.TLS, dial: o.Dial, poolSize: o.PoolSize}
	switch {
	case o.URL != "" && len(o.Cluster) > 0:
		return nil, errors.New("redisstore: set a URL or cluster nodes, not both")
	case o.URL != "":
		u, err := ParseURL(o.URL)
		if err != nil {
			return nil, err
		}
		e.addrs, e.user, e.password, e.db = []string{u.Addr}, u.User, u.Password, u.DB
		if u.TLS && e.tls == nil {
			host, _, _ := net.SplitHostPort(u.Addr)
			e.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		}
	case len(o.Cluster) > 0:
		for _, a := range o.Cluster {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("redisstore: cluster node %q is not host:port", a)
			}
		}
		e.addrs, e.cluster = o.Cluster, true
	default:
		return nil, errors.New("redisstore: no URL and no cluster nodes")
	}
	if o.Password != "" {
		e.password = o.Password
	}
	return e, nil
}

// URL is a parsed redis:// or rediss:// URL.
type URL struct {
	Addr     string // host:port (port 6379 by default)
	User     string
	Password string
	DB       int
	TLS      bool // rediss://
}

// ParseURL reads redis://[[user]:password@]host[:port][/db] and rediss://.
// Its errors never include the password.
func ParseURL(s string) (URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, errors.New("redisstore: not a URL")
	}
	var r URL
	switch u.Scheme {
	case "redis":
	case "rediss":
		r.TLS = true
	default:
		return URL{}, fmt.Errorf("redisstore: scheme %q is not redis or rediss", u.Scheme)
	}
	if u.Hostname() == "" {
		return URL{}, errors.New("redisstore: the URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	r.Addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		r.User = u.User.Username()
		// redis://user@host is a user without a password (its password
		// in store.redis_password_file), as go-redis reads it.
		r.Password, _ = u.User.Password()
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return URL{}, fmt.Errorf("redisstore: database %q is not a number", p)
		}
		r.DB = db
	}
	return r, nil
}

// ReadPasswordFile reads a password file (store.redis_password_file): its
// first line, without the line end.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%s: empty password", path)
	}
	return pw, nil
}

// layout names the keys: bucket b (the id's first two bytes, big-endian)
// of space S is "ss{S:g}bbbb" and its group's risk hash "ss{S:g}r", with
// g = b's group (its top log2(Groups) bits) and both in hex: a group's keys
// share a hash tag, so one script may touch any of them in a cluster.
func (s *Store) layout() {
	sp := hex.EncodeToString(s.o.Space[:])
	n := s.o.Groups
	s.groupShift = 16
	for 1<<(16-s.groupShift) < n {
		s.groupShift--
	}
	s.riskKeys = make([]string, n)
	s.bucketKeys = make([]string, buckets)
	for b := range buckets {
		g := b >> s.groupShift
		tag := fmt.Sprintf("ss{%s:%02x}", sp, g)
		if b == g<<s.groupShift {
			s.riskKeys[g] = tag + "r"
		}
		s.bucketKeys[b] = fmt.Sprintf("%s%04x", tag, b)
	}
}

func (s *Store) bucketKey(id *addr.ID) string { return s.bucketKeys[int(id[0])<<8|int(id[1])] }

// BucketKey and RiskKey name an address's keys (for tests and for
// operators' own inspection; they hold no address, only hash bytes).
func (s *Store) BucketKey(id addr.ID) string { return s.bucketKey(&id) }

// RiskKey is the risk hash of id's group.
func (s *Store) RiskKey(id addr.ID) string { return s.riskKeys[s.group(&id)] }

// group is id's hash-tag group.
func (s *Store) group(id *addr.ID) byte { return byte((int(id[0])<<8 | int(id[1])) >> s.groupShift) }

func (s *Store) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.o.Timeout)
}

// request is one Apply call waiting for a flusher.
type request struct {
	head     [2]string // now, spam
	group    []byte    // per recipient sent, its hash-tag group
	keys     []string  // per recipient sent, its bucket and risk keys
	fields   []string
	pos      []int // per recipient sent, its index in out
	codes    []int64
	deadline time.Time
	err      error
	done     chan struct{}
}

// Apply records one message at t to rcpts and appends to out one Outcome
// per recipient, in order, with the kinds recipients.Population.Apply
// gives for the same history: its first mail and first spam transitions
// happen in Redis scripts, so that across all instances exactly one sees
// an address's first spam.
//
// One round trip at most: the message goes to Redis in one script call
// (cluster: one per hash-tag group of its recipients, pipelined, the
// nodes in parallel) together with the messages of the Apply calls
// running at the same time on this Store (see Options.Flushers). On an
// error, or when ctx ends first, out is returned as it was: the message is
// not observed (it may or may not have changed the state: the scripts are
// never retried, see driver).
//
// Outcomes carry no Domain (0) and no tag mask (TagRisk is not kept
// yet). A FirstSpam is out of the fleet's at-risk count in Redis at once;
// this instance's AtRisk keeps it until Spent, as a Population does.
func (s *Store) Apply(ctx context.Context, t time.Time, rcpts []recipients.Rcpt, spam bool, out []recipients.Outcome) ([]recipients.Outcome, error) {
	return s.apply(ctx, t, rcpts, spam, out, nil)
}

// ApplyHours is Apply that also appends to hours, per outcome, the hour
// an EarlySpam's address would have matured, or a FirstSpam's matured (0
// for the other kinds): what a tally (recipients.Population.Tally) needs
// of it.
func (s *Store) ApplyHours(ctx context.Context, t time.Time, rcpts []recipients.Rcpt, spam bool, out []recipients.Outcome, hours []int64) ([]recipients.Outcome, []int64, error) {
	out, err := s.apply(ctx, t, rcpts, spam, out, &hours)
	return out, hours, err
}

func (s *Store) apply(ctx context.Context, t time.Time, rcpts []recipients.Rcpt, spam bool, out []recipients.Outcome, hours *[]int64) ([]recipients.Outcome, error) {
	if len(rcpts) == 0 {
		return out, nil
	}
	base := len(out)
	rq := s.reqs.Get().(*request)
	rq.head[0] = strconv.FormatUint(uint64(recipients.Minutes(t)), 10)
	rq.head[1] = "0"
	if spam {
		rq.head[1] = "1"
	}
	rq.group, rq.keys, rq.fields, rq.pos = rq.group[:0], rq.keys[:0], rq.fields[:0], rq.pos[:0]
	lists := s.lists.Load()
	for i := range rcpts {
		r := &rcpts[i]
		oc := recipients.Outcome{ID: r.ID, Detail: r.Detail}
		if lists != nil {
			if src, ok := lists.Canary(r.ID); ok {
				oc.Kind, oc.Source = recipients.Canary, src
				out = append(out, oc)
				continue
			}
		}
		out = append(out, oc)
		g := s.group(&r.ID)
		rq.group = append(rq.group, g)
		rq.keys = append(rq.keys, s.bucketKey(&r.ID), s.riskKeys[g])
		rq.fields = append(rq.fields, string(r.ID[2:2+fieldLen]))
		rq.pos = append(rq.pos, len(out)-1)
	}
	if len(rq.pos) == 0 {
		s.reqs.Put(rq)
		zeroHours(hours, len(out)-base)
		return out, nil // canaries only
	}
	if d, ok := ctx.Deadline(); ok {
		rq.deadline = d
	} else {
		rq.deadline = time.Now().Add(s.o.Timeout)
	}
	timer := time.NewTimer(time.Until(rq.deadline))
	defer timer.Stop()
	select {
	case s.queue <- rq:
	case <-s.quit:
		return out[:base], errClosed
	case <-ctx.Done():
		return out[:base], fmt.Errorf("redisstore: %w", ctx.Err())
	case <-timer.C:
		return out[:base], fmt.Errorf("redisstore: %w", context.DeadlineExceeded)
	}
	select {
	case <-rq.done:
	case <-s.quit:
		return out[:base], errClosed
	case <-ctx.Done():
		// The flusher still owns rq: it is not put back.
		return out[:base], fmt.Errorf("redisstore: %w", ctx.Err())
	case <-timer.C:
		return out[:base], fmt.Errorf("redisstore: %w", context.DeadlineExceeded)
	}
	defer s.reqs.Put(rq)
	if rq.err != nil {
		return out[:base], fmt.Errorf("redisstore: %w", rq.err)
	}
	zeroHours(hours, len(out)-base)
	for j, p := range rq.pos {
		oc := &out[p]
		switch code := rq.codes[j]; {
		case code >= 0 && code <= 3:
			oc.Kind = codeKinds[code]
		case code&7 == 6:
			oc.Kind = recipients.EarlySpam
			if hours != nil {
				(*hours)[len(*hours)-(len(out)-p)] = code >> 3
			}
		case code&7 == 5:
			oc.Kind = recipients.FirstSpam
			lastDay := code >> 3 & 0xffff
			if hours != nil {
				(*hours)[len(*hours)-(len(out)-p)] = code >> 19
			}
			oc.Dormant, oc.LongDormant = recipients.IdleFor(t, uint16(lastDay), s.o.Dormant)
		default:
			if hours != nil {
				*hours = (*hours)[:len(*hours)-(len(out)-base)]
			}
			return out[:base], fmt.Errorf("redisstore: outcome code %d", code)
		}
	}
	return out, nil
}

// zeroHours appends n hours of 0 to *hours (nil: none kept).
func zeroHours(hours *[]int64, n int) {
	if hours != nil {
		for range n {
			*hours = append(*hours, 0)
		}
	}
}

var codeKinds = [...]recipients.Kind{recipients.NewMail, recipients.NewSpam, recipients.Mail, recipients.Spam}

var errClosed = errors.New("redisstore: closed")

// flusher sends the queued requests: it waits for one, takes whatever
// else is queued then (up to maxBatch recipients), and sends them all in
// one round trip. Options.Flushers of them run, so that a round trip in
// flight does not hold the next batch.
func (s *Store) flusher() {
	defer s.wg.Done()
	var batch []*request
	b := &flushState{}
	for {
		var first *request
		select {
		case first = <-s.queue:
		case <-s.quit:
			return
		}
		batch = append(batch[:0], first)
		n := len(first.pos)
	more:
		for n < maxBatch {
			select {
			case rq := <-s.queue:
				batch = append(batch, rq)
				n += len(rq.pos)
			default:
				break more
			}
		}
		s.flush(b, batch)
	}
}

// maxBatch bounds the recipients of one flush (a script blocks Redis
// while it runs: 512 recipients are about half a millisecond).
const maxBatch = 512

// flushState is a flusher's reusable state.
type flushState struct {
	calls []call
	res   [][]int64
	// per call: which request and which of its recipients each
	// result belongs to
	owners [][]owner
	counts [][]int // per call, per message section: its arg index
	byG    [maxGroups]int16
	used   []byte
}

type owner struct {
	rq *request
	j  int
}

func (b *flushState) callFor(s *Store, g byte, warm string) int {
	if !s.cluster {
		g = 0
	}
	if b.byG[g] == 0 {
		n := len(b.calls)
		b.calls = grow(b.calls)
		b.owners = grow(b.owners)
		b.counts = grow(b.counts)
		b.calls[n].keys = b.calls[n].keys[:0]
		b.calls[n].args = append(b.calls[n].args[:0], warm)
		b.owners[n] = b.owners[n][:0]
		b.counts[n] = b.counts[n][:0]
		b.byG[g] = int16(n + 1)
		b.used = append(b.used, g)
	}
	return int(b.byG[g]) - 1
}

// grow extends v by one element, reusing the one beyond its length (and
// what it holds) when there is one.
func grow[T any](v []T) []T {
	if len(v) < cap(v) {
		return v[:len(v)+1]
	}
	var zero T
	return append(v, zero)
}

func (s *Store) flush(b *flushState, batch []*request) {
	b.calls, b.owners, b.counts = b.calls[:0], b.owners[:0], b.counts[:0]
	deadline := batch[0].deadline
	for _, rq := range batch {
		if rq.deadline.After(deadline) {
			deadline = rq.deadline
		}
		if cap(rq.codes) < len(rq.pos) {
			rq.codes = make([]int64, len(rq.pos))
		}
		rq.codes = rq.codes[:len(rq.pos)]
		for j := range rq.pos {
			ci := b.callFor(s, rq.group[j], s.warm)
			c := &b.calls[ci]
			// A message's section in this call: now, spam, count.
			if o := b.owners[ci]; len(o) == 0 || o[len(o)-1].rq != rq {
				c.args = append(c.args, rq.head[0], rq.head[1], "")
				b.counts[ci] = append(b.counts[ci], len(c.args)-1)
			}
			c.keys = append(c.keys, rq.keys[2*j], rq.keys[2*j+1])
			c.args = append(c.args, rq.fields[j])
			b.owners[ci] = append(b.owners[ci], owner{rq, j})
		}
	}
	for _, g := range b.used {
		b.byG[g] = 0
	}
	b.used = b.used[:0]
	// The counts of the sections: the fields between one section's
	// count and the next section's head.
	for ci := range b.calls {
		args, cs := b.calls[ci].args, b.counts[ci]
		for k, at := range cs {
			end := len(args)
			if k+1 < len(cs) {
				end = cs[k+1] - 2
			}
			args[at] = strconv.Itoa(end - at - 1)
		}
	}
	if cap(b.res) < len(b.calls) {
		b.res = make([][]int64, len(b.calls))
	}
	b.res = b.res[:len(b.calls)]
	clear(b.res)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	err := s.d.run(ctx, applyScript, b.calls, b.res)
	cancel()
	for ci, os := range b.owners {
		res := b.res[ci]
		if err == nil && len(res) != len(os) {
			err = fmt.Errorf("%d outcomes for %d recipients", len(res), len(os))
		}
		if err != nil {
			continue
		}
		for k, o := range os {
			o.rq.codes[o.j] = res[k]
		}
	}
	for _, rq := range batch {
		rq.err = err
		rq.done <- struct{}{}
	}
}

// Spent takes a FirstSpam out of this instance's at-risk count (Redis's
// was decremented by Apply's script).
func (s *Store) Spent(o *recipients.Outcome) {
	if o.Kind == recipients.FirstSpam {
		s.atRisk.Add(-1)
	}
}

// AtRisk is the fleet's at-risk population as of the last Mature (or
// Forget), less the first spams this instance has Spent since.
func (s *Store) AtRisk() int { return int(s.atRisk.Load()) }

// Mature processes the maturation buckets up to hour h (hours since the
// epoch) for the whole fleet, reads the fleet's at-risk count and returns
// it. Any instance may call it, as often as it likes (the detector does
// at every hour): folding is idempotent. One round trip.
func (s *Store) Mature(ctx context.Context, h int64) (int, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	arg := []string{strconv.FormatInt(h, 10)}
	var calls []call
	if s.cluster {
		calls = make([]call, len(s.riskKeys))
		for g := range s.riskKeys {
			calls[g] = call{keys: s.riskKeys[g : g+1], args: arg}
		}
	} else {
		calls = []call{{keys: s.riskKeys[:], args: arg}}
	}
	res := make([][]int64, len(calls))
	if err := s.d.run(ctx, matureScript, calls, res); err != nil {
		return 0, fmt.Errorf("redisstore: %w", err)
	}
	var n int64
	for _, r := range res {
		if len(r) != 1 {
			return 0, errors.New("redisstore: bad reply to the maturation script")
		}
		n += r[0]
	}
	if h > s.matHr.Load() {
		s.matHr.Store(h)
	}
	s.atRisk.Store(n)
	return int(n), nil
}

// Forget's scans: a script scans forgetSpan buckets of one group (their
// keys share a hash tag), forgetBatch scripts in a round trip.
const (
	forgetSpan  = 64
	forgetBatch = 512
)

// Forget drops the addresses without mail for Options.ForgetAfter as of t
// from the whole fleet's state and at-risk counts (one that comes back is
// a new address), and returns how many it dropped. It scans every bucket:
// 1024 scripts of 64 buckets each (at 1 M addresses about 1000 addresses
// a script, a millisecond of Redis time), in 2 round trips; ctx bounds
// the whole scan (default: Options.Timeout per round trip). Two instances
// forgetting at once do no harm: each script is atomic, and the second
// finds nothing to drop.
func (s *Store) Forget(ctx context.Context, t time.Time) (int, error) {
	if s.o.ForgetAfter <= 0 {
		return 0, nil
	}
	today := int64(recipients.Minutes(t) / 1440)
	cut := today - int64(s.o.ForgetAfter/(24*time.Hour))
	if cut <= 0 {
		return 0, nil
	}
	args := []string{strconv.FormatInt(cut, 10), s.warm}
	var calls []call
	for b0 := 0; b0 < buckets; b0 += forgetSpan {
		keys := make([]string, 0, 2*forgetSpan)
		for b := b0; b < b0+forgetSpan; b++ {
			keys = append(keys, s.bucketKeys[b], s.riskKeys[b>>s.groupShift])
		}
		calls = append(calls, call{keys: keys, args: args})
	}
	res := make([][]int64, forgetBatch)
	n := 0
	for c0 := 0; c0 < len(calls); c0 += forgetBatch {
		rctx, cancel := s.deadline(ctx)
		err := s.d.run(rctx, forgetScript, calls[c0:c0+forgetBatch], res)
		cancel()
		for _, r := range res {
			if len(r) == 1 {
				n += int(r[0])
			}
		}
		if err != nil {
			return n, fmt.Errorf("redisstore: %w", err)
		}
	}
	_, err := s.Mature(ctx, s.matHr.Load())
	return n, err
}

// SetLists adopts source lists (nil: none): their canaries get no state
// (Outcome Canary), as in a Population. Unlike a Population, an address
// that had state before it became a canary stays in the fleet's at-risk
// count, and TagRisk is not kept (see the package doc).
func (s *Store) SetLists(l *attribution.Lists) { s.lists.Store(l) }
