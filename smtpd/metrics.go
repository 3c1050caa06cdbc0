package smtpd

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Transaction outcomes, the values of spamsurge_messages_total{result}.
const (
	resultRelayed  = "relayed"
	resultRejected = "rejected"
	resultTempfail = "tempfail"
)

// Reasons of spamsurge_commands_refused_total.
const (
	refusedPathTooLong = "path_too_long"
	refusedControlChar = "control_character"
)

// metrics of the mail path. Label values come from fixed lists and are
// pre-initialised so every series exists from the first scrape.
type metrics struct {
	messages        *prometheus.CounterVec
	recipients      *prometheus.CounterVec
	verdicts        *prometheus.CounterVec
	sessionsActive  prometheus.Gauge
	sessionsTotal   prometheus.Counter
	sessionsRefused *prometheus.CounterVec
	relayDuration   prometheus.Histogram
	downstreamFails *prometheus.CounterVec
	bareNewlines    *prometheus.CounterVec
	nulMessages     *prometheus.CounterVec
	commandsRefused *prometheus.CounterVec
	messageBytes    prometheus.Histogram

	// The series counted for every message and recipient, looked up
	// once rather than by label values each time.
	msgRelayed, msgRejected, msgTempfail     prometheus.Counter
	rcptAccepted, rcptRejected, rcptTempfail prometheus.Counter
	verdictSpam, verdictHam                  prometheus.Counter
}

// message is the spamsurge_messages_total series of a result.
func (m *metrics) message(result string) prometheus.Counter {
	switch result {
	case resultRelayed:
		return m.msgRelayed
	case resultRejected:
		return m.msgRejected
	case resultTempfail:
		return m.msgTempfail
	}
	return m.messages.WithLabelValues(result)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_messages_total",
			Help: "Transactions that reached DATA, by outcome: relayed (the next hop accepted it for at least one recipient), rejected (5xx), tempfail (4xx, ours or the next hop's).",
		}, []string{"result"}),
		recipients: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_recipients_total",
			Help: "RCPT commands by the next hop's answer: accepted, rejected (5xx), tempfail (4xx, ours or the next hop's).",
		}, []string{"result"}),
		verdicts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_verdicts_total",
			Help: "Relayed messages by the upstream filter's verdict read from the headers.",
		}, []string{"verdict"}),
		sessionsActive: f.NewGauge(prometheus.GaugeOpts{
			Name: "spamsurge_sessions_active",
			Help: "Inbound SMTP/LMTP sessions open now.",
		}),
		sessionsTotal: f.NewCounter(prometheus.CounterOpts{
			Name: "spamsurge_sessions_total",
			Help: "Inbound sessions accepted.",
		}),
		sessionsRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_sessions_refused_total",
			Help: "Inbound connections refused, by reason: allow_from (client network not allowed), max_connections (421 4.4.5).",
		}, []string{"reason"}),
		relayDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "spamsurge_relay_duration_seconds",
			Help:    "Time from the client's DATA to the reply we give it: streaming the body plus the next hop's final answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		downstreamFails: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_downstream_failures_total",
			Help: "Failures talking to the next hop (not its replies), by reason: connect, greeting, tls, timeout, io, protocol.",
		}, []string{"reason"}),
		bareNewlines: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_bare_newline_messages_total",
			Help: "Messages that contained bare CR or LF, by action taken (normalized or rejected).",
		}, []string{"action"}),
		nulMessages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_nul_messages_total",
			Help: "Messages that contained NUL bytes, by action taken (stripped or rejected, smtp.nul).",
		}, []string{"action"}),
		commandsRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_commands_refused_total",
			Help: "MAIL and RCPT commands refused by the proxy itself, not passed on, by reason: path_too_long (over 256 octets, 501 5.1.3), control_character (NUL or another control character in the address, 501 5.1.3).",
		}, []string{"reason"}),
		messageBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "spamsurge_message_size_bytes",
			Help:    "Size of relayed message bodies after normalisation.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 9),
		}),
	}
	for _, r := range []string{resultRelayed, resultRejected, resultTempfail} {
		m.messages.WithLabelValues(r)
	}
	for _, r := range []string{"accepted", "rejected", "tempfail"} {
		m.recipients.WithLabelValues(r)
	}
	for _, v := range []string{"spam", "ham"} {
		m.verdicts.WithLabelValues(v)
	}
	m.msgRelayed = m.messages.WithLabelValues(resultRelayed)
	m.msgRejected = m.messages.WithLabelValues(resultRejected)
	m.msgTempfail = m.messages.WithLabelValues(resultTempfail)
	m.rcptAccepted = m.recipients.WithLabelValues("accepted")
	m.rcptRejected = m.recipients.WithLabelValues("rejected")
	m.rcptTempfail = m.recipients.WithLabelValues("tempfail")
	m.verdictSpam = m.verdicts.WithLabelValues("spam")
	m.verdictHam = m.verdicts.WithLabelValues("ham")
	for _, r := range []string{"allow_from", "max_connections"} {
		m.sessionsRefused.WithLabelValues(r)
	}
	for _, r := range downstreamReasons {
		m.downstreamFails.WithLabelValues(r)
	}
	for _, a := range []string{"normalized", "rejected"} {
		m.bareNewlines.WithLabelValues(a)
	}
	for _, a := range []string{"stripped", "rejected"} {
		m.nulMessages.WithLabelValues(a)
	}
	for _, r := range []string{refusedPathTooLong, refusedControlChar} {
		m.commandsRefused.WithLabelValues(r)
	}
	return m
}
