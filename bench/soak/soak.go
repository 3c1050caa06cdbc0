package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Config is one soak run. Zero fields take the defaults of setDefaults.
type Config struct {
	Binary  string // spamsurge
	SinkBin string // smtp-sink
	Dir     string // work directory: configs, stores, logs, dumps

	Duration  time.Duration // traffic
	Interval  time.Duration // between samples
	Warmup    time.Duration // samples before this are left out of the trends
	IdleEvery time.Duration // traffic pauses for an idle check this often
	Clients   int           // concurrent client connections per lane
	Rate      float64       // transactions per second per lane, at most
	Mix       mix
	SinkUpMin time.Duration // a next hop runs this long between restarts, at least
	SinkUpMax time.Duration
	Seed      uint64

	Limits []trendLimit
	// IdleGoroutines and IdleFDs: how far above the idle baseline an
	// idle daemon may be.
	IdleGoroutines, IdleFDs float64

	Progress io.Writer // a line per sample; nil for none
}

func (c *Config) setDefaults() {
	if c.Duration == 0 {
		c.Duration = time.Hour
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Warmup == 0 {
		c.Warmup = c.Duration / 6
	}
	if c.IdleEvery == 0 {
		c.IdleEvery = 10 * time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 6
	}
	if c.Rate == 0 {
		c.Rate = 5
	}
	if c.Mix == (mix{}) {
		c.Mix = defaultMix()
	}
	if c.SinkUpMin == 0 {
		c.SinkUpMin = 30 * time.Second
	}
	if c.SinkUpMax == 0 {
		c.SinkUpMax = 90 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Limits == nil {
		c.Limits = defaultLimits
	}
	if c.IdleGoroutines == 0 {
		c.IdleGoroutines = 3
	}
	if c.IdleFDs == 0 {
		c.IdleFDs = 8
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// defaultLimits: the fitted growth over the measured window that fails a
// run. Under load the four series swing with the sessions and messages in
// flight (heap in use by about 5 MiB, RSS by about 3 MiB, goroutines and
// fds by a dozen: two or three per session); the floors are several times
// that, so a three-minute run does not fail on noise, and still catch a
// leak of 64 KiB per transaction there (a pooled 96 KiB body buffer, say). Over an hour at 5 transactions/s the per-hour rates catch
// about 600 bytes (heap) and 1.1 KB (RSS) per transaction. Goroutines and
// fds are checked exactly by the idle checks; their trend limit only
// catches a leak fast enough to show under load.
var defaultLimits = []trendLimit{
	{series: mGoroutines, label: "goroutines", unit: 1, floor: 20},
	{series: mHeap, label: "heap in use", unit: 1 << 20, unitTag: " MiB", floor: 16 << 20, perHour: 8 << 20},
	{series: mRSS, label: "RSS", unit: 1 << 20, unitTag: " MiB", floor: 24 << 20, perHour: 16 << 20},
	{series: mFDs, label: "open fds", unit: 1, floor: 20},
}

// lane is one daemon with its next hop and its clients: SMTP in and out,
// or LMTP in and out (smtp-sink -L).
type lane struct {
	name string
	lmtp bool
	d    *daemon
	sink *sink
	h    *harvester
}

// Result is what a run found.
type Result struct {
	Samples  []sample
	Failures []string
	Report   string // markdown
}

// Run starts both lanes, drives traffic for cfg.Duration, samples the
// daemons, drains, and checks. An error means the run could not be made;
// a run that was made and found problems lists them in Failures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	rnd := rand.New(rand.NewPCG(cfg.Seed, 1))
	var lanes []*lane
	defer func() {
		for _, l := range lanes {
			if l.d != nil && !l.d.exited() {
				l.d.kill()
			}
			if l.sink != nil {
				l.sink.stop(l.h)
			}
		}
	}()
	for _, spec := range []struct {
		name string
		lmtp bool
	}{{"smtp", false}, {"lmtp", true}} {
		dir := filepath.Join(cfg.Dir, spec.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		s, err := newSink(cfg.SinkBin, dir, spec.lmtp)
		if err != nil {
			return nil, err
		}
		l := &lane{name: spec.name, lmtp: spec.lmtp, sink: s, h: newHarvester(s.dir)}
		lanes = append(lanes, l)
		if err := s.start(sinkMode{name: "normal"}); err != nil {
			return nil, err
		}
		if l.d, err = startDaemon(cfg.Binary, dir, s.addr, spec.lmtp); err != nil {
			return nil, err
		}
	}

	res := &Result{}
	var smu sync.Mutex
	t0 := time.Now()
	record := func(phase string) error {
		for _, l := range lanes {
			if l.d.exited() {
				return fmt.Errorf("spamsurge (%s) exited: %v; log %s", l.name, l.d.err, l.d.log)
			}
			v, err := scrape(l.d.http)
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			smu.Lock()
			res.Samples = append(res.Samples, sample{at: time.Since(t0), lane: l.name, phase: phase, v: v})
			smu.Unlock()
			fmt.Fprintf(cfg.Progress, "%8s %-4s %-8s goroutines %4.0f heap %6.1f MiB rss %6.1f MiB fds %3.0f sessions %3.0f relayed %6.0f tempfail %5.0f rejected %5.0f\n",
				time.Since(t0).Round(time.Second), l.name, phase, v[mGoroutines], v[mHeap]/(1<<20), v[mRSS]/(1<<20), v[mFDs], v[mSessions], v[mRelayed], v[mTempfail], v[mRejected])
		}
		return nil
	}
	// The idle baseline: both daemons up, next hops probed, no client yet.
	time.Sleep(3 * time.Second)
	t0 = time.Now()
	if err := record("baseline"); err != nil {
		return nil, err
	}
	base := map[string]float64{}
	for _, s := range res.Samples {
		base[s.lane] = s.v[mGoroutines]
	}

	led := newLedger()
	g := newGate()
	traffic, stopTraffic := context.WithTimeout(ctx, cfg.Duration)
	defer stopTraffic()
	var clients, helpers sync.WaitGroup
	helperCtx, stopHelpers := context.WithCancel(context.Background())
	defer stopHelpers()
	errc := make(chan error, 16)

	for _, l := range lanes {
		tokens := make(chan struct{})
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
			defer t.Stop()
			for {
				select {
				case <-traffic.Done():
					return
				case <-t.C:
					select {
					case tokens <- struct{}{}:
					default: // no client free: the rate is a ceiling
					}
				}
			}
		}()
		for i := 0; i < cfg.Clients; i++ {
			c := &client{lane: l.name, addr: l.d.smtp, lmtp: l.lmtp, mix: cfg.Mix, ledger: led, tokens: tokens, gate: g,
				rnd: rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64())), timeout: 3 * time.Minute}
			clients.Add(1)
			go func() {
				defer clients.Done()
				c.run(traffic)
			}()
		}
		lr := rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64()))
		helpers.Add(2)
		go func() {
			defer helpers.Done()
			if err := l.sink.restarts(traffic, g, l.h, cfg.SinkUpMin, cfg.SinkUpMax, lr); err != nil {
				errc <- err
			}
		}()
		go func() {
			defer helpers.Done()
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-helperCtx.Done():
					return
				case <-t.C:
					l.h.scan(false)
				}
			}
		}()
	}

	// Sampling, and a pause for an idle check every IdleEvery.
	var idleErr error
	sampler := time.NewTicker(cfg.Interval)
	defer sampler.Stop()
	nextIdle := time.Now().Add(cfg.IdleEvery)
loop:
	for {
		select {
		case <-traffic.Done():
			break loop
		case err := <-errc:
			stopTraffic()
			return nil, err
		case <-sampler.C:
			if err := record("load"); err != nil {
				stopTraffic()
				return nil, err
			}
			if time.Now().After(nextIdle) && time.Until(t0.Add(cfg.Duration)) > cfg.IdleEvery/2 {
				g.set(false)
				if err := idleCheck(lanes, record, "idle", base, cfg.IdleGoroutines); err != nil {
					idleErr = errors.Join(idleErr, err)
				}
				g.set(true)
				nextIdle = time.Now().Add(cfg.IdleEvery)
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Drain: clients finish the transaction in hand, the sinks go back to
	// normal, then the daemons must come back to their baseline.
	fmt.Fprintf(cfg.Progress, "traffic stopped; draining\n")
	var fails []string
	if !waitTimeout(&clients, 5*time.Minute) {
		fails = append(fails, "clients still busy 5 min after the traffic stopped")
	}
	stopHelpers()
	helpers.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if err := idleCheck(lanes, record, "end", base, cfg.IdleGoroutines); err != nil {
		idleErr = errors.Join(idleErr, err)
	}
	if idleErr != nil {
		fails = append(fails, "idle check: "+idleErr.Error())
	}
	for _, l := range lanes {
		// Idle: no transaction may still be open at the next hop.
		if n := l.h.scan(false); n > 0 {
			fails = append(fails, fmt.Sprintf("%s: the next hop still has %d transactions open with no client connected", l.name, n))
		}
	}
	final := map[string]map[string]float64{}
	for _, s := range res.Samples {
		final[s.lane] = s.v
	}
	for _, l := range lanes {
		if err := l.d.stop(45 * time.Second); err != nil {
			fails = append(fails, fmt.Sprintf("%s: spamsurge did not stop cleanly on SIGTERM: %v", l.name, err))
		}
		l.sink.stop(l.h)
	}
	rep := newReport(cfg, lanes, res.Samples, led, final)
	rep.check()
	res.Failures = append(fails, rep.failures...)
	res.Report = rep.markdown(res.Failures)
	return res, nil
}

// idleCheck waits (up to 2 min) until no session is open on either
// daemon, then up to 30 s more for the goroutines to come back within tol
// of the baseline (those of closed sessions finish, the QUITs to the next
// hop go out), and records one sample of each daemon, phase p. Whether
// they came back is judged from the samples, in the report.
func idleCheck(lanes []*lane, record func(string) error, p string, base map[string]float64, tol float64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, l := range lanes {
		for {
			v, err := scrape(l.d.http)
			if err != nil {
				return err
			}
			if v[mSessions] == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %v sessions still open 2 min after the traffic paused", l.name, v[mSessions])
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	settle := time.Now().Add(30 * time.Second)
	for _, l := range lanes {
		for time.Now().Before(settle) {
			v, err := scrape(l.d.http)
			if err != nil {
				return err
			}
			if v[mGoroutines] <= base[l.name]+tol {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return record(p)
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
