// Package api serves spamsurge's HTTP endpoints: Prometheus metrics, health,
// readiness and the /api/v1 incident and observation API (docs/api.md). It
// reads snapshots others own and hands observations to the detector's
// queue; it never touches mail. It never returns a plaintext address: the
// detector holds none.
package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
)

// Options configure the handler.
type Options struct {
	Gatherer prometheus.Gatherer
	// Ready reports why the daemon cannot do its job (nil when it can).
	Ready  func() error
	Logger *zap.Logger

	// Token guards /api/ (Authorization: Bearer); empty means the API
	// answers loopback clients only.
	Token string
	// Incidents returns a snapshot of the open and recent incidents.
	Incidents func() []detector.Incident
	// Submit hands observations to the detector, or returns ErrBusy.
	Submit func([]ingest.Observation) error
	// Offer hands one observation to the detector's queue without
	// waiting; false when the queue was full (it dropped and counted
	// it). POST /api/v1/rspamd uses it.
	Offer        func(ingest.Observation) bool
	MaxBodyBytes int64
	// NotAfter, when set, is the latest time an observation may carry
	// (the wall clock plus detector.max_clock_skew): a later one makes
	// the request a 400 naming the line.
	NotAfter func() time.Time
	// Registerer receives the API's own metrics (nil: none).
	Registerer prometheus.Registerer
	// FirstSeen returns the population's first-seen curve for the
	// incident pages (nil, or returning nil: not shown).
	FirstSeen func() *detector.FirstSeenCurve
	// ConfigPath is the daemon's configuration file, for the resolve
	// command the incident pages print.
	ConfigPath string

	rspamd *prometheus.CounterVec
}

// Handler builds the HTTP routes.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.rspamd = newRspamdCounter(o.Registerer)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(o.Logger),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	o.apiRoutes(mux)
	o.uiRoutes(mux)
	return mux
}

// Serve runs an HTTP server with sane timeouts on ln until ctx is done.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
