package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/spamsurge/spamsurge/ingest/logs"
)

// MaxRspamdBodyBytes bounds one POST /api/v1/rspamd body: one message's
// metadata, symbols and their options included.
const MaxRspamdBodyBytes = 1 << 20

// rspamdResults are spamsurge_rspamd_messages_total's label values.
var rspamdResults = []string{"accepted", "skipped", "invalid", "dropped"}

func newRspamdCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	if reg == nil {
		return nil
	}
	c := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "spamsurge_rspamd_messages_total",
		Help: "Messages rspamd's metadata_exporter posted to /api/v1/rspamd, by result: accepted (queued for the detector), skipped (no SMTP recipients), invalid (400), dropped (the detector queue was full).",
	}, []string{"result"})
	for _, r := range rspamdResults {
		c.WithLabelValues(r)
	}
	return c
}

func (o *Options) countRspamd(result string) {
	if o.rspamd != nil {
		o.rspamd.WithLabelValues(result).Inc()
	}
}

// postRspamd takes what rspamd's metadata_exporter posts with formatter
// "json": one scanned message per request (docs/api.md). It answers 200,
// not 202: rspamd 3.4's http pusher logs every other status as an error
// ("got unexpected http status"), and with the rule's defer set it would
// soft-reject the mail. It never waits for the detector: rspamd holds the
// message until we answer, so a full queue is a 503 at once (the
// observation is dropped and counted), as the proxy drops.
func (o *Options) postRspamd(w http.ResponseWriter, r *http.Request) {
	if o.Offer == nil {
		apiError(w, http.StatusServiceUnavailable, "the detector is not running")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRspamdBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			o.countRspamd("invalid")
			apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes: one message's metadata_exporter JSON expected", MaxRspamdBodyBytes))
			return
		}
		apiError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	ob, err := logs.ParseRspamdExport(body, time.Now().UTC())
	switch {
	case errors.Is(err, logs.ErrNoRecipients):
		o.countRspamd("skipped")
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 0, "skipped": `no SMTP recipients ("rcpt": "unknown"): nothing to count`})
		return
	case err != nil:
		o.countRspamd("invalid")
		apiError(w, http.StatusBadRequest, "not a metadata_exporter JSON message: "+err.Error())
		return
	}
	if !o.Offer(ob) {
		o.countRspamd("dropped")
		w.Header().Set("Retry-After", "5")
		apiError(w, http.StatusServiceUnavailable, "detector queue full: observation dropped (counted in spamsurge_observations_dropped_total)")
		return
	}
	o.countRspamd("accepted")
	writeJSON(w, http.StatusOK, map[string]int{"accepted": 1})
}
