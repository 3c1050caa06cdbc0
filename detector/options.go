package detector

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/store"
)

// Store is the durable state the detector needs (store.Pebble,
// store.Memory, later Redis).
type Store interface {
	// Recipients calls fn for every recipient record in the key space.
	Recipients(space [8]byte, fn func(id [16]byte, r store.Record) error) error
	// Meta returns a named blob, nil if absent.
	Meta(name string) ([]byte, error)
	// Commit writes b atomically, durably when sync is set.
	Commit(b *store.Batch, sync bool) error
}

// Options configure a Detector. The zero value of every field but Key and
// Store is replaced by its default.
type Options struct {
	Key   *addr.Key // required: keys address hashes
	Store Store     // required
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	Logger     *zap.Logger

	Normalizer addr.Normalizer
	Warmup     time.Duration // default 168h: established after this
	Dormant    time.Duration // default 30 days
	// ForgetAfter drops addresses without mail for this long (default
	// 400 days; negative: never), so the state does not grow for ever and
	// a closed account is forgotten.
	ForgetAfter time.Duration
	// DomainCounts keeps the per-domain at-risk counts (recipients
	// Options.Domains) that per-domain detection will test; off by
	// default until that test exists, as it costs the hot path.
	DomainCounts bool
	// PerDomain and PerTag run the first-spam test for every recipient
	// domain and every source tag on its own, besides the whole
	// population (strata.go). PerDomain keeps the domain counts.
	PerDomain, PerTag bool
	// NoShare turns the share test off (share.go): first spams per spam
	// delivered to known addresses.
	NoShare    bool
	Learn      time.Duration // default 72h of learning after Warmup on a new store
	FlushEvery time.Duration // default 1s: the crash loss window
	FlushMax   int           // default 1000 transitions per batch
	// NoSync commits batches without waiting for the disk, except on
	// Close: for replay, where a crash means running it again.
	NoSync bool

	// Statistics; see the package doc.
	HalfLife        time.Duration // default 72h
	PriorPerDay     float64       // default 0.001 first spams per at-risk address per day
	PriorWeight     float64       // default 24,000 address-hours
	Rho             float64       // default 3
	Threshold       float64       // default 12
	WindowThreshold float64       // default 14
	MinExcess       float64       // default 15 events
	// DictMin is the number of dictionary-evidence recipients in 10 minutes
	// that, at 10× their usual level, opens a dictionary incident (default 200).
	DictMin float64

	// Attribution, when set, gives the source tag and canary lists
	// (see attribution.go).
	Attribution Attributor

	// NotAfter, when set, is the latest time the detector's clock may
	// reach: the wall clock plus detector.max_clock_skew in serve. An
	// observation dated later is refused (counted, logged) and never moves
	// the clock, and a stored clock found beyond it at the first
	// observation is pulled back to it, the learned state kept. Without
	// it (replay, tests) time is the observations' own.
	NotAfter func() time.Time

	// RateOverride, when set, replaces the learned expected rate (first
	// spams per at-risk address-hour at t): the oracle of bench/detection.
	RateOverride func(t time.Time) float64
	// NovelRateOverride does the same for the rate of first spams from
	// novel campaigns (see novelRate).
	NovelRateOverride func(t time.Time) float64
	// NoNovel turns the novel-campaign CUSUM off, leaving the aggregate
	// tests alone (bench/detection -novel=false measures them).
	NoNovel bool
	// Trace, when set, sees every first spam of an at-risk address,
	// whether it fed the statistics (see perCampaign) and whether its
	// campaign was novel.
	Trace func(t time.Time, id addr.ID, atRisk int, counted, novel bool)
	// Shared: the recipient state is kept by a shared store (a fleet's
	// Redis, recipients/redisstore), which decides the outcomes; they come
	// in through ObserveApplied, and the recipients are counted in tally
	// mode (recipients.Options.Tally). Observe is not to be used.
	Shared bool
	// OnHour, when set, sees every hour of the clock when it ends (what
	// the debug "hour" log line says): the backtest report's series.
	OnHour func(Hour)
}

// Hour is one finished hour of the detector's clock. An hour the clock
// jumped over (a gap of over a day) has none.
type Hour struct {
	Start time.Time // UTC, on the hour
	// FirstSpams are the first spams of at-risk addresses; Counted those
	// that fed the whole population's tests (within their campaign's
	// quota, not explained by an open scoped or share incident): what
	// Expected is the expectation of.
	FirstSpams, Counted, Expected float64
	// Phi is the dispersion learnt so far (variance over mean of the
	// hourly counts, at least 1).
	Phi    float64
	AtRisk int // at the end of the hour
	Open   int // incidents open at the end of the hour
	Warm   bool
}

func (o *Options) fill() error {
	if o.Key == nil {
		return fmt.Errorf("detector: no address key")
	}
	if o.Store == nil {
		return fmt.Errorf("detector: no store")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	deff := func(f *float64, v float64) {
		if *f <= 0 {
			*f = v
		}
	}
	def(&o.Warmup, 168*time.Hour)
	def(&o.Dormant, 30*24*time.Hour)
	if o.ForgetAfter == 0 {
		o.ForgetAfter = 400 * 24 * time.Hour
	}
	if o.Learn < 0 {
		o.Learn = 0
	} else if o.Learn == 0 {
		o.Learn = 72 * time.Hour
	}
	def(&o.FlushEvery, time.Second)
	if o.FlushMax <= 0 {
		o.FlushMax = 1000
	}
	def(&o.HalfLife, 72*time.Hour)
	deff(&o.PriorPerDay, 0.001)
	deff(&o.PriorWeight, 24000)
	deff(&o.Rho, 3)
	deff(&o.Threshold, 12)
	deff(&o.WindowThreshold, 14)
	deff(&o.MinExcess, 15)
	deff(&o.DictMin, 200)
	if o.Rho <= 1 {
		return fmt.Errorf("detector: rho %v must exceed 1", o.Rho)
	}
	return nil
}
