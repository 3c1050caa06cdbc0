package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlusnetLeaksOneSourceWithItsCanaries(t *testing.T) {
	var buf bytes.Buffer
	tr, err := Run(Config{Scenario: "plusnet", Seed: 3, Addresses: 5000, Subaddresses: true}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if tr.LeakedSource != LeakedSource || tr.SubaddressDetail != "shop" {
		t.Fatalf("truth %q %q", tr.LeakedSource, tr.SubaddressDetail)
	}
	inSource := map[string]bool{}
	for _, i := range tr.sources[LeakedSource] {
		inSource[address(i)] = true
	}
	for _, a := range tr.Leaks[0].Addresses {
		if !inSource[a] {
			t.Fatalf("leaked %s is not in %s", a, LeakedSource)
		}
	}
	stream := buf.String()
	hits := 0
	for _, c := range tr.Canaries {
		n := strings.Count(stream, `"`+c.Address+`"`)
		switch {
		case c.Source == LeakedSource && (c.Hit == nil || n != 1 || !strings.Contains(stream, `{"time":"`+c.Hit.Format("2006-01-02T15:04:05Z")+`","rcpt":["`+c.Address+`"],"spam":true`)):
			t.Fatalf("leaked canary %+v appears %d times", c, n)
		case c.Source != LeakedSource && (c.Hit != nil || n != 0):
			t.Fatalf("canary %+v of another source appears %d times", c, n)
		}
		if c.Hit != nil {
			hits++
			if c.Hit.Before(tr.Leaks[0].Start) || c.Hit.After(tr.Leaks[0].End) {
				t.Fatalf("canary hit %v outside the leak %v–%v", c.Hit, tr.Leaks[0].Start, tr.Leaks[0].End)
			}
		}
	}
	if hits != CanariesPerSource || len(tr.Canaries) != CanariesPerSource*len(Sources) {
		t.Fatalf("%d canaries hit of %d", hits, len(tr.Canaries))
	}
	if n := strings.Count(stream, "+shop@"); n < len(tr.Leaks[0].Addresses)/4 {
		t.Fatalf("%d sub-addresses in the stream", n)
	}

	dir := t.TempDir()
	section, err := tr.WriteLists(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Sources {
		b, err := os.ReadFile(filepath.Join(dir, s+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(b), "\n") - 1; got != len(tr.sources[s]) || got == 0 {
			t.Fatalf("%s: %d lines for %d members", s, got, len(tr.sources[s]))
		}
		if !strings.Contains(section, "{name: "+s+", file: "+filepath.Join(dir, s+".txt")+"}") {
			t.Fatalf("config section %s", section)
		}
	}
	if got := len(tr.sources[LeakedSource]); got != 500 {
		t.Fatalf("%s has %d members, want the segment of 500", LeakedSource, got)
	}
}

func TestOtherScenariosLeakNoSource(t *testing.T) {
	for _, s := range []string{"baseline", "drip"} {
		var buf bytes.Buffer
		tr, err := Run(Config{Scenario: s, Seed: 3, Addresses: 3000}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if tr.LeakedSource != "" || strings.Contains(buf.String(), "canary") {
			t.Fatalf("%s: leaked source %q or canaries in the stream", s, tr.LeakedSource)
		}
		for _, c := range tr.Canaries {
			if c.Hit != nil {
				t.Fatalf("%s: canary hit %+v", s, c)
			}
		}
		if len(tr.sources[LeakedSource]) != 300 {
			t.Fatalf("%s: %s has %d members", s, LeakedSource, len(tr.sources[LeakedSource]))
		}
	}
	var tr Truth
	if _, err := tr.WriteLists(t.TempDir()); err == nil {
		t.Fatal("a truth read back from JSON wrote lists")
	}
}
