package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Queue decouples the mail path from the detector: Observe never blocks;
// when the queue is full the observation is dropped and counted in
// spamsurge_observations_dropped_total. Mail always wins.
type Queue struct {
	ch      chan Observation
	dropped prometheus.Counter
	queued  prometheus.Gauge
}

// NewQueue makes a queue of the given size with its metrics
// (spamsurge_observations_dropped_total, spamsurge_observations_queued)
// registered on reg. Hand it to the sources as their Sink.
func NewQueue(size int, reg prometheus.Registerer) *Queue {
	f := promauto.With(reg)
	return &Queue{
		ch: make(chan Observation, size),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "spamsurge_observations_dropped_total",
			Help: "Observations the detector queue had no room for. Mail is never held back for the detector; this counts what it did not see.",
		}),
		queued: f.NewGauge(prometheus.GaugeOpts{
			Name: "spamsurge_observations_queued",
			Help: "Observations waiting for the detector.",
		}),
	}
}

// Observe enqueues o or drops it.
func (q *Queue) Observe(o Observation) {
	select {
	case q.ch <- o:
		q.queued.Inc()
	default:
		q.dropped.Inc()
	}
}

// Run hands queued observations to consume, one at a time, and calls tick
// every interval (when both are set), all from one goroutine, until ctx is
// done; then it drains what is left and returns.
func (q *Queue) Run(ctx context.Context, consume func(Observation), tick func(time.Time), interval time.Duration) {
	var tc <-chan time.Time
	if tick != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case o := <-q.ch:
			q.queued.Dec()
			consume(o)
		case now := <-tc:
			tick(now)
		case <-ctx.Done():
			for {
				select {
				case o := <-q.ch:
					q.queued.Dec()
					consume(o)
				default:
					return
				}
			}
		}
	}
}

// Submit enqueues observations for callers that can wait (the HTTP API),
// giving up when ctx ends; unlike Observe it never drops silently.
func (q *Queue) Submit(ctx context.Context, obs []Observation) error {
	for _, o := range obs {
		select {
		case q.ch <- o:
			q.queued.Inc()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
