// Command detection measures detection quality on the simulated scenarios:
// it writes each scenario with package sim, replays it through the detector
// (package replay, in-memory store) and reports the detection delay (first
// leaked first spam → surge incident opened), false incidents, and the
// delay of an oracle: the same detector with its learned baseline replaced
// by the true background rate (the non-leak counted first spams per at-risk
// address-hour, measured from the run itself at the same hour of day ±1 h
// over ±3 days). See
// bench/README-detection.md.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/replay"
	"github.com/spamsurge/spamsurge/sim"
	"github.com/spamsurge/spamsurge/store"
)

func main() {
	n := flag.Int("addresses", 100000, "population")
	seed := flag.Uint64("seed", 1, "seed")
	scen := flag.String("scenarios", "baseline,plusnet,drip", "comma-separated scenarios")
	dir := flag.String("dir", os.TempDir(), "where the streams are written")
	flag.Parse()
	fmt.Printf("| scenario | seed | addresses | leak | detected after | started at − leak | leaked recipients found (first incident) | false surge incidents | dictionary incidents | oracle delay | ratio |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range strings.Split(*scen, ",") {
		if err := run(s, *seed, *n, *dir); err != nil {
			fmt.Fprintln(os.Stderr, "detection:", err)
			os.Exit(1)
		}
	}
}

type result struct {
	firstLeak time.Time
	surge     []detector.Incident
	dict      int
	hourly    map[int64]*hour
}

type hour struct {
	counted float64 // non-leak counted first spams
	atRisk  float64
}

func run(scenario string, seed uint64, n int, dir string) error {
	f, err := os.CreateTemp(dir, fmt.Sprintf("spamsurge-%s-%d-%d-*.jsonl", scenario, seed, n))
	if err != nil {
		return err
	}
	path := f.Name()
	tr, err := sim.Run(sim.Config{Scenario: scenario, Seed: seed, Addresses: n}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	defer os.Remove(path)
	key, _ := addr.NewKey(bytes.Repeat([]byte{7}, 32))
	norm := addr.Normalizer{FoldLocal: true, Separators: "+"}
	leaked := map[addr.ID]bool{}
	var leak *sim.Leak
	if len(tr.Leaks) > 0 {
		leak = &tr.Leaks[0]
		for _, a := range leak.Addresses {
			nm, _, _ := norm.Normalize(a)
			leaked[key.Hash(nm)] = true
		}
	}
	var leakStart time.Time
	if leak != nil {
		leakStart = leak.Start
	}
	ours, err := replayOnce(path, key, norm, leaked, leakStart, nil)
	if err != nil {
		return err
	}
	// The oracle knows the background rate around every instant.
	oracle := func(t time.Time) float64 {
		// Same hour of day (±1 h) over ±3 days: the rhythm is part of
		// the truth.
		h := t.Unix() / 3600
		var c, e float64
		for day := int64(-3); day <= 3; day++ {
			for k := h + 24*day - 1; k <= h+24*day+1; k++ {
				if x := ours.hourly[k]; x != nil {
					c += x.counted
					e += x.atRisk
				}
			}
		}
		if e == 0 {
			return 0
		}
		return c / e
	}
	orc, err := replayOnce(path, key, norm, leaked, leakStart, oracle)
	if err != nil {
		return err
	}
	delay := func(who string, r *result) (time.Duration, *detector.Incident, int) {
		if leak != nil {
			fmt.Fprintf(os.Stderr, "%s: leak %s from %s to %s\n", scenario, leak.Kind, leak.Start.Format(time.RFC3339), leak.End.Format(time.RFC3339))
		}
		false_ := 0
		var hit *detector.Incident
		for i := range r.surge {
			in := &r.surge[i]
			match := 0
			for _, id := range in.RecipientIDs {
				if leaked[id] {
					match++
				}
			}
			switch {
			case leak == nil || match*2 < in.Recipients:
				false_++
				fmt.Fprintf(os.Stderr, "%s (%s): false incident %s opened %s (%s), %d recipients (%d leaked), observed %.0f expected %.1f\n",
					scenario, who, in.ID, in.OpenedAt.Format(time.RFC3339), in.Trigger, in.Recipients, match, in.Observed, in.Expected)
			case hit == nil:
				hit = in
			}
		}
		if hit == nil {
			return -1, nil, false_
		}
		return hit.OpenedAt.Sub(r.firstLeak), hit, false_
	}
	d1, hit, f1 := delay("detector", ours)
	d2, _, _ := delay("oracle", orc)
	leakDesc, det, start, found, od, ratio := "none", "—", "—", "—", "—", "—"
	if leak != nil {
		leakDesc = fmt.Sprintf("%s, %d addresses", leak.Kind, len(leak.Addresses))
		det = "not detected"
		if hit != nil {
			det = d1.Round(time.Second).String()
			start = hit.StartedAt.Sub(ours.firstLeak).Round(time.Second).String()
			m := 0
			for _, id := range hit.RecipientIDs {
				if leaked[id] {
					m++
				}
			}
			found = fmt.Sprintf("%d of %d in incident", m, hit.Recipients)
		}
		if d2 >= 0 {
			od = d2.Round(time.Second).String()
			if d1 >= 0 {
				ratio = fmt.Sprintf("%.2f", d1.Seconds()/math.Max(d2.Seconds(), 1))
			}
		}
	}
	fmt.Printf("| %s | %d | %d | %s | %s | %s | %s | %d | %d | %s | %s |\n", scenario, seed, n, leakDesc, det, start, found, f1, ours.dict, od, ratio)
	return nil
}

func replayOnce(path string, key *addr.Key, norm addr.Normalizer, leaked map[addr.ID]bool, leakStart time.Time, override func(time.Time) float64) (*result, error) {
	r := &result{hourly: map[int64]*hour{}}
	lastH, lastRisk := int64(0), 0
	o := detector.Options{Key: key, Store: store.NewMemory(), Normalizer: norm, RateOverride: override,
		Trace: func(t time.Time, id addr.ID, atRisk int, counted bool) {
			if leaked[id] && !t.Before(leakStart) {
				if r.firstLeak.IsZero() {
					r.firstLeak = t
				}
			}
			h := t.Unix() / 3600
			if r.hourly[h] == nil {
				r.hourly[h] = &hour{}
			}
			// At-risk exposure, filled per hour with the last value seen.
			for lastH != 0 && lastH < h {
				if r.hourly[lastH] == nil {
					r.hourly[lastH] = &hour{}
				}
				r.hourly[lastH].atRisk = float64(lastRisk)
				lastH++
			}
			lastH, lastRisk = h, atRisk
			r.hourly[h].atRisk = float64(atRisk)
			if counted && !leaked[id] {
				r.hourly[h].counted++
			}
		}}
	d, err := detector.New(o)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, err = replay.Run(context.Background(), replay.Options{Detector: d, OnEvent: func(ev detector.Event) error {
		if ev.Event == "opened" && ev.Kind == detector.KindDictionary {
			r.dict++
		}
		return nil
	}}, replay.Input{Name: path, R: f})
	if err != nil {
		return nil, err
	}
	for _, in := range d.Incidents() {
		if in.Kind == detector.KindSurge {
			r.surge = append(r.surge, in)
		}
	}
	return r, d.Close()
}
