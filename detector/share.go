package detector

import (
	"math"
	"time"

	"go.uber.org/zap"
)

// The share test: first spams per spam delivered to known addresses.
//
// The other tests count first spams against time, and count at most
// perCampaign of an ordinary campaign's an hour (campaigns bring first
// spams in clusters). A drip hidden in the day's ordinary campaigns, each
// leaked address getting one message from a campaign already running, so
// that no campaign looks new, stays under that cap: the counted first
// spams hardly move while all first spams double. Counting them all
// against time instead would alarm on every busy spam day (volume swings
// by a fifth from day to day, and first spams with it).
//
// So this test measures first spams against spam: every spam message
// expects q·a first spams per recipient already known, where a is the
// share of the known addresses that are at risk (only those can have a
// first spam: on a new store it grows from 0 as addresses mature) and q
// is learnt (about 0.02 on the simulator), and a one-sided Poisson CUSUM tuned for shareRho times that
// share counts every first spam, capped or not. Busy days bring more
// spam and more first spams alike and cancel; a leaked list that the
// ordinary campaigns start to reach raises the share. The dispersion is
// learnt from 4-hour blocks (first spams still come in small clusters).
// An incident it opens (trigger cusum_share) takes every first spam while
// open, not only the counted ones.

const (
	shareRho = 2
	// The prior share: 0.015 first spams per at-risk known spam
	// recipient, worth 100 of them (a day of warm-up learns it).
	sharePrior, sharePriorWeight = 0.015, 100
	shareHalfLife                = 7 * 24.0 // hours
	shareBlockHours              = 4
	sharePhiPrior                = 3 // dispersion, worth 12 blocks
)

// shareState is what the test learns (persisted, flat in its JSON).
type shareState struct {
	ShareNum float64 `json:"share_num,omitzero"`
	ShareDen float64 `json:"share_den,omitzero"`
	SharePN  float64 `json:"share_phi_num,omitzero"`
	SharePD  float64 `json:"share_phi_den,omitzero"`
	ShareBlC float64 `json:"share_block_c,omitzero"`
	ShareBlE float64 `json:"share_block_e,omitzero"`
	ShareBlH int     `json:"share_block_hours,omitzero"`
}

// shareQ is the learnt first spams per known spam recipient.
func (s *shareState) shareQ() float64 {
	return (s.ShareNum + sharePrior*sharePriorWeight) / (s.ShareDen + sharePriorWeight)
}

// sharePhi is the learnt dispersion of hourly first-spam counts against
// the share's expectation, over 4-hour blocks.
func (s *shareState) sharePhi() float64 {
	v := (s.SharePN + sharePhiPrior*12) / (s.SharePD + 12)
	return math.Max(1, math.Min(v, 20))
}

// shareExpect takes a spam message with known recipients: its expected
// first spams.
func (d *Detector) shareExpect(known int) {
	if known == 0 {
		return
	}
	tracked := d.pop.Tracked()
	if tracked == 0 {
		return
	}
	n := float64(known) * float64(d.pop.AtRisk()) / float64(tracked)
	e := d.st.shareQ() * n
	d.hrShareN += n
	d.hrShareE += e
	d.win.cur().ae += e
	if in := d.open[KindSurge]; in != nil && in.Trigger == TriggerCUSUMShare {
		in.Expected += e
		d.cusumShare.expectBack(e, shareRho, d.phiShare)
	}
	d.cusumShare.expect(e, shareRho, d.phiShare)
}

// shareHit counts a first spam, counted or not, in the share test; it
// reports whether it opened an incident on it (which then holds it).
func (d *Detector) shareHit(f fsEvent, t time.Time) bool {
	d.win.cur().a++
	if d.o.NoShare {
		return false
	}
	if in := d.open[KindSurge]; in != nil {
		if in.Trigger == TriggerCUSUMShare {
			// Its evidence that the share is back (the caller adds
			// the first spam to it).
			d.cusumShare.hit(f, shareRho, d.phiShare, d.phiShare)
		}
		return false
	}
	d.cusumShare.begin()
	if d.st.Warm {
		return false
	}
	d.cusumShare.hit(f, shareRho, d.phiShare, d.phiShare)
	c := &d.cusumShare
	if c.s < d.o.Threshold || c.excess() < d.o.MinExcess || d.open[KindDictionary] != nil {
		return false
	}
	events, runExp := c.run, c.exp
	if d.dictionaryShare(events) >= float64(len(events)) {
		// A dictionary attack's: the dictionary test's business.
		c.reset()
		return false
	}
	run := events[changePoint(events, runExp):]
	in := d.newIncident(KindSurge, TriggerCUSUMShare, t)
	in.StartedAt = run[0].t
	in.Score = c.s / d.o.Threshold
	in.Expected = runExp * float64(len(run)) / float64(len(events))
	for _, f := range run {
		f.mi.complete()
		in.addFS(&f)
	}
	in.Observed = float64(len(run))
	d.open[KindSurge] = in
	c.back = 0
	d.lastUpd[KindSurge] = t
	d.resetRuns()
	d.strataReset()
	d.announce(in, t, zap.String("trigger", TriggerCUSUMShare), zap.Int("recipients", in.Recipients),
		zap.Float64("expected", in.Expected), zap.Time("started_at", in.StartedAt), zap.Float64("share", d.st.shareQ()))
	return true
}

// shareHour learns the finished hour's share and dispersion.
func (d *Detector) shareHour() {
	st := &d.st.shareState
	e, c := d.hrShareE, d.hrAll
	open := len(d.open) > 0 || len(d.strat.scoped) > 0
	// An hour far above the expectation teaches it only so much (a
	// drip must not teach itself), except in warm-up, where the share
	// is still being found.
	capped := math.Min(c, e+3*math.Sqrt(d.phiShare*e)+2)
	if d.st.Warm {
		capped = c
	}
	if open {
		capped = math.Min(c, e)
	}
	dec := math.Pow(0.5, 1/shareHalfLife)
	st.ShareNum = st.ShareNum*dec + capped
	st.ShareDen = st.ShareDen*dec + d.hrShareN
	if open || e <= 0 {
		st.ShareBlC, st.ShareBlE, st.ShareBlH = 0, 0, 0
	} else {
		st.ShareBlC += c
		st.ShareBlE += e
		if st.ShareBlH++; st.ShareBlH >= shareBlockHours {
			if st.ShareBlE > 0.5 {
				decB := math.Pow(0.5, shareBlockHours/shareHalfLife)
				r := (st.ShareBlC - st.ShareBlE) * (st.ShareBlC - st.ShareBlE) / st.ShareBlE
				st.SharePN = st.SharePN*decB + math.Min(r, 100)
				st.SharePD = st.SharePD*decB + 1
			}
			st.ShareBlC, st.ShareBlE, st.ShareBlH = 0, 0, 0
		}
	}
	d.phiShare = st.sharePhi()
}
