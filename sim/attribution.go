package sim

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sources are the population's source lists (attribution.tags): who has a
// webmail login, who is in an address book, whom customers wrote to, who
// gets the newsletter, and the billing system's customer segment. They
// overlap, as real ones do. Membership is drawn from its own random stream,
// so the observation stream does not depend on it.
var Sources = []string{"webmail-login", "addressbook", "sent-to", "newsletter", "billing-db"}

// LeakedSource is the source whose list plusnet leaks: a contiguous tenth
// of the population (a customer segment), with its canaries.
const LeakedSource = "billing-db"

// CanariesPerSource are planted in every source.
const CanariesPerSource = 3

// subaddressDetail is what a third of the leaked addresses carry with
// Config.Subaddresses ("user+shop@": they gave the leaking party that form).
const subaddressDetail = "shop"

// Canary is one planted address and when the leak reached it.
type Canary struct {
	Address string     `json:"address"`
	Source  string     `json:"source"`
	Hit     *time.Time `json:"hit,omitempty"`
}

func canaryAddress(k int) string {
	return fmt.Sprintf("canary%03d@%s", k, domains[k%len(domains)])
}

// leakExtras adds what the plusnet list carries besides the population:
// its source's canaries, and (Config.Subaddresses) sub-addresses.
func (tr *Truth) leakExtras(cfg Config, enc *encoder, msgs []msg, c *campaign, leaked []int) []msg {
	tr.LeakedSource = LeakedSource
	tr.canaryHit = map[int]time.Time{}
	s := len(Sources) - 1 // billing-db
	for j := 0; j < CanariesPerSource; j++ {
		k := s*CanariesPerSource + j
		t := c.start.Add(time.Duration(j+1) * c.dur / (CanariesPerSource + 1))
		tr.canaryHit[k] = t
		msgs = append(msgs, msg{t: t, rcpt: []int{enc.n + k}, spam: true, c: c, n: 7919 * (k + 1)})
	}
	if cfg.Subaddresses {
		tr.SubaddressDetail = subaddressDetail
		enc.sub, enc.subOf = map[int]string{}, c
		for j, i := range leaked {
			if j%3 == 0 {
				enc.sub[i] = subaddressDetail
			}
		}
	}
	return msgs
}

// assignSources draws the source lists and fills Canaries.
func (tr *Truth) assignSources(cfg Config) {
	n := tr.Addresses
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xa77b))
	share := map[string]float64{"webmail-login": 0.55, "addressbook": 0.15, "sent-to": 0.25, "newsletter": 0.20}
	tr.sources = map[string][]int{}
	seg := tr.segment
	if seg == [2]int{} {
		lo := rng.IntN(n - n/10)
		seg = [2]int{lo, lo + n/10}
	}
	for i := 0; i < n; i++ {
		for _, s := range Sources {
			in := i >= seg[0] && i < seg[1]
			if p, ok := share[s]; ok {
				in = rng.Float64() < p
			}
			if in {
				tr.sources[s] = append(tr.sources[s], i)
			}
		}
	}
	tr.Canaries = nil
	for si, s := range Sources {
		for j := 0; j < CanariesPerSource; j++ {
			k := si*CanariesPerSource + j
			c := Canary{Address: canaryAddress(k), Source: s}
			if t, ok := tr.canaryHit[k]; ok {
				c.Hit = &t
			}
			tr.Canaries = append(tr.Canaries, c)
		}
	}
}

// WriteLists writes the source lists into dir — <source>.txt, one address
// a line; canaries-<source>.txt; known-details.txt — and returns the
// attribution section of a config file naming them. Only the Truth that
// Run returned knows the lists (they are not in its JSON).
func (tr *Truth) WriteLists(dir string) (string, error) {
	if tr.sources == nil {
		return "", fmt.Errorf("sim: the source lists are known only to the run that made this truth")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var cfg strings.Builder
	cfg.WriteString("attribution:\n  tags:\n")
	write := func(name string, lines []string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	}
	for _, s := range Sources {
		lines := []string{"# " + s + " (simulated)"}
		for _, i := range tr.sources[s] {
			lines = append(lines, tr.address(i))
		}
		p, err := write(s+".txt", lines)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&cfg, "    - {name: %s, file: %s}\n", s, p)
	}
	cfg.WriteString("  canaries:\n")
	for _, s := range Sources {
		var lines []string
		for _, c := range tr.Canaries {
			if c.Source == s {
				lines = append(lines, c.Address)
			}
		}
		p, err := write("canaries-"+s+".txt", lines)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&cfg, "    - {source: %s, file: %s}\n", s, p)
	}
	p, err := write("known-details.txt", []string{subaddressDetail})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&cfg, "  known_details: %s\n", p)
	return cfg.String(), nil
}
