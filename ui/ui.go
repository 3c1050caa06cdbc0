// Package ui renders the incident pages the security team works from:
// /ui/ lists the incidents, /ui/incidents/{id} shows one (its timeline
// against the expected band, campaigns, sources and their lift, when the
// list was copied against the population's first-seen curve, and the
// resolve command that gives the notification list). Server-rendered HTML
// with inline SVG and CSS: no outside asset, no script, readable on a
// phone. It renders what the detector already published and never holds
// a plaintext address (there is none to hold). Package api serves it,
// behind the same authentication as /api/.
package ui

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
)

// Meta is what a page needs besides the incidents.
type Meta struct {
	// ConfigPath is the daemon's configuration file, for the resolve
	// command ("" prints a placeholder).
	ConfigPath string
	// Now is the time of rendering.
	Now time.Time
}

// Index writes the list of incidents (newest first).
func Index(w io.Writer, ins []detector.Incident, m Meta) error {
	rows := append([]detector.Incident(nil), ins...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].OpenedAt.After(rows[j].OpenedAt) })
	return pages.ExecuteTemplate(w, "index", struct {
		Incidents []detector.Incident
		Meta
	}{rows, m})
}

// Incident writes one incident's page; curve is the population's
// first-seen curve (nil: not known yet).
func Incident(w io.Writer, in detector.Incident, curve *detector.FirstSeenCurve, m Meta) error {
	cfg := m.ConfigPath
	if cfg == "" {
		cfg = "/etc/spamsurge/spamsurge.yaml"
	}
	cmd := "spamsurge resolve --config " + shellQuote(cfg) + " --incident " + shellQuote(in.ID) + " --addresses customers.txt --format csv"
	if in.TopTag != "" && in.TopTag != "untagged" {
		cmd += " --tag " + shellQuote(in.TopTag)
	}
	return pages.ExecuteTemplate(w, "incident", struct {
		In       detector.Incident
		Timeline template.HTML
		Snapshot template.HTML
		Resolve  string
		Curve    bool
		Meta
	}{in, timeline(&in), snapshotChart(&in, curve), cmd, curve != nil, m})
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"tsp": func(t *time.Time) string {
		if t == nil {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.0f %%", f*100) },
	"f1":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"days": func(a, b time.Time) string {
		return fmt.Sprintf("%.1f days", b.Sub(a).Hours()/24)
	},
	"dims": func(c detector.Campaigns) []dim {
		return []dim{{"Sender domain", c.SenderDomain}, {"Client network", c.ClientNetwork}, {"Subject", c.Subject}, {"Message-ID domain", c.MessageIDDomain}}
	},
	"scope": func(in detector.Incident) string {
		switch {
		case in.Scope == nil:
			return "the whole population"
		case in.Scope.Domain != "":
			return "domain " + in.Scope.Domain
		}
		return "source list " + in.Scope.Tag
	},
}

type dim struct {
	Name   string
	Groups []detector.Group
}

var pages = template.Must(template.New("ui").Funcs(funcs).Parse(tmpl))

const tmpl = `{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · spamsurge</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6em 1em}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:980px;margin:0 auto;padding:1em}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.8em 1em;margin:0 0 1em}
h1{font-size:1.25em;margin:.2em 0 .6em;word-break:break-all}h2{font-size:1.05em;margin:.1em 0 .5em}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25em .5em;border-bottom:1px solid #eef0f3;vertical-align:top}
th{font-weight:600;color:#4a5564}.num{text-align:right;font-variant-numeric:tabular-nums;width:5.5em;white-space:nowrap}
.wrap{overflow-x:auto}svg{width:100%;min-width:560px;height:auto;display:block}
.badge{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;background:#e6e9ee}
.open{background:#fde2e1;color:#a11}.resolved{background:#e2f4e5;color:#1a6b2c}
.snap{font-size:1.1em;font-weight:600;color:#b35900}
pre{background:#1d2430;color:#e8ecf1;padding:.7em;border-radius:4px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;vertical-align:-.1em}
.kv td:first-child{color:#4a5564;width:13em}
@media (max-width:600px){.kv td:first-child{width:auto}td,th{padding:.2em .3em}}
</style></head><body><header><a href="/ui/">spamsurge</a> · incidents</header><main>{{end}}

{{define "index"}}{{template "head" "Incidents"}}
<section><h1>Incidents</h1>
{{if not .Incidents}}<p>No incident is open or recent.</p>{{else}}
<div class="wrap"><table><tr><th>Incident</th><th>Kind</th><th>State</th><th>Opened</th><th class="num">Recipients</th><th>Source</th><th>List copied</th></tr>
{{range .Incidents}}<tr><td><a href="/ui/incidents/{{.ID}}">{{.ID}}</a></td><td>{{.Kind}}</td><td><span class="badge {{.State}}">{{.State}}</span></td><td>{{ts .OpenedAt}}</td><td class="num">{{.Recipients}}</td><td>{{if .TopSource}}{{.TopSource}}{{else}}{{.CanarySource}}{{end}}</td>
<td>{{with .ListSnapshot}}{{ts .NotBefore}} – {{ts .NotAfter}}{{else}}–{{end}}</td></tr>
{{end}}</table></div>{{end}}
<p><small>Rendered {{ts .Now}}. The same data as JSON: <a href="/api/v1/incidents">/api/v1/incidents</a>.</small></p>
</section></main></body></html>{{end}}

{{define "incident"}}{{template "head" .In.ID}}{{$in := .In}}
<section><h1>{{$in.ID}}</h1>
<p><span class="badge {{$in.State}}">{{$in.State}}</span> {{$in.Kind}} about {{scope $in}}, opened by <code>{{$in.Trigger}}</code></p>
<table class="kv">
<tr><td>Started (change point)</td><td>{{ts $in.StartedAt}}</td></tr>
<tr><td>Opened</td><td>{{ts $in.OpenedAt}}</td></tr>
<tr><td>Last change</td><td>{{ts $in.UpdatedAt}}</td></tr>
<tr><td>Resolved</td><td>{{tsp $in.ResolvedAt}}</td></tr>
<tr><td>Recipients</td><td>{{$in.Recipients}}</td></tr>
<tr><td>First spams observed / expected</td><td>{{printf "%.0f" $in.Observed}} / {{f1 $in.Expected}} (score {{f1 $in.Score}})</td></tr>
{{if $in.DictionaryEvidence}}<tr><td>Dictionary evidence</td><td>{{$in.DictionaryEvidence}}</td></tr>{{end}}
</table></section>

{{if eq $in.Kind "surge"}}<section id="snapshot"><h2>When the list was copied</h2>
{{with $in.ListSnapshot}}<p class="snap">Between {{ts .NotBefore}} and {{ts .NotAfter}}</p>
<p>{{pct .Confidence}} interval, {{days .NotBefore .NotAfter}} wide: search the backups and access logs of that time.</p>
{{else}}<p class="snap">Not dated</p><p>{{$in.ListSnapshotReason}}</p>{{end}}
{{if .Snapshot}}<div class="wrap">{{.Snapshot}}</div>
<p class="legend"><span style="background:#9aa5b1"></span>at-risk addresses by the day of their first mail<span style="background:#d62728"></span>this incident's addresses (own scale)<span style="background:#ff7f0e;opacity:.4"></span>copy interval</p>
<p><small>A list holds only addresses that existed when it was copied: the newly spammed addresses stop where the copy was taken, while the population goes on.</small></p>
{{else}}<p><small>{{if not .Curve}}The population's first-seen curve is not available yet (the detector publishes it hourly).{{end}}</small></p>{{end}}
</section>{{end}}

{{with $in.Profile}}<section id="profile"><h2>What is on the list</h2>
<table class="kv">
<tr><td>Dormant before their first spam</td><td>{{pct .DormantShare}} (no mail for a month or more)</td></tr>
<tr><td>Long dormant</td><td>{{pct .LongDormantShare}} (no mail for six months or more: dead accounts, the mark of an old backup)</td></tr>
{{with .Candidates}}<tr><td>Candidates to notify</td><td><b>about {{.Estimate}}</b>{{if ne .Low .High}} ({{.Low}} to {{.High}}){{end}}: {{.Basis}}</td></tr>{{end}}
</table>
{{if .Domains}}<h3 style="font-size:.95em;margin:.6em 0 .2em">Recipient domains it concentrates in</h3><div class="wrap"><table><tr><th>Domain</th><th class="num">In incident</th><th class="num">Share</th><th class="num">Of population</th><th class="num">Lift</th></tr>
{{range .Domains}}<tr><td>{{.Domain}}</td><td class="num">{{.InIncident}}</td><td class="num">{{pct .Share}}</td><td class="num">{{pct .PopulationShare}}</td><td class="num">{{f1 .Lift}}×</td></tr>{{end}}
</table></div>{{end}}
</section>{{end}}

{{if .Timeline}}<section><h2>Timeline</h2><div class="wrap">{{.Timeline}}</div>
<p class="legend"><span style="background:#d62728"></span>first spams per hour<span style="background:#cfe3f7"></span>expected band (99 %)<span style="background:#1f77b4"></span>expected</p></section>{{end}}

<section><h2>Campaigns</h2>
{{range dims $in.Campaigns}}{{if .Groups}}<h3 style="font-size:.95em;margin:.6em 0 .2em">{{.Name}}</h3><div class="wrap"><table>
{{range .Groups}}<tr><td>{{.Key}}</td><td class="num">{{.Count}}</td><td class="num">{{pct .Share}}</td></tr>{{end}}</table></div>{{end}}{{end}}
</section>

{{if or $in.Tags $in.CanarySource $in.SubaddressDetails}}<section><h2>Sources</h2>
{{if $in.TopSource}}<p><b>{{$in.TopSource}}</b></p>{{end}}
{{if $in.CanarySource}}<p>Canaries planted in <b>{{$in.CanarySource}}</b> were hit: that source has leaked.</p>{{end}}
{{if $in.Tags}}<div class="wrap"><table><tr><th>Tag</th><th class="num">In incident</th><th class="num">Share</th><th class="num">Of population</th><th class="num">Lift</th><th class="num">Score</th></tr>
{{range $in.Tags}}<tr><td>{{.Tag}}</td><td class="num">{{.InIncident}}</td><td class="num">{{pct .Share}}</td><td class="num">{{pct .PopulationShare}}</td><td class="num">{{f1 .Lift}}×</td><td class="num">{{f1 .Score}}</td></tr>{{end}}
</table></div>{{end}}
{{if $in.SubaddressDetails}}<h3 style="font-size:.95em;margin:.6em 0 .2em">Sub-address details</h3><div class="wrap"><table>
{{range $in.SubaddressDetails}}<tr><td>{{.Detail}}</td><td class="num">{{.Count}}</td></tr>{{end}}</table></div>{{end}}
</section>{{end}}

<section><h2>Whom to notify</h2>
<p>spamsurge keeps no address, only keyed hashes. Match your customer list against the incident's recipients:</p>
<pre>{{.Resolve}}</pre>
<p><small>JSON: <a href="/api/v1/incidents/{{$in.ID}}">/api/v1/incidents/{{$in.ID}}</a> · recipients' hashes: <a href="/api/v1/incidents/{{$in.ID}}/recipients">/api/v1/incidents/{{$in.ID}}/recipients</a> · rendered {{ts .Now}}</small></p>
</section>
</main></body></html>{{end}}`
