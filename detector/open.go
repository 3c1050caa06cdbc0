package detector

import (
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/store"
)

// KeyFile is the key file the configuration names: store.key_file, or
// beside the store directory ("<store.path>.key") when unset, so the key is
// never inside the data it protects.
func KeyFile(c config.Config) string {
	if c.Store.KeyFile != "" {
		return c.Store.KeyFile
	}
	return c.Store.Path + ".key"
}

// OptionsFromConfig fills the configurable Options from c.
func OptionsFromConfig(c config.Config) Options {
	o := Options{
		Normalizer: addr.Normalizer{FoldLocal: c.Detector.FoldLocalPart, Separators: c.Detector.SubaddressSeparators},
		Warmup:     c.Detector.Warmup.D(),
		Dormant:    c.Detector.Dormant.D(),
		Learn:      c.Detector.Learn.D(),
		FlushEvery: c.Detector.FlushInterval.D(),
	}
	if o.Learn == 0 {
		o.Learn = -1 // configured as none
	}
	o.ForgetAfter = c.Detector.ForgetAfter.D()
	if o.ForgetAfter == 0 {
		o.ForgetAfter = -1 // configured as never
	}
	return o
}

// Open builds the Detector the configuration describes: the key from
// KeyFile(c) (created if missing), the embedded store at store.path (a
// corrupt store is refused, never reset). Close also closes the store.
func Open(c config.Config, reg prometheus.Registerer, log *zap.Logger) (*Detector, error) {
	return OpenWith(c, reg, log, nil)
}

// OpenWith is Open with a last word on the Options (replay uses it to
// commit without waiting for the disk).
func OpenWith(c config.Config, reg prometheus.Registerer, log *zap.Logger, adjust func(*Options)) (*Detector, error) {
	if c.Store.RedisURL != "" {
		return nil, fmt.Errorf("store.redis_url: the Redis store is not available yet; use store.path")
	}
	key, err := addr.LoadKey(KeyFile(c))
	if err != nil {
		return nil, fmt.Errorf("store.key_file: %w", err)
	}
	st, err := store.OpenPebble(c.Store.Path)
	if err != nil {
		return nil, fmt.Errorf("store.path: %w", err)
	}
	o := OptionsFromConfig(c)
	o.Key, o.Store, o.Registerer, o.Logger = key, st, reg, log
	if adjust != nil {
		adjust(&o)
	}
	d, err := New(o)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.closer = st
	return d, nil
}

var _ io.Closer = (*store.Pebble)(nil)
