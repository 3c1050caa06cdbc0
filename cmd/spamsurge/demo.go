package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/replay"
	"github.com/spamsurge/spamsurge/sim"
)

// demoCommand shows a leak being caught, self-contained: an in-process
// next hop, synthetic history bootstrapped into a fresh store, then live
// SMTP through the real proxy, the detector, /metrics and the API.
func demoCommand() command {
	var (
		keep               bool
		addresses, rate    int
		leakAfter, maxWait time.Duration
		seed               uint64
		httpListen         string
	)
	return command{
		name:    "demo",
		summary: "watch a leak being caught: self-contained, about a minute",
		args:    "[--keep-running] [--addresses N] [--rate N]",
		help:    "Runs a self-contained demonstration: no config, no outside server. It\nbootstraps 90 days of synthetic mail history, relays live SMTP traffic through\nthe real proxy to an in-process next hop, starts leaking a list of\nnever-spammed addresses, and shows the incident being opened.",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&keep, "keep-running", false, "keep serving after the demo (point Prometheus at the /metrics URL); stop with Ctrl-C")
			fs.IntVar(&addresses, "addresses", 5000, "size of the synthetic population")
			fs.IntVar(&rate, "rate", 20, "live messages per second")
			fs.DurationVar(&leakAfter, "leak-after", 15*time.Second, "live traffic before the leak starts")
			fs.DurationVar(&maxWait, "timeout", 3*time.Minute, "give up if no incident opens within this time after the leak")
			fs.Uint64Var(&seed, "seed", 7, "random seed")
			fs.StringVar(&httpListen, "http", "127.0.0.1:9464", "HTTP listen address (a free port is used if taken)")
		},
		run: func(ctx context.Context, e *env) error {
			d := &demo{out: e.stdout, rng: rand.New(rand.NewPCG(seed, 1)), rate: rate}
			err := d.run(ctx, addresses, seed, httpListen, leakAfter, maxWait, keep)
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C ends the demo
			}
			return err
		},
	}
}

type demo struct {
	out  io.Writer
	rng  *rand.Rand
	rate int

	ham, spam, atRisk []string // recipient pools from the history
	// listed is the leaked list: the at-risk addresses that existed when
	// it was copied (copiedAt, three weeks before now).
	listed   []string
	copiedAt time.Time
	sent     atomic.Int64
	sentSpam atomic.Int64
	leaked   atomic.Int64
	failed   atomic.Int64
	sinkGot  atomic.Int64
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demo) run(ctx context.Context, n int, seed uint64, httpListen string, leakAfter, maxWait time.Duration, keep bool) error {
	dir, err := os.MkdirTemp("", "spamsurge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// 1. An in-process next hop that accepts everything.
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sink := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{d: d}, nil }))
	sink.Domain, sink.ReadTimeout, sink.WriteTimeout = "sink.demo", time.Minute, time.Minute
	sink.ErrorLog = zap.NewStdLog(zap.NewNop())
	go sink.Serve(sinkLn)
	defer sink.Close()

	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.Downstream.Address = sinkLn.Addr().String()
	cfg.SMTP.Hostname = "spamsurge.demo"
	if cfg.SMTP.Listen, err = freeAddr("127.0.0.1:0"); err != nil {
		return err
	}
	if cfg.HTTP.Listen, err = freeAddr(httpListen); err != nil {
		return err
	}

	// 2. History: 90 days of synthetic mail, replayed into the store.
	d.say("spamsurge demo — catching a leaked address list\n")
	d.say("1. Bootstrapping 90 days of synthetic history for %d addresses...", n)
	start := time.Now()
	if err := d.bootstrap(ctx, cfg, n, seed); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	d.say("   done in %s: %d addresses known, %d of them established and never spammed (at risk).\n",
		time.Since(start).Round(100*time.Millisecond), len(d.ham), len(d.atRisk))

	// 3. The daemon, for real: proxy, detector, HTTP.
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- daemon.Run(sctx, daemon.Options{Config: cfg}) }()
	defer func() {
		stop()
		<-served
	}()
	if err := waitUp(ctx, cfg.SMTP.Listen, cfg.HTTP.Listen); err != nil {
		return err
	}
	base := "http://" + cfg.HTTP.Listen
	d.say("2. spamsurge is relaying on %s to an in-process next hop; metrics at %s/metrics", cfg.SMTP.Listen, base)
	d.say("   Live traffic: %d messages/s, ham and ordinary spam campaigns to addresses that already get spam.", d.rate)
	d.say("   In %s a spammer starts using a leaked list of never-spammed addresses.\n", leakAfter)

	// 4. Live traffic, then the leak.
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	leakAt := time.Now().Add(leakAfter)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			d.traffic(tctx, cfg.SMTP.Listen, leakAt, w)
		}(w)
	}
	defer wg.Wait()

	tty := isTerminal(d.out)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	announced := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		m := scrape(base + "/metrics")
		if !announced && time.Now().After(leakAt) {
			announced = true
			if tty {
				fmt.Fprintln(d.out)
			}
			d.say("   >>> %s: the leak starts: spam to never-spammed addresses from a new campaign.", time.Now().Format("15:04:05"))
		}
		line := fmt.Sprintf("   %s  relayed %5.0f  spam %4d  first-spams %4.0f  expected %.2f/h  score %.2f  at-risk %4.0f",
			time.Now().Format("15:04:05"), m["spamsurge_messages_total{result=\"relayed\"}"], d.sentSpam.Load(),
			m["spamsurge_first_spam_total"], m["spamsurge_first_spam_expected_per_hour"], m["spamsurge_surge_score"], m["spamsurge_recipients_at_risk"])
		if tty {
			fmt.Fprintf(d.out, "\r%s", line)
		} else if time.Now().Second()%5 == 0 {
			d.say("%s", line)
		}
		in, err := openSurge(base)
		if err != nil {
			return err
		}
		if in != nil {
			if tty {
				fmt.Fprintln(d.out)
			}
			d.report(in, leakAt, base)
			d.dateList(ctx, base, in)
			stopTraffic()
			break
		}
		if announced && time.Since(leakAt) > maxWait {
			return fmt.Errorf("no incident within %s of the leak (relayed %d, failed %d)", maxWait, d.sent.Load(), d.failed.Load())
		}
	}
	if keep {
		d.say("\nStill serving (--keep-running): scrape %s/metrics, Ctrl-C to stop.", base)
		<-ctx.Done()
	}
	return nil
}

// bootstrap runs the baseline scenario through the detector into the store,
// noting which addresses got mail, got spam, or neither.
func (d *demo) bootstrap(ctx context.Context, cfg config.Config, n int, seed uint64) error {
	var buf bytes.Buffer
	// 30 % of the addresses are created during the 90 days, so that the
	// population's first mails date the list the spammer uses.
	if _, err := sim.Run(sim.Config{Scenario: "baseline", Seed: seed, Addresses: n, Joining: 0.3, Start: time.Now().UTC().Add(-90 * 24 * time.Hour).Truncate(24 * time.Hour)}, &buf); err != nil {
		return err
	}
	first := map[string]time.Time{}
	spammed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		o, err := ingest.Parse(sc.Bytes())
		if err != nil {
			continue
		}
		for _, r := range o.Rcpt {
			if _, ok := first[r]; !ok {
				first[r] = o.Time
			}
			if o.Spam {
				spammed[r] = true
			}
		}
	}
	established := time.Now().Add(-cfg.Detector.Warmup.D() - 24*time.Hour)
	d.copiedAt = time.Now().Add(-21 * 24 * time.Hour).UTC().Truncate(time.Hour)
	for a, t := range first {
		d.ham = append(d.ham, a)
		switch {
		case spammed[a]:
			d.spam = append(d.spam, a)
		case t.Before(established):
			d.atRisk = append(d.atRisk, a)
			if t.Before(d.copiedAt) {
				d.listed = append(d.listed, a)
			}
		}
	}
	sort.Strings(d.ham)
	sort.Strings(d.spam)
	sort.Strings(d.atRisk)
	sort.Strings(d.listed)
	if len(d.spam) == 0 || len(d.atRisk) < 100 || len(d.listed) < 100 {
		return fmt.Errorf("history too small (%d spammed, %d at risk): use more --addresses", len(d.spam), len(d.atRisk))
	}

	c := cfg
	c.Detector.FlushInterval = config.Duration(time.Hour)
	det, err := daemon.OpenDetector(c, prometheus.NewRegistry(), zap.NewNop(), nil)
	if err != nil {
		return err
	}
	if _, err := replay.Run(ctx, replay.Options{Detector: det}, replay.Input{Name: "history", R: &buf}); err != nil {
		det.Close()
		return err
	}
	return det.Close()
}

// traffic sends live mail through the proxy until ctx ends: ham to anyone,
// ordinary spam to already-spammed addresses, and after leakAt the leak:
// spam to never-spammed addresses.
func (d *demo) traffic(ctx context.Context, proxy string, leakAt time.Time, worker int) {
	rng := rand.New(rand.NewPCG(uint64(worker)+100, 2))
	interval := time.Duration(float64(time.Second) * 4 / float64(max(d.rate, 1)))
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Quit()
		}
	}()
	for n := 0; ctx.Err() == nil; n++ {
		time.Sleep(interval)
		if c == nil {
			var err error
			if c, err = smtp.Dial(proxy); err != nil {
				d.failed.Add(1)
				continue
			}
			c.Hello("mx-in.demo")
		}
		var from, to, subject string
		spam := false
		switch r := rng.Float64(); {
		case time.Now().After(leakAt) && r < 0.35:
			from, to, subject, spam = "promo@cheap-pills.example", d.listed[rng.IntN(len(d.listed))], "Your account statement is ready", true
			d.leaked.Add(1)
		case r < 0.5:
			from, to, subject, spam = "news@bulk-offers.example", d.spam[rng.IntN(len(d.spam))], "Limited offer", true
		default:
			from, to, subject = "friend@example.org", d.ham[rng.IntN(len(d.ham))], "Lunch on Friday?"
		}
		msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d.%d@%s>\r\n", from, to, subject, worker, n, strings.SplitN(from, "@", 2)[1])
		if spam {
			msg += "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=8.2 required=5.0\r\n"
			d.sentSpam.Add(1)
		} else {
			msg += "X-Spam-Status: No, score=0.1 required=5.0\r\n"
		}
		msg += "\r\nDemo message.\r\n"
		if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
			d.failed.Add(1)
			c.Close()
			c = nil
			continue
		}
		d.sent.Add(1)
	}
}

func (d *demo) report(in map[string]any, leakAt time.Time, base string) {
	id, _ := in["id"].(string)
	d.say("\n3. INCIDENT OPENED %s after the leak started (%d leaked messages sent).", time.Since(leakAt).Round(time.Second), d.leaked.Load())
	d.say("   id           %s", id)
	d.say("   kind         %v (trigger %v)", in["kind"], in["trigger"])
	if sc, ok := in["scope"].(map[string]any); ok {
		for k, v := range sc {
			d.say("   scope        %s %v (the test that watches that %s alone fired first)", k, v, k)
		}
	}
	d.say("   started at   %v (the first event of the excess)", in["started_at"])
	d.say("   first spams  %v observed vs %.2f expected, score %.1f", in["observed"], num(in["expected"]), num(in["score"]))
	d.say("   recipients   %v (dormant share %.0f%%)", in["recipients"], 100*num(in["dormant_share"]))
	if c, ok := in["campaigns"].(map[string]any); ok {
		for _, k := range []string{"sender_domain", "client_network", "subject", "message_id_domain"} {
			if gs, ok := c[k].([]any); ok && len(gs) > 0 {
				g, _ := gs[0].(map[string]any)
				d.say("   top %-17s %v (%.0f%%)", strings.ReplaceAll(k, "_", " "), g["key"], 100*num(g["share"]))
			}
		}
	}
	d.say("\n   Page:       %s/ui/incidents/%s", base, id)
	d.say("   Details:    curl %s/api/v1/incidents/%s", base, id)
	d.say("   Recipients: curl %s/api/v1/incidents/%s/recipients   (keyed hashes, never addresses)", base, id)
	d.say("   Metrics:    %s/metrics", base)
}

type sinkSession struct{ d *demo }

func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error               { io.Copy(io.Discard, r); s.d.sinkGot.Add(1); return nil }

// freeAddr returns want if it can be bound, else a free port on its host.
func freeAddr(want string) (string, error) {
	l, err := net.Listen("tcp", want)
	if err != nil {
		host, _, _ := net.SplitHostPort(want)
		if l, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
			return "", err
		}
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitUp(ctx context.Context, addrs ...string) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("spamsurge did not come up on %s", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// scrape reads the metrics we display (plain series lines only).
func scrape(url string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "spamsurge_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// openSurge returns the first open surge incident from the API, if any.
func openSurge(base string) (map[string]any, error) {
	resp, err := http.Get(base + "/api/v1/incidents?state=open")
	if err != nil {
		return nil, nil // not up yet or shutting down: try again
	}
	defer resp.Body.Close()
	var body struct {
		Incidents []map[string]any `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("reading the incident API: %w", err)
	}
	for _, in := range body.Incidents {
		if in["kind"] == "surge" {
			return in, nil
		}
	}
	return nil, nil
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// dateList lets the leak go on until the incident has 150 recipients or
// 40 s passed, and says when its list was copied against when the demo
// copied it.
func (d *demo) dateList(ctx context.Context, base string, in map[string]any) {
	id, _ := in["id"].(string)
	d.say("\n4. When was the list copied? The demo's spammer uses a list copied on %s; the leak goes on while the incident grows...", d.copiedAt.Format("2006-01-02 15:04 UTC"))
	deadline := time.Now().Add(40 * time.Second)
	var cur map[string]any
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := surgeByID(base, id); err == nil && c != nil {
			cur = c
			if num(c["recipients"]) >= 150 {
				break
			}
		}
		time.Sleep(time.Second)
	}
	if cur == nil {
		return
	}
	s, ok := cur["list_snapshot"].(map[string]any)
	if !ok {
		d.say("   list copied  not dated (%v recipients): %v", cur["recipients"], cur["list_snapshot_reason"])
		return
	}
	nb, _ := time.Parse(time.RFC3339, fmt.Sprint(s["not_before"]))
	na, _ := time.Parse(time.RFC3339, fmt.Sprint(s["not_after"]))
	verdict := "which holds the true copy time"
	if d.copiedAt.Before(nb) || d.copiedAt.After(na) {
		verdict = "which MISSES the true copy time"
	}
	d.say("   list copied  between %s and %s (%.0f %% interval, %v recipients), %s",
		nb.UTC().Format("2006-01-02 15:04"), na.UTC().Format("2006-01-02 15:04 UTC"), 100*num(s["confidence"]), cur["recipients"], verdict)
}

// surgeByID is incident id from the API (nil: not there).
func surgeByID(base, id string) (map[string]any, error) {
	resp, err := http.Get(base + "/api/v1/incidents/" + url.PathEscape(id))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil
	}
	var in map[string]any
	return in, json.NewDecoder(resp.Body).Decode(&in)
}
