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
	// PoolSize is go-redis's connection pool size (0: its default).
	PoolSize int
	// Dial, for tests and benchmarks, replaces the TCP dial (TLS, if any,
	// is put on top of what it returns).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Key layout (see the package doc): 256 hash-tag groups of 256 buckets.
const (
	groups        = 256
	buckets       = groups * 256
	fieldLen      = 6 // bytes 2-7 of the id; bytes 0-1 pick the bucket
	defaultTimout = time.Second
)

// Store is the recipient state of a fleet in Redis. Safe for concurrent
// use.
type Store struct {
	o       Options
	d       driver
	cluster bool
	warm    string

	bucketKeys []string // by the id's first two bytes, big-endian
	riskKeys   [groups]string

	atRisk atomic.Int64
	matHr  atomic.Int64
	lists  atomic.Pointer[attribution.Lists]

	scratch sync.Pool
}

// Open connects to Redis (or the cluster) and checks that it answers.
// ctx bounds the check.
func Open(ctx context.Context, o Options) (*Store, error) {
	e, err := o.endpoint()
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimout
	}
	d, err := newDriver(o.Client, e)
	if err != nil {
		return nil, err
	}
	s := &Store{o: o, d: d, cluster: e.cluster, warm: strconv.FormatInt(int64(o.Warmup/time.Minute), 10)}
	s.layout()
	s.scratch.New = func() any { return newScratch() }
	// The at-risk count as it is now, and a round trip that proves the
	// server (every node, in a cluster) answers the scripts.
	if _, err := s.Mature(ctx, 0); err != nil {
		d.close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() { s.d.close() }

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

// ParseURL reads redis://[user:password@]host[:port][/db] and rediss://.
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
		r.Password, _ = u.User.Password()
		if _, set := u.User.Password(); !set {
			// redis://password@host, as redis-cli and go-redis read it.
			r.User, r.Password = "", u.User.Username()
		}
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

// layout names the keys: bucket b (the id's first two bytes) of space S
// is "ss{S:gg}bb" and its group's risk hash "ss{S:gg}r", with gg = b's
// high byte in hex: a group's keys share a hash tag, so one script may
// touch any of them in a cluster.
func (s *Store) layout() {
	sp := hex.EncodeToString(s.o.Space[:])
	s.bucketKeys = make([]string, buckets)
	for g := range groups {
		tag := fmt.Sprintf("ss{%s:%02x}", sp, g)
		s.riskKeys[g] = tag + "r"
		for b := range 256 {
			s.bucketKeys[g<<8|b] = fmt.Sprintf("%s%02x", tag, b)
		}
	}
}

func (s *Store) bucketKey(id *addr.ID) string { return s.bucketKeys[int(id[0])<<8|int(id[1])] }

// BucketKey and RiskKey name an address's keys (for tests and for
// operators' own inspection; they hold no address, only hash bytes).
func (s *Store) BucketKey(id addr.ID) string { return s.bucketKey(&id) }

// RiskKey is the risk hash of id's group.
func (s *Store) RiskKey(id addr.ID) string { return s.riskKeys[id[0]] }

// scratch is one Apply's calls, reused.
type scratch struct {
	calls []call
	pos   [][]int // per call, the indexes in out of its recipients
	res   [][]int64
	byG   [groups]int16 // group → call index + 1 (cluster)
	used  []byte        // the groups set in byG
}

func newScratch() *scratch { return &scratch{} }

func (s *Store) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.o.Timeout)
}

// Apply records one message at t to rcpts and appends to out one Outcome
// per recipient, in order, with the kinds recipients.Population.Apply
// gives for the same history: its first mail and first spam transitions
// happen in Redis scripts, so that across all instances exactly one sees
// an address's first spam. One round trip (standalone: one script call;
// cluster: one call per hash-tag group of the recipients, pipelined, the
// nodes in parallel). On an error out is returned as it was: the message
// is not observed (it may or may not have changed the state: the scripts
// are never retried, see driver).
//
// Outcomes carry no Domain (0) and no tag mask (TagRisk is not kept
// yet). A FirstSpam is out of the fleet's at-risk count in Redis at once;
// this instance's AtRisk keeps it until Spent, as a Population does.
func (s *Store) Apply(ctx context.Context, t time.Time, rcpts []recipients.Rcpt, spam bool, out []recipients.Outcome) ([]recipients.Outcome, error) {
	if len(rcpts) == 0 {
		return out, nil
	}
	base := len(out)
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	now := recipients.Minutes(t)
	head := [3]string{strconv.FormatUint(uint64(now), 10), s.warm, "0"}
	if spam {
		head[2] = "1"
	}
	lists := s.lists.Load()
	sc.calls, sc.pos = sc.calls[:0], sc.pos[:0]
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
		ci := 0
		if s.cluster {
			g := r.ID[0]
			if sc.byG[g] == 0 {
				sc.addCall(head)
				sc.byG[g] = int16(len(sc.calls))
				sc.used = append(sc.used, g)
			}
			ci = int(sc.byG[g]) - 1
		} else if len(sc.calls) == 0 {
			sc.addCall(head)
		}
		c := &sc.calls[ci]
		c.keys = append(c.keys, s.bucketKey(&r.ID), s.riskKeys[r.ID[0]])
		c.args = append(c.args, string(r.ID[2:2+fieldLen]))
		sc.pos[ci] = append(sc.pos[ci], len(out)-1)
	}
	for _, g := range sc.used {
		sc.byG[g] = 0
	}
	sc.used = sc.used[:0]
	if len(sc.calls) == 0 {
		return out, nil // canaries only
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	sc.res = append(sc.res[:0], make([][]int64, len(sc.calls))...)
	if err := s.d.run(ctx, applyScript, sc.calls, sc.res); err != nil {
		return out[:base], fmt.Errorf("redisstore: %w", err)
	}
	for ci, pos := range sc.pos {
		res := sc.res[ci]
		if len(res) != len(pos) {
			return out[:base], fmt.Errorf("redisstore: %d outcomes for %d recipients", len(res), len(pos))
		}
		for j, p := range pos {
			oc := &out[p]
			switch code := res[j]; {
			case code >= 0 && code <= 4:
				oc.Kind = codeKinds[code]
			case code&7 == 5:
				oc.Kind = recipients.FirstSpam
				lastDay := code >> 3
				oc.Dormant = t.Sub(time.Unix((lastDay+1)*86400, 0)) >= s.o.Dormant
			default:
				return out[:base], fmt.Errorf("redisstore: outcome code %d", code)
			}
		}
	}
	return out, nil
}

var codeKinds = [...]recipients.Kind{recipients.NewMail, recipients.NewSpam, recipients.Mail, recipients.Spam, recipients.EarlySpam}

func (sc *scratch) addCall(head [3]string) {
	n := len(sc.calls)
	if n < cap(sc.calls) {
		sc.calls = sc.calls[:n+1]
		sc.calls[n].keys = sc.calls[n].keys[:0]
		sc.calls[n].args = append(sc.calls[n].args[:0], head[:]...)
	} else {
		sc.calls = append(sc.calls, call{args: append([]string(nil), head[:]...)})
	}
	if n < cap(sc.pos) {
		sc.pos = sc.pos[:n+1]
		sc.pos[n] = sc.pos[n][:0]
	} else {
		sc.pos = append(sc.pos, nil)
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
		calls = make([]call, groups)
		for g := range groups {
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
			keys = append(keys, s.bucketKeys[b], s.riskKeys[b>>8])
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
