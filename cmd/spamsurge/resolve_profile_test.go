package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/sim"
)

// resolve --profile on a replayed leak (the backup scenario, the daemon
// stopped): the incident's recipients, and beside them the other
// customers that share its profile, here the addresses at risk when it
// started and first mailed before the list was copied; the csv says which
// is which, and no candidate breaks the profile.
func TestResolveProfile(t *testing.T) {
	dir := t.TempDir()
	var hist bytes.Buffer
	if _, err := sim.Run(sim.Config{Scenario: "backup", Seed: 1, Addresses: 6000}, &hist); err != nil {
		t.Fatal(err)
	}
	// What the stream says of each address: its first mail and first spam.
	first, firstSpam := map[string]time.Time{}, map[string]time.Time{}
	sc := bufio.NewScanner(bytes.NewReader(hist.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range o.Rcpt {
			if _, ok := first[r]; !ok {
				first[r] = o.Time
			}
			if _, ok := firstSpam[r]; !ok && o.Spam {
				firstSpam[r] = o.Time
			}
		}
	}
	var customers strings.Builder
	for a := range first {
		customers.WriteString(a + "\n")
	}
	customers.WriteString("nobody@example.net\n")
	obs := testkit.WriteFile(t, dir, "history.jsonl", hist.String())
	custFile := testkit.WriteFile(t, dir, "customers.txt", customers.String())
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.HTTP.Listen = closedPort(t)
	cfgFile := testkit.WriteFile(t, dir, "spamsurge.yaml", "store: {path: "+cfg.Store.Path+"}\nhttp: {listen: \""+cfg.HTTP.Listen+"\"}\n")
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", cfgFile, "--json", obs}, &out, &errb); code != 0 {
		t.Fatalf("replay: %s", errb.String())
	}
	var in detector.Incident
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev detector.Event
		if err := jsonUnmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == detector.KindSurge {
			in = ev.Incident
		}
	}
	if in.ListSnapshot == nil || in.Profile == nil || in.Profile.Candidates == nil {
		t.Fatalf("the surge has no dated profile: %+v", in)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"resolve", "--config", cfgFile, "--incident", in.ID, "--addresses", custFile, "--profile", "--format", "csv"}, &out, &errb); code != 0 {
		t.Fatalf("resolve --profile: exit %d: %s", code, errb.String())
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) < 2 || strings.Join(rows[0], ",") != "address,incident,match" {
		t.Fatalf("csv %v (%v)", rows, err)
	}
	hits, cands := 0, 0
	for _, r := range rows[1:] {
		a, why := r[0], r[2]
		switch why {
		case "recipient":
			hits++
		case "profile":
			cands++
			f := first[a]
			if f.After(in.ListSnapshot.NotAfter) || f.Add(168*time.Hour).After(in.StartedAt) {
				t.Errorf("candidate %s first mailed %s: after the copy (%s) or not established at the start (%s)", a, f, in.ListSnapshot.NotAfter, in.StartedAt)
			}
			if s, ok := firstSpam[a]; ok && s.Before(in.StartedAt) {
				t.Errorf("candidate %s was spammed at %s, before the incident: not at risk", a, s)
			}
		default:
			t.Fatalf("row %v", r)
		}
	}
	t.Logf("%d recipients, %d candidates (estimate %+v); %s", hits, cands, *in.Profile.Candidates, strings.TrimSpace(errb.String()))
	if hits != in.Recipients || cands == 0 {
		t.Fatalf("%d recipients printed of %d, %d candidates", hits, in.Recipients, cands)
	}
	// The estimate is of the same population (the hits included).
	if total, c := hits+cands, in.Profile.Candidates; float64(total) < 0.7*float64(c.Low) || float64(total) > 1.3*float64(c.High) {
		t.Errorf("%d printed, the profile estimated %d (%d to %d)", total, c.Estimate, c.Low, c.High)
	}
	if !strings.Contains(errb.String(), "more candidates share its profile") {
		t.Errorf("no summary of the candidates: %s", errb.String())
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
