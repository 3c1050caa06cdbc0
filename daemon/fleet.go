package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/fleet"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
	"github.com/spamsurge/spamsurge/store"
)

// RedisOptions turns store.redis_* into the Redis store's options for
// the key space of key (reading store.redis_password_file).
func RedisOptions(c config.Config, key *addr.Key) (redisstore.Options, error) {
	o := redisstore.Options{
		URL: c.Store.RedisURL, Cluster: c.Store.RedisCluster, Space: key.Fingerprint(),
		Warmup: c.Detector.Warmup.D(), Dormant: c.Detector.Dormant.D(),
	}
	if fa := c.Detector.ForgetAfter.D(); fa > 0 {
		o.ForgetAfter = fa
	}
	if c.Store.RedisPasswordFile != "" {
		pw, err := redisstore.ReadPasswordFile(c.Store.RedisPasswordFile)
		if err != nil {
			return o, fmt.Errorf("store.redis_password_file: %w", err)
		}
		o.Password = pw
	}
	return o, nil
}

// OpenRedis connects to the fleet's Redis with key's space and checks
// that the fleet's key is key (redisstore.ErrOtherKey: it is not).
func OpenRedis(ctx context.Context, c config.Config, key *addr.Key) (*redisstore.Store, error) {
	o, err := RedisOptions(c, key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rs, err := redisstore.Open(ctx, o)
	if err != nil {
		return nil, &redisUnreachable{fmt.Errorf("store.redis: %w", err)}
	}
	if err := rs.Claim(ctx); err != nil {
		rs.Close()
		if errors.Is(err, redisstore.ErrOtherKey) {
			return nil, fmt.Errorf("store.key_file: %w", err)
		}
		return nil, &redisUnreachable{fmt.Errorf("store.redis: %w", err)}
	}
	return rs, nil
}

// OpenFleet opens a fleet instance's detector: it connects to the
// fleet's Redis (OpenRedis), opens the embedded store that keeps this
// instance's detector state and journal position (store.path; in memory
// when unset, or when memory is set: replay's), loads the fleet's
// snapshot into it when the snapshot is newer (fleet.Bootstrap), and
// opens the shared detector on it. Close the store after the detector.
func OpenFleet(c config.Config, reg prometheus.Registerer, log *zap.Logger, adjust func(*detector.Options), memory bool) (*detector.Detector, *redisstore.Store, error) {
	return openFleet(context.Background(), c, reg, log, adjust, memory)
}

// openFleet is OpenFleet ending with ctx (a retry at shutdown).
func openFleet(ctx context.Context, c config.Config, reg prometheus.Registerer, log *zap.Logger, adjust func(*detector.Options), memory bool) (*detector.Detector, *redisstore.Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	key, err := addr.LoadKey(KeyFile(c))
	if err != nil {
		return nil, nil, fmt.Errorf("store.key_file: %w", err)
	}
	rs, err := OpenRedis(ctx, c, key)
	if err != nil {
		return nil, nil, err
	}
	var st detectorStore
	if c.Store.Path == "" || memory {
		st = nopCloser{store.NewMemory()}
	} else if st, err = store.OpenPebble(c.Store.Path); err != nil {
		rs.Close()
		return nil, nil, fmt.Errorf("store.path: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	what, err := fleet.Bootstrap(bctx, rs, st, log)
	cancel()
	if err != nil {
		st.Close()
		rs.Close()
		return nil, nil, &redisUnreachable{fmt.Errorf("store.redis: %w", err)}
	}
	log.Info("fleet state: " + what)
	o := DetectorOptions(c)
	o.Key, o.Store, o.Registerer, o.Logger = key, st, reg, log
	o.Shared = true
	if adjust != nil {
		adjust(&o)
	}
	d, err := detector.New(o)
	if err != nil {
		st.Close()
		rs.Close()
		return nil, nil, err
	}
	d.CloseStore(st)
	return d, rs, nil
}

// NewNode makes this instance's fleet node on rs. The node feeds det
// (shared) from the fleet's journal; onEvents sees the incident events.
func NewNode(det *detector.Detector, rs *redisstore.Store, lists *attribution.Set, notAfter func() time.Time,
	onEvents func([]detector.Event), reg prometheus.Registerer, log *zap.Logger) (*fleet.Node, error) {
	fo := fleet.Options{Store: rs, Detector: det, NotAfter: notAfter, OnEvents: onEvents, Logger: log, Registerer: reg}
	if lists != nil {
		fo.Lists = lists.Current
	}
	return fleet.New(fo)
}

// live is the detector a daemon feeds, with a fleet's node and Redis
// store (nil when it keeps its recipients itself).
type live struct {
	det  *detector.Detector
	node *fleet.Node
	rs   *redisstore.Store
}

// retryable reports whether OpenFleet failed on Redis being out of reach
// (down, slow, failing over), which a later attempt may not: not on a
// key, a store or a refused claim.
func retryable(err error) bool {
	var re *redisUnreachable
	if !errors.As(err, &re) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// redisUnreachable is OpenFleet's error when Redis did not answer.
type redisUnreachable struct{ err error }

func (e *redisUnreachable) Error() string { return e.err.Error() }
func (e *redisUnreachable) Unwrap() error { return e.err }

// retryFleet opens the fleet's detector once Redis answers: every few
// seconds, backing off to 30 s, until ctx ends (ok false). Mail flows
// meanwhile; setErr keeps /readyz saying why detection is off.
func retryFleet(ctx context.Context, cfg config.Config, reg prometheus.Registerer, log *zap.Logger, setErr func(error)) (*detector.Detector, *redisstore.Store, bool) {
	wait := 2 * time.Second
	for {
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-time.After(wait):
		}
		det, rs, err := openFleet(ctx, cfg, reg, log, nil, false)
		if err == nil {
			return det, rs, true
		}
		if !retryable(err) {
			log.Error("detector unavailable; relaying mail without detection", zap.Error(err))
			setErr(err)
			return nil, nil, false
		}
		setErr(fmt.Errorf("%w (retrying in the background)", err))
		log.Warn("fleet store still unreachable", zap.Error(err), zap.Duration("next_try", min(2*wait, 30*time.Second)))
		wait = min(2*wait, 30*time.Second)
	}
}
