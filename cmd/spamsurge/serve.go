package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/alert"
	"github.com/spamsurge/spamsurge/api"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/smtpd"
	"github.com/spamsurge/spamsurge/verdict"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config `file` (default: built-in defaults)")
	lf := addLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spamsurge serve [--config FILE] [--log-format console|json] [--log-level LEVEL]\n\nRuns the SMTP/LMTP proxy, the detector and the HTTP endpoints until SIGTERM/SIGINT.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge: %v\n", err)
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge: %v\n", err)
		return 2
	}
	defer log.Sync()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("stopped", zap.Error(err))
		return 1
	}
	return 0
}

// serve wires the components; it returns when ctx is done and everything
// has shut down.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	opts, err := smtpOptions(cfg)
	if err != nil {
		return err
	}
	// Every source (the proxy, the HTTP push) feeds the detector through
	// one bounded queue.
	queue := ingest.NewQueue(cfg.Detector.QueueSize, reg)
	opts.Logger = log
	opts.Registerer = reg
	opts.Sink = queue
	proxy, err := smtpd.New(opts)
	if err != nil {
		return err
	}

	// The detector fails open: without it (a corrupt store, an unreadable
	// key) mail still flows, the reason is logged and /readyz says it.
	dlog := log.Named("detector")
	// Source lists (attribution.tags, .canaries): a missing file stops
	// the start; SIGHUP reloads them (lists.go).
	lists, err := openLists(cfg, reg, log)
	if err != nil {
		return err
	}
	defer watchHUP(lists, log)()
	det, detErr := detector.Open(cfg, reg, dlog)
	if det != nil && lists != nil {
		det.SetAttribution(lists)
	}
	if detErr != nil {
		dlog.Error("detector unavailable; relaying mail without detection", zap.Error(detErr))
	}
	// The detector is fed from the queue's goroutine only; its Incidents
	// snapshot is safe to read from the HTTP and alerting side.
	var pusher *alert.Pusher
	if cfg.Alerting.AlertmanagerURL != "" {
		pusher, err = alert.New(alert.Options{
			URL: cfg.Alerting.AlertmanagerURL, Logger: log, Registerer: reg,
			APIURL: "http://" + cfg.HTTP.Listen,
		})
		if err != nil {
			return err
		}
	}
	publish := func(evs []detector.Event) {
		if len(evs) > 0 && pusher != nil {
			pusher.Update(det.Incidents())
		}
		logEvents(dlog, evs)
	}
	consume := func(o ingest.Observation) {
		if ce := dlog.Check(zap.DebugLevel, "observation"); ce != nil {
			ce.Write(zap.Int("rcpt", len(o.Rcpt)), zap.Int("rejected", len(o.Rejected)), zap.Bool("spam", o.Spam))
		}
		if det != nil {
			publish(det.Observe(o))
		}
	}
	tick := func(now time.Time) {
		if det != nil {
			publish(det.Tick(now.UTC()))
		}
	}
	if det != nil && pusher != nil {
		// Incidents still open from before a restart are announced again.
		pusher.Update(det.Incidents())
	}
	token, err := readToken(cfg.HTTP.TokenFile)
	if err != nil {
		return err
	}
	apiOpts := api.Options{
		Gatherer: reg, Logger: log.Named("http"), Token: token,
		Incidents: func() []detector.Incident {
			if det == nil {
				return nil
			}
			return det.Incidents()
		},
	}
	if det != nil {
		apiOpts.Submit = func(obs []ingest.Observation) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if queue.Submit(ctx, obs) != nil {
				return api.ErrBusy
			}
			return nil
		}
	}
	apiOpts.Ready = func() error {
		if detErr != nil {
			return fmt.Errorf("detector unavailable: %w", detErr)
		}
		return proxy.Ready()
	}
	if err := proxy.Listen(); err != nil {
		return fmt.Errorf("smtp.listen: %w", err)
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
	err = proxy.Serve(ctx)
	hcancel()
	wg.Wait()
	if det != nil {
		// Flush the state transitions not yet written.
		if cerr := det.Close(); cerr != nil {
			dlog.Error("closing the store", zap.Error(cerr))
		}
	}
	if err == nil && httpErr != nil && !errors.Is(httpErr, net.ErrClosed) {
		err = httpErr
	}
	return err
}

// readToken reads the API bearer token; an empty path means no token.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("http.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("http.token_file: %s is empty", path)
	}
	return tok, nil
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
		log.Warn("incident", fields...)
	}
}

// smtpOptions turns the config into proxy options.
func smtpOptions(cfg config.Config) (smtpd.Options, error) {
	host := cfg.SMTP.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var allow []netip.Prefix
	for _, p := range cfg.SMTP.AllowFrom {
		pp, _ := config.ParsePrefix(p) // validated
		allow = append(allow, pp)
	}
	o := smtpd.Options{
		Listen:            cfg.SMTP.Listen,
		LMTP:              cfg.SMTP.Protocol == "lmtp",
		Hostname:          host,
		MaxMessageBytes:   cfg.SMTP.MaxMessageBytes,
		MaxRecipients:     cfg.SMTP.MaxRecipients,
		MaxConnections:    cfg.SMTP.MaxConnections,
		MaxLineLength:     cfg.SMTP.MaxLineLength,
		MaxHeaderBytes:    cfg.SMTP.MaxHeaderBytes,
		AllowFrom:         allow,
		RejectBareNewline: cfg.SMTP.BareNewline == "reject",
		StripNUL:          cfg.SMTP.NUL == "strip",
		ReadTimeout:       cfg.SMTP.ReadTimeout.D(),
		WriteTimeout:      cfg.SMTP.WriteTimeout.D(),
		ShutdownTimeout:   cfg.SMTP.ShutdownTimeout.D(),
		XForward:          cfg.Downstream.XForward,
		Downstream: smtpd.DownstreamOptions{
			Address:        cfg.Downstream.Address,
			LMTP:           cfg.Downstream.Protocol == "lmtp",
			TLS:            cfg.Downstream.TLS,
			Hostname:       host,
			ConnectTimeout: cfg.Downstream.ConnectTimeout.D(),
			CommandTimeout: cfg.Downstream.CommandTimeout.D(),
			DataTimeout:    cfg.Downstream.DataTimeout.D(),
		},
	}
	if cfg.SMTP.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLS.CertFile, cfg.SMTP.TLS.KeyFile)
		if err != nil {
			return o, fmt.Errorf("smtp.tls: %w", err)
		}
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.Downstream.TLS == "verify" {
		tc := &tls.Config{ServerName: cfg.Downstream.TLSServerName, MinVersion: tls.VersionTLS12}
		if cfg.Downstream.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.Downstream.TLSCAFile)
			if err != nil {
				return o, fmt.Errorf("downstream.tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("downstream.tls_ca_file: no PEM certificates in %s", cfg.Downstream.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		o.Downstream.TLSConfig = tc
	}
	cl, err := verdict.New(cfg.Verdict.Headers)
	if err != nil {
		return o, fmt.Errorf("verdict.headers: %w", err)
	}
	o.Classifier = cl
	return o, nil
}
