package detector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	firstSpam  prometheus.Counter
	atRisk     prometheus.Gauge
	tracked    prometheus.Gauge
	active     *prometheus.GaugeVec
	incidents  *prometheus.CounterVec
	errors     prometheus.Counter
	invalid    prometheus.Counter
	dictionary prometheus.Counter
	late       prometheus.Counter
	future     prometheus.Counter
	forgotten  prometheus.Counter
	expected   prometheus.Gauge
	score      prometheus.Gauge
	warmup     prometheus.Gauge
	flushes    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		firstSpam: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_first_spam_total",
			Help: "First-ever spam to an established, never-spammed (at-risk) address."}),
		atRisk: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_recipients_at_risk",
			Help: "Established addresses that never received spam."}),
		tracked: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_recipients_tracked",
			Help: "Addresses with recipient state (by keyed hash)."}),
		active: f.NewGaugeVec(prometheus.GaugeOpts{Name: "spamsurge_incident_active",
			Help: "1 while an incident of this kind is open."}, []string{"kind"}),
		incidents: f.NewCounterVec(prometheus.CounterOpts{Name: "spamsurge_incidents_total",
			Help: "Incidents opened, by kind."}, []string{"kind"}),
		errors: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_detector_errors_total",
			Help: "Detector failures: store writes or reads that failed, observations without a time."}),
		invalid: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_detector_invalid_addresses_total",
			Help: "Recipient addresses rejected as malformed (not counted in any state)."}),
		dictionary: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_dictionary_recipients_total",
			Help: "Spam recipients that were never seen before or were rejected by the next hop."}),
		forgotten: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_recipients_forgotten_total",
			Help: "Addresses dropped from the state after detector.forget_after without mail."}),
		future: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_detector_future_observations_total",
			Help: "Observations dated more than detector.max_clock_skew ahead of the wall clock: refused, they never move the detector's clock."}),
		late: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_detector_late_observations_total",
			Help: "Observations older than the detector's clock, counted at the clock's time."}),
		expected: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_first_spam_expected_per_hour",
			Help: "Expected first spams per hour among at-risk addresses (baseline × population × rhythm)."}),
		score: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_surge_score",
			Help: "Current surge score: the larger CUSUM (all counted first spams, or those of novel campaigns) over its alarm threshold (1 = alarm)."}),
		warmup: f.NewGauge(prometheus.GaugeOpts{Name: "spamsurge_detector_warmup",
			Help: "1 while the detector is warming up (new store or changed key) and opens no incidents."}),
		flushes: f.NewCounter(prometheus.CounterOpts{Name: "spamsurge_store_commits_total",
			Help: "Synced batch commits of recipient state transitions."}),
	}
	for _, k := range kinds {
		m.active.WithLabelValues(k)
		m.incidents.WithLabelValues(k)
	}
	return m
}
