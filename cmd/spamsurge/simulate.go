package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/sim"
)

func simulateCommand() command {
	var (
		scenario, out, truthPath, keyFile, lists string
		seed                                     uint64
		n, domains                               int
		subaddr                                  bool
	)
	return command{
		name:    "simulate",
		summary: "write a synthetic observation stream with a known truth",
		args:    "--scenario " + strings.Join(sim.Scenarios, "|") + " [--seed N] [--out FILE] [--addresses N]",
		help:    "Writes a synthetic observation stream (JSONL) with a known truth:\n  baseline  90 days, no leak: weekly rhythm, campaigns, a dictionary attack, a quiet holiday week\n  plusnet   a burst leak of one source's list (billing-db: 0.5 % of the at-risk, and its canaries) after six weeks\n  drip      a slow leak of 1,000 addresses over three days after six weeks\n  shopleak  60 customer domains of Zipf-like sizes; 40 addresses of the one nearest 750 leak over 8 hours",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&scenario, "scenario", "", "scenario `name`: "+strings.Join(sim.Scenarios, ", "))
			fs.Uint64Var(&seed, "seed", 1, "random seed")
			fs.StringVar(&out, "out", "", "output `file` (default: stdout); the truth goes to FILE.truth.json")
			fs.IntVar(&n, "addresses", 100000, "population size")
			fs.StringVar(&truthPath, "truth", "", "truth `file` (default: OUT.truth.json, or none with stdout)")
			fs.StringVar(&keyFile, "key-file", "", "address key `file`: adds the leaked addresses' hash ids to the truth")
			fs.StringVar(&lists, "lists", "", "`dir` to write the source lists, canaries and known sub-address details into, with attribution.yaml (a config section naming them)")
			fs.IntVar(&domains, "domains", 0, "spread the addresses over this many customer domains of Zipf-like sizes (shopleak: 60 when 0)")
			fs.BoolVar(&subaddr, "subaddresses", false, "a third of plusnet's leaked addresses appear as user+shop@ (needs detector.subaddress_separators: \"+\")")
		},
		run: func(_ context.Context, e *env) error {
			if scenario == "" || len(e.args) > 0 {
				return errUsage
			}
			var w io.Writer = e.stdout
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
				if truthPath == "" {
					truthPath = out + ".truth.json"
				}
			}
			tr, err := sim.Run(sim.Config{Scenario: scenario, Seed: seed, Addresses: n, Subaddresses: subaddr, Domains: domains}, w)
			if err != nil {
				return err
			}
			if f, ok := w.(*os.File); ok && f != os.Stdout {
				if err := f.Close(); err != nil {
					return err
				}
			}
			if keyFile != "" {
				key, err := addr.LoadKey(keyFile)
				if err != nil {
					return err
				}
				n := addr.Normalizer{FoldLocal: true, Separators: "+"}
				for i := range tr.Leaks {
					for _, a := range tr.Leaks[i].Addresses {
						norm, _, err := n.Normalize(a)
						if err == nil {
							tr.Leaks[i].LeakedIDs = append(tr.Leaks[i].LeakedIDs, key.Hash(norm).String())
						}
					}
				}
			}
			if lists != "" {
				section, err := tr.WriteLists(lists)
				if err == nil {
					err = os.WriteFile(filepath.Join(lists, "attribution.yaml"), []byte(section), 0o644)
				}
				if err != nil {
					return fmt.Errorf("--lists: %w", err)
				}
			}
			if truthPath != "" {
				b, _ := json.MarshalIndent(tr, "", "  ")
				if err := os.WriteFile(truthPath, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "simulate %s: %d lines, %s to %s, %d leak(s)\n", tr.Scenario, tr.Lines, tr.Start.Format("2006-01-02"), tr.End.Format("2006-01-02"), len(tr.Leaks))
			return nil
		},
	}
}
