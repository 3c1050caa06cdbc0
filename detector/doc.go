// Package detector turns observations of relayed mail into surge
// incidents: through package recipients it knows which established
// addresses never received spam ("at risk"), and it notices when many of
// them start receiving it.
//
// The data flows one way: ingest.Observation → recipients.Population.Apply
// (one outcome per recipient) → the statistics here → incidents, which the
// api and alert packages read through Incidents.
//
// Use (daemon.Run does this; daemon holds the config wiring, detector
// never reads the config):
//
//	det, err := daemon.OpenDetector(cfg, reg, log, nil) // key file + Pebble at store.path; a corrupt store is refused
//	defer det.Close()                       // flushes pending transitions (synced), closes the store
//	events := det.Observe(o)                // from the ONE goroutine that drains the queue
//	events = det.Tick(time.Now())           // about once a second, same goroutine: resolution, flushes
//	incidents := det.Incidents()            // from any goroutine: open + the last 50 resolved
//
// Files, one concern each:
//
//   - detector.go: the Detector, New, Observe, Tick, Close, persistence;
//   - clock.go: the only place that steps time (advance, onMinute, onHour);
//   - model.go: the learned rates; rhythm.go, dispersion.go: the daily and
//     weekly rhythm and the overdispersion, as small types;
//   - cusum.go, window.go: the CUSUM type (one per test and stratum) and the
//     minute ring of the window tests;
//   - share.go: the share test (first spams per spam to known addresses);
//   - strata.go: the same first-spam test per recipient domain and source
//     tag, and the incidents scoped to one of them;
//   - campaign.go: campaign grouping, novelty, dictionary evidence;
//   - trigger.go: first spams, the tests that open an incident, change-point
//     dating, resolution; book.go: every incident's life cycle;
//   - attribution.go: canaries and source-list attribution of incidents;
//   - names.go: kinds, states, events, triggers.
//
// It is pure logic: every method takes the time from the observation (or an
// explicit now), there are no goroutines and no clocks inside, so the live
// daemon, replay and the tests run the same code. One goroutine owns a
// Detector. It never stores, logs or exports a plaintext address: recipients
// are normalised and replaced by their keyed hash (package addr) on entry.
//
// # Recipient state
//
// Kept by package recipients. Per address (16-byte keyed id): first mail,
// first spam (minutes), last mail (day), in an open-addressing table of
// packed 16-byte slots keyed by the id's first 64 bits. An address is established once its first mail is
// older than Options.Warmup, at risk while established and never spammed,
// dormant when its last mail is older than Options.Dormant. Only
// transitions are written to the store (first mail, first spam, and last
// mail once it moved a week), in synced batches every Options.FlushEvery
// or Options.FlushMax transitions; the at-risk count is kept
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
//   - Campaign clusters. Spam campaigns sweep lists, so one ordinary
//     campaign that reaches a few rarely spammed addresses yields a burst of
//     first spams that is not a leak. A campaign (sender domain + client
//     network) feeds at most three first spams an hour into the statistics
//     unless it is novel (see below): a fifth or more of its known
//     recipients get their first spam. A leaked list is
//     mostly never-spammed addresses, so its campaigns are novel and count
//     in full; an ordinary campaign to already-spammed addresses counts
//     nothing. spamsurge_first_spam_total still counts every first spam.
//   - Dispersion. What remains is still clustered, so every test is
//     quasi-Poisson: log-likelihoods are divided by φ, the Pearson
//     dispersion of hourly counts (variance over mean, learned with a
//     one-week half-life, prior 2, bounded to [1, 20]). The tests that add
//     evidence up over hours (the aggregate CUSUM, the 24-hour window) use
//     the same ratio over 4-hour blocks where it is larger: spam volume
//     swings by the day, so a busy morning puts excess into several hours
//     at once, one surprise rather than many.
//   - λ is an exponentially weighted ratio of counts to exposure with a
//     half-life of Options.HalfLife (72 h), started from a prior
//     (Options.PriorPerDay, worth Options.PriorWeight address-hours) so a
//     new install has a sensible rate. Each hour's count enters clipped at
//     expected + 3·sqrt(φ·expected) + 2, and while an incident is open at
//     most at the expected count: past incidents do not inflate the
//     baseline, yet a genuine level shift is followed within days.
//   - The rhythm factors (24 hour-of-day, 7 day-of-week) are ratios of
//     observed to flat-expected counts, half-life four weeks, normalised to
//     mean 1 so the level lives in λ alone. Each is shrunk toward the mean
//     by empirical Bayes (James–Stein): its noise is measured from the
//     scatter of its units (single hours for the hours of the day, whole
//     days for the weekdays, because spam volume swings from day to day
//     far more than hourly counts suggest), and it keeps only the part of
//     its deviation that the spread among the factors shows to be real.
//     Hours borrow from their neighbours (weights ¼ ½ ¼), since the daily
//     rhythm is smooth. A cycle stays flat until each of its groups has
//     about three units (three days for the hours, three weeks for the
//     weekdays): two quiet Wednesdays must not halve every Wednesday's
//     expectation.
//   - The trap of young histories: when observation starts, addresses that
//     are on spammers' lists but rarely spammed look never-spammed, so the
//     first-spam rate starts high and decays over weeks. A 72 h half-life
//     follows that decay with a lag of a few days, during which the baseline
//     overestimates the true rate by well under 2×; the CUSUM below keeps a
//     negative drift for any overestimate (and any underestimate up to
//     1.8×), so the decay costs some sensitivity but raises no alarm and
//     never freezes the baseline. bench/detection replays 90 days of a
//     population built with this trap (sim) without a false incident.
//
// Novel campaigns. A campaign working from an old list reaches few
// never-spammed addresses; one working from a leaked list reaches mostly
// those. A first spam is "novel" when its campaign (sender domain + client
// network), or its sender domain alone across campaigns, has given at
// least a fifth of its recipients their first spam this hour and the last
// (with a prior of ten recipients). On an established history the novel
// stream is nearly silent, so it gets its own CUSUM with its own learned
// rate, floored at 2 % of the aggregate rate, and tuned for a tenfold rise
// (ln 10 per event): a leak sent in small campaigns, too slow to move the
// aggregate rate much, shows within hours. The floor makes it forget: it
// drains by 9 × 2 % of the aggregate expectation E (first spams an hour),
// so an isolated novel campaign of k first spams is forgotten after about
// 13·k/E hours, instead of adding up with the next one weeks later. While
// it gathers evidence (or an incident is open) an hour teaches the novel
// rate at most its expected count, so a drip cannot become its own
// baseline before it alarms. Spam without a usable sender domain (null
// sender, garbage) has no sender-wide novelty. A leak mixed into old-list
// campaigns dilutes the novelty and is left to the aggregate tests below.
//
// Tests, evaluated at each counted first spam while no incident of its kind
// is open:
//
//   - A Poisson CUSUM for a rate increase of Options.Rho (3×): at each
//     counted first spam S += ln ρ / φ₄, between events S -= (ρ−1)·μ·dt / φ₄
//     (φ₄ the 4-hour block dispersion above),
//     floored at 0; alarm at S ≥ Options.Threshold (12). ρ = 3 keeps the
//     drift negative for baseline errors up to 2/ln 3 ≈ 1.8× and is close
//     to optimal for the 2–4× rates of a drip; h = 12 is an in-control
//     run length of the order of e^12 expected events.
//
//   - The novel-campaign CUSUM above, alarm at the same Options.Threshold.
//
//   - Two window tail tests against the same expectation: the last 10
//     minutes (bursts: a leak blast crosses it within a minute) and the
//     last 24 hours against 1.5× the expectation (drips too slow for the
//     CUSUM's memory; the margin because over a day the expected count is
//     large enough that a Poisson test would flag a baseline merely 10 %
//     off). The statistic is the Poisson Chernoff bound
//     (x·ln(x/m) − x + m)/φ ≥ Options.WindowThreshold (14), with φ₄ for
//     the 24-hour window.
//
//   - The share test (share.go): every first spam, counted or beyond its
//     campaign's quota, against the spam delivered to known at-risk
//     addresses, a Poisson CUSUM for a doubling. Spam volume swings cancel
//     out; a drip hidden in the ordinary campaigns, which the quota caps
//     away from the tests above, doubles the share. Trigger cusum_share.
//
//   - Per stratum (strata.go, Options.PerDomain and PerTag): the first
//     spams of each recipient domain and each source tag against its own
//     at-risk population and learnt ratio to the global rate, a Poisson
//     CUSUM for ρ = 10 at Options.Threshold + ln K for K watched strata,
//     with an excess of at least 6; the incident it opens has a Scope.
//
// Every alarm also needs an excess of at least Options.MinExcess (15)
// events, so a handful of coincident first spams is not a leak.
//
// # Incidents
//
// An incident starts at the first event of the excess: among the counted
// first spams since the CUSUM last stood at zero that explain at least half
// of the run's excess, the one from which on the generalised likelihood
// ratio of a raised rate is largest (no earlier than the window of a window
// test). It carries observed and
// expected counts from then on, the score (statistic over threshold, ≥ 1),
// the recipients' ids, the share of them that were dormant, and campaigns:
// the first spams grouped by sender domain, client network (/24, /48),
// normalised subject (case folded, digit runs as #, addresses masked) and
// Message-ID domain, top five with their shares. It is updated (event at
// most every 10 minutes) while the excess goes on and resolved with
// hysteresis: a reverse CUSUM gathers evidence that the rate is back to the
// baseline rather than ρ times it (resolve at 6), or, where the base rate
// is too low for that, twelve hours pass with at most 1.5× the expected
// count plus 3 (never within two hours of opening). The statistics then
// restart from zero.
//
// An incident the novel-campaign CUSUM opened lives on that basis: it is
// dated from its campaigns' first first spams (up to an hour before the
// first novel one), it takes only novel first spams, its expected count is
// the novel rate's, and its resolution watches the novel rate with its own
// reverse CUSUM and 12-hour window. A drip that barely moves the aggregate
// rate keeps it open as long as it drips.
//
// Not a leak: recipients the next hop rejected are never recorded; spam to
// addresses never seen before, and rejected recipients, are dictionary
// evidence. An excess whose campaigns carry at least as much dictionary
// evidence as first spams is reported with kind "dictionary", and a burst of
// dictionary evidence alone opens a "dictionary" incident; a leak of
// established addresses is kind "surge". Spam to addresses that were
// already spammed changes nothing.
//
// # Gaps
//
// Time between observations (or the daemon's ticks) is integrated minute by
// minute as exposure. A gap of more than a day is taken as missing data (a
// stopped daemon, a hole in a log, a bogus timestamp), not as a quiet day:
// the clock jumps, windows and CUSUM runs restart, the learned rates are
// left as they were and addresses mature. Integrating three days of
// downtime used to halve the learned rate.
//
// # Warm-up
//
// With a new or empty store, or a key whose fingerprint differs from the
// stored one, nothing is known: every address would look new. The detector
// then runs in warm-up (metric spamsurge_detector_warmup = 1) for Warmup +
// Options.Learn after its first observation: it records and learns but
// opens no incidents.
package detector
