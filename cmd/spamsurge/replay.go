package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest/logs"
	"github.com/spamsurge/spamsurge/replay"
	"github.com/spamsurge/spamsurge/store"
)

func replayCommand() command {
	var (
		cf                         *configFlag
		lf                         *logFlags
		in                         *logInputFlags
		tolerance                  time.Duration
		dry, asJSON, strict, quiet bool
	)
	return command{
		name:    "replay",
		summary: "feed recorded observations through the detector (bootstraps the store)",
		args:    "[--config FILE] [--format jsonl|rspamd|amavis|spamd] [--tz ZONE] [--dry-run] [--json] [--strict] FILE...",
		help:    "Feeds recorded observations, or rspamd, amavisd-new and spamd logs (docs/logs.md;\nplain, gzip or zstd, put in time order), through the detector on their own clock.\nWithout --dry-run the resulting state and baseline are written into the configured\nstore (bootstrap). FILE - reads JSONL from stdin.",
		flags: func(fs *flag.FlagSet) {
			cf = addConfigFlag(fs)
			in = addLogInputFlags(fs, "")
			fs.DurationVar(&tolerance, "tolerance", 5*time.Minute, "observations up to this much out of order are put back in order; older ones are reported")
			fs.BoolVar(&dry, "dry-run", false, "do not write the store (state is kept in memory)")
			fs.BoolVar(&asJSON, "json", false, "print each incident event as one JSON line on stdout")
			fs.BoolVar(&strict, "strict", false, "stop at the first malformed line")
			fs.BoolVar(&quiet, "quiet", false, "do not report each malformed line")
			lf = addLogFlags(fs, "error")
		},
		run: func(ctx context.Context, e *env) error {
			if len(e.args) == 0 {
				return errUsage
			}
			stdin := false
			for _, a := range e.args {
				stdin = stdin || a == "-"
			}
			if stdin && in.format != "" && in.format != "jsonl" {
				return usageError{fmt.Errorf("FILE - (stdin) is JSONL only; give --format %s files by name", in.format)}
			}
			if tolerance <= 0 {
				return usageError{fmt.Errorf("--tolerance must be positive")}
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			// On the simulated clock a synced commit per simulated second would
			// make replay disk-bound; an interrupted replay is simply run again,
			// so batches are committed without fsync and Close syncs.
			cfg.Detector.FlushInterval = config.Duration(time.Hour)
			log, err := lf.logger(e.stderr)
			if err != nil {
				return err
			}
			defer log.Sync()
			var set *logSet
			if !stdin {
				if set, err = in.open(e.args); err != nil {
					return err
				}
				defer set.close()
			}
			var d *detector.Detector
			if dry {
				d, err = dryDetector(cfg, log)
			} else {
				d, err = daemon.OpenDetector(cfg, prometheus.NewRegistry(), log, func(o *detector.Options) { o.NoSync = true })
			}
			if err == nil {
				// attribution.tags and .canaries, hashed with the detector's key.
				if _, err = daemon.LoadLists(d, cfg, nil, log); err != nil {
					d.Close()
				}
			}
			if err != nil {
				return err
			}
			var inputs []replay.Input
			jsonl := map[string]bool{}
			if set != nil {
				for i, f := range set.files {
					inputs = append(inputs, replay.Input{Name: f.Name, R: f.Reader(), Decode: set.decoder(i)})
					jsonl[f.Name] = f.Format == logs.JSONL
				}
			}
			for _, name := range e.args {
				if set != nil {
					break
				}
				jsonl[name] = true
				if name == "-" {
					inputs = append(inputs, replay.Input{Name: "stdin", R: os.Stdin})
					jsonl["stdin"] = true
					continue
				}
				f, err := os.Open(name)
				if err != nil {
					d.Close()
					return err
				}
				defer f.Close()
				inputs = append(inputs, replay.Input{Name: name, R: f})
			}
			out := bufio.NewWriter(e.stdout)
			enc := json.NewEncoder(out)
			opened := map[string]int{}
			start := time.Now()
			stopBar := func() {}
			if set != nil {
				stopBar = set.progress(ctx, e.stderr, "replay")
			}
			var late []string
			st, err := replay.Run(ctx, replay.Options{
				Detector:       d,
				Strict:         strict,
				Reorder:        tolerance,
				SkipReadErrors: set != nil,
				OnReadError: func(name string, lines int, err error) {
					set.readError(e.stderr, name, lines, err)
				},
				OnLate: func(name string, line int, behind time.Duration) {
					if len(late) < maxSamples {
						late = append(late, fmt.Sprintf("%s:%d: %s behind the newest observation", name, line, behind.Round(time.Second)))
					}
				},
				OnEvent: func(ev detector.Event) error {
					if ev.Event == detector.EventOpened {
						opened[ev.Kind]++
					}
					if asJSON {
						return enc.Encode(ev)
					}
					fmt.Fprintf(e.stderr, "%s incident %s %s (%s) at %s: %d recipients, observed %.0f expected %.1f\n",
						ev.Event, ev.ID, ev.Kind, ev.Trigger, ev.At.Format(time.RFC3339), ev.Recipients, ev.Observed, ev.Expected)
					if ev.TopSource != "" || ev.CanarySource != "" {
						fmt.Fprintf(e.stderr, "  source: %s%s\n", ev.TopSource, ev.CanarySource)
					}
					return nil
				},
				OnMalformed: func(name string, line int, err error) {
					if set != nil {
						set.malformedLine(name, line, err)
					}
					if !quiet && jsonl[name] {
						fmt.Fprintf(e.stderr, "%s:%d: skipped: %v\n", name, line, err)
					}
				},
			}, inputs...)
			stopBar()
			elapsed := time.Since(start)
			ferr := out.Flush()
			cerr := d.Close()
			kinds := make([]string, 0, len(opened))
			for k := range opened {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			fmt.Fprintf(e.stderr, "replay: %d lines, %d observations (%d recipients), %d malformed, %s to %s; %d tracked, %d at risk; %d incident events",
				st.Lines, st.Observations, st.Recipients, st.Malformed, st.First.Format(time.RFC3339), st.Last.Format(time.RFC3339), d.Tracked(), d.AtRisk(), st.Events)
			for _, k := range kinds {
				fmt.Fprintf(e.stderr, ", %d %s opened", opened[k], k)
			}
			if st.Jumps > 0 {
				fmt.Fprintf(e.stderr, "; %d time jumps skipped", st.Jumps)
			}
			fmt.Fprintf(e.stderr, "; %.1fs (%.0f observations/s)\n", elapsed.Seconds(), float64(st.Observations)/elapsed.Seconds())
			if set != nil {
				fmt.Fprintf(e.stderr, "  files, oldest first: %s\n", set.describe())
				set.summary(e.stderr, st.Ignored, st.NoRecipients)
				if st.ReadErrors > 0 {
					fmt.Fprintf(e.stderr, "  %d files ended in a read error (above)\n", st.ReadErrors)
				}
			}
			if st.Late > 0 {
				fmt.Fprintf(e.stderr, "  %d observations more than %s out of order (counted at the detector's current time)\n", st.Late, tolerance)
				for _, l := range late {
					fmt.Fprintf(e.stderr, "  late: %s\n", l)
				}
			}
			var me *replay.MalformedError
			switch {
			case errors.As(err, &me):
				return fmt.Errorf("%w (--strict)", err)
			case err != nil:
				return err
			case ferr != nil:
				return ferr
			case cerr != nil:
				return fmt.Errorf("store: %w", cerr)
			}
			return nil
		},
	}
}

// dryDetector keeps state in memory; it uses the configured key if the key
// file exists (so ids match the daemon's) and a throwaway key otherwise.
func dryDetector(cfg config.Config, log *zap.Logger) (*detector.Detector, error) {
	var key *addr.Key
	path := daemon.KeyFile(cfg)
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
	o := daemon.DetectorOptions(cfg)
	o.Key, o.Store, o.Registerer, o.Logger = key, store.NewMemory(), prometheus.NewRegistry(), log
	return detector.New(o)
}
