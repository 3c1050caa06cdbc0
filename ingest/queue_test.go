package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A full queue drops and counts instead of blocking the mail path; Run
// hands over what was queued, and drains it when ctx ends.
func TestQueueDropsWhenFullAndDrainsOnStop(t *testing.T) {
	q := NewQueue(2, prometheus.NewRegistry())
	for i := 0; i < 5; i++ {
		q.Observe(Observation{Time: time.Unix(int64(i), 0)})
	}
	if v := testutil.ToFloat64(q.dropped); v != 3 {
		t.Fatalf("dropped = %v, want 3", v)
	}
	if v := testutil.ToFloat64(q.queued); v != 2 {
		t.Fatalf("queued = %v, want 2", v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got []int64
	q.Run(ctx, func(o Observation) { got = append(got, o.Time.Unix()) }, nil, 0)
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("consumed %v, want [0 1]", got)
	}
	if v := testutil.ToFloat64(q.queued); v != 0 {
		t.Fatalf("queued after drain = %v", v)
	}
}

// Submit waits for room instead of dropping, and gives up with ctx.
func TestSubmitWaitsThenGivesUp(t *testing.T) {
	q := NewQueue(1, prometheus.NewRegistry())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := q.Submit(ctx, []Observation{{}, {}})
	if err == nil {
		t.Fatal("Submit of 2 into a queue of 1 with nobody reading succeeded")
	}
	if v := testutil.ToFloat64(q.dropped); v != 0 {
		t.Fatalf("Submit dropped %v", v)
	}
}
