// Package alert pushes incidents to Alertmanager's v2 API as alerts, the
// way Prometheus does: every open incident is re-sent while it stays open
// (with an endsAt a few intervals ahead, so a dead spamsurge's alerts
// resolve by themselves) and sent once more with endsAt when it closes.
//
// It never blocks its caller: Update replaces the pending snapshot and the
// pushing happens on its own goroutine, with retries and backoff. It must
// never carry a plaintext address (incidents hold none).
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/detector"
)

// Options configure a Pusher.
type Options struct {
	// URL is Alertmanager's base URL (alerting.alertmanager_url).
	URL string
	// Resend is how often open incidents are re-sent (default 1m).
	Resend time.Duration
	// Timeout bounds one POST (default 10s).
	Timeout time.Duration
	// RunbookURL is put in every alert's runbook_url annotation.
	RunbookURL string
	// APIURL is our own HTTP base (http.external_url), for the
	// generatorURL and incident_url links.
	APIURL string

	Logger     *zap.Logger
	Registerer prometheus.Registerer
	Client     *http.Client
	Now        func() time.Time
}

// Pusher sends incident alerts.
type Pusher struct {
	o       Options
	log     *zap.Logger
	updates chan []detector.Incident
	sent    *prometheus.CounterVec
	pending prometheus.Gauge
}

// New checks the options. Run must be called for anything to be sent.
func New(o Options) (*Pusher, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerting.alertmanager_url: %q is not an http(s) URL", o.URL)
	}
	if o.Resend == 0 {
		o.Resend = time.Minute
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RunbookURL == "" {
		o.RunbookURL = "https://github.com/spamsurge/spamsurge/blob/main/deploy/RUNBOOK.md"
	}
	f := promauto.With(o.Registerer)
	p := &Pusher{
		o:       o,
		log:     o.Logger.Named("alert"),
		updates: make(chan []detector.Incident, 1),
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "spamsurge_alertmanager_posts_total",
			Help: "POSTs of incident alerts to Alertmanager, by result (ok, error). Failed posts are retried with backoff.",
		}, []string{"result"}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "spamsurge_alertmanager_alerts_pending",
			Help: "Incident alerts (open, or resolved but not yet delivered) the pusher is keeping Alertmanager informed of.",
		}),
	}
	p.sent.WithLabelValues("ok")
	p.sent.WithLabelValues("error")
	return p, nil
}

// Update hands the pusher the current incidents (open and recently
// resolved). It never blocks: a newer snapshot replaces an unsent one.
func (p *Pusher) Update(incidents []detector.Incident) {
	cp := append([]detector.Incident(nil), incidents...)
	for {
		select {
		case p.updates <- cp:
			return
		default:
		}
		select {
		case <-p.updates: // drop the stale one
		default:
		}
	}
}

// tracked is an incident Alertmanager must hear about.
type tracked struct {
	in       detector.Incident
	resolved bool // resolution not yet delivered
}

// Run pushes until ctx is done; then it makes one last attempt so that
// resolutions are not lost on a clean shutdown.
func (p *Pusher) Run(ctx context.Context) {
	state := map[string]*tracked{}
	backoff := time.Duration(0)
	timer := time.NewTimer(p.o.Resend)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), p.o.Timeout)
			p.push(fctx, state)
			cancel()
			return
		case ins := <-p.updates:
			p.merge(state, ins)
		case <-timer.C:
		}
		if err := p.push(ctx, state); err != nil {
			backoff = min(max(2*backoff, time.Second), p.o.Resend)
			p.log.Warn("alertmanager push failed; retrying", zap.Duration("in", backoff), zap.Error(err))
		} else {
			backoff = 0
		}
		wait := p.o.Resend
		if backoff > 0 {
			wait = backoff
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

func (p *Pusher) merge(state map[string]*tracked, ins []detector.Incident) {
	for _, in := range ins {
		t := state[in.ID]
		switch {
		case in.State == detector.StateOpen:
			state[in.ID] = &tracked{in: in}
		case t != nil && !t.resolved:
			// Known and now closed: its resolution must be delivered.
			state[in.ID] = &tracked{in: in, resolved: true}
		}
	}
	p.pending.Set(float64(len(state)))
}

// push posts every tracked alert in one request; on success, delivered
// resolutions are forgotten.
func (p *Pusher) push(ctx context.Context, state map[string]*tracked) error {
	if len(state) == 0 {
		return nil
	}
	now := p.o.Now().UTC()
	var alerts []amAlert
	for _, t := range state {
		alerts = append(alerts, p.toAlert(t, now))
	}
	body, _ := json.Marshal(alerts)
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(p.o.URL, "/")+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.o.Client.Do(req)
	if err != nil {
		p.sent.WithLabelValues("error").Inc()
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		p.sent.WithLabelValues("error").Inc()
		return fmt.Errorf("alertmanager answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	p.sent.WithLabelValues("ok").Inc()
	for id, t := range state {
		if t.resolved {
			delete(state, id)
		}
	}
	p.pending.Set(float64(len(state)))
	return nil
}

// amAlert is Alertmanager's postable alert (API v2).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Alert names and severities by incident kind.
func nameAndSeverity(kind string) (string, string) {
	switch kind {
	case detector.KindCanary:
		return "SpamSurgeCanaryHit", "critical"
	case "surge":
		return "SpamSurgeLeakSuspected", "critical"
	default:
		// A dictionary attack (guessed addresses) is not a leak of
		// stored ones: worth a look, not a page.
		return "SpamSurgeDictionaryAttack", "warning"
	}
}

func (p *Pusher) toAlert(t *tracked, now time.Time) amAlert {
	in := t.in
	name, sev := nameAndSeverity(in.Kind)
	a := amAlert{
		Labels: map[string]string{
			"alertname":   name,
			"severity":    sev,
			"incident_id": in.ID,
			"kind":        in.Kind,
			"service":     "spamsurge",
		},
		Annotations: map[string]string{
			"summary":     summary(in),
			"description": description(in),
			"observed":    fmt.Sprintf("%.0f", in.Observed),
			"expected":    fmt.Sprintf("%.1f", in.Expected),
			"recipients":  fmt.Sprint(in.Recipients),
			"trigger":     in.Trigger,
			"runbook_url": p.o.RunbookURL + "#" + strings.ToLower(name),
		},
		StartsAt: in.StartedAt.UTC(),
	}
	if c := topCampaign(in); c != "" {
		a.Annotations["top_campaign"] = c
	}
	if sc := in.Scope; sc != nil {
		// A label: one alert per leaked domain or list, routable to
		// whoever looks after that customer.
		if sc.Domain != "" {
			a.Labels["domain"] = sc.Domain
		} else {
			a.Labels["tag"] = sc.Tag
		}
	}
	if in.TopSource != "" {
		a.Annotations["top_source"] = in.TopSource
	}
	if in.CanarySource != "" {
		a.Annotations["canary_source"] = in.CanarySource
	}
	if s := in.ListSnapshotText(); s != "" {
		a.Annotations["list_snapshot"] = s
	}
	if p.o.APIURL != "" {
		base := strings.TrimRight(p.o.APIURL, "/")
		a.GeneratorURL = base + "/api/v1/incidents/" + url.PathEscape(in.ID)
		a.Annotations["incident_url"] = base + "/ui/incidents/" + url.PathEscape(in.ID)
	}
	if t.resolved && in.ResolvedAt != nil {
		a.EndsAt = in.ResolvedAt.UTC()
		if a.EndsAt.After(now) {
			a.EndsAt = now
		}
	} else {
		// Like Prometheus: a few resend intervals ahead, so the alert
		// stays up while we re-send and ends if we stop.
		a.EndsAt = now.Add(4 * p.o.Resend)
	}
	if a.StartsAt.IsZero() || a.StartsAt.After(now) {
		a.StartsAt = now
	}
	return a
}

func summary(in detector.Incident) string {
	switch in.Kind {
	case detector.KindCanary:
		if in.CanarySource != "" {
			return fmt.Sprintf("Canary address planted in %s hit (%d canaries): that source has leaked", in.CanarySource, in.Recipients)
		}
		return fmt.Sprintf("Canary address hit (%d recipients): a source list has leaked", in.Recipients)
	case "surge":
		if in.Scope != nil {
			what := "domain " + in.Scope.Domain
			if in.Scope.Domain == "" {
				what = "source list " + in.Scope.Tag
			}
			return fmt.Sprintf("%.0f first-ever spams to never-spammed addresses of %s, %.1f expected: its address list may have leaked", in.Observed, what, in.Expected)
		}
		if in.Trigger == detector.TriggerCUSUMNovel {
			return fmt.Sprintf("%.0f first-ever spams from campaigns that reach mostly never-spammed addresses, %.1f expected: an address list may have leaked", in.Observed, in.Expected)
		}
		return fmt.Sprintf("%.0f first-ever spams to never-spammed addresses, %.1f expected: an address list may have leaked", in.Observed, in.Expected)
	}
	return fmt.Sprintf("%s incident: %d recipients", in.Kind, in.Recipients)
}

func description(in detector.Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Incident %s (%s) started %s: %d recipients, observed %.0f vs expected %.1f first spams, score %.1f, %.0f%% dormant addresses.",
		in.ID, in.Kind, in.StartedAt.UTC().Format(time.RFC3339), in.Recipients, in.Observed, in.Expected, in.Score, 100*in.DormantShare)
	if c := topCampaign(in); c != "" {
		fmt.Fprintf(&b, " Top campaign: %s.", c)
	}
	if in.TopSource != "" {
		fmt.Fprintf(&b, " Source: %s.", in.TopSource)
	}
	if in.ListSnapshot != nil {
		fmt.Fprintf(&b, " List %s.", in.ListSnapshot)
	}
	b.WriteString(" Get the affected customers with: spamsurge resolve --config FILE --incident " + in.ID + " --addresses customers.txt")
	return b.String()
}

// topCampaign names the largest campaign group, if any.
func topCampaign(in detector.Incident) string {
	var parts []string
	add := func(label string, g []detector.Group) {
		if len(g) > 0 {
			parts = append(parts, fmt.Sprintf("%s %s (%.0f%%)", label, g[0].Key, 100*g[0].Share))
		}
	}
	add("sender domain", in.Campaigns.SenderDomain)
	add("client network", in.Campaigns.ClientNetwork)
	add("subject", in.Campaigns.Subject)
	return strings.Join(parts, ", ")
}
