package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// report checks a finished run and writes it up.
type report struct {
	cfg      Config
	lanes    []*lane
	samples  []sample
	led      *ledger
	final    map[string]map[string]float64 // last sample per lane
	failures []string

	// per lane
	outcomes  map[string]*[nOutcomes]int
	ambiguous map[string][]string // at the sink without a 250: a kill between its dump and its reply
	atSink    map[string]int
	trends    []trendRow
	logs      map[string]logSummary
}

type trendRow struct {
	lane                                    string
	lim                                     trendLimit
	base, start, end, min, max, perH, grown float64
	window                                  time.Duration
	n                                       int
	ok                                      bool
}

type logSummary struct {
	warn   map[string]int
	errors []string
}

func newReport(cfg Config, lanes []*lane, samples []sample, led *ledger, final map[string]map[string]float64) *report {
	return &report{cfg: cfg, lanes: lanes, samples: samples, led: led, final: final,
		outcomes: map[string]*[nOutcomes]int{}, ambiguous: map[string][]string{}, atSink: map[string]int{}, logs: map[string]logSummary{}}
}

func (r *report) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// failList caps how many of one kind are listed.
type failList struct {
	r     *report
	what  string
	n     int
	shown []string
}

func (f *failList) add(id string) {
	f.n++
	if len(f.shown) < 10 {
		f.shown = append(f.shown, id)
	}
}

func (f *failList) done() {
	if f.n > 0 {
		f.r.fail("%d %s (first: %s)", f.n, f.what, strings.Join(f.shown, ", "))
	}
}

func (r *report) check() {
	r.checkDelivery()
	// spamsurge's own count of relayed transactions is the clients' count
	// of 250s.
	for _, l := range r.lanes {
		if got, want := r.final[l.name][mRelayed], float64(r.outcomes[l.name][acked]); got != want {
			r.fail("%s: spamsurge_messages_total{result=\"relayed\"} is %v, the clients got %v acknowledgements", l.name, got, want)
		}
	}
	r.checkTrends()
	r.checkIdle()
	r.checkLogs()
}

// checkDelivery holds every transaction against what the next hop stored.
func (r *report) checkDelivery() {
	byLane := map[string]*lane{}
	for _, l := range r.lanes {
		byLane[l.name] = l
		r.outcomes[l.name] = &[nOutcomes]int{}
	}
	lost := &failList{r: r, what: "messages acknowledged with 250 but not at the next hop"}
	twice := &failList{r: r, what: "messages at the next hop more than once"}
	corrupt := &failList{r: r, what: "messages changed on the way (length or CRC differ at the next hop)"}
	rcptDiff := &failList{r: r, what: "acknowledged messages whose recipients at the next hop differ from those accepted at RCPT"}
	noDot := &failList{r: r, what: "messages at the next hop whose final dot the client never sent"}
	unacked := &failList{r: r, what: "messages at the next hop without a 250 to the client and no next-hop kill just before"}
	silent := &failList{r: r, what: "transactions with no reply to the final dot"}
	mixed := &failList{r: r, what: "LMTP transactions with a 250 for some recipients only"}
	unknown := &failList{r: r, what: "messages at the next hop that no client sent"}

	ids := sortedKeys(r.led.txs)
	for _, id := range ids {
		tx := r.led.txs[id]
		l := byLane[tx.lane]
		r.outcomes[tx.lane][tx.outcome]++
		m := l.h.get(id)
		copies := 0
		if m != nil {
			copies = m.copies
			r.atSink[tx.lane]++
			if m.bad > 0 || !m.idMatch {
				corrupt.add(id)
			}
			if tx.outcome == acked && m.bad == 0 && m.rcpts != tx.rcptOK {
				rcptDiff.add(fmt.Sprintf("%s (%d at RCPT, %d at the next hop)", id, tx.rcptOK, m.rcpts))
			}
		}
		if copies > 1 {
			twice.add(id)
		}
		switch {
		case tx.outcome == acked && copies == 0:
			lost.add(id)
		case tx.outcome != acked && copies > 0 && !tx.dotSent:
			noDot.add(id)
		case tx.outcome != acked && copies > 0:
			if l.sink.killedWithin(tx.end, 10*time.Second) {
				r.ambiguous[tx.lane] = append(r.ambiguous[tx.lane], fmt.Sprintf("%s (%s)", id, tx.stage))
			} else {
				unacked.add(id)
			}
		}
		if tx.outcome == noReply {
			silent.add(fmt.Sprintf("%s (%v)", id, tx.err))
		}
		if tx.mixed {
			mixed.add(id)
		}
	}
	for _, l := range r.lanes {
		l.h.mu.Lock()
		for id := range l.h.msgs {
			if tx := r.led.txs[id]; tx == nil || tx.lane != l.name {
				unknown.add(id)
			}
		}
		for _, name := range l.h.unknown {
			unknown.add(name)
		}
		l.h.mu.Unlock()
		if n, k := len(r.ambiguous[l.name]), len(l.sink.kills); n > k {
			r.fail("%s: %d messages at the next hop without a 250, more than the %d next-hop kills can explain (one each at most)", l.name, n, k)
		}
	}
	for _, l := range r.lanes {
		o := r.outcomes[l.name]
		if o[acked] == 0 || o[dropped] == 0 || len(l.sink.kills) == 0 {
			r.fail("%s: the run exercised too little (%d acknowledged, %d dropped mid-DATA, %d next-hop kills): run longer", l.name, o[acked], o[dropped], len(l.sink.kills))
		}
	}
	for _, f := range []*failList{lost, twice, corrupt, rcptDiff, noDot, unacked, silent, mixed, unknown} {
		f.done()
	}
}

func (r *report) checkTrends() {
	for _, l := range r.lanes {
		var base map[string]float64
		var xs []float64
		var load []sample
		for _, s := range r.samples {
			if s.lane != l.name {
				continue
			}
			if s.phase == "baseline" {
				base = s.v
			}
			if s.phase == "load" && s.at >= r.cfg.Warmup {
				load = append(load, s)
				xs = append(xs, s.at.Hours())
			}
		}
		if len(load) < 3 {
			r.fail("%s: only %d samples after the warm-up: no trend (run longer or sample more often)", l.name, len(load))
			continue
		}
		window := load[len(load)-1].at - load[0].at
		for _, lim := range r.cfg.Limits {
			ys := make([]float64, len(load))
			row := trendRow{lane: l.name, lim: lim, base: base[lim.series], window: window, n: len(load), min: load[0].v[lim.series], max: load[0].v[lim.series]}
			for i, s := range load {
				ys[i] = s.v[lim.series]
				row.min, row.max = min(row.min, ys[i]), max(row.max, ys[i])
			}
			row.start, row.end = ys[0], ys[len(ys)-1]
			row.perH = slope(xs, ys)
			row.grown = row.perH * window.Hours()
			row.ok = row.grown <= lim.limit(window)
			if !row.ok {
				r.fail("%s: %s grew %s%s over %v under load (fitted slope %s%s/h), over the limit of %s%s", l.name, lim.label,
					lim.show(row.grown), lim.unitTag, window.Round(time.Second), lim.show(row.perH), lim.unitTag, lim.show(lim.limit(window)), lim.unitTag)
			}
			r.trends = append(r.trends, row)
		}
	}
}

// checkIdle: with no client connected, a daemon is back to its idle
// baseline in goroutines and open files, at every pause and at the end.
func (r *report) checkIdle() {
	for _, l := range r.lanes {
		var base map[string]float64
		for _, s := range r.samples {
			if s.lane != l.name {
				continue
			}
			switch s.phase {
			case "baseline":
				base = s.v
			case "idle", "end":
				if d := s.v[mGoroutines] - base[mGoroutines]; d > r.cfg.IdleGoroutines {
					r.fail("%s: idle at %v with %v goroutines, %v above the idle baseline of %v", l.name, s.at.Round(time.Second), s.v[mGoroutines], d, base[mGoroutines])
				}
				if d := s.v[mFDs] - base[mFDs]; d > r.cfg.IdleFDs {
					r.fail("%s: idle at %v with %v open fds, %v above the idle baseline of %v", l.name, s.at.Round(time.Second), s.v[mFDs], d, base[mFDs])
				}
			}
		}
	}
}

// checkLogs reads each daemon's log: a panic or an ERROR fails the run;
// WARN lines are counted by message (next-hop failures are expected while
// it restarts).
func (r *report) checkLogs() {
	for _, l := range r.lanes {
		f, err := os.Open(l.d.log)
		if err != nil {
			r.fail("%s: %v", l.name, err)
			continue
		}
		ls := logSummary{warn: map[string]int{}}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			// zap's console lines: time, level, logger, message, fields.
			parts := strings.SplitN(line, "\t", 5)
			switch {
			case strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:"):
				ls.errors = append(ls.errors, line)
			case len(parts) >= 4 && (parts[1] == "ERROR" || parts[1] == "DPANIC" || parts[1] == "PANIC" || parts[1] == "FATAL"):
				ls.errors = append(ls.errors, line)
			case len(parts) >= 4 && parts[1] == "WARN":
				ls.warn[parts[2]+": "+parts[3]]++
			}
		}
		f.Close()
		if len(ls.errors) > 0 {
			r.fail("%s: %d ERROR or panic lines in spamsurge's log (first: %s)", l.name, len(ls.errors), ls.errors[0])
		}
		r.logs[l.name] = ls
	}
}

func (r *report) markdown(failures []string) string {
	var b strings.Builder
	verdict := "PASS"
	if len(failures) > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "## Soak: %s\n\n", verdict)
	fmt.Fprintf(&b, "Traffic for %v per lane at most %.1f transactions/s over %d client connections, sampled every %v (trends after a %v warm-up), idle checks every %v, next hop restarted every %v–%v; seed %d.\n\n",
		r.cfg.Duration, r.cfg.Rate, r.cfg.Clients, r.cfg.Interval, r.cfg.Warmup, r.cfg.IdleEvery, r.cfg.SinkUpMin, r.cfg.SinkUpMax, r.cfg.Seed)

	b.WriteString("### Transactions by outcome (client side)\n\n| lane | total |")
	for o := outcome(0); o < nOutcomes; o++ {
		fmt.Fprintf(&b, " %s |", o)
	}
	b.WriteString(" at next hop | at next hop without 250 (kill window) |\n|---|---:|")
	for o := outcome(0); o < nOutcomes; o++ {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, l := range r.lanes {
		o := r.outcomes[l.name]
		total := 0
		for _, n := range o {
			total += n
		}
		fmt.Fprintf(&b, "| %s | %d |", l.name, total)
		for _, n := range o {
			fmt.Fprintf(&b, " %d |", n)
		}
		fmt.Fprintf(&b, " %d | %d |\n", r.atSink[l.name], len(r.ambiguous[l.name]))
	}
	r.mixTable(&b)

	b.WriteString("\n### Next hop\n\n| lane | kills | epochs by mode | unfinished dumps left by kills |\n|---|---:|---|---:|\n")
	for _, l := range r.lanes {
		var modes []string
		for _, k := range sortedKeys(l.sink.modes) {
			modes = append(modes, fmt.Sprintf("%s %d", k, l.sink.modes[k]))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d |\n", l.name, len(l.sink.kills), strings.Join(modes, ", "), l.sink.partials)
	}

	b.WriteString("\n### spamsurge counters at the end\n\n| lane | relayed | tempfail | rejected | recipients accepted | downstream failures | sessions | CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.lanes {
		v := r.final[l.name]
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f |\n", l.name, v[mRelayed], v[mTempfail], v[mRejected], v[mRcptOK], v[mDSFail], v["spamsurge_sessions_total"], v["process_cpu_seconds_total"])
	}

	b.WriteString("\n### Trends under load (after the warm-up)\n\n| lane | series | idle baseline | start | end | min | max | slope per hour | fitted growth | limit | |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, t := range r.trends {
		ok := "ok"
		if !t.ok {
			ok = "**FAIL**"
		}
		l := t.lim
		fmt.Fprintf(&b, "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.lane, l.label, l.unitTag, l.show(t.base), l.show(t.start), l.show(t.end), l.show(t.min), l.show(t.max), l.show(t.perH), l.show(t.grown), l.show(l.limit(t.window)), ok)
	}

	fmt.Fprintf(&b, "\n### Idle checks (no client connected; goroutines may be at most %.0f and fds %.0f above the baseline)\n\n| lane | phase | at | goroutines | open fds | heap in use MiB | RSS MiB |\n|---|---|---:|---:|---:|---:|---:|\n", r.cfg.IdleGoroutines, r.cfg.IdleFDs)
	for _, s := range r.samples {
		if s.phase == "load" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %v | %.0f | %.0f | %.1f | %.1f |\n", s.lane, s.phase, s.at.Round(time.Second), s.v[mGoroutines], s.v[mFDs], s.v[mHeap]/(1<<20), s.v[mRSS]/(1<<20))
	}

	b.WriteString("\n### spamsurge's log\n\n")
	for _, l := range r.lanes {
		ls := r.logs[l.name]
		var w []string
		for _, k := range sortedKeys(ls.warn) {
			w = append(w, fmt.Sprintf("%q ×%d", k, ls.warn[k]))
		}
		if len(w) == 0 {
			w = []string{"none"}
		}
		fmt.Fprintf(&b, "- %s: %d ERROR/panic lines; WARN: %s\n", l.name, len(ls.errors), strings.Join(w, ", "))
	}
	for _, l := range r.lanes {
		if a := r.ambiguous[l.name]; len(a) > 0 {
			fmt.Fprintf(&b, "\nAt the %s next hop without a 250, each within 10 s after a kill of it (the unavoidable window between its write and its reply): %s\n", l.name, strings.Join(a, ", "))
		}
	}

	if len(failures) > 0 {
		b.WriteString("\n### Failures\n\n")
		for _, f := range failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

// mixTable shows the traffic mix as sent.
func (r *report) mixTable(b *strings.Builder) {
	type agg struct{ n, pipelined, slow, rcpts, big int }
	var bytes int64
	a := map[string]*agg{}
	for _, tx := range r.led.txs {
		x := a[tx.lane]
		if x == nil {
			x = &agg{}
			a[tx.lane] = x
		}
		x.n++
		x.rcpts += tx.rcpts
		if tx.pipelined {
			x.pipelined++
		}
		if tx.slow {
			x.slow++
		}
		if tx.size > 1<<20 {
			x.big++
		}
		if tx.outcome == acked {
			bytes += tx.size
		}
	}
	b.WriteString("\n| lane | pipelined | on slow-reading connections | recipients per transaction | over 1 MiB (delivered) |\n|---|---:|---:|---:|---:|\n")
	for _, k := range sortedKeys(a) {
		x := a[k]
		fmt.Fprintf(b, "| %s | %d | %d | %.1f | %d |\n", k, x.pipelined, x.slow, float64(x.rcpts)/float64(max(x.n, 1)), x.big)
	}
	fmt.Fprintf(b, "\nDelivered %.1f MiB in all.\n", float64(bytes)/(1<<20))
}

// writeSamples writes every sample as CSV, or as a markdown table when the
// name ends in .md.
func writeSamples(w io.Writer, samples []sample, md bool) error {
	cols := []struct {
		name string
		key  string
		div  float64
	}{
		{"goroutines", mGoroutines, 1}, {"heap_inuse_mib", mHeap, 1 << 20}, {"rss_mib", mRSS, 1 << 20}, {"open_fds", mFDs, 1},
		{"sessions_active", mSessions, 1}, {"relayed", mRelayed, 1}, {"tempfail", mTempfail, 1}, {"rejected", mRejected, 1}, {"downstream_failures", mDSFail, 1},
	}
	sorted := append([]sample(nil), samples...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].lane < sorted[j].lane })
	head := []string{"elapsed_s", "lane", "phase"}
	for _, c := range cols {
		head = append(head, c.name)
	}
	sep := ","
	if md {
		sep = " | "
	}
	line := func(f []string) {
		if md {
			fmt.Fprintf(w, "| %s |\n", strings.Join(f, sep))
		} else {
			fmt.Fprintln(w, strings.Join(f, sep))
		}
	}
	line(head)
	if md {
		line(strings.Split(strings.Repeat("---,", len(head)-1)+"---", ","))
	}
	for _, s := range sorted {
		f := []string{fmt.Sprintf("%.0f", s.at.Seconds()), s.lane, s.phase}
		for _, c := range cols {
			if c.div == 1 {
				f = append(f, fmt.Sprintf("%.0f", s.v[c.key]))
			} else {
				f = append(f, fmt.Sprintf("%.1f", s.v[c.key]/c.div))
			}
		}
		line(f)
	}
	return nil
}
