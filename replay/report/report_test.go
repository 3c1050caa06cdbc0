package report

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/replay"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// synthetic records 30 days of hours (a week of warm-up, a daily rhythm,
// a leak on day 20) and three incidents: a surge that resolved, a scoped
// one and one still open at the end.
func synthetic() *Recorder {
	r := NewRecorder()
	rng := rand.New(rand.NewPCG(7, 7))
	leak := t0.Add(20*24*time.Hour + 10*time.Hour)
	for h := 0; h < 30*24; h++ {
		start := t0.Add(time.Duration(h) * time.Hour)
		if h >= 25*24 && h < 25*24+30 { // a clock jump: no hours
			continue
		}
		e := 3 + 2*math.Sin(float64(h%24)/24*2*math.Pi)
		c := float64(poisson(rng, e))
		if start.After(leak) && start.Before(leak.Add(36*time.Hour)) {
			c += 9
		}
		all := c
		if h%50 == 0 {
			all += 4
		}
		r.Hour(detector.Hour{Start: start, FirstSpams: all, Counted: c, Expected: e, Phi: 1.3,
			AtRisk: min(60000, 400*h), Warm: h < 7*24})
	}
	resolved := leak.Add(40 * time.Hour)
	in := detector.Incident{ID: "20260322T124500Z-surge-1", Kind: detector.KindSurge, State: "open", StartedAt: leak, OpenedAt: leak.Add(2*time.Hour + 28*time.Minute),
		Trigger: detector.TriggerCUSUMNovel, Recipients: 40, Observed: 40, Expected: 3.2,
		Campaigns: detector.Campaigns{SenderDomain: []detector.Group{{Key: "drip7.example", Count: 30, Share: 0.75}},
			Subject: []detector.Group{{Key: "mail for <address> # <script>alert(1)</script>", Count: 40, Share: 1}}},
		RecipientIDs: []addr.ID{{1}}}
	in.TopTag = "billing-db"
	in.TopSource = "80 % of newly spammed addresses are in `billing-db` (10 % of the population), lift 8×"
	r.Event(detector.Event{Event: detector.EventOpened, At: in.OpenedAt, Incident: in})
	in.Recipients, in.Observed, in.Expected = 330, 330, 12.5
	in.State, in.ResolvedAt = "resolved", &resolved
	r.Event(detector.Event{Event: detector.EventResolved, At: resolved, Incident: in})
	sc := detector.Incident{ID: "20260312T030000Z-surge-2", Kind: detector.KindSurge, State: "resolved", StartedAt: t0.Add(10*24*time.Hour + 2*time.Hour),
		OpenedAt: t0.Add(10*24*time.Hour + 3*time.Hour), Trigger: detector.TriggerCUSUMDomain, Scope: &detector.Scope{Domain: "shop17.example"}, Recipients: 12, Observed: 12, Expected: 0.4}
	rs := sc.OpenedAt.Add(5 * time.Hour)
	sc.ResolvedAt = &rs
	r.Event(detector.Event{Event: detector.EventResolved, At: rs, Incident: sc})
	op := detector.Incident{ID: "20260331T200000Z-dictionary-3", Kind: detector.KindDictionary, State: "open", StartedAt: t0.Add(29*24*time.Hour + 19*time.Hour),
		OpenedAt: t0.Add(29*24*time.Hour + 20*time.Hour), Trigger: detector.TriggerDictionaryBurst, Recipients: 0, Observed: 250, Expected: 12}
	r.Event(detector.Event{Event: detector.EventOpened, At: op.OpenedAt, Incident: op})
	return r
}

func poisson(rng *rand.Rand, mu float64) int {
	l, k, p := math.Exp(-mu), 0, 1.0
	for {
		p *= rng.Float64()
		if p < l {
			return k
		}
		k++
	}
}

func render(t testing.TB, r *Recorder, m Meta) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.Write(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func meta() Meta {
	return Meta{Title: "backtest of mail.log", Inputs: []string{"/var/log/mail.log.1", "/var/log/mail.log"},
		Stats:   replay.Stats{Lines: 1000, Observations: 990, Malformed: 3, Recipients: 1200},
		Tracked: 70000, AtRisk: 60000, Version: "test", Generated: t0.Add(40 * 24 * time.Hour)}
}

// addressLike is anything shaped like an e-mail address.
var addressLike = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+`)

func TestPage(t *testing.T) {
	html := render(t, synthetic(), meta())
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"20260322T124500Z-surge-1", "20260312T030000Z-surge-2", "20260331T200000Z-dictionary-3",
		"cusum_novel", "cusum_domain", "domain=shop17.example", "billing-db", "drip7.example",
		"2026-03-22 10:00Z", // started
		"2h28m later",       // opened after it
		"2026-03-24 02:00Z", // resolved
		"still open", "330 / 12.5",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if !strings.Contains(html, "2 surge, 1 dictionary") {
		t.Error("summary does not count the incidents by kind")
	}
	// Self-contained: nothing fetched, no script.
	for _, bad := range []string{"<script", "src=", "href=\"http", "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	// A campaign key is text, never markup.
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("subject key not escaped")
	}
	if m := addressLike.FindString(html); m != "" {
		t.Errorf("page holds an address: %q", m)
	}
	// Charts: the overview, the at-risk population, one per incident.
	if n := strings.Count(html, "<svg "); n != 2+3 {
		t.Errorf("%d charts, want 5", n)
	}
	// The clock jump leaves a gap: the band is two polygons in the
	// overview.
	ov := html[strings.Index(html, "<svg "):]
	ov = ov[:strings.Index(ov, "</svg>")]
	if n := strings.Count(ov, `class="band"`); n != 2 {
		t.Errorf("overview band in %d pieces, want 2 (a gap)", n)
	}
	if n := strings.Count(ov, `class="above"`); n < 20 {
		t.Errorf("%d hours above the band in the overview; the leak's 36 hours of +9 should mostly be", n)
	}
	if !strings.Contains(ov, `class="warm"`) {
		t.Error("no warm-up in the overview")
	}
	if os.Getenv("REPORT_OUT") != "" {
		os.WriteFile(os.Getenv("REPORT_OUT"), []byte(html), 0o644)
	}
}

func TestEmptyAndErr(t *testing.T) {
	m := meta()
	m.Err = "context canceled"
	html := render(t, NewRecorder(), m)
	for _, want := range []string{"No complete hour replayed.", "No incident opened.", "The replay did not finish: context canceled", "no incident"} {
		if !strings.Contains(html, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
	if strings.Contains(html, "<svg") {
		t.Error("a chart without hours")
	}
	// Bad numbers never break the page.
	r := NewRecorder()
	for i := 0; i < 5; i++ {
		r.Hour(detector.Hour{Start: t0.Add(time.Duration(i) * time.Hour), FirstSpams: math.NaN(), Counted: math.Inf(1), Expected: -1, Phi: math.NaN()})
	}
	r.Event(detector.Event{Incident: detector.Incident{ID: "x", Observed: math.NaN(), Expected: math.Inf(-1), StartedAt: t0.Add(time.Hour), OpenedAt: t0}})
	html = render(t, r, m)
	if strings.Contains(html, "NaN") || strings.Contains(html, "Inf") {
		t.Error("NaN or Inf written into the page")
	}
}

func TestBand(t *testing.T) {
	for _, c := range []struct {
		mu, phi, lo, hi float64
	}{
		{0, 1, 0, 0},
		{math.NaN(), 1, 0, 0},
		{1, 1, 0, 4},   // P(X ≤ 4 | 1) = 0.9963
		{10, 1, 3, 19}, // Poisson(10): 0.5 % and 99.5 % points
		{10, 2, 0, 24}, // 2 × Poisson(5): 2 × 0, 2 × 12
		{1000, 1, 919, 1082},
	} {
		lo, hi := Band(c.mu, c.phi)
		if math.Abs(lo-c.lo) > 1 || math.Abs(hi-c.hi) > 1 {
			t.Errorf("Band(%v, %v) = %v, %v; want about %v, %v", c.mu, c.phi, lo, hi, c.lo, c.hi)
		}
	}
	// The band holds about 99 % of Poisson hours.
	rng := rand.New(rand.NewPCG(1, 1))
	out := 0
	for i := 0; i < 20000; i++ {
		mu := 0.5 + 20*rng.Float64()
		lo, hi := Band(mu, 1)
		if x := float64(poisson(rng, mu)); x < lo || x > hi {
			out++
		}
	}
	if share := float64(out) / 20000; share > 0.012 {
		t.Errorf("%.2f %% of Poisson hours outside the band", 100*share)
	}
}

// TestRecorderKeepsLatest: each incident once, in the order first seen,
// as its last event left it, without its recipients' hashes.
func TestRecorderKeepsLatest(t *testing.T) {
	r := synthetic()
	if len(r.order) != 3 || r.order[0] != "20260322T124500Z-surge-1" {
		t.Fatalf("order %v", r.order)
	}
	in := r.incidents["20260322T124500Z-surge-1"]
	if in.State != "resolved" || in.Recipients != 330 || in.RecipientIDs != nil {
		t.Fatalf("kept %+v", in)
	}
}
