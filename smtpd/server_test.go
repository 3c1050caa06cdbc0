package smtpd

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Every next-hop outage is logged when it starts and when it ends, the
// second one too, however many checks fail in between.
func TestEveryNextHopOutageIsLogged(t *testing.T) {
	var down atomic.Bool
	hop := newFakeHop(t, false)
	hop.setReply(func(cmd, arg string, idx int) string {
		if cmd == "CONNECT" && down.Load() {
			return "HANGUP"
		}
		return ""
	})
	core, logs := observer.New(zap.InfoLevel)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.Logger = zap.New(core) })
	eventually(t, "ready", func() bool { return p.Ready() == nil })

	count := func(msg string) int { return logs.FilterMessage(msg).Len() }
	probes := func() int {
		hop.mu.Lock()
		defer hop.mu.Unlock()
		return hop.conns
	}
	// check makes the watcher probe n+1 more times, so that the first n
	// have been logged: the watcher logs a probe's outcome before it
	// makes the next one.
	check := func(n int) {
		t.Helper()
		for i := 0; i <= n; i++ {
			before := probes()
			eventually(t, "a probe", func() bool {
				select {
				case p.reprobe <- struct{}{}:
				default:
				}
				return probes() > before
			})
		}
	}

	for outage := 1; outage <= 2; outage++ {
		down.Store(true)
		check(3)
		if n := count("next hop unreachable; checking again every 2s"); n != outage {
			t.Fatalf("outage %d: %d unreachable warnings, want %d\n%v", outage, n, outage, logs.All())
		}
		if p.Ready() == nil {
			t.Fatalf("outage %d: Ready() = nil", outage)
		}
		down.Store(false)
		check(3)
		if n := count("next hop reachable"); n != outage {
			t.Fatalf("outage %d: %d reachable lines, want %d\n%v", outage, n, outage, logs.All())
		}
		if err := p.Ready(); err != nil {
			t.Fatalf("outage %d over: Ready() = %v", outage, err)
		}
	}
}
