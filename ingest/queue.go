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
	ch      chan item
	dropped prometheus.Counter
	queued  prometheus.Gauge
}

// NewQueue makes a queue of the given size with its metrics
// (spamsurge_observations_dropped_total, spamsurge_observations_queued)
// registered on reg. Hand it to the sources as their Sink.
func NewQueue(size int, reg prometheus.Registerer) *Queue {
	f := promauto.With(reg)
	return &Queue{
		ch: make(chan item, size),
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

// item is one queued observation, or with only set a marker: then, when
// set, runs on Run's goroutine right after the observation was consumed.
type item struct {
	o    Observation
	only bool // no observation, just then
	then func()
}

// Observe enqueues o or drops it.
func (q *Queue) Observe(o Observation) { q.TryObserve(o) }

// TryObserve enqueues o, or drops and counts it and returns false when
// the queue is full. It never blocks.
func (q *Queue) TryObserve(o Observation) bool {
	select {
	case q.ch <- item{o: o}:
		q.queued.Inc()
		return true
	default:
		q.dropped.Inc()
		return false
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
		case it := <-q.ch:
			q.take(it, consume)
		case now := <-tc:
			tick(now)
		case <-ctx.Done():
			for {
				select {
				case it := <-q.ch:
					q.take(it, consume)
				default:
					return
				}
			}
		}
	}
}

func (q *Queue) take(it item, consume func(Observation)) {
	if !it.only {
		q.queued.Dec()
		consume(it.o)
	}
	if it.then != nil {
		it.then()
	}
}

// Submit enqueues observations for callers that can wait (the HTTP API),
// giving up when ctx ends; unlike Observe it never drops silently.
func (q *Queue) Submit(ctx context.Context, obs []Observation) error {
	return q.SubmitThen(ctx, obs, nil)
}

// SubmitThen is Submit, and then runs on Run's goroutine (the consumer's)
// once the last of obs has been consumed, or, when obs is empty, once
// everything queued before it has been: a source that must know what the
// consumer has seen (a log tailer saving its position) learns it there.
// When ctx ends first, then never runs, and the observations already
// queued stay queued.
func (q *Queue) SubmitThen(ctx context.Context, obs []Observation, then func()) error {
	if len(obs) == 0 {
		if then == nil {
			return nil
		}
		select {
		case q.ch <- item{only: true, then: then}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, o := range obs {
		it := item{o: o}
		if i == len(obs)-1 {
			it.then = then
		}
		select {
		case q.ch <- it:
			q.queued.Inc()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
