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
	"path/filepath"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
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
	novel := flag.Bool("novel", true, "run the novel-campaign CUSUM (false: the aggregate tests alone, for both detector and oracle)")
	flag.Float64Var(&oracleRho, "oracle-rho", 3, "shopleak: the ρ of the oracle that watches the leaked domain alone")
	flag.IntVar(&domains, "domains", 0, "spread the population over this many customer domains (sim.Config.Domains; shopleak: 60 when 0)")
	flag.BoolVar(&strata, "strata", true, "run the per-domain and per-tag tests (detector.per_domain, per_tag) in the detector's run")
	flag.Parse()
	noNovel = !*novel
	fmt.Printf("| scenario | seed | addresses | leak | detected after (test) | started at − leak | leaked recipients found (first incident) | false surge incidents | dictionary incidents | oracle delay | ratio | top tag at open → final (leaked source) | canary → incident |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range strings.Split(*scen, ",") {
		if err := run(s, *seed, *n, *dir); err != nil {
			fmt.Fprintln(os.Stderr, "detection:", err)
			os.Exit(1)
		}
	}
}

// noNovel is -novel=false.
var noNovel bool

// oracleRho and domains are -oracle-rho and -domains.
var (
	oracleRho float64
	domains   int
	strata    bool
)

type result struct {
	firstLeak time.Time
	topAtOpen map[string]string // surge incident id → top tag when opened
	canary    time.Time         // first canary incident opened
	surge     []detector.Incident
	dict      int
	hourly    map[int64]*hour
}

type hour struct {
	counted float64 // non-leak counted first spams
	novel   float64 // of which from novel campaigns
	atRisk  float64
}

func run(scenario string, seed uint64, n int, dir string) error {
	f, err := os.CreateTemp(dir, fmt.Sprintf("spamsurge-%s-%d-%d-*.jsonl", scenario, seed, n))
	if err != nil {
		return err
	}
	path := f.Name()
	tr, err := sim.Run(sim.Config{Scenario: scenario, Seed: seed, Addresses: n, Domains: domains}, f)
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
	// The population's source lists and canaries, hashed like the daemon.
	listDir, err := os.MkdirTemp(dir, "spamsurge-lists-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(listDir)
	if _, err := tr.WriteLists(listDir); err != nil {
		return err
	}
	ac := attribution.Config{Key: key, Normalizer: norm, KnownDetails: filepath.Join(listDir, "known-details.txt")}
	for _, s := range sim.Sources {
		ac.Tags = append(ac.Tags, attribution.Source{Name: s, File: filepath.Join(listDir, s+".txt")})
		ac.Canaries = append(ac.Canaries, attribution.Source{Name: s, File: filepath.Join(listDir, "canaries-"+s+".txt")})
	}
	lists, _, err := attribution.Load(ac)
	if err != nil {
		return err
	}
	ours, err := replayOnce(path, key, norm, leaked, leakStart, nil, nil, lists)
	if err != nil {
		return err
	}
	// The oracle knows the background rate around every instant.
	oracle := func(novel bool) func(t time.Time) float64 {
		return func(t time.Time) float64 {
			// Same hour of day (±1 h) over ±3 days: the rhythm is
			// part of the truth.
			h := t.Unix() / 3600
			var c, e float64
			for day := int64(-3); day <= 3; day++ {
				for k := h + 24*day - 1; k <= h+24*day+1; k++ {
					if x := ours.hourly[k]; x != nil {
						if novel {
							c += x.novel
						} else {
							c += x.counted
						}
						e += x.atRisk
					}
				}
			}
			if e == 0 {
				return 0
			}
			return c / e
		}
	}
	orc, err := replayOnce(path, key, norm, leaked, leakStart, oracle(false), oracle(true), nil)
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
				scope := "whole population"
				if in.Scope != nil {
					scope = in.Scope.String()
				}
				fmt.Fprintf(os.Stderr, "%s (%s): false incident %s [%s] started %s opened %s (%s), %d recipients (%d leaked), observed %.0f expected %.1f, senders %v, networks %v\n",
					scenario, who, in.ID, scope, in.StartedAt.Format(time.RFC3339), in.OpenedAt.Format(time.RFC3339), in.Trigger, in.Recipients, match, in.Observed, in.Expected,
					in.Campaigns.SenderDomain, in.Campaigns.ClientNetwork)
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
	if tr.LeakedDomain != "" {
		// A leak in one customer domain: the yardstick is an oracle
		// that watches that domain alone (domain.go).
		dd, falseD, err := domainOracle(path, tr.LeakedDomain, key, norm, leaked, leakStart, oracleRho)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: domain oracle (ρ %g) on %s (%d addresses): fired %s after the first leaked first spam, %d false alarms before the leak\n",
			scenario, oracleRho, tr.LeakedDomain, tr.LeakedDomainSize, dd.Round(time.Second), falseD)
		d2 = dd
	}
	leakDesc, det, start, found, od, ratio := "none", "—", "—", "—", "—", "—"
	if leak != nil {
		leakDesc = fmt.Sprintf("%s, %d addresses", leak.Kind, len(leak.Addresses))
		det = "not detected"
		if hit != nil {
			det = fmt.Sprintf("%s (%s)", d1.Round(time.Second), hit.Trigger)
			if hit.Scope != nil {
				det = fmt.Sprintf("%s (%s, %s)", d1.Round(time.Second), hit.Trigger, hit.Scope)
			}
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
	// Attribution: the incident's top tag against the leaked source ("—"
	// for a leak drawn from the whole population: naming any is false).
	want := tr.LeakedSource
	if want == "" {
		want = "none"
	}
	top := "—"
	if hit != nil {
		name := func(t string) string {
			if t == "" {
				return "none"
			}
			return t
		}
		top = fmt.Sprintf("%s → %s (%s)", name(ours.topAtOpen[hit.ID]), name(hit.TopTag), want)
	}
	canary := "—"
	for _, c := range tr.Canaries {
		if c.Hit != nil && !ours.canary.IsZero() {
			canary = ours.canary.Sub(*c.Hit).Round(time.Second).String()
			break
		} else if c.Hit != nil {
			canary = "not opened"
		}
	}
	fmt.Printf("| %s | %d | %d | %s | %s | %s | %s | %d | %d | %s | %s | %s | %s |\n", scenario, seed, n, leakDesc, det, start, found, f1, ours.dict, od, ratio, top, canary)
	return nil
}

func replayOnce(path string, key *addr.Key, norm addr.Normalizer, leaked map[addr.ID]bool, leakStart time.Time, override, novelOverride func(time.Time) float64, lists *attribution.Lists) (*result, error) {
	r := &result{hourly: map[int64]*hour{}, topAtOpen: map[string]string{}}
	lastH, lastRisk := int64(0), 0
	o := detector.Options{Key: key, Store: store.NewMemory(), Normalizer: norm, RateOverride: override, NovelRateOverride: novelOverride, NoNovel: noNovel,
		PerDomain: strata && override == nil, PerTag: strata && override == nil,
		Trace: func(t time.Time, id addr.ID, atRisk int, counted, novel bool) {
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
				if novel {
					r.hourly[h].novel++
				}
			}
		}}
	if lists != nil {
		o.Attribution = staticLists{lists}
	}
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
		if ev.Event == "opened" && ev.Kind == detector.KindSurge {
			r.topAtOpen[ev.ID] = ev.TopTag
		}
		if ev.Event == "opened" && ev.Kind == detector.KindCanary && r.canary.IsZero() {
			r.canary = ev.OpenedAt
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

type staticLists struct{ l *attribution.Lists }

func (s staticLists) Current() *attribution.Lists { return s.l }
