package detector

import (
	"sync"
	"testing"
	"time"
)

func TestIncidentsSnapshotIsSafeConcurrently(t *testing.T) {
	h := newHarness(t, nil2mem(), testKey(t, 1), func(o *Options) { o.Warmup = time.Hour; o.Learn = -1 })
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				for _, in := range h.d.Incidents() {
					_ = len(in.RecipientIDs)
				}
			}
		}
	}()
	for i := 0; i < 300; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	for i := 0; i < 300; i++ {
		h.obs(t0.Add(2*time.Hour+time.Duration(i)*time.Second), true, user(i))
	}
	close(done)
	wg.Wait()
	if len(h.d.Incidents()) == 0 {
		t.Fatal("no incident from 300 first spams in 5 minutes")
	}
}

func TestDormantShare(t *testing.T) {
	h := newHarness(t, nil2mem(), testKey(t, 1), func(o *Options) { o.Warmup = time.Hour; o.Learn = -1; o.Dormant = 24 * time.Hour })
	for i := 0; i < 200; i++ {
		h.obs(t0.Add(time.Duration(i)*time.Second), false, user(i))
	}
	for i := 100; i < 200; i++ { // the second half stays active
		h.obs(t0.Add(47*time.Hour+time.Duration(i)*time.Second), false, user(i))
	}
	for i := 0; i < 200; i += 2 {
		h.obs(t0.Add(48*time.Hour+time.Duration(i)*time.Second), true, user(i))
	}
	ins := h.d.Incidents()
	if len(ins) != 1 {
		t.Fatalf("incidents: %d", len(ins))
	}
	if s := ins[0].DormantShare; s < 0.45 || s > 0.55 {
		t.Fatalf("dormant share %.2f of %d, want about 0.5", s, ins[0].Recipients)
	}
}
