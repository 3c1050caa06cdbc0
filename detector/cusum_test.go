package detector

import (
	"math"
	"testing"
	"time"
)

// The CUSUM on its own: hits raise it by ln ρ/φ, expectation lowers it by
// (ρ−1)e/φ, and at zero the run of candidates starts afresh; each candidate
// remembers the run's expectation before it, which dates the change.
func TestCUSUMStepsOnItsOwn(t *testing.T) {
	const rho, phi = 2.0, 1.0
	var c cusum
	c.begin()
	for i := 0; i < 5; i++ {
		c.expect(0.1, rho, phi)
		c.hit(fsEvent{t: t0.Add(time.Duration(i) * time.Minute)}, rho, phi, phi)
	}
	if want := 5*math.Log(rho) - 4*0.1; math.Abs(c.s-want) > 1e-12 {
		t.Fatalf("s = %v, want %v", c.s, want)
	}
	if len(c.run) != 5 || math.Abs(c.run[2].expBefore-0.3) > 1e-12 || math.Abs(c.exp-0.5) > 1e-12 {
		t.Fatalf("run %d, expBefore[2] %v, exp %v", len(c.run), c.run[2].expBefore, c.exp)
	}
	if c.excess() != 4.5 {
		t.Fatalf("excess %v, want 4.5", c.excess())
	}
	// Quiet time brings it back to zero; the run is gone.
	for c.s > 0 {
		c.expect(1, rho, phi)
	}
	if c.s != 0 || len(c.run) != 0 || c.exp != 0 {
		t.Fatalf("after quiet: s %v, run %d, exp %v", c.s, len(c.run), c.exp)
	}
	// The reverse statistic gathers evidence while open and loses it on
	// every hit, never below zero.
	c.expectBack(2, rho, phi)
	if c.back != 2 {
		t.Fatalf("back %v, want 2", c.back)
	}
	c.hit(fsEvent{}, rho, phi, phi)
	c.hit(fsEvent{}, rho, phi, phi)
	c.hit(fsEvent{}, rho, phi, phi)
	if c.back != 0 {
		t.Fatalf("back %v, want 0", c.back)
	}
}
