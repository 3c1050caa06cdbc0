package tail

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the tailers' series, one set per source label (the
// configured path or name, never an address).
type Metrics struct {
	lines     *prometheus.CounterVec
	lagSec    *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	rotations *prometheus.CounterVec
}

// Line results.
var results = []string{"parsed", "skipped", "invalid"}

// NewMetrics registers the tailers' metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		lines: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_source_lines_total",
			Help: "Whole lines read from a tailed log, by result: parsed (an observation), skipped (the filter's other lines, verdicts without recipients), invalid (malformed).",
		}, []string{"source", "result"}),
		lagSec: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spamsurge_source_lag_seconds",
			Help: "Wall clock minus the time of the last line parsed from a tailed log (0 until one is).",
		}, []string{"source"}),
		up: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spamsurge_source_up",
			Help: "1 while a tailed log is open and followed, 0 while it is absent or unreadable.",
		}, []string{"source"}),
		rotations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_source_rotations_total",
			Help: "Rotations of a tailed log followed: rename (a new file at the path) or truncate (copytruncate).",
		}, []string{"source", "reason"}),
	}
}

// sourceMetrics are one source's series (no-ops without Metrics).
type sourceMetrics struct {
	lines     map[string]prometheus.Counter
	lagG, upG prometheus.Gauge
	rot       map[string]prometheus.Counter
}

func (m *Metrics) source(name string) sourceMetrics {
	if m == nil {
		return sourceMetrics{}
	}
	s := sourceMetrics{lines: map[string]prometheus.Counter{}, rot: map[string]prometheus.Counter{},
		lagG: m.lagSec.WithLabelValues(name), upG: m.up.WithLabelValues(name)}
	for _, r := range results {
		s.lines[r] = m.lines.WithLabelValues(name, r)
	}
	for _, r := range []string{"rename", "truncate"} {
		s.rot[r] = m.rotations.WithLabelValues(name, r)
	}
	return s
}

func (s sourceMetrics) line(result string) {
	if c := s.lines[result]; c != nil {
		c.Inc()
	}
}

func (s sourceMetrics) rotations(reason string) {
	if c := s.rot[reason]; c != nil {
		c.Inc()
	}
}

func (s sourceMetrics) setUp(up bool) {
	if s.upG == nil {
		return
	}
	if up {
		s.upG.Set(1)
	} else {
		s.upG.Set(0)
	}
}

func (s sourceMetrics) lag(last, now time.Time) {
	if s.lagG == nil || last.IsZero() {
		return
	}
	s.lagG.Set(now.Sub(last).Seconds())
}
