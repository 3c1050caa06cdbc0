// Package detector turns observations of relayed mail into recipient state
// and surge incidents: it knows which established addresses never received
// spam ("at risk") and notices when many of them start receiving it.
//
// It is pure logic: every method takes the time from the observation (or an
// explicit now), there are no goroutines and no clocks inside, so the live
// daemon, replay and the tests run the same code. One goroutine owns a
// Detector. It never stores, logs or exports a plaintext address: recipients
// are normalised and replaced by their keyed hash (package addr) on entry.
//
// # Recipient state
//
// Per address (16-byte keyed id): first mail, first spam, last mail, in
// minutes. An address is established once its first mail is older than
// Options.Warmup, at risk while established and never spammed, dormant
// when its last mail is older than Options.Dormant. Only transitions are
// written to the store (first mail, first spam, the day of last mail), in
// synced batches every Options.FlushEvery; the at-risk count is kept
// incrementally: an address seen at t joins an hourly "matures at
// t+warmup" bucket, which is added to the count when the clock passes it.
//
// # Statistics
//
// The signal is the count of first-spam events among at-risk addresses. Its
// normal rate is modelled as N(t)·λ·s(t): N the at-risk population (the
// denominator, as in Rogerson and Yamada's Poisson CUSUM for rates with a
// changing population), λ the first-spam rate per at-risk address-hour and
// s(t) a daily × weekly rhythm factor.
//
//   - λ is an exponentially weighted ratio of counts to exposure with a
//     half-life of Options.HalfLife (72 h), started from a prior
//     (Options.PriorPerDay, worth Options.PriorWeight address-hours) so a
//     new install has a sensible rate. Each hour's count enters the
//     estimate clipped at expected + 3·sqrt(expected) + 2, and hours during
//     an open incident are not learned: past incidents do not inflate the
//     baseline, yet a genuine level shift is followed within days.
//   - The rhythm factors (24 hour-of-day, 7 day-of-week) are ratios of
//     observed to flat-expected counts, with a half-life of four weeks and
//     shrunk toward 1 by 20 pseudo-events, so thin data gives a flat rhythm.
//   - The trap of young histories: when observation starts, addresses that
//     are on spammers' lists but rarely spammed look never-spammed, so the
//     first-spam rate starts high and decays over weeks. A 72 h half-life
//     follows that decay with a lag of a few days, during which the baseline
//     overestimates the true rate by well under 2×; the CUSUM below keeps a
//     negative drift for any overestimate (and any underestimate up to
//     1.8×), so the decay costs some sensitivity but raises no alarm and
//     never freezes the baseline.
//
// Tests, evaluated continuously at each event and each clock advance:
//
//   - A Poisson CUSUM for a rate increase of Options.Rho (3×): at each
//     at-risk first spam S += ln ρ, between events S -= (ρ-1)·μ·dt, floored
//     at 0; alarm at S ≥ Options.Threshold (12, an in-control run length of
//     the order of e^12 expected events, decades at normal rates). ρ = 3
//     keeps the drift negative for baseline errors up to 2/ln 3 ≈ 1.8×,
//     and detects a sustained 5× rate in a few expected-event-times.
//   - Two window tail tests against the same expectation: the last 10
//     minutes (bursts) and the last 24 hours (drips too slow for the
//     CUSUM's memory). The statistic is the Poisson Chernoff bound
//     x·ln(x/m) − x + m ≥ Options.WindowThreshold (14, p ≤ 8·10⁻⁷ per test).
//
// Every alarm also needs an excess of at least Options.MinExcess events, so a
// handful of coincident first spams in a small population is not a leak.
//
// # Incidents
//
// An incident starts at the first event of the excess (the first at-risk
// first spam after the CUSUM last stood at zero), carries observed and
// expected counts since then, the score (S/threshold, or the window
// statistic / its threshold), the recipients' ids, the share of them that
// were dormant, and campaigns: the first spams grouped by sender domain,
// client network (/24, /48), normalised subject and Message-ID domain, top
// groups with their shares. It is updated while the excess goes on and
// resolved (hysteresis) once two hours pass with at most 1.5× the expected
// count plus 3; the CUSUM then restarts from zero.
//
// Not a leak: recipients the next hop rejected are never recorded; spam to
// addresses never seen before, and rejected recipients, are dictionary
// evidence. An excess whose campaigns carry at least as much dictionary
// evidence as first spams is reported with kind "dictionary", and a burst of
// dictionary evidence alone opens a "dictionary" incident; a leak of
// established addresses is kind "surge". Spam to addresses that were
// already spammed changes nothing.
//
// # Warm-up
//
// With a new or empty store, or a key whose fingerprint differs from the
// stored one, nothing is known: every address would look new. The detector
// then runs in warm-up (metric spamsurge_detector_warmup = 1) for Warmup +
// Options.Learn after its first observation: it records and learns but
// opens no incidents.
package detector
