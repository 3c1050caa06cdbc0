package attribution

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/config"
)

// Options configure a Set.
type Options struct {
	Config
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	Logger     *zap.Logger
}

// ConfigFrom takes the lists from the configuration file, with the
// address policy the detector uses (so both hash the same address alike).
func ConfigFrom(c config.Config, key *addr.Key) Config {
	out := Config{
		Key:          key,
		Normalizer:   addr.Normalizer{FoldLocal: c.Detector.FoldLocalPart, Separators: c.Detector.SubaddressSeparators},
		KnownDetails: c.Attribution.KnownDetails,
	}
	for _, t := range c.Attribution.Tags {
		out.Tags = append(out.Tags, Source{Name: t.Name, File: t.File})
	}
	for _, cs := range c.Attribution.Canaries {
		out.Canaries = append(out.Canaries, Source{Name: cs.Source, File: cs.File})
	}
	return out
}

// Set is the current Lists, swapped whole on Reload. Current is safe from
// any goroutine; a nil *Set has no lists.
type Set struct {
	o   Options
	log *zap.Logger
	cur atomic.Pointer[Lists]
	mu  sync.Mutex // one Reload at a time

	reloadErrors prometheus.Counter
	reloads      prometheus.Counter
	lastOK       prometheus.Gauge
	tagSize      *prometheus.GaugeVec
	canarySize   prometheus.Gauge
}

// New loads the lists. A missing or unreadable file is an error (at start
// an operator wants to know, not to run without the list).
func New(o Options) (*Set, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	f := promauto.With(o.Registerer)
	s := &Set{
		o:   o,
		log: o.Logger.Named("attribution"),
		reloadErrors: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_attribution_reload_errors_total",
			Help: "Reloads of the tag and canary lists (SIGHUP) that failed; the previous lists stay in use."}),
		reloads: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_attribution_reloads_total",
			Help: "Successful reloads of the tag and canary lists (SIGHUP)."}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_attribution_last_reload_successful",
			Help: "Whether the last load of the tag and canary lists succeeded (0: the lists in use are older than the files)."}),
		tagSize: f.NewGaugeVec(prometheus.GaugeOpts{Name: "spamsurge_attribution_tag_addresses",
			Help: "Distinct addresses loaded per source tag (attribution.tags)."}, []string{"tag"}),
		canarySize: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_attribution_canary_addresses",
			Help: "Canary addresses loaded (attribution.canaries)."}),
	}
	for _, t := range o.Tags {
		s.tagSize.WithLabelValues(t.Name)
	}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	s.publish(l)
	s.lastOK.Set(1)
	return s, nil
}

// Current returns the lists in use.
func (s *Set) Current() *Lists {
	if s == nil {
		return nil
	}
	return s.cur.Load()
}

// Reload reads every file again. On any error the previous lists stay in
// use; the error is logged, counted and returned.
func (s *Set) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.load()
	if err != nil {
		s.reloadErrors.Inc()
		s.lastOK.Set(0)
		s.log.Error("reloading lists failed; keeping the previous ones", zap.Error(err))
		return err
	}
	s.publish(l)
	s.reloads.Inc()
	s.lastOK.Set(1)
	return nil
}

func (s *Set) load() (*Lists, error) {
	start := time.Now()
	l, reps, err := Load(s.o.Config)
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		s.log.Info("list loaded", zap.String("kind", r.Kind), zap.String("name", r.Name), zap.String("file", r.File),
			zap.Int("loaded", r.Loaded), zap.Int("invalid", r.Invalid), zap.Int("duplicates", r.Duplicates),
			zap.Int("comments", r.Comments), zap.Int("blank", r.Blank))
		for _, p := range r.Problems {
			s.log.Warn("list line skipped", zap.String("file", p.File), zap.Int("line", p.Line), zap.String("reason", p.Reason))
		}
		if more := r.Invalid + r.Duplicates - len(r.Problems); more > 0 {
			s.log.Warn("more list lines skipped", zap.String("file", r.File), zap.Int("not_shown", more))
		}
	}
	s.log.Info("lists ready", zap.Int("tags", len(l.tags)), zap.Int("tagged_addresses", len(l.mask)),
		zap.Int("canaries", len(l.canary)), zap.Duration("took", time.Since(start)))
	return l, nil
}

func (s *Set) publish(l *Lists) {
	s.cur.Store(l)
	for i, t := range l.tags {
		s.tagSize.WithLabelValues(t).Set(float64(l.sizes[i]))
	}
	s.canarySize.Set(float64(len(l.canary)))
}
