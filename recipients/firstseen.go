package recipients

import "time"

// First-seen accounting, for dating a leaked list (package forensics): a
// list can only hold addresses that existed when it was copied, so the
// first-mail times of an incident's addresses are compared with those of
// the population they were drawn from. Two hour histograms, aggregates
// only (no per-address state beyond the first mail the table keeps):
//
//   - risk: the at-risk addresses by the hour they matured (first mail
//     plus warm-up, rounded up), the same buckets as the at-risk count,
//     moved in and out with it;
//   - seen: every tracked address whose first message was not spam, by
//     the hour of that first mail (the discovery curve: how fast
//     addresses that existed before the history began turned up, which
//     estimates the delay between an address's creation and its first
//     mail).
//
// Both are rebuilt from the records at Load (embedded store) or persisted
// with a tally's counts (shared store).

// hourHist counts by hour (hours since the epoch), dense from its first
// hour: a year of history is 8,760 counters.
type hourHist struct {
	Base int64   `json:"base"`
	N    []int32 `json:"n,omitempty"`
}

// maxHistHours bounds a histogram's span (20 years): an hour further from
// its first one is not counted. Hours before minHistHour (2000) or after
// maxHistHour (2100) are not either: a corrupt record must not become the
// base that pushes every real hour out of the span.
const (
	maxHistHours = 20 * 366 * 24
	minHistHour  = 946684800 / 3600  // 2000-01-01
	maxHistHour  = 4102444800 / 3600 // 2100-01-01
)

func (h *hourHist) add(hr int64, d int32) {
	if hr < minHistHour || hr >= maxHistHour {
		return
	}
	if len(h.N) == 0 {
		h.Base = hr
		h.N = append(h.N[:0], d)
		return
	}
	if hr < h.Base {
		grow := h.Base - hr
		if grow+int64(len(h.N)) > maxHistHours {
			return
		}
		n := make([]int32, int(grow)+len(h.N))
		copy(n[grow:], h.N)
		h.N, h.Base = n, hr
	}
	i := hr - h.Base
	if i >= int64(len(h.N)) {
		if i >= maxHistHours {
			return
		}
		if i < int64(cap(h.N)) {
			h.N = h.N[:i+1]
		} else {
			n := make([]int32, i+1, max(i+1, int64(2*cap(h.N))))
			copy(n, h.N)
			h.N = n
		}
	}
	h.N[i] += d
}

// Hours is a copy of an hour histogram: N[i] counts hour From+i (hours
// since the epoch).
type Hours struct {
	From int64
	N    []int32
}

// Time is the start of hour From+i.
func (h Hours) Time(i int) time.Time { return time.Unix((h.From+int64(i))*3600, 0).UTC() }

func (h *hourHist) copy() Hours {
	return Hours{From: h.Base, N: append([]int32(nil), h.N...)}
}

// FirstSeen returns the first-seen histograms: seen, every tracked
// address first mailed (not spam) by the hour of its first mail; risk,
// the at-risk addresses by the hour they matured (their first mail is
// that hour's end less the warm-up, to the minute: see Options.Warmup).
func (p *Population) FirstSeen() (seen, risk Hours) {
	return p.seenHr.copy(), p.riskHr.copy()
}

// Warmup is Options.Warmup.
func (p *Population) Warmup() time.Duration { return p.o.Warmup }

// seenFirst counts an address first mailed at firstMail (minutes), not
// spam, in or out (delta) of the seen histogram.
func (p *Population) seenFirst(firstMail uint32, delta int32) {
	p.seenHr.add(int64(firstMail)/60, delta)
}

// hamFirst reports whether a stored record's first message was not spam.
func hamFirst(firstMail, firstSpam uint32) bool { return firstSpam == 0 || firstSpam != firstMail }

// RiskBefore counts the at-risk addresses that matured before hour cut
// (hours since the epoch), and all of them, from the histogram as it is
// (no copy). A count below 0 (a tally older than the histogram, in an
// hour it never counted) counts as none.
func (p *Population) RiskBefore(cut int64) (before, all int) {
	for i, n := range p.riskHr.N {
		n = max(n, 0)
		all += int(n)
		if p.riskHr.Base+int64(i) < cut {
			before += int(n)
		}
	}
	return before, all
}
