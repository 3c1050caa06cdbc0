// Package sim writes synthetic observation streams with a known truth, for
// demos, tuning and the detection benchmark. The population and its spam are
// a model, not data: every address is made up (userNNNNNN@ one of a few
// example domains).
//
// The model: each address gets legitimate mail at its own rate (log-normal,
// with a daily and weekly rhythm and a share of nearly silent addresses);
// a share of addresses is on spammers' lists from the start, each with its
// own spam rate (log-normal and wide, so many listed addresses are spammed
// rarely: the young-history trap where "never spammed" addresses keep
// getting their first spam for weeks); clean addresses slowly leak onto
// lists. Spam arrives in campaigns (one sender domain, client /24,
// subject and Message-ID domain each) that pick recipients by their rates.
//
// Scenarios: baseline (90 days, no leak), plusnet (a burst leak), drip
// (1,000 addresses over three days in small campaigns of one sender) and
// drip-mixed (the same drip hidden in the day's ordinary campaigns: each
// leaked address gets one message from one of them, so no campaign looks
// new) and shopleak (a hosting provider: the population spread over many
// customer domains of Zipf-like sizes, and 40 never-spammed addresses of
// the domain nearest 750 addresses get their first spam over 8 hours) and
// backup (60 days, 30 % of the addresses created during the run, each new
// one welcomed with a mail within hours; a list copied from the addresses
// that existed Config.CopyAge before its use, three weeks by default, is
// spammed from day 55 over a day: about 150 of its addresses get their
// first spam; Truth.ListCopiedAt is when it was copied).
package sim

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenarios lists the scenario names.
var Scenarios = []string{"baseline", "plusnet", "drip", "drip-mixed", "shopleak", "backup"}

// Config chooses a scenario.
type Config struct {
	Scenario  string
	Seed      uint64
	Addresses int // default 100,000
	Start     time.Time
	// Subaddresses makes a third of the leaked source's addresses appear
	// as user+detail@ in the leak (see attribution.go); detection then
	// needs the sub-address separator "+" configured.
	Subaddresses bool
	// Domains spreads the addresses over that many customer domains
	// (custNNN.example) of Zipf-like sizes, the k-th largest about 1/k of
	// the largest; 0 keeps the three example domains (shopleak: 60).
	Domains int
	// Joining is the share of the addresses created during the run, each
	// new one welcomed with a mail within hours (backup's default 30 %;
	// 0 for the others keeps their own 5 %, found at their own rate);
	// CopyAge (backup) how long before its use the list was copied (0:
	// 21 days).
	Joining float64
	CopyAge time.Duration
}

// Truth is what the stream hides: written beside it as JSON.
type Truth struct {
	Scenario  string    `json:"scenario"`
	Seed      uint64    `json:"seed"`
	Addresses int       `json:"addresses"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Leaks     []Leak    `json:"leaks"`
	// Dictionary attacks are not leaks: incidents of kind dictionary are
	// expected here, surge incidents are false.
	Dictionary []Window `json:"dictionary_attacks,omitempty"`
	Holiday    *Window  `json:"holiday,omitempty"`
	Lines      int      `json:"lines"`

	// Attribution (attribution.go): the source the leak's list came
	// from ("" when drawn from the whole population), the canaries with
	// the time the leak reached them, and the sub-address detail the
	// leaked addresses carry (with Config.Subaddresses).
	LeakedSource     string   `json:"leaked_source,omitempty"`
	Canaries         []Canary `json:"canaries"`
	SubaddressDetail string   `json:"subaddress_detail,omitempty"`

	// LeakedDomain is the domain shopleak's list belongs to, with its
	// size (addresses).
	LeakedDomain     string `json:"leaked_domain,omitempty"`
	LeakedDomainSize int    `json:"leaked_domain_size,omitempty"`

	// ListCopiedAt (backup) is when the leaked list was copied: it holds
	// only addresses created by then.
	ListCopiedAt *time.Time `json:"list_copied_at,omitempty"`

	sources   map[string][]int // source → population indexes
	segment   [2]int           // plusnet: the leaked source's index range
	canaryHit map[int]time.Time
	names     *layout // nil: the three example domains
}

// Leak is one leaked list being spammed.
type Leak struct {
	Kind  string    `json:"kind"` // burst | drip
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Addresses of the leaked list (synthetic); the benchmark hashes them
	// with its key. LeakedIDs is filled by `simulate --key-file`.
	Addresses []string `json:"addresses"`
	LeakedIDs []string `json:"leaked_ids,omitempty"`
}

// Window is a time range.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

type person struct {
	ham      float64 // legit mails per day
	spam     float64 // spam per day once listed; 0 = not listed
	joinsDay int
}

type campaign struct {
	start    time.Time
	dur      time.Duration
	rcpts    []int
	rejected []string
	from     string
	ip       string
	subject  string
	msgid    string
}

type msg struct {
	t        time.Time
	rcpt     []int
	rejected []string
	spam     bool
	c        *campaign
	n        int
}

// Run writes the scenario's JSONL stream to w and returns its truth.
func Run(cfg Config, w io.Writer) (*Truth, error) {
	if cfg.Addresses <= 0 {
		cfg.Addresses = 100000
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	}
	days := 0
	switch cfg.Scenario {
	case "baseline":
		days = 90
	case "plusnet":
		days = 45
	case "drip", "drip-mixed":
		days = 46
	case "shopleak":
		days = 43
		if cfg.Domains == 0 {
			cfg.Domains = 60
		}
	case "backup":
		days = 60
		if cfg.Joining <= 0 {
			cfg.Joining = 0.3
		}
		if cfg.CopyAge <= 0 {
			cfg.CopyAge = 21 * 24 * time.Hour
		}
	default:
		return nil, fmt.Errorf("sim: unknown scenario %q (have %s)", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	n := cfg.Addresses
	pop := make([]person, n)
	for i := range pop {
		p := &pop[i]
		if rng.Float64() < 0.08 {
			p.ham = 1.0 / 60 // nearly silent: the dormant ones
		} else {
			p.ham = math.Exp(rng.NormFloat64()*0.8) * 0.25
		}
		if rng.Float64() < 0.35 {
			p.spam = listedRate(rng)
		}
		if rng.Float64() < 0.05 {
			p.joinsDay = 1 + rng.IntN(days)
		}
	}
	welcome := cfg.Joining > 0
	if welcome {
		// Its own draw of who joins when, the scenarios' streams
		// without Joining unchanged.
		jr := rand.New(rand.NewPCG(cfg.Seed, 0x1015))
		for i := range pop {
			pop[i].joinsDay = 0
			if jr.Float64() < cfg.Joining {
				pop[i].joinsDay = 1 + jr.IntN(days-1)
			}
		}
	}
	tr := &Truth{Scenario: cfg.Scenario, Seed: cfg.Seed, Addresses: n, Start: cfg.Start, End: cfg.Start.Add(time.Duration(days) * 24 * time.Hour)}
	if cfg.Domains > 0 {
		tr.names = newLayout(n, cfg.Domains)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := &encoder{w: bw, n: n, names: tr.names}

	// Scenario events.
	var leakDay, leakLen int
	var leaked []int
	leakStartOff := 10*time.Hour + 17*time.Minute
	switch cfg.Scenario {
	case "baseline":
		d := cfg.Start.Add(40*24*time.Hour + 3*time.Hour)
		tr.Dictionary = append(tr.Dictionary, Window{d, d.Add(40 * time.Minute)})
		tr.Holiday = &Window{cfg.Start.Add(60 * 24 * time.Hour), cfg.Start.Add(67 * 24 * time.Hour)}
	case "plusnet", "drip", "drip-mixed", "shopleak":
		leakDay = 42
	case "backup":
		leakDay = 55
		// Copied at noon, so that the addresses created on a day (at its
		// start) up to the copy's are on it.
		c := cfg.Start.Add(time.Duration(leakDay)*24*time.Hour + leakStartOff - cfg.CopyAge).Truncate(24 * time.Hour).Add(12 * time.Hour)
		tr.ListCopiedAt = &c
	}
	// Leaked lists are chosen at leak time among the addresses then
	// tracked; see below.
	var carry []msg
	for day := 0; day < days; day++ {
		dayStart := cfg.Start.Add(time.Duration(day) * 24 * time.Hour)
		wd := dayStart.Weekday()
		weekly := 1.0
		if wd == time.Saturday || wd == time.Sunday {
			weekly = 0.45
		}
		hamFactor := weekly
		if tr.Holiday != nil && !dayStart.Before(tr.Holiday.Start) && dayStart.Before(tr.Holiday.End) {
			hamFactor *= 0.3
		}
		// Slow leakage of clean addresses onto spammers' lists.
		for i := range pop {
			if pop[i].spam == 0 && rng.Float64() < 0.0006 {
				pop[i].spam = listedRate(rng)
			}
		}
		var msgs []msg
		var dayCamps []*campaign // the day's ordinary campaigns
		// Legitimate mail.
		for i := range pop {
			p := &pop[i]
			if p.joinsDay > day {
				continue
			}
			if welcome && p.joinsDay == day && day > 0 {
				// A new account's welcome mail, within hours.
				msgs = append(msgs, msg{t: dayStart.Add(time.Duration(rng.ExpFloat64() * 3 * float64(time.Hour))), rcpt: []int{i}})
			}
			k := poisson(rng, p.ham*hamFactor)
			for j := 0; j < k; j++ {
				msgs = append(msgs, msg{t: dayStart.Add(dailyTime(rng, 8, 4)), rcpt: []int{i}})
			}
		}
		// Spam campaigns, sampled by rate (alias table of the day).
		al := newAlias(pop, day)
		volume := al.total * (0.8 + 0.4*rng.Float64()) * (0.7 + 0.3*weekly)
		for volume > 0 {
			size := int(math.Exp(rng.NormFloat64()*0.9) * 250)
			size = max(20, min(size, 5000))
			volume -= float64(size)
			c := newCampaign(rng, dayStart.Add(dailyTime(rng, 13, 5)))
			for j := 0; j < size; j++ {
				c.rcpts = append(c.rcpts, al.pick(rng))
			}
			msgs = appendCampaign(rng, msgs, c)
			dayCamps = append(dayCamps, c)
		}
		// Dictionary attack: guessed local parts, mostly rejected; some
		// accepted at addresses that never had mail; a few hit real ones.
		for _, dw := range tr.Dictionary {
			if dw.Start.Sub(dayStart) >= 0 && dw.Start.Sub(dayStart) < 24*time.Hour {
				c := newCampaign(rng, dw.Start)
				c.dur = dw.End.Sub(dw.Start)
				for j := 0; j < 3000; j++ {
					switch r := rng.Float64(); {
					case r < 0.85:
						c.rejected = append(c.rejected, fmt.Sprintf("%s%d@%s", guessNames[rng.IntN(len(guessNames))], rng.IntN(100), domains[rng.IntN(len(domains))]))
					case r < 0.97:
						c.rcpts = append(c.rcpts, -1-j) // accepted, never seen: a role or catch-all
					default:
						c.rcpts = append(c.rcpts, rng.IntN(n))
					}
				}
				msgs = appendCampaign(rng, msgs, c)
			}
		}
		// The leak.
		if leakDay > 0 && day >= leakDay {
			if day == leakDay {
				var segLo int
				if cfg.Scenario == "shopleak" {
					var d int
					leaked, d = tr.names.chooseShop(rng, pop, 750, 40)
					tr.LeakedDomain, tr.LeakedDomainSize = tr.names.names[d], tr.names.size(d)
				} else if cfg.Scenario == "backup" {
					leaked = chooseBackup(rng, pop, tr.ListCopiedAt.Sub(cfg.Start))
				} else {
					leaked, segLo = chooseLeak(rng, pop, cfg.Scenario, n)
				}
				if cfg.Scenario == "plusnet" {
					tr.segment = [2]int{segLo, segLo + n/10}
				}
				l := Leak{Kind: "burst", Start: dayStart.Add(leakStartOff)}
				if cfg.Scenario == "drip" || cfg.Scenario == "drip-mixed" || cfg.Scenario == "shopleak" || cfg.Scenario == "backup" {
					l.Kind = "drip"
					leakLen = 3
				}
				for _, i := range leaked {
					l.Addresses = append(l.Addresses, tr.address(i))
				}
				tr.Leaks = append(tr.Leaks, l)
			}
			l := &tr.Leaks[0]
			switch cfg.Scenario {
			case "plusnet":
				// One blast to the whole list, then the list joins
				// the spammers' ordinary rotation.
				if day == leakDay {
					c := newCampaign(rng, l.Start)
					c.dur = 25 * time.Minute
					c.rcpts = append(c.rcpts, leaked...)
					rng.Shuffle(len(c.rcpts), func(a, b int) { c.rcpts[a], c.rcpts[b] = c.rcpts[b], c.rcpts[a] })
					msgs = appendCampaign(rng, msgs, c)
					l.End = l.Start.Add(c.dur)
					// The list carries its source's canaries and, with
					// Config.Subaddresses, sub-addresses.
					msgs = tr.leakExtras(cfg, enc, msgs, c, leaked)
					for _, i := range leaked {
						if pop[i].spam == 0 {
							pop[i].spam = listedRate(rng)
						}
					}
				}
			case "drip-mixed":
				// The same drip hidden in the ordinary campaigns: each
				// leaked address gets one message from one of the day's
				// campaigns (its sender, network, subject), inside that
				// campaign's window. No campaign looks new.
				if day < leakDay+leakLen {
					l.End = l.Start.Add(time.Duration(leakLen) * 24 * time.Hour)
					for j, i := range leaked {
						if j*leakLen/len(leaked) != day-leakDay {
							continue
						}
						for try := 0; try < 100; try++ {
							c := dayCamps[rng.IntN(len(dayCamps))]
							t := c.start.Add(time.Duration(rng.Float64() * float64(c.dur)))
							if t.Before(l.Start) {
								continue
							}
							msgs = append(msgs, msg{t: t, rcpt: []int{i}, spam: true, c: c, n: rng.IntN(1 << 30)})
							break
						}
					}
				}
			case "shopleak":
				// The shop's list, 40 addresses, spammed over 8 hours
				// by small campaigns of one sender (4 recipients each).
				if day == leakDay {
					l.End = l.Start.Add(8 * time.Hour)
					msgs = spread(rng, msgs, leaked, l.Start, 8*time.Hour, 4, "promo@shop-offers.example", "mta.shop-offers.example", 40*time.Minute)
				}
			case "backup":
				// The list spammed over a day by small campaigns of one
				// sender, 10 recipients each.
				if day == leakDay {
					l.End = l.Start.Add(24 * time.Hour)
					msgs = spread(rng, msgs, leaked, l.Start, 24*time.Hour, 10, "offers@backup-deals.example", "mta.backup-deals.example", 30*time.Minute)
				}
			case "drip":
				// Each leaked address gets its first spam at a
				// uniform time over three days, from small rotating
				// campaigns of one sender.
				if day < leakDay+leakLen {
					var today []int
					for j, i := range leaked {
						if j*leakLen/len(leaked) == day-leakDay {
							today = append(today, i)
						}
					}
					from := l.Start.Add(time.Duration(day-leakDay) * 24 * time.Hour)
					for k := 0; k < len(today); k += 14 {
						c := newCampaign(rng, from.Add(time.Duration(k)*24*time.Hour/time.Duration(len(today))))
						c.from = "news@drip-offers.example"
						c.msgid = "mta.drip-offers.example"
						c.dur = 50 * time.Minute
						c.rcpts = today[k:min(k+14, len(today))]
						msgs = appendCampaign(rng, msgs, c)
					}
					l.End = l.Start.Add(time.Duration(leakLen) * 24 * time.Hour)
				}
			}
		}
		// Campaigns running past midnight carry over into the next day.
		msgs = append(msgs, carry...)
		slices.SortStableFunc(msgs, func(a, b msg) int { return a.t.Compare(b.t) })
		dayEnd := dayStart.Add(24 * time.Hour)
		carry = carry[:0]
		for i := range msgs {
			if !msgs[i].t.Before(dayEnd) && day < days-1 {
				carry = append(carry, msgs[i])
				continue
			}
			if err := enc.write(&msgs[i]); err != nil {
				return nil, err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	tr.Lines = enc.lines
	tr.assignSources(cfg)
	return tr, nil
}

// listedRate is the spam rate of a listed address: log-normal with a wide
// spread, median one spam every ten days.
func listedRate(rng *rand.Rand) float64 { return math.Exp(rng.NormFloat64()*1.6) * 0.1 }

func chooseLeak(rng *rand.Rand, pop []person, scenario string, n int) (leaked []int, segLo int) {
	if scenario == "drip" || scenario == "drip-mixed" {
		// 1,000 addresses from the whole population.
		return rng.Perm(n)[:min(1000, n)], 0
	}
	// plusnet: one customer segment (a contiguous tenth of the
	// population); its list has 0.5 % of the population... of the
	// addresses not yet spammed, so about 0.5 % of the at-risk ones, plus
	// some already spammed (lists mix both).
	seg := n / 10
	lo := rng.IntN(n - seg)
	var out []int
	want := n * 65 / 100 * 5 / 1000 // ≈ 0.5 % of the at-risk population
	for _, j := range rng.Perm(seg) {
		i := lo + j
		if pop[i].spam == 0 && len(out) < want {
			out = append(out, i)
		}
	}
	for j := 0; j < want/2; j++ {
		out = append(out, lo+rng.IntN(seg))
	}
	return out, lo
}

// spread spams leaked over span from start in small campaigns of one
// sender (per recipients each, lasting dur).
func spread(rng *rand.Rand, msgs []msg, leaked []int, start time.Time, span time.Duration, per int, from, msgid string, dur time.Duration) []msg {
	for k := 0; k < len(leaked); k += per {
		c := newCampaign(rng, start.Add(time.Duration(k)*span/time.Duration(len(leaked))))
		c.from, c.msgid, c.dur = from, msgid, dur
		c.rcpts = leaked[k:min(k+per, len(leaked))]
		msgs = appendCampaign(rng, msgs, c)
	}
	return msgs
}

// chooseBackup is backup's list: addresses that existed at the copy
// (created by then: joined on a day that started before it), about 190
// never spammed, which gives some 150 first spams among those at risk
// when it is used, and a third as many already spammed.
func chooseBackup(rng *rand.Rand, pop []person, copied time.Duration) []int {
	var out []int
	spammed := 0
	for _, i := range rng.Perm(len(pop)) {
		if time.Duration(pop[i].joinsDay)*24*time.Hour > copied {
			continue
		}
		if pop[i].spam == 0 && len(out)-spammed < 190 {
			out = append(out, i)
		} else if pop[i].spam > 0 && spammed < 60 {
			out = append(out, i)
			spammed++
		}
		if len(out) >= 250 {
			break
		}
	}
	return out
}

var (
	domains    = []string{"example.net", "example.org", "mail.example.com"}
	guessNames = []string{"info", "sales", "admin", "john", "mary", "contact", "office", "support", "peter", "anna", "web", "hr"}
	spamDoms   = []string{"deals", "pharma", "lottery", "crypto", "loans", "dating", "replica", "seo", "prize", "offers"}
	subjects   = []string{"You have won %d", "Cheap meds %d%% off", "Your account %d needs attention", "Meet singles near you", "Invoice %d attached", "Re: your order %d", "Earn $%d a day", "Last chance: %d left"}
)

func address(i int) string {
	if i < 0 {
		return fmt.Sprintf("role%d@%s", -i, domains[(-i)%len(domains)])
	}
	return fmt.Sprintf("user%06d@%s", i, domains[i%len(domains)])
}

// address is the address of population index i in this scenario's layout.
func (tr *Truth) address(i int) string { return tr.names.address(i) }

// layout spreads the population over customer domains of Zipf-like sizes:
// domain k (0 the largest) holds the indexes from starts[k] on.
type layout struct {
	starts []int
	names  []string
	n      int
}

func newLayout(n, domains int) *layout {
	l := &layout{n: n}
	var sum float64
	for k := 1; k <= domains; k++ {
		sum += 1 / float64(k)
	}
	at := 0
	for k := 1; k <= domains && at < n; k++ {
		l.starts = append(l.starts, at)
		l.names = append(l.names, fmt.Sprintf("cust%03d.example", k))
		at += max(1, int(float64(n)/float64(k)/sum+0.5))
	}
	return l
}

// domain is the domain index of population index i.
func (l *layout) domain(i int) int {
	k, _ := slices.BinarySearch(l.starts, i+1)
	return k - 1
}

func (l *layout) size(d int) int {
	if d+1 < len(l.starts) {
		return l.starts[d+1] - l.starts[d]
	}
	return l.n - l.starts[d]
}

func (l *layout) address(i int) string {
	if l == nil || i < 0 {
		return address(i)
	}
	return fmt.Sprintf("user%06d@%s", i, l.names[l.domain(i)])
}

// chooseShop picks the domain nearest size addresses and want of its
// addresses that have never been spammed.
func (l *layout) chooseShop(rng *rand.Rand, pop []person, size, want int) ([]int, int) {
	best := 0
	for d := range l.starts {
		if abs(l.size(d)-size) < abs(l.size(best)-size) {
			best = d
		}
	}
	var out []int
	for _, j := range rng.Perm(l.size(best)) {
		if i := l.starts[best] + j; pop[i].spam == 0 && pop[i].joinsDay == 0 && len(out) < want {
			out = append(out, i)
		}
	}
	return out, best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func newCampaign(rng *rand.Rand, start time.Time) *campaign {
	d := fmt.Sprintf("%s%d.example", spamDoms[rng.IntN(len(spamDoms))], rng.IntN(500))
	return &campaign{
		start:   start,
		dur:     time.Duration(10+rng.IntN(50)) * time.Minute,
		from:    fmt.Sprintf("mail%d@%s", rng.IntN(100), d),
		ip:      fmt.Sprintf("%d.%d.%d.", 11+rng.IntN(200), rng.IntN(256), rng.IntN(256)),
		subject: subjects[rng.IntN(len(subjects))],
		msgid:   "mx." + d,
	}
}

func appendCampaign(rng *rand.Rand, msgs []msg, c *campaign) []msg {
	all := len(c.rcpts) + len(c.rejected)
	for k := 0; k < len(c.rcpts) || len(c.rejected) > 0; {
		m := msg{spam: true, c: c, n: rng.IntN(1 << 30)}
		per := 1 + rng.IntN(4)
		end := min(k+per, len(c.rcpts))
		m.rcpt = c.rcpts[k:end]
		k = end
		for r := 0; r < 3 && len(c.rejected) > 0; r++ {
			m.rejected = append(m.rejected, c.rejected[len(c.rejected)-1])
			c.rejected = c.rejected[:len(c.rejected)-1]
		}
		done := k + (all - len(c.rcpts) - len(c.rejected))
		m.t = c.start.Add(time.Duration(float64(c.dur) * float64(done) / float64(max(all, 1))))
		msgs = append(msgs, m)
	}
	return msgs
}

// dailyTime is a time of day around a peak hour (spread in hours).
func dailyTime(rng *rand.Rand, peak, spread float64) time.Duration {
	h := math.Mod(peak+rng.NormFloat64()*spread+48, 24)
	return time.Duration(h * float64(time.Hour))
}

func poisson(rng *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// alias samples addresses proportionally to their spam rates (Walker).
type alias struct {
	idx   []int
	prob  []float64
	alt   []int
	total float64
}

func newAlias(pop []person, day int) *alias {
	a := &alias{}
	var w []float64
	for i, p := range pop {
		if p.spam > 0 && p.joinsDay <= day {
			a.idx = append(a.idx, i)
			w = append(w, p.spam)
			a.total += p.spam
		}
	}
	n := len(w)
	a.prob, a.alt = make([]float64, n), make([]int, n)
	var small, large []int
	for i := range w {
		w[i] = w[i] * float64(n) / a.total
		if w[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alt[s] = w[s], l
		w[l] -= 1 - w[s]
		if w[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.prob[i] = 1
	}
	return a
}

func (a *alias) pick(rng *rand.Rand) int {
	i := rng.IntN(len(a.idx))
	if rng.Float64() < a.prob[i] {
		return a.idx[i]
	}
	return a.idx[a.alt[i]]
}

type encoder struct {
	w     *bufio.Writer
	buf   []byte
	lines int
	n     int // population: indexes from n on are canaries
	names *layout
	// sub gives some recipients of campaign subOf a sub-address detail.
	sub   map[int]string
	subOf *campaign
}

func (e *encoder) write(m *msg) error {
	b := e.buf[:0]
	b = append(b, `{"time":"`...)
	b = m.t.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","rcpt":[`...)
	for i, r := range m.rcpt {
		if i > 0 {
			b = append(b, ',')
		}
		a := e.names.address(r)
		if r >= e.n {
			a = canaryAddress(r - e.n)
		} else if d, ok := e.sub[r]; ok && m.c != nil && m.c == e.subOf {
			at := strings.IndexByte(a, '@')
			a = a[:at] + "+" + d + a[at:]
		}
		b = strconv.AppendQuote(b, a)
	}
	b = append(b, ']')
	if len(m.rejected) > 0 {
		b = append(b, `,"rejected":[`...)
		for i, r := range m.rejected {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, r)
		}
		b = append(b, ']')
	}
	if m.spam {
		c := m.c
		b = append(b, `,"spam":true,"from":`...)
		b = strconv.AppendQuote(b, c.from)
		b = append(b, `,"client_ip":"`...)
		b = append(b, c.ip...)
		b = strconv.AppendInt(b, int64(1+m.n%250), 10)
		b = append(b, `","subject":`...)
		s := c.subject
		if c.subject != "" && containsVerb(s) {
			s = fmt.Sprintf(s, m.n%10000)
		}
		b = strconv.AppendQuote(b, s)
		b = append(b, `,"message_id":"<`...)
		b = strconv.AppendInt(b, int64(m.n), 36)
		b = append(b, '@')
		b = append(b, c.msgid...)
		b = append(b, `>"}`...)
	} else {
		b = append(b, `,"spam":false,"from":"`...)
		b = append(b, "newsletter@"...)
		b = append(b, domains[m.t.Nanosecond()%len(domains)]...)
		b = append(b, `","client_ip":"192.0.2.`...)
		b = strconv.AppendInt(b, int64(m.t.Second()), 10)
		b = append(b, `"}`...)
	}
	b = append(b, '\n')
	e.buf = b
	e.lines++
	_, err := e.w.Write(b)
	return err
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			return true
		}
	}
	return false
}
