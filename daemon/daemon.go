// Package daemon is a serving spamsurge process: the SMTP/LMTP proxy, the
// detector fed through one bounded queue, the HTTP endpoints and the
// Alertmanager pusher, wired from one config.Config and run until a
// context ends.
//
// It never reads os.Args and never handles a signal (cmd/spamsurge does,
// and turns SIGHUP into Options.Reload), so tests and other binaries can
// run the daemon in-process, as Alertmanager's app package allows.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/alert"
	"github.com/spamsurge/spamsurge/api"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/fleet"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
	"github.com/spamsurge/spamsurge/smtpd"
)

// Options configure Run. The zero value runs the daemon on the built-in
// defaults, like `spamsurge serve` without --config.
type Options struct {
	// Config is the daemon's configuration, as config.Load returns it
	// (Run does not validate it again); the zero value means
	// config.Default().
	Config config.Config
	// Logger is the process logger; components log under their own
	// names. Nil logs nowhere.
	Logger *zap.Logger
	// Registerer receives every component's metrics and Gatherer serves
	// them on /metrics. When both are nil Run builds its own registry
	// with the Go and process collectors, as a real daemon exports them;
	// when one is nil the other must be a *prometheus.Registry (or both
	// a Registerer and a Gatherer).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// ConfigPath is the configuration file Config came from ("": none),
	// for the commands the incident pages print.
	ConfigPath string
	// Reload reloads the attribution lists (tags and canaries) on every
	// receive; cmd/spamsurge sends on it for SIGHUP. A failed reload keeps
	// the old lists (it is logged and counted). Nil, or closed, means no
	// reloads.
	Reload <-chan struct{}
}

// setDefaults fills in what the zero value leaves out.
func (o *Options) setDefaults() error {
	if reflect.ValueOf(o.Config).IsZero() {
		o.Config = config.Default()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registerer == nil && o.Gatherer == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		o.Registerer, o.Gatherer = reg, reg
	}
	if o.Gatherer == nil {
		g, ok := o.Registerer.(prometheus.Gatherer)
		if !ok {
			return errors.New("daemon: Options.Registerer is not a Gatherer and Options.Gatherer is nil")
		}
		o.Gatherer = g
	}
	if o.Registerer == nil {
		r, ok := o.Gatherer.(prometheus.Registerer)
		if !ok {
			return errors.New("daemon: Options.Gatherer is not a Registerer and Options.Registerer is nil")
		}
		o.Registerer = r
	}
	return nil
}

// Run wires the components and serves until ctx is done and everything has
// shut down: the proxy drains the mail in flight, then the HTTP side, the
// queue and the detector stop and the store is flushed. The error says
// what could not start (a listener, a list file, a TLS certificate) or
// how the proxy or the HTTP server failed; an unavailable detector is no
// error (mail still flows, the log and /readyz say why).
func Run(ctx context.Context, o Options) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	cfg, log, reg := o.Config, o.Logger, o.Registerer

	// Every source (the proxy, the log tailers, the HTTP push) feeds the
	// detector through one bounded queue.
	queue := ingest.NewQueue(cfg.Detector.QueueSize, reg)
	// smtp.listen "" turns the proxy off: the tailers and the API are
	// the sources then.
	var proxy *smtpd.Server
	if cfg.SMTP.Listen != "" {
		opts, err := smtpOptions(cfg)
		if err != nil {
			return err
		}
		opts.Logger = log
		opts.Registerer = reg
		opts.Sink = queue
		if proxy, err = smtpd.New(opts); err != nil {
			return err
		}
	}

	// The detector fails open: without it (a corrupt store, an unreadable
	// key) mail still flows, the reason is logged and /readyz says it.
	dlog := log.Named("detector")
	// Source lists (attribution.tags, .canaries): a missing file stops
	// the start; o.Reload reloads them (lists.go).
	lists, err := openLists(cfg, reg, log)
	if err != nil {
		return err
	}
	defer reloadOn(o.Reload, lists, log)()
	// Live time is the wall clock's: an observation from further ahead
	// than max_clock_skew (a bad clock, a bogus POST) must not move the
	// detector's clock, or everything after it would count as late.
	skew := cfg.Detector.MaxClockSkew.D()
	notAfter := func() time.Time { return time.Now().Add(skew) }
	// The detector in use (nil fields: none yet, or none at all). A
	// fleet whose Redis is unreachable at the start attaches it later
	// (retryFleet); everything reads it through cur.
	var cur atomic.Pointer[live]
	cur.Store(&live{})
	var detErr atomic.Pointer[error]
	setErr := func(err error) {
		if err == nil {
			detErr.Store(nil)
		} else {
			detErr.Store(&err)
		}
	}
	var pusher *alert.Pusher
	if cfg.Alerting.AlertmanagerURL != "" {
		pusher, err = alert.New(alertOptions(cfg, log, reg))
		if err != nil {
			return err
		}
	}
	publish := func(evs []detector.Event) {
		if det := cur.Load().det; len(evs) > 0 && pusher != nil && det != nil {
			pusher.Update(det.Incidents())
		}
		logEvents(dlog, evs)
	}
	// attach puts a detector (and a fleet's node) in use.
	attach := func(det *detector.Detector, rs *redisstore.Store) error {
		if lists != nil {
			det.SetAttribution(lists)
		}
		var node *fleet.Node
		if rs != nil {
			// A fleet (store.redis_*): the node applies this instance's
			// mail to Redis and feeds the whole fleet's journal to the
			// detector.
			var err error
			if node, err = NewNode(det, rs, lists, notAfter, publish, reg, log); err != nil {
				return err
			}
		}
		cur.Store(&live{det: det, node: node, rs: rs})
		if pusher != nil {
			// Incidents still open from before a restart are announced again.
			pusher.Update(det.Incidents())
		}
		return nil
	}
	retry := false
	if Fleet(cfg) {
		// A fleet's detectors must all see the same input: the fleet
		// node refuses the future before the journal.
		det, rs, err := OpenFleet(cfg, reg, dlog, nil, false)
		switch {
		case errors.Is(err, redisstore.ErrOtherKey):
			return err // it would split the fleet's population
		case err == nil:
			if err = attach(det, rs); err != nil {
				det.Close()
				rs.Close()
				setErr(err)
			}
		case retryable(err):
			retry = true
			setErr(fmt.Errorf("%w (retrying in the background)", err))
		default:
			setErr(err)
		}
	} else if det, err := OpenDetector(cfg, reg, dlog, func(o *detector.Options) { o.NotAfter = notAfter }); err != nil {
		setErr(err)
	} else {
		attach(det, nil)
	}
	if e := detErr.Load(); e != nil {
		dlog.Error("detector unavailable; relaying mail without detection", zap.Error(*e))
	}
	consume := func(ob ingest.Observation) {
		if ce := dlog.Check(zap.DebugLevel, "observation"); ce != nil {
			ce.Write(zap.Int("rcpt", len(ob.Rcpt)), zap.Int("rejected", len(ob.Rejected)), zap.Bool("spam", ob.Spam))
		}
		switch l := cur.Load(); {
		case l.node != nil:
			l.node.Observe(ob)
		case l.det != nil:
			publish(l.det.Observe(ob))
		}
	}
	tick := func(now time.Time) {
		if l := cur.Load(); l.det != nil && l.node == nil { // a fleet's clock is in its journal
			publish(l.det.Tick(now.UTC()))
		}
	}
	stage := func(name string, v []byte) {
		if l := cur.Load(); l.node != nil {
			l.node.Stage(name, v)
		} else if l.det != nil {
			l.det.StageMeta(name, v)
		}
	}
	token, err := ReadToken(cfg.HTTP.TokenFile)
	if err != nil {
		return err
	}
	apiOpts := api.Options{
		Gatherer: o.Gatherer, Logger: log.Named("http"), Token: token, NotAfter: notAfter, Registerer: reg,
		ConfigPath: o.ConfigPath,
		FirstSeen: func() *detector.FirstSeenCurve {
			if det := cur.Load().det; det != nil {
				return det.FirstSeen()
			}
			return nil
		},
		Incidents: func() []detector.Incident {
			if det := cur.Load().det; det != nil {
				return det.Incidents()
			}
			return nil
		},
	}
	if cur.Load().det != nil || retry {
		// While a fleet waits for Redis there is no detector: a POST gets
		// 503 (retry later), as it does without one.
		apiOpts.Offer = func(ob ingest.Observation) bool {
			return cur.Load().det != nil && queue.TryObserve(ob)
		}
		apiOpts.Submit = func(obs []ingest.Observation) error {
			if cur.Load().det == nil {
				return api.ErrBusy
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if queue.Submit(ctx, obs) != nil {
				return api.ErrBusy
			}
			return nil
		}
	}
	apiOpts.Ready = func() error {
		if e := detErr.Load(); e != nil {
			return fmt.Errorf("detector unavailable: %w", *e)
		}
		if node := cur.Load().node; node != nil {
			if err := node.Ready(); err != nil {
				return err
			}
		}
		if proxy == nil {
			return nil // nothing else to wait for: the tailers wait for their files
		}
		return proxy.Ready()
	}
	if proxy != nil {
		if err := proxy.Listen(); err != nil {
			return fmt.Errorf("smtp.listen: %w", err)
		}
	} else {
		log.Info("smtp proxy off (smtp.listen is empty)", zap.Int("tail_sources", len(cfg.Sources.Tail)))
	}
	hln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	log.Info("http listening", zap.String("address", hln.Addr().String()))

	// The proxy stops first (it drains mail); the HTTP side and the
	// detector follow, so metrics stay scrapeable during the drain.
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	var wg sync.WaitGroup
	var httpErr error
	if pusher != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pusher.Run(hctx)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		httpErr = api.Serve(hctx, hln, api.Handler(apiOpts))
	}()
	go func() {
		defer wg.Done()
		queue.Run(hctx, consume, tick, time.Second)
	}()
	// The node stops after the queue has drained into it.
	nctx, ncancel := context.WithCancel(context.Background())
	defer ncancel()
	var nodes sync.WaitGroup
	// The tailers stop with ctx; what they queued is drained below.
	var tailMu sync.Mutex
	var stopTails []func()
	closing := false
	// The retries end when the daemon stops (rcancel, with closing).
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	// startedLocked runs what feeds on the detector in use: the fleet
	// node and the log tailers (which resume from positions the detector
	// keeps). Call with tailMu held.
	startedLocked := func() {
		if closing {
			return
		}
		l := cur.Load()
		if l.node != nil {
			nodes.Go(func() { l.node.Run(nctx) })
		}
		stopTails = append(stopTails, startTails(ctx, cfg, queue, l.det, stage, reg, log))
	}
	if retry {
		nodes.Go(func() {
			det, rs, ok := retryFleet(rctx, cfg, reg, dlog, setErr)
			if !ok {
				return
			}
			// Attached and started under the lock the shutdown takes: a
			// node attached once stopping began would never run, and the
			// queue's drain would block on it.
			tailMu.Lock()
			defer tailMu.Unlock()
			if closing {
				det.Close()
				rs.Close()
				return
			}
			if err := attach(det, rs); err != nil {
				det.Close()
				rs.Close()
				setErr(err)
				dlog.Error("detector unavailable; relaying mail without detection", zap.Error(err))
				return
			}
			setErr(nil)
			dlog.Info("fleet store reachable: detection on")
			startedLocked()
		})
	} else {
		tailMu.Lock()
		startedLocked()
		tailMu.Unlock()
	}
	if proxy != nil {
		err = proxy.Serve(ctx)
	} else {
		<-ctx.Done()
	}
	tailMu.Lock()
	closing = true
	rcancel()
	for _, stop := range stopTails {
		stop()
	}
	tailMu.Unlock()
	hcancel()
	wg.Wait()
	ncancel()
	nodes.Wait()
	if l := cur.Load(); l.det != nil {
		// Flush the state transitions not yet written.
		if cerr := l.det.Close(); cerr != nil {
			dlog.Error("closing the store", zap.Error(cerr))
		}
		if l.rs != nil {
			l.rs.Close()
		}
	}
	if err == nil && httpErr != nil && !errors.Is(httpErr, net.ErrClosed) {
		err = httpErr
	}
	return err
}

// logEvents writes one line per incident event: ids, counts and campaign
// keys, never an address.
func logEvents(log *zap.Logger, evs []detector.Event) {
	for _, ev := range evs {
		fields := []zap.Field{
			zap.String("event", ev.Event), zap.String("id", ev.ID), zap.String("kind", ev.Kind),
			zap.Int("recipients", ev.Recipients), zap.Float64("observed", ev.Observed),
			zap.Float64("expected", ev.Expected), zap.Float64("score", ev.Score),
			zap.Time("started_at", ev.StartedAt), zap.String("trigger", ev.Trigger),
			zap.Float64("dormant_share", ev.DormantShare),
		}
		if c := ev.Campaigns.SenderDomain; len(c) > 0 {
			fields = append(fields, zap.String("top_sender_domain", c[0].Key), zap.Float64("top_sender_domain_share", c[0].Share))
		}
		if c := ev.Campaigns.ClientNetwork; len(c) > 0 {
			fields = append(fields, zap.String("top_client_network", c[0].Key))
		}
		if ev.TopSource != "" {
			fields = append(fields, zap.String("top_tag", ev.TopTag), zap.String("top_source", ev.TopSource))
		}
		if ev.CanarySource != "" {
			fields = append(fields, zap.String("canary_source", ev.CanarySource))
		}
		if s := ev.ListSnapshot; s != nil {
			fields = append(fields, zap.Time("list_snapshot_not_before", s.NotBefore), zap.Time("list_snapshot_not_after", s.NotAfter))
		} else if ev.ListSnapshotReason != "" {
			fields = append(fields, zap.String("list_snapshot_reason", ev.ListSnapshotReason))
		}
		log.Warn("incident", fields...)
	}
}
