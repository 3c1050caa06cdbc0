package detector

import (
	"math"
	"time"
)

// rate is the expected first-spam rate per at-risk address-hour at t.
func (d *Detector) rate(t time.Time) float64 {
	if d.o.RateOverride != nil {
		return d.o.RateOverride(t)
	}
	return d.st.Num / d.st.Den * d.season.at(t, &d.st)
}

// novelRate is the expected rate of first spams from novel campaigns per
// at-risk address-hour, given the season factor s and the expected rate r
// of all counted first spams at the same instant. On an established
// history it is close to zero (a campaign working from an old list reaches
// few never-spammed addresses), so it is floored at novelFloor of r: the
// CUSUM then forgets an isolated novel campaign within a day or two
// instead of keeping it forever.
func (d *Detector) novelRate(s, r float64) float64 {
	n := 0.0
	if d.o.NovelRateOverride != nil {
		n = d.o.NovelRateOverride(d.clock)
	} else if d.st.NovDen > 0 {
		n = d.st.NovNum / d.st.NovDen * s
	}
	return math.Max(n, novelFloor*r)
}

const (
	novelFloor = 0.02
	// novelRho is the rate increase the novel CUSUM is tuned for: its
	// base is near zero, so a leak multiplies it many times over.
	novelRho = 10
)
