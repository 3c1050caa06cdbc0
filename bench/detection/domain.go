package main

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
)

// domainOracle is the yardstick for stratified detection: a Poisson CUSUM
// that watches the leaked domain alone, with ρ (-oracle-rho: 3 as the
// aggregate CUSUM, 10 as the novel-campaign one) and the threshold (12), no dispersion and no multiplicity correction, against
// the domain's true background rate: its non-leak first spams per at-risk
// address-hour from day 10 to the leak, measured from the stream itself.
// At risk and first spam are the detector's notions (first mail older than
// 168 h, never spammed before), taken straight from the stream. It returns
// the delay from the first leaked first spam to the alarm (-1: none), and
// the alarms it raised before the leak (false ones).
func domainOracle(path, domain string, key *addr.Key, norm addr.Normalizer, leaked map[addr.ID]bool, leakStart time.Time, rho float64) (time.Duration, int, error) {
	const (
		warmup    = 168 * time.Hour
		threshold = 12.0
	)
	type state struct {
		first time.Time
		spam  bool
	}
	type event struct {
		t      time.Time
		dN     int  // at-risk change
		fs     bool // a first spam of an at-risk address
		leaked bool
	}
	f, err := os.Open(path)
	if err != nil {
		return -1, 0, err
	}
	defer f.Close()
	suffix := "@" + domain
	addrs := map[addr.ID]*state{}
	var evs []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(suffix)) {
			continue
		}
		o, err := ingest.Parse(line)
		if err != nil {
			continue
		}
		for _, r := range o.Rcpt {
			if !strings.HasSuffix(r, suffix) {
				continue
			}
			nm, _, err := norm.Normalize(r)
			if err != nil {
				continue
			}
			id := key.Hash(nm)
			st := addrs[id]
			if st == nil {
				st = &state{first: o.Time, spam: o.Spam}
				addrs[id] = st
				if !o.Spam {
					evs = append(evs, event{t: o.Time.Add(warmup), dN: 1})
				}
				continue
			}
			if o.Spam && !st.spam {
				st.spam = true
				if o.Time.Sub(st.first) >= warmup {
					evs = append(evs, event{t: o.Time, dN: -1, fs: true, leaked: leaked[id]})
				} else {
					// Spammed before it matured: it never joins.
					evs = append(evs, event{t: st.first.Add(warmup), dN: -1})
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return -1, 0, err
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
	start := leakStart.Add(-32 * 24 * time.Hour) // day 10 of a 42-day history
	// The true background: non-leak first spams over exposure.
	var n int
	var last time.Time
	var fs, exposure float64
	for _, e := range evs {
		if !last.IsZero() && e.t.After(start) && last.Before(leakStart) {
			from, to := maxTime(last, start), minTime(e.t, leakStart)
			if to.After(from) {
				exposure += float64(n) * to.Sub(from).Hours()
			}
		}
		if e.fs && !e.leaked && !e.t.Before(start) && e.t.Before(leakStart) {
			fs++
		}
		n += e.dN
		last = e.t
	}
	if exposure == 0 {
		return -1, 0, nil
	}
	rate := fs / exposure
	// The CUSUM, from day 10 on.
	s, n, last := 0.0, 0, time.Time{}
	falseAlarms := 0
	var firstLeak time.Time
	for _, e := range evs {
		if !last.IsZero() && e.t.After(start) {
			from := maxTime(last, start)
			if e.t.After(from) {
				s = math.Max(0, s-(rho-1)*rate*float64(n)*e.t.Sub(from).Hours())
			}
		}
		n += e.dN
		last = e.t
		if !e.fs || e.t.Before(start) {
			continue
		}
		if e.leaked && firstLeak.IsZero() {
			firstLeak = e.t
		}
		s += math.Log(rho)
		if s >= threshold {
			if e.t.Before(leakStart) {
				falseAlarms++
				s = 0
				continue
			}
			return e.t.Sub(firstLeak), falseAlarms, nil
		}
	}
	return -1, falseAlarms, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
