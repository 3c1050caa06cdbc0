package attribution

import (
	"fmt"
	"math"
	"sort"
)

// Count is one row of the input to Rank: how many of an incident's
// recipients are in a tag, and how many at-risk addresses the tag had
// before the incident (the incident's own recipients included).
type Count struct {
	Tag        string
	InIncident int
	Population int
}

// TagLift is one row of an incident's tag ranking.
type TagLift struct {
	Tag        string `json:"tag"`
	InIncident int    `json:"in_incident"`
	// Share is InIncident over the incident's recipients.
	Share float64 `json:"share"`
	// PopulationShare is the tag's share of the at-risk population.
	PopulationShare float64 `json:"population_share"`
	// Lift is Share / PopulationShare: 1 when the incident draws from the
	// tag no more than from anywhere else.
	Lift float64 `json:"lift"`
	// Score is −log10 of the binomial tail P(X ≥ InIncident) for X ~
	// Bin(recipients, PopulationShare): how unlikely so many of the
	// incident's addresses would be in the tag by chance.
	Score float64 `json:"score"`
}

// Guards keep a tag from being named on thin evidence.
type Guards struct {
	// MinCount is the fewest incident recipients in the top tag (5).
	MinCount int
	// MinLift is the least lift of the top tag (1.25): a large enough
	// incident makes any small imbalance significant, and an imbalance
	// that small is not a source.
	MinLift float64
	// MinScore is the least Score (3, a tail of 10⁻³), raised by
	// log10(rows) for the number of tags tested (Bonferroni).
	MinScore float64
}

// DefaultGuards are the guards Rank uses.
var DefaultGuards = Guards{MinCount: 5, MinLift: 1.25, MinScore: 3}

// maxScore caps Score and Lift (JSON has no infinity).
const maxScore = 999

// Rank computes the lift of every tag among n incident recipients drawn
// from an at-risk population of pop addresses, ranked by score (then lift,
// then name), and names the top tag if it passes g; top is "" when no tag
// stands out (or n is too small to say).
func Rank(n, pop int, counts []Count, g Guards) (rows []TagLift, top string) {
	rows = make([]TagLift, 0, len(counts))
	for _, c := range counts {
		r := TagLift{Tag: c.Tag, InIncident: c.InIncident}
		if n > 0 {
			r.Share = float64(c.InIncident) / float64(n)
		}
		if pop > 0 {
			r.PopulationShare = math.Min(1, float64(c.Population)/float64(pop))
		}
		switch {
		case r.PopulationShare > 0:
			r.Lift = math.Min(maxScore, r.Share/r.PopulationShare)
		case r.Share > 0:
			r.Lift = maxScore
		}
		r.Score = BinomialTailScore(c.InIncident, n, r.PopulationShare)
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Lift != b.Lift {
			return a.Lift > b.Lift
		}
		return a.Tag < b.Tag
	})
	if len(rows) == 0 || n < g.MinCount {
		return rows, ""
	}
	r := rows[0]
	if r.InIncident >= g.MinCount && r.Lift >= g.MinLift && r.Score >= g.MinScore+math.Log10(float64(len(rows))) {
		top = r.Tag
	}
	return rows, top
}

// BinomialTailScore is −log10 P(X ≥ k) for X ~ Bin(n, p), capped at 999.
func BinomialTailScore(k, n int, p float64) float64 {
	switch {
	case k <= 0 || n <= 0 || p >= 1:
		return 0
	case k > n:
		return maxScore
	case p <= 0:
		return maxScore // k ≥ 1 events of probability 0
	}
	lp := logBinomialTail(k, n, p)
	return math.Min(maxScore, math.Max(0, -lp/math.Ln10))
}

// logBinomialTail is ln P(X ≥ k) = ln I_p(k, n−k+1), the regularised
// incomplete beta function, by its continued fraction (Numerical Recipes
// §6.4) in log space, so tails far below 10⁻³⁰⁸ stay exact.
func logBinomialTail(k, n int, p float64) float64 {
	a, b := float64(k), float64(n-k+1)
	lbeta := lgamma(a) + lgamma(b) - lgamma(a+b)
	front := a*math.Log(p) + b*math.Log1p(-p) - lbeta
	if p < (a+1)/(a+b+2) {
		cf, ok := betaCF(a, b, p)
		if !ok {
			return chernoffTail(k, n, p)
		}
		return front + math.Log(cf) - math.Log(a)
	}
	// The tail is large here: I = 1 − I_{1−p}(b, a).
	cf, ok := betaCF(b, a, 1-p)
	if !ok {
		return 0
	}
	return math.Log(math.Max(1e-300, 1-math.Exp(front+math.Log(cf)-math.Log(b))))
}

// chernoffTail bounds ln P(X ≥ k) by −n·KL(k/n ‖ p), for the rare input
// where the continued fraction does not converge.
func chernoffTail(k, n int, p float64) float64 {
	q := float64(k) / float64(n)
	kl := q * math.Log(q/p)
	if q < 1 {
		kl += (1 - q) * math.Log((1-q)/(1-p))
	}
	return -float64(n) * kl
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

func betaCF(a, b, x float64) (float64, bool) {
	const (
		maxIter = 200000
		eps     = 1e-13
		fpmin   = 1e-300
	)
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < fpmin {
		d = fpmin
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			return h, true
		}
	}
	return h, false
}

// Sentence words an incident's attribution for people (logs, alerts):
// "91 % of newly spammed addresses are in `addressbook` (8 % of the
// population), lift 11×". rows and top are Rank's; n is the recipients.
// It is "" when there are no rows (no tags configured).
func Sentence(rows []TagLift, top string, n int) string {
	if len(rows) == 0 {
		return ""
	}
	if top == "" {
		return fmt.Sprintf("no source list stands out among the %d newly spammed addresses", n)
	}
	var r TagLift
	for _, x := range rows {
		if x.Tag == top {
			r = x
		}
	}
	where := "in `" + r.Tag + "`"
	if r.Tag == Untagged {
		where = "in no source list"
	}
	return fmt.Sprintf("%s of newly spammed addresses are %s (%s of the population), lift %s",
		pct(r.Share), where, pct(r.PopulationShare), times(r.Lift))
}

func pct(f float64) string {
	if f > 0 && f < 0.01 {
		return fmt.Sprintf("%.1f %%", 100*f)
	}
	return fmt.Sprintf("%.0f %%", 100*f)
}

func times(f float64) string {
	if f >= 9.95 { // not "10.0×"
		return fmt.Sprintf("%.0f×", f)
	}
	return fmt.Sprintf("%.1f×", f)
}

// DetailCount is a sub-address detail among an incident's recipients.
type DetailCount struct {
	// Detail is the detail in plaintext when the operator listed it as
	// known (Known), else its keyed hash.
	Detail string  `json:"detail"`
	Known  bool    `json:"known"`
	Count  int     `json:"count"`
	Share  float64 `json:"share"` // of the incident's recipients
}

// maxDetails is how many details an incident shows.
const maxDetails = 5

// TopDetails keeps the details concentrated in an incident of n recipients:
// those shared by at least two recipients (one user's own detail says
// nothing about a list), or any known detail; the largest five, with
// their shares.
func TopDetails(in []DetailCount, n int) []DetailCount {
	var out []DetailCount
	for _, d := range in {
		if d.Count >= 2 || d.Known && d.Count >= 1 {
			if n > 0 {
				d.Share = float64(d.Count) / float64(n)
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Detail < out[j].Detail
	})
	if len(out) > maxDetails {
		out = out[:maxDetails]
	}
	return out
}
