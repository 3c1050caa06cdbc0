package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/fleet"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
)

// RedisOptions turns store.redis_* into the Redis store's options for
// the key space of det's key (reading store.redis_password_file).
func RedisOptions(c config.Config, det *detector.Detector) (redisstore.Options, error) {
	key, _ := det.Keying()
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

// openFleet connects this instance to its fleet's Redis and checks that
// the fleet's key is its own. The node feeds det (shared) from the
// fleet's journal; onEvents sees the incident events.
func openFleet(c config.Config, det *detector.Detector, lists *attribution.Set, notAfter func() time.Time,
	onEvents func([]detector.Event), reg prometheus.Registerer, log *zap.Logger) (*fleet.Node, *redisstore.Store, error) {
	o, err := RedisOptions(c, det)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := redisstore.Open(ctx, o)
	if err != nil {
		return nil, nil, fmt.Errorf("store.redis: %w", err)
	}
	if err := rs.Claim(ctx); err != nil {
		rs.Close()
		return nil, nil, fmt.Errorf("store.key_file: %w", err)
	}
	fo := fleet.Options{Store: rs, Detector: det, NotAfter: notAfter, OnEvents: onEvents, Logger: log, Registerer: reg}
	if lists != nil {
		fo.Lists = lists.Current
	}
	n, err := fleet.New(fo)
	if err != nil {
		rs.Close()
		return nil, nil, err
	}
	return n, rs, nil
}
