package ingest

import (
	"context"
	"fmt"
	"strings"
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

// SubmitThen's function runs on Run's goroutine after its observations
// were consumed, in queue order; a marker without observations runs after
// everything queued before it. TryObserve says when it dropped.
func TestSubmitThenRunsAfterConsume(t *testing.T) {
	q := NewQueue(4, prometheus.NewRegistry())
	var log []string
	ctx := context.Background()
	if err := q.SubmitThen(ctx, []Observation{{Spam: true}, {}}, func() { log = append(log, "then1") }); err != nil {
		t.Fatal(err)
	}
	if err := q.SubmitThen(ctx, nil, func() { log = append(log, "marker") }); err != nil {
		t.Fatal(err)
	}
	if !q.TryObserve(Observation{}) {
		t.Fatal("TryObserve into a queue with room failed")
	}
	if q.TryObserve(Observation{}) {
		t.Fatal("TryObserve into a full queue succeeded")
	}
	if v := testutil.ToFloat64(q.dropped); v != 1 {
		t.Fatalf("dropped = %v, want 1", v)
	}
	if v := testutil.ToFloat64(q.queued); v != 3 {
		t.Fatalf("queued = %v, want 3 (markers are not observations)", v)
	}
	stop, cancel := context.WithCancel(ctx)
	cancel()
	q.Run(stop, func(o Observation) { log = append(log, fmt.Sprintf("obs spam=%v", o.Spam)) }, nil, 0)
	want := "obs spam=true,obs spam=false,then1,marker,obs spam=false"
	if got := strings.Join(log, ","); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if v := testutil.ToFloat64(q.queued); v != 0 {
		t.Fatalf("queued after drain = %v", v)
	}
}
