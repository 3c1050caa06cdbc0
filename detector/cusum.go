package detector

import "math"

// cusum is a one-sided Poisson CUSUM of counted first spams: the
// log-likelihood ratio of "the rate is ρ times its baseline" against "it is
// the baseline", over the dispersion, floored at zero. It keeps the run of
// first spams since it last left zero (the candidates of an excess) with
// the run's expectation, and back, the reverse statistic: the evidence that
// an open incident's rate is back at its baseline.
//
// The detector runs two: all counted first spams, and those of novel
// campaigns (novelRate). Time is the caller's: expect takes a step's
// expectation, hit one first spam.
type cusum struct {
	s    float64
	run  []fsEvent
	exp  float64 // expected count of the run
	back float64
}

// expect takes the expectation e of a time step: the run's expectation
// grows and the statistic falls by (ρ−1)e/φ; at zero the run ends.
func (c *cusum) expect(e, rho, phi float64) {
	c.exp += e
	if c.s > 0 {
		c.s -= (rho - 1) * e / phi
		if c.s <= 0 {
			c.reset()
		}
	}
}

// expectBack grows the evidence that an open incident is over by a time
// step's expectation e.
func (c *cusum) expectBack(e, rho, phi float64) { c.back += (rho - 1) * e / phi }

// begin starts a new run if the statistic is at zero, before a counted
// first spam (also in warm-up, where the spam is learnt but not added).
func (c *cusum) begin() {
	if c.s == 0 {
		c.run, c.exp = c.run[:0], 0
	}
}

// hit adds a counted first spam: the statistic rises by ln ρ/φ, the
// evidence of the end falls by ln ρ/φBack, and f joins the run (at most
// maxRun of them are kept).
func (c *cusum) hit(f fsEvent, rho, phi, phiBack float64) {
	c.s += math.Log(rho) / phi
	c.back = max(0, c.back-math.Log(rho)/phiBack)
	if len(c.run) < maxRun {
		f.expBefore = c.exp
		c.run = append(c.run, f)
	}
}

// reset restarts the statistic and the run from zero.
func (c *cusum) reset() { c.s, c.run, c.exp = 0, c.run[:0], 0 }

// excess is the run's count above its expectation.
func (c *cusum) excess() float64 { return float64(len(c.run)) - c.exp }
