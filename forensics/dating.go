// Package forensics answers the security team's questions about a leak
// from the detector's aggregates: when the list was copied (Date), and
// what kind of list it is.
//
// # Dating a list
//
// A list can only hold addresses that existed when it was copied. The
// detector knows, per address, when it first got mail, and keeps two hour
// histograms of it (package recipients, firstseen.go): the at-risk
// population by first mail, and every address ever first mailed (the
// discovery curve). An incident keeps its hits (first spams) by their
// first mail and by the hour they were hit. If the list was copied at T,
// an at-risk address first mailed at m ≤ T is on it at some rate r, and
// one first mailed after T only if it already existed at T but had not
// had mail yet: with probability w(m; T), which the delay between an
// address's creation and its first mail sets. The hits are then the
// population thinned by r·w(m; T)·E(m), where E(m) is the share of the
// campaign sent after the address matured (an address that matured late
// was exposed to less of it), and given their number the hits' first-mail
// hours are multinomial: the likelihood of T.
//
// The delay is estimated from the data: the addresses that existed before
// the history began turn up at the rate their first mail after the start
// comes, and for mail that arrives as a Poisson process per address (of a
// rate that varies between addresses) that waiting time has the same
// distribution as the delay from creation to first mail. The discovery
// curve (first-seen counts per day) is fitted as N0·g(x) + b·G(x): N0
// addresses existing at the start, found with the delay density g (a
// mixture of exponentials over fixed rates, from an hour to a year), and
// b new addresses a day, each found after a delay of the same law. Real
// new accounts often get a welcome mail at once, so the estimated delay
// is, if anything, too long: the interval is then wider, not wrong.
//
// With a flat prior on T over the history (from the first address seen to
// the incident's first hit), the posterior gives an equal-tailed 95 %
// interval. A copy before the history began cannot be told apart from any
// other such time (every address then predates it): when that hypothesis
// is not clearly worse than the best in-history T, or the evidence is
// otherwise thin, Date says why instead of giving an interval.
package forensics

import (
	"fmt"
	"math"
	"time"
)

// Confidence is the probability an interval is meant to hold: the share
// of leaks whose true copy time it brackets (TestDateCoverage). The
// posterior interval computed for it is the wider credible one: the
// model is an approximation (the edge's family, a flat prior), and the
// credible level that gives this coverage in simulation is credible.
const (
	Confidence = 0.95
	credible   = 0.95
)

// Minimums below which a list is not dated.
const (
	MinHits        = 20
	minHistoryDays = 14
)

// Snapshot is when the list was copied: a Confidence interval.
type Snapshot struct {
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	Confidence float64   `json:"confidence"`
}

// Evidence is what Date needs. Hour maps are keyed by hours since the
// Unix epoch.
type Evidence struct {
	// Seen: every tracked address whose first message was not spam, by
	// the hour of its first mail.
	Seen Hours
	// Risk: the at-risk population by the hour of its first mail (the
	// incident's hits excluded: they left it).
	Risk Hours
	// Warmup: how long an address has had mail before it is at risk.
	Warmup time.Duration
	// HitsFirstMail and HitsAt: the incident's hits by the hour of their
	// first mail and by the hour of their first spam.
	HitsFirstMail map[int64]int
	HitsAt        map[int64]int
}

// Hours counts by hour: N[i] is hour From+i (hours since the epoch).
type Hours struct {
	From int64
	N    []int32
}

func (h Hours) at(hr int64) float64 {
	if i := hr - h.From; i >= 0 && i < int64(len(h.N)) {
		return float64(h.N[i])
	}
	return 0
}

// first and end are the first hour with a count and one past the last.
func (h Hours) first() (int64, bool) {
	for i, n := range h.N {
		if n > 0 {
			return h.From + int64(i), true
		}
	}
	return 0, false
}

func (h Hours) end() int64 {
	for i := len(h.N) - 1; i >= 0; i-- {
		if h.N[i] > 0 {
			return h.From + int64(i) + 1
		}
	}
	return h.From
}

func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

// Date estimates when the incident's list was copied. It returns the
// interval, or nil and the reason the evidence is too thin.
func Date(ev Evidence) (*Snapshot, string) {
	hits := 0
	var firstHit int64 = math.MaxInt64
	for _, n := range ev.HitsFirstMail {
		hits += n
	}
	for h, n := range ev.HitsAt {
		if n > 0 && h < firstHit {
			firstHit = h
		}
	}
	if hits < MinHits {
		return nil, fmt.Sprintf("%d first spams: at least %d are needed to date the list", hits, MinHits)
	}
	t0, ok := ev.Seen.first()
	if !ok || firstHit == math.MaxInt64 {
		return nil, "no first-seen history"
	}
	if days := float64(firstHit-t0) / 24; days < minHistoryDays {
		return nil, fmt.Sprintf("%.0f days of history before the first spam: at least %d are needed", days, minHistoryDays)
	}
	// Hour grid of first mails: t0 … the last hour with an at-risk
	// address or a hit. T runs over the same bins up to the first hit,
	// and before t0 (copied before the history began).
	end := max(ev.Risk.end(), firstHit)
	for h := range ev.HitsFirstMail {
		end = max(end, h+1)
	}
	m := int(end - t0)
	bin := max(1, (m+maxBins-1)/maxBins) // hours a bin
	nb := (m + bin - 1) / bin
	pop := make([]float64, nb) // at-risk (hits included) by first mail
	hit := make([]float64, nb)
	expo := make([]float64, nb) // E: share of hits after the bin matured
	for h := t0; h < end; h++ {
		pop[int(h-t0)/bin] += max(ev.Risk.at(h), 0) // a count never below 0, even from a damaged tally
	}
	for h, n := range ev.HitsFirstMail {
		i := max(0, int(h-t0)/bin) // first mailed before the histogram began: its first bin
		pop[i] += float64(n)
		hit[i] += float64(n)
	}
	// Exposure: the share of the hits at or after each bin matured.
	lag := int64(math.Ceil(ev.Warmup.Hours()))
	for i := range nb {
		matured := t0 + int64(i*bin+bin) + lag // the bin's last address matured by then
		after := 0
		for h, n := range ev.HitsAt {
			if h >= matured {
				after += n
			}
		}
		expo[i] = float64(after) / float64(hits)
		if hit[i] > 0 && expo[i] == 0 {
			expo[i] = 1 / float64(hits) // a hit proves some exposure
		}
	}
	// T's bins: pre bins before t0 (back to preDays), then t0's bins up
	// to the one holding the first hit.
	pre := (preDays*24 + bin - 1) / bin
	tmax := int(firstHit-t0) / bin
	nt := pre + tmax + 1
	// For T at the end of bin j: w = 1 up to j, alpha+(1-alpha)·decay
	// after. The denominator is Σ pe·w = P(≤j) + alpha·P(>j) +
	// (1-alpha)·C(j), C(j) = Σ_{i>j} pe[i]·decay[i-j], one correlation
	// per scale; the numerator runs over the bins with hits only.
	pe := make([]float64, nb)
	cum := make([]float64, nb+1) // cum[i]: Σ pe below bin i
	var hitBins []int
	for i := range nb {
		pe[i] = pop[i] * expo[i]
		cum[i+1] = cum[i] + pe[i]
		if hit[i] > 0 {
			hitBins = append(hitBins, i)
		}
	}
	ll := make([]float64, 0, nt*len(edgeShares)*len(edgeScales))
	best := math.Inf(-1)
	decay := make([]float64, nb+pre+1)  // e^{-y/τ} at lag L bins
	logw := make([]float64, len(decay)) // log w at lag L, for one (alpha, τ)
	c := make([]float64, nt)
	for _, tau := range edgeScales {
		for L := range decay {
			decay[L] = math.Exp(-(float64(L) - 0.5) * float64(bin) / 24 / tau)
		}
		for jt := range nt {
			j := jt - pre
			sum := 0.0
			for i := max(j+1, 0); i < nb; i++ {
				if d := decay[i-j]; d < 1e-15 {
					break
				} else {
					sum += pe[i] * d
				}
			}
			c[jt] = sum
		}
		for _, alpha := range edgeShares {
			alpha = max(alpha, 1e-9) // w's floor, the same in both sums
			for L := range logw {
				logw[L] = math.Log(alpha + (1-alpha)*decay[L])
			}
			for jt := range nt {
				j := jt - pre // T at the end of bin j (j < 0: before t0)
				below := cum[max(0, min(j+1, nb))]
				den := below + alpha*(cum[nb]-below) + (1-alpha)*c[jt]
				num := 0.0
				for _, i := range hitBins {
					if i > j {
						num += hit[i] * logw[i-j]
					}
				}
				l := num - float64(hits)*math.Log(max(den, 1e-300))
				ll = append(ll, l)
				best = math.Max(best, l)
			}
		}
	}
	post := make([]float64, nt)
	for k, l := range ll {
		post[k%nt] += math.Exp(l - best)
	}
	total := 0.0
	for _, p := range post {
		total += p
	}
	lo, hi := -1, nt-1
	acc := 0.0
	for j, p := range post {
		acc += p / total
		if lo < 0 && acc >= (1-credible)/2 {
			lo = j
		}
		if acc >= 1-(1-credible)/2 {
			hi = j
			break
		}
	}
	if lo < pre {
		return nil, fmt.Sprintf("the list may be older than the history (first mail seen %s): too few of the addresses first seen since then to tell", hourTime(t0).Format(time.DateOnly))
	}
	lo, hi = lo-pre, hi-pre
	s := &Snapshot{
		NotBefore:  hourTime(t0 + int64(lo*bin)),
		NotAfter:   hourTime(min(t0+int64(hi*bin+bin), firstHit+1)),
		Confidence: Confidence,
	}
	if width := s.NotAfter.Sub(s.NotBefore); width > maxWidth && width > hourTime(firstHit).Sub(hourTime(t0))/2 {
		return nil, fmt.Sprintf("the interval would be %.0f days wide: too few addresses first seen in that time to tell", width.Hours()/24)
	}
	return s, ""
}

// The edge's family (package doc): of the addresses first mailed y days
// after T, the share that existed at T is alpha + (1-alpha)·e^{-y/tau}.
var (
	edgeShares = []float64{0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1}
	edgeScales = []float64{1.0 / 24, 0.125, 0.25, 0.5, 1} // days
)

const (
	// maxBins bounds the grid (the likelihood costs bins² operations).
	maxBins = 800
	// preDays: T's grid reaches this far before the history (a copy
	// then and one earlier look alike: every address predates both).
	preDays = 7
	// maxWidth: an interval wider than this and than half the history
	// says nothing useful.
	maxWidth = 30 * 24 * time.Hour
)

// String says the interval in words.
func (s *Snapshot) String() string {
	const f = "2006-01-02 15:04"
	return fmt.Sprintf("copied between %s and %s UTC (%.0f %% interval)", s.NotBefore.UTC().Format(f), s.NotAfter.UTC().Format(f), s.Confidence*100)
}
