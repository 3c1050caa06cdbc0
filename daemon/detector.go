package daemon

import (
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
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

// DetectorOptions fills the configurable detector options from c.
func DetectorOptions(c config.Config) detector.Options {
	o := detector.Options{
		Normalizer: addr.Normalizer{FoldLocal: c.Detector.FoldLocalPart, Separators: c.Detector.SubaddressSeparators},
		Warmup:     c.Detector.Warmup.D(),
		Dormant:    c.Detector.Dormant.D(),
		Learn:      c.Detector.Learn.D(),
		FlushEvery: c.Detector.FlushInterval.D(),
		PerDomain:  c.Detector.PerDomain,
		PerTag:     c.Detector.PerTag,
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

// OpenDetector builds the Detector the configuration describes: the key
// from KeyFile(c) (created if missing), the embedded store at store.path (a
// corrupt store is refused, never reset); adjust, when set, has the last
// word on the options (replay commits without waiting for the disk, serve
// sets the wall clock). Close also closes the store.
func OpenDetector(c config.Config, reg prometheus.Registerer, log *zap.Logger, adjust func(*detector.Options)) (*detector.Detector, error) {
	key, err := addr.LoadKey(KeyFile(c))
	if err != nil {
		return nil, fmt.Errorf("store.key_file: %w", err)
	}
	// With a Redis store the recipients are the fleet's, in Redis; the
	// embedded store (when store.path is set) keeps this instance's
	// detector state and journal position, else it is re-read from the
	// journal at every start.
	var st detectorStore
	if c.Store.Path == "" && Fleet(c) {
		st = nopCloser{store.NewMemory()}
	} else if st, err = store.OpenPebble(c.Store.Path); err != nil {
		return nil, fmt.Errorf("store.path: %w", err)
	}
	o := DetectorOptions(c)
	o.Key, o.Store, o.Registerer, o.Logger = key, st, reg, log
	o.Shared = Fleet(c)
	if adjust != nil {
		adjust(&o)
	}
	d, err := detector.New(o)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.CloseStore(st)
	return d, nil
}

var _ io.Closer = (*store.Pebble)(nil)

// Fleet reports whether the configuration puts the recipients in Redis.
func Fleet(c config.Config) bool { return c.Store.RedisURL != "" || len(c.Store.RedisCluster) > 0 }

type detectorStore interface {
	detector.Store
	io.Closer
}

type nopCloser struct{ *store.Memory }

func (nopCloser) Close() error { return nil }

// LoadLists loads the configuration's tag and canary lists hashed with
// d's key and address policy, and attaches them to d (nil when none are
// configured). replay uses it; serve loads its lists before the detector
// and attaches them with SetAttribution.
func LoadLists(d *detector.Detector, c config.Config, reg prometheus.Registerer, log *zap.Logger) (*attribution.Set, error) {
	if len(c.Attribution.Tags) == 0 && len(c.Attribution.Canaries) == 0 {
		return nil, nil
	}
	key, norm := d.Keying()
	ac := attribution.ConfigFrom(c, key)
	ac.Normalizer = norm
	s, err := attribution.New(attribution.Options{Config: ac, Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	d.SetAttribution(s)
	return s, nil
}
