package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/ingest/logs"
	"github.com/spamsurge/spamsurge/ingest/tail"
)

// tailMetaPrefix names a tailer's position in the store's meta blobs:
// "tail:" + the source's label.
const tailMetaPrefix = "tail:"

// startTails follows every sources.tail log until ctx ends; the returned
// function waits for them to stop. Their observations go through the
// queue like the proxy's, but a tailer waits for room instead of dropping
// (the file is its buffer; it holds up nobody). Each observation carries
// the tailer's position after its line, which the queue's goroutine
// stages into the detector's next commit (detector.StageMeta) once the
// detector has it: the position is durable exactly when the state of the
// lines before it is, so a restart, or a crash, neither counts a line
// twice nor skips one. Without a detector nothing is followed.
func startTails(ctx context.Context, cfg config.Config, q *ingest.Queue, det *detector.Detector, stage func(name string, v []byte), reg prometheus.Registerer, log *zap.Logger) func() {
	srcs := cfg.Sources.Tail
	if len(srcs) == 0 {
		return func() {}
	}
	log = log.Named("tail")
	m := tail.NewMetrics(reg)
	var wg sync.WaitGroup
	for _, src := range srcs {
		label := src.Label()
		slog := log.With(zap.String("source", label))
		if det == nil {
			slog.Error("detector unavailable; not following the log")
			continue
		}
		key := tailMetaPrefix + label
		var start *tail.Position
		if b, err := det.Meta(key); err != nil {
			slog.Error("reading the saved position; starting as on a first run", zap.Error(err))
		} else if b != nil {
			p, err := tail.ParsePosition(b)
			if err != nil {
				slog.Error("saved position unreadable; starting as on a first run", zap.Error(err))
			} else {
				start = &p
			}
		}
		loc := time.Local
		if src.Timezone != "" {
			loc, _ = time.LoadLocation(src.Timezone) // validated
		}
		format := logs.Format(src.Format)
		if format == "auto" {
			format = ""
		}
		emit := func(ctx context.Context, o *ingest.Observation, p tail.Position) error {
			b := p.Marshal()
			then := func() { stage(key, b) }
			if o == nil {
				return q.SubmitThen(ctx, nil, then)
			}
			return q.SubmitThen(ctx, []ingest.Observation{*o}, then)
		}
		t, err := tail.New(tail.Options{
			Name: label, Path: src.Path, Format: format, Location: loc, Domain: src.Domain,
			Backfill: src.Backfill, Start: start, Emit: emit, Logger: log, Metrics: m,
		})
		if err != nil {
			slog.Error("cannot follow", zap.Error(err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(ctx)
		}()
	}
	return wg.Wait
}
