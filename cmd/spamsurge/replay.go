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
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/fleet"
	"github.com/spamsurge/spamsurge/ingest/logs"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
	"github.com/spamsurge/spamsurge/replay"
	"github.com/spamsurge/spamsurge/replay/report"
	"github.com/spamsurge/spamsurge/store"
)

func replayCommand() command {
	var (
		cf                         *configFlag
		lf                         *logFlags
		in                         *logInputFlags
		tolerance                  time.Duration
		dry, asJSON, strict, quiet bool
		reportPath                 string
	)
	return command{
		name:    "replay",
		summary: "feed recorded observations through the detector (bootstraps the store)",
		args:    "[--config FILE] [--format jsonl|rspamd|amavis|spamd] [--tz ZONE] [--dry-run] [--json] [--strict] [--report FILE.html] FILE...",
		help:    "Feeds recorded observations, or rspamd, amavisd-new and spamd logs (docs/logs.md;\nplain, gzip or zstd, put in time order), through the detector on their own clock.\nWithout --dry-run the resulting state and baseline are written into the configured\nstore (bootstrap). FILE - reads JSONL from stdin.",
		flags: func(fs *flag.FlagSet) {
			cf = addConfigFlag(fs)
			in = addLogInputFlags(fs, "")
			fs.DurationVar(&tolerance, "tolerance", 5*time.Minute, "observations up to this much out of order are put back in order; older ones are reported")
			fs.BoolVar(&dry, "dry-run", false, "do not write the store (state is kept in memory)")
			fs.BoolVar(&asJSON, "json", false, "print each incident event as one JSON line on stdout")
			fs.BoolVar(&strict, "strict", false, "stop at the first malformed line")
			fs.BoolVar(&quiet, "quiet", false, "do not report each malformed line")
			fs.StringVar(&reportPath, "report", "", "write the backtest report, one self-contained HTML `file`: first spams per hour against the expected band, incidents, the at-risk population")
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
			// The report's file is made before the replay, so that a path
			// that cannot be written fails now, not after hours of it.
			var rep *reportFile
			if reportPath != "" {
				if rep, err = newReportFile(reportPath); err != nil {
					return err
				}
				defer rep.abort()
			}
			adjust := func(o *detector.Options) {
				o.NoSync = true
				if rep != nil {
					o.OnHour = rep.rec.Hour
				}
			}
			var set *logSet
			if !stdin {
				if set, err = in.open(e.args); err != nil {
					return err
				}
				defer set.close()
			}
			var (
				d    *detector.Detector
				rs   *redisstore.Store
				lset *attribution.Set
			)
			switch {
			case dry:
				d, err = dryDetector(cfg, log, adjust)
			case daemon.Fleet(cfg):
				// Into the fleet's Redis (a warm start), from the fleet's
				// latest state, with the detector's in memory: its state
				// goes to Redis as the fleet's snapshot.
				d, rs, err = daemon.OpenFleet(cfg, prometheus.NewRegistry(), log, adjust, true)
			default:
				d, err = daemon.OpenDetector(cfg, prometheus.NewRegistry(), log, adjust)
			}
			if err == nil {
				// attribution.tags and .canaries, hashed with the detector's key.
				if lset, err = daemon.LoadLists(d, cfg, nil, log); err != nil {
					d.Close()
				}
			}
			if err != nil {
				if rs != nil {
					rs.Close()
				}
				return err
			}
			var rp *fleet.Replayer
			if rs != nil {
				defer rs.Close()
				node, err := daemon.NewNode(d, rs, lset, nil, nil, prometheus.NewRegistry(), log)
				if err == nil {
					rp, err = node.StartReplay(ctx, 0)
				}
				if err != nil {
					d.Close()
					return fmt.Errorf("store.redis: %w", err)
				}
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
			ro := replay.Options{
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
					if rep != nil {
						rep.rec.Event(ev)
					}
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
					if s := ev.ListSnapshotText(); s != "" {
						fmt.Fprintf(e.stderr, "  list: %s\n", s)
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
			}
			if rp != nil {
				ro.Apply = rp.Observe
				ro.Finish = func() ([]detector.Event, error) { return rp.Finish(ctx) }
			}
			st, err := replay.Run(ctx, ro, inputs...)
			stopBar()
			elapsed := time.Since(start)
			ferr := out.Flush()
			tracked, atRisk := d.Tracked(), d.AtRisk()
			cerr := d.Close()
			kinds := make([]string, 0, len(opened))
			for k := range opened {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			fmt.Fprintf(e.stderr, "replay: %d lines, %d observations (%d recipients), %d malformed, %s to %s; %d tracked, %d at risk; %d incident events",
				st.Lines, st.Observations, st.Recipients, st.Malformed, st.First.Format(time.RFC3339), st.Last.Format(time.RFC3339), tracked, atRisk, st.Events)
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
			if rp != nil && err == nil {
				fmt.Fprintf(e.stderr, "  fleet: the history is in Redis, and the state above is the fleet's snapshot: every instance loads it at its next start\n")
			}
			if st.Late > 0 {
				fmt.Fprintf(e.stderr, "  %d observations more than %s out of order (counted at the detector's current time)\n", st.Late, tolerance)
				for _, l := range late {
					fmt.Fprintf(e.stderr, "  late: %s\n", l)
				}
			}
			var rerr error
			if rep != nil {
				var names []string
				for _, in := range inputs {
					names = append(names, in.Name)
				}
				m := report.Meta{Inputs: names, Stats: st, Tracked: tracked, AtRisk: atRisk, Version: versionString()}
				if err != nil {
					m.Err = err.Error()
				}
				if rerr = rep.commit(m); rerr == nil {
					fmt.Fprintf(e.stderr, "  report: %s (%d hours, %d incidents)\n", reportPath, rep.rec.Hours(), rep.rec.Incidents())
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
			case rerr != nil:
				return fmt.Errorf("--report: %w", rerr)
			}
			return nil
		},
	}
}

// dryDetector keeps state in memory; it uses the configured key if the key
// file exists (so ids match the daemon's) and a throwaway key otherwise.
func dryDetector(cfg config.Config, log *zap.Logger, adjust func(*detector.Options)) (*detector.Detector, error) {
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
	if adjust != nil {
		adjust(&o)
	}
	return detector.New(o)
}

// reportFile is --report's file: written to a temporary file beside it and
// renamed into place when complete.
type reportFile struct {
	path string
	tmp  *os.File
	rec  *report.Recorder
}

func newReportFile(path string) (*reportFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("--report: %w", err)
	}
	return &reportFile{path: path, tmp: tmp, rec: report.NewRecorder()}, nil
}

func (r *reportFile) commit(m report.Meta) error {
	m.Title = "spamsurge backtest: " + filepath.Base(r.path)
	if len(m.Inputs) == 1 {
		m.Title = "spamsurge backtest of " + filepath.Base(m.Inputs[0])
	} else if len(m.Inputs) > 1 {
		m.Title = fmt.Sprintf("spamsurge backtest of %s and %d more", filepath.Base(m.Inputs[len(m.Inputs)-1]), len(m.Inputs)-1)
	}
	w := bufio.NewWriter(r.tmp)
	err := r.rec.Write(w, m)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = r.tmp.Chmod(0o644)
	}
	if cerr := r.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(r.tmp.Name(), r.path)
	}
	if err != nil {
		os.Remove(r.tmp.Name())
	}
	r.tmp = nil
	return err
}

// abort removes the temporary file of a report never committed.
func (r *reportFile) abort() {
	if r.tmp != nil {
		r.tmp.Close()
		os.Remove(r.tmp.Name())
	}
}
