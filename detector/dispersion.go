package detector

import "math"

// dispersion is the learned overdispersion of the counted first spams
// (quasi-Poisson): decayed Pearson sums of hourly counts against their
// expectation, and of 4-hour blocks, with the block so far. Persisted flat
// in detector_state.
type dispersion struct {
	PhiNum float64 `json:"phi_num"`
	PhiDen float64 `json:"phi_den"`
	// 4-hour blocks (phiSlow) and the block so far.
	Phi4Num float64 `json:"phi4_num,omitzero"`
	Phi4Den float64 `json:"phi4_den,omitzero"`
	BlkC    float64 `json:"blk_c,omitzero"`
	BlkE    float64 `json:"blk_e,omitzero"`
	BlkH    int     `json:"blk_h,omitzero"`
}

// phi is the dispersion of the counted first spams (variance over mean
// of hourly counts): 1 for a Poisson process, more when first spams come in
// clusters. Every test divides its log-likelihood by it (quasi-Poisson), so
// clustered but normal traffic does not look like a surge. Before a week of
// data it leans on a prior of 2 (worth 48 hours).
func (p *dispersion) phi() float64 {
	v := (p.PhiNum + 2*48) / (p.PhiDen + 48)
	return math.Max(1, math.Min(v, 20))
}

// phiSlow is the dispersion for the tests that add evidence up over hours
// (the aggregate CUSUM, the 24-hour window): the same Pearson ratio over
// 4-hour blocks, and never below phi. Spam volume swings by the day, so
// one busy morning puts excess into several hours at once; hourly counts
// miss that correlation and would let a CUSUM count one busy morning as
// many independent surprises. (Measured on the simulator: 3.3 for hours,
// 4.1 for 4-hour blocks.)
func (p *dispersion) phiSlow() float64 {
	v := (p.Phi4Num + 2*12) / (p.Phi4Den + 12)
	return math.Max(p.phi(), math.Min(v, 20))
}

// addHour learns from an ordinary hour (no incident open, something
// expected): its count c against the expectation e, and the block it ends.
func (p *dispersion) addHour(c, e float64) {
	r := (c - e) * (c - e) / e
	decP := math.Pow(0.5, 1/(7*24.0))
	p.PhiNum = p.PhiNum*decP + math.Min(r, 100)
	p.PhiDen = p.PhiDen*decP + 1
	p.BlkC += c
	p.BlkE += e
	p.BlkH++
	if p.BlkH == 4 {
		r := (p.BlkC - p.BlkE) * (p.BlkC - p.BlkE) / p.BlkE
		dec4 := math.Pow(0.5, 4/(7*24.0))
		p.Phi4Num = p.Phi4Num*dec4 + math.Min(r, 100)
		p.Phi4Den = p.Phi4Den*dec4 + 1
		p.breakBlock()
	}
}

// breakBlock drops the block so far: a block is four consecutive ordinary
// hours.
func (p *dispersion) breakBlock() { p.BlkC, p.BlkE, p.BlkH = 0, 0, 0 }
