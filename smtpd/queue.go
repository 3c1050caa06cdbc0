package smtpd

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spamsurge/spamsurge/detector"
)

// Queue decouples the mail path from the detector: Observe never blocks;
// when the queue is full the observation is dropped and counted in
// spamsurge_observations_dropped_total. Mail always wins.
type Queue struct {
	ch      chan detector.Observation
	dropped prometheus.Counter
	queued  prometheus.Gauge
}

// NewQueue makes a queue of the given size, counted in s's metrics
// (spamsurge_observations_dropped_total, spamsurge_observations_queued),
// and makes it s's sink. Call it before Serve.
func (s *Server) NewQueue(size int) *Queue {
	q := &Queue{ch: make(chan detector.Observation, size), dropped: s.metrics.observationsDrop, queued: s.metrics.observationsQueue}
	s.opts.Sink = q
	return q
}

// Observe enqueues o or drops it.
func (q *Queue) Observe(o detector.Observation) {
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
func (q *Queue) Run(ctx context.Context, consume func(detector.Observation), tick func(time.Time), interval time.Duration) {
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
func (q *Queue) Submit(ctx context.Context, obs []detector.Observation) error {
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
