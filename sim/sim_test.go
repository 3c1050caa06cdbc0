package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestScenariosAreDeterministicAndOrdered(t *testing.T) {
	for _, s := range Scenarios {
		var a, b bytes.Buffer
		ta, err := Run(Config{Scenario: s, Seed: 3, Addresses: 2000}, &a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Run(Config{Scenario: s, Seed: 3, Addresses: 2000}, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("%s: same seed, different streams", s)
		}
		sc := bufio.NewScanner(&a)
		sc.Buffer(nil, 1<<20)
		var last time.Time
		lines, spam, rejected := 0, 0, 0
		for sc.Scan() {
			var o struct {
				Time     time.Time `json:"time"`
				Rcpt     []string  `json:"rcpt"`
				Rejected []string  `json:"rejected"`
				Spam     *bool     `json:"spam"`
			}
			if err := json.Unmarshal(sc.Bytes(), &o); err != nil || o.Spam == nil || o.Rcpt == nil {
				t.Fatalf("%s line %d: %v %s", s, lines+1, err, sc.Text())
			}
			if o.Time.Before(last) {
				t.Fatalf("%s line %d: time goes back", s, lines+1)
			}
			last = o.Time
			lines++
			if *o.Spam {
				spam++
			}
			rejected += len(o.Rejected)
		}
		if lines != ta.Lines || spam == 0 || spam == lines {
			t.Fatalf("%s: %d lines (truth %d), %d spam", s, lines, ta.Lines, spam)
		}
		switch s {
		case "baseline":
			if len(ta.Leaks) != 0 || len(ta.Dictionary) != 1 || ta.Holiday == nil || rejected < 1000 {
				t.Fatalf("baseline truth %+v, %d rejected", ta, rejected)
			}
			if got := ta.End.Sub(ta.Start); got != 90*24*time.Hour {
				t.Fatalf("baseline lasts %v", got)
			}
		case "plusnet", "drip":
			if len(ta.Leaks) != 1 || len(ta.Leaks[0].Addresses) == 0 || !ta.Leaks[0].Start.After(ta.Start.Add(40*24*time.Hour)) {
				t.Fatalf("%s truth %+v", s, ta.Leaks)
			}
			if s == "drip" && (len(ta.Leaks[0].Addresses) != 1000 || ta.Leaks[0].End.Sub(ta.Leaks[0].Start) != 72*time.Hour) {
				t.Fatalf("drip leak %d addresses over %v", len(ta.Leaks[0].Addresses), ta.Leaks[0].End.Sub(ta.Leaks[0].Start))
			}
			// Every leaked address appears in the stream as spam.
			for _, a := range ta.Leaks[0].Addresses[:min(10, len(ta.Leaks[0].Addresses))] {
				if !strings.Contains(b.String(), `"`+a+`"`) {
					t.Fatalf("%s: leaked %s not in stream", s, a)
				}
			}
		}
	}
	if _, err := Run(Config{Scenario: "nope"}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown scenario accepted")
	}
}
