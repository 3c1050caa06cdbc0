package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/replay"
	"github.com/spamsurge/spamsurge/store"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config `file` (default: built-in defaults)")
	format := fs.String("format", "jsonl", "input format: jsonl")
	dry := fs.Bool("dry-run", false, "do not write the store (state is kept in memory)")
	asJSON := fs.Bool("json", false, "print each incident event as one JSON line on stdout")
	strict := fs.Bool("strict", false, "stop at the first malformed line")
	quiet := fs.Bool("quiet", false, "do not report each malformed line")
	lf := addLogFlags(fs)
	fs.Lookup("log-level").DefValue = "error"
	fs.Set("log-level", "error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spamsurge replay [--config FILE] [--format jsonl] [--dry-run] [--json] [--strict] FILE...\n\nFeeds recorded observations through the detector on their own clock. Without\n--dry-run the resulting state and baseline are written into the configured store\n(bootstrap). FILE - reads stdin.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if *format != "jsonl" {
		fmt.Fprintf(stderr, "spamsurge replay: --format %s is not supported yet (jsonl only)\n", *format)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge replay: %v\n", err)
		return 2
	}
	// On the simulated clock a synced commit per simulated second would
	// make replay disk-bound; an interrupted replay is simply run again,
	// so batches are committed without fsync and Close syncs.
	cfg.Detector.FlushInterval = config.Duration(time.Hour)
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge replay: %v\n", err)
		return 2
	}
	defer log.Sync()
	var d *detector.Detector
	if *dry {
		d, err = dryDetector(cfg, log)
	} else {
		d, err = detector.OpenWith(cfg, prometheus.NewRegistry(), log, func(o *detector.Options) { o.NoSync = true })
	}
	if err == nil {
		// attribution.tags and .canaries, hashed with the detector's key.
		if _, err = d.LoadLists(cfg, nil, log); err != nil {
			d.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge replay: %v\n", err)
		return 1
	}
	var inputs []replay.Input
	for _, name := range fs.Args() {
		if name == "-" {
			inputs = append(inputs, replay.Input{Name: "stdin", R: os.Stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			d.Close()
			fmt.Fprintf(stderr, "spamsurge replay: %v\n", err)
			return 1
		}
		defer f.Close()
		inputs = append(inputs, replay.Input{Name: name, R: f})
	}
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	opened := map[string]int{}
	start := time.Now()
	st, err := replay.Run(ctx, replay.Options{
		Detector: d,
		Strict:   *strict,
		OnEvent: func(ev detector.Event) error {
			if ev.Event == detector.EventOpened {
				opened[ev.Kind]++
			}
			if *asJSON {
				return enc.Encode(ev)
			}
			fmt.Fprintf(stderr, "%s incident %s %s (%s) at %s: %d recipients, observed %.0f expected %.1f\n",
				ev.Event, ev.ID, ev.Kind, ev.Trigger, ev.At.Format(time.RFC3339), ev.Recipients, ev.Observed, ev.Expected)
			if ev.TopSource != "" || ev.CanarySource != "" {
				fmt.Fprintf(stderr, "  source: %s%s\n", ev.TopSource, ev.CanarySource)
			}
			return nil
		},
		OnMalformed: func(name string, line int, err error) {
			if !*quiet {
				fmt.Fprintf(stderr, "%s:%d: skipped: %v\n", name, line, err)
			}
		},
	}, inputs...)
	elapsed := time.Since(start)
	ferr := out.Flush()
	cerr := d.Close()
	kinds := make([]string, 0, len(opened))
	for k := range opened {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(stderr, "replay: %d lines, %d observations (%d recipients), %d malformed, %s to %s; %d tracked, %d at risk; %d incident events",
		st.Lines, st.Observations, st.Recipients, st.Malformed, st.First.Format(time.RFC3339), st.Last.Format(time.RFC3339), d.Tracked(), d.AtRisk(), st.Events)
	for _, k := range kinds {
		fmt.Fprintf(stderr, ", %d %s opened", opened[k], k)
	}
	fmt.Fprintf(stderr, "; %.1fs (%.0f observations/s)\n", elapsed.Seconds(), float64(st.Observations)/elapsed.Seconds())
	var me *replay.MalformedError
	switch {
	case errors.As(err, &me):
		fmt.Fprintf(stderr, "spamsurge replay: %v (--strict)\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "spamsurge replay: %v\n", err)
		return 1
	case ferr != nil:
		fmt.Fprintf(stderr, "spamsurge replay: %v\n", ferr)
		return 1
	case cerr != nil:
		fmt.Fprintf(stderr, "spamsurge replay: store: %v\n", cerr)
		return 1
	}
	return 0
}

// dryDetector keeps state in memory; it uses the configured key if the key
// file exists (so ids match the daemon's) and a throwaway key otherwise.
func dryDetector(cfg config.Config, log *zap.Logger) (*detector.Detector, error) {
	var key *addr.Key
	path := detector.KeyFile(cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		b := make([]byte, addr.KeyLen)
		rand.Read(b)
		key, err = addr.NewKey(b)
		if err != nil {
			return nil, err
		}
	} else {
		key, err = addr.LoadKey(path)
		if err != nil {
			return nil, fmt.Errorf("store.key_file: %w", err)
		}
	}
	o := detector.OptionsFromConfig(cfg)
	o.Key, o.Store, o.Registerer, o.Logger = key, store.NewMemory(), prometheus.NewRegistry(), log
	return detector.New(o)
}
