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

func runSimulate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "", "scenario `name`: "+strings.Join(sim.Scenarios, ", "))
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("out", "", "output `file` (default: stdout); the truth goes to FILE.truth.json")
	n := fs.Int("addresses", 100000, "population size")
	truthPath := fs.String("truth", "", "truth `file` (default: OUT.truth.json, or none with stdout)")
	keyFile := fs.String("key-file", "", "address key `file`: adds the leaked addresses' hash ids to the truth")
	lists := fs.String("lists", "", "`dir` to write the source lists, canaries and known sub-address details into, with attribution.yaml (a config section naming them)")
	subaddr := fs.Bool("subaddresses", false, "a third of plusnet's leaked addresses appear as user+shop@ (needs detector.subaddress_separators: \"+\")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spamsurge simulate --scenario baseline|plusnet|drip [--seed N] [--out FILE] [--addresses N]\n\nWrites a synthetic observation stream (JSONL) with a known truth:\n  baseline  90 days, no leak: weekly rhythm, campaigns, a dictionary attack, a quiet holiday week\n  plusnet   a burst leak of one source's list (billing-db: 0.5 % of the at-risk, and its canaries) after six weeks\n  drip      a slow leak of 1,000 addresses over three days after six weeks")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *scenario == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var w io.Writer = stdout
	if *out != "" && *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "spamsurge simulate: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
		if *truthPath == "" {
			*truthPath = *out + ".truth.json"
		}
	}
	tr, err := sim.Run(sim.Config{Scenario: *scenario, Seed: *seed, Addresses: *n, Subaddresses: *subaddr}, w)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge simulate: %v\n", err)
		return 1
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "spamsurge simulate: %v\n", err)
			return 1
		}
	}
	if *keyFile != "" {
		key, err := addr.LoadKey(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "spamsurge simulate: %v\n", err)
			return 1
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
	if *lists != "" {
		section, err := tr.WriteLists(*lists)
		if err == nil {
			err = os.WriteFile(filepath.Join(*lists, "attribution.yaml"), []byte(section), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "spamsurge simulate: --lists: %v\n", err)
			return 1
		}
	}
	if *truthPath != "" {
		b, _ := json.MarshalIndent(tr, "", "  ")
		if err := os.WriteFile(*truthPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "spamsurge simulate: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "simulate %s: %d lines, %s to %s, %d leak(s)\n", tr.Scenario, tr.Lines, tr.Start.Format("2006-01-02"), tr.End.Format("2006-01-02"), len(tr.Leaks))
	return 0
}
