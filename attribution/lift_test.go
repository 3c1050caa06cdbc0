package attribution

import (
	"math"
	"strings"
	"testing"
)

// exactLogTail sums the binomial tail term by term, in log space (small n
// only): ln P(X ≥ k).
func exactLogTail(k, n int, p float64) float64 {
	var terms []float64
	m := math.Inf(-1)
	for i := k; i <= n; i++ {
		lc := lgamma(float64(n+1)) - lgamma(float64(i+1)) - lgamma(float64(n-i+1))
		v := lc + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p)
		terms = append(terms, v)
		m = math.Max(m, v)
	}
	s := 0.0
	for _, v := range terms {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

func TestBinomialTailScoreMatchesExactSum(t *testing.T) {
	for _, n := range []int{1, 5, 20, 100, 400} {
		for _, p := range []float64{0.001, 0.08, 0.3, 0.5, 0.9} {
			for k := 0; k <= n; k += max(1, n/17) {
				want := 0.0
				if k > 0 {
					want = math.Min(maxScore, -exactLogTail(k, n, p)/math.Ln10)
				}
				got := BinomialTailScore(k, n, p)
				if math.Abs(got-want) > 1e-6*math.Max(1, want) {
					t.Errorf("k=%d n=%d p=%v: score %v, exact %v", k, n, p, got, want)
				}
			}
		}
	}
}

func TestBinomialTailScoreEdges(t *testing.T) {
	for _, c := range []struct {
		k, n int
		p    float64
		want float64
	}{
		{0, 10, 0.5, 0},
		{3, 0, 0.5, 0},
		{5, 10, 1, 0},
		{1, 10, 0, maxScore},
		{11, 10, 0.5, maxScore},
		{1000000, 1000000, 0.01, maxScore}, // 10^-2000000: capped, not NaN
	} {
		if got := BinomialTailScore(c.k, c.n, c.p); got != c.want {
			t.Errorf("%+v: got %v", c, got)
		}
	}
	// Large n stays finite and monotone in k.
	prev := -1.0
	for k := 500; k <= 1500; k += 100 {
		s := BinomialTailScore(k, 100000, 0.008)
		if math.IsNaN(s) || math.IsInf(s, 0) || s < prev {
			t.Fatalf("k=%d: score %v after %v", k, s, prev)
		}
		prev = s
	}
}

func TestRank(t *testing.T) {
	g := DefaultGuards
	for _, c := range []struct {
		name   string
		n, pop int
		counts []Count
		top    string
		first  string
	}{
		{
			name: "leaked address book",
			n:    200, pop: 100000,
			counts: []Count{
				{"webmail-login", 120, 60000},
				{"addressbook", 182, 8000},
				{"newsletter", 30, 20000},
				{Untagged, 10, 25000},
			},
			top: "addressbook", first: "addressbook",
		},
		{
			name: "evenly drawn leak names nothing",
			n:    2000, pop: 100000,
			counts: []Count{
				{"webmail-login", 1210, 60000},
				{"addressbook", 155, 8000},
				{"newsletter", 395, 20000},
				{Untagged, 510, 25000},
			},
			top: "",
		},
		{
			name: "big source, lift under 2 but clear",
			n:    1000, pop: 100000,
			counts: []Count{
				{"webmail-login", 1000, 60000},
				{Untagged, 0, 40000},
			},
			top: "webmail-login", first: "webmail-login",
		},
		{
			name: "too few to say",
			n:    4, pop: 100000,
			counts: []Count{{"addressbook", 4, 100}},
			top:    "", first: "addressbook",
		},
		{
			name: "small but significant count still needs five",
			n:    4, pop: 1000000,
			counts: []Count{{"canary-like", 4, 4}},
			top:    "",
		},
		{
			name: "a source not in any list",
			n:    300, pop: 100000,
			counts: []Count{
				{"webmail-login", 20, 60000},
				{Untagged, 280, 30000},
			},
			top: Untagged, first: Untagged,
		},
		{
			name: "modest imbalance in a huge incident is significant but not a source",
			n:    100000, pop: 1000000,
			counts: []Count{
				{"a", 11000, 100000}, // lift 1.1
				{"b", 89000, 900000},
			},
			top: "",
		},
		{name: "no tags", n: 100, pop: 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, top := Rank(c.n, c.pop, c.counts, g)
			if top != c.top {
				t.Errorf("top %q, want %q (rows %+v)", top, c.top, rows)
			}
			if c.first != "" && rows[0].Tag != c.first {
				t.Errorf("first row %q, want %q", rows[0].Tag, c.first)
			}
			for i := 1; i < len(rows); i++ {
				if rows[i].Score > rows[i-1].Score {
					t.Errorf("rows not ranked by score: %+v", rows)
				}
			}
			if len(rows) != len(c.counts) {
				t.Errorf("%d rows for %d tags", len(rows), len(c.counts))
			}
		})
	}
}

func TestRankShares(t *testing.T) {
	rows, top := Rank(200, 100000, []Count{{"addressbook", 182, 8000}}, DefaultGuards)
	r := rows[0]
	if top != "addressbook" || r.InIncident != 182 || math.Abs(r.Share-0.91) > 1e-9 || math.Abs(r.PopulationShare-0.08) > 1e-9 ||
		math.Abs(r.Lift-0.91/0.08) > 1e-9 || r.Score < 100 {
		t.Fatalf("%+v top %q", r, top)
	}
	if s := Sentence(rows, top, 200); s != "91 % of newly spammed addresses are in `addressbook` (8 % of the population), lift 11×" {
		t.Fatalf("sentence %q", s)
	}
}

func TestSentence(t *testing.T) {
	if s := Sentence(nil, "", 10); s != "" {
		t.Errorf("no tags: %q", s)
	}
	rows := []TagLift{{Tag: "a", Share: 0.5, PopulationShare: 0.5, Lift: 1}}
	if s := Sentence(rows, "", 412); s != "no source list stands out among the 412 newly spammed addresses" {
		t.Errorf("none: %q", s)
	}
	rows = []TagLift{{Tag: Untagged, Share: 0.93, PopulationShare: 0.004, Lift: 232.5}}
	if s := Sentence(rows, Untagged, 10); !strings.Contains(s, "are in no source list (0.4 % of the population), lift 232×") {
		t.Errorf("untagged: %q", s)
	}
	rows = []TagLift{{Tag: "b", Share: 1, PopulationShare: 0.1, Lift: 9.97}}
	if s := Sentence(rows, "b", 10); !strings.HasSuffix(s, "lift 10×") {
		t.Errorf("rounding: %q", s)
	}
	rows = []TagLift{{Tag: "w", Share: 1, PopulationShare: 0.6, Lift: 1.6667}}
	if s := Sentence(rows, "w", 10); !strings.HasSuffix(s, "lift 1.7×") {
		t.Errorf("small lift: %q", s)
	}
}

func TestTopDetails(t *testing.T) {
	in := []DetailCount{
		{Detail: "3f", Count: 1},                // one user's own: nothing
		{Detail: "shop", Known: true, Count: 1}, // known: kept
		{Detail: "9a", Count: 40},
		{Detail: "b1", Count: 2},
		{Detail: "c2", Count: 3}, {Detail: "c3", Count: 3}, {Detail: "c4", Count: 3},
	}
	out := TopDetails(in, 100)
	if len(out) != 5 || out[0].Detail != "9a" || out[0].Share != 0.4 || out[1].Detail != "c2" {
		t.Fatalf("%+v", out)
	}
	for _, d := range out {
		if d.Detail == "3f" {
			t.Fatalf("single detail kept: %+v", out)
		}
	}
	if out := TopDetails(in[:2], 10); len(out) != 1 || out[0].Detail != "shop" || !out[0].Known {
		t.Fatalf("known detail: %+v", out)
	}
}
