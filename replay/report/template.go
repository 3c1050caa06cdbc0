package report

import "html/template"

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"stamp": stamp, "add": func(a, b float64) float64 { return a + b }}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="spamsurge {{.Version}}">
<title>{{.Title}}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:12px;color:#222;background:#fff}
h1{font-size:1.4em;margin:.2em 0}
h2{font-size:1.15em;margin:1.4em 0 .4em}
.sum{color:#444}
.err{background:#fde8e8;border-left:4px solid #c0392b;padding:6px 10px}
.chart{overflow-x:auto;-webkit-overflow-scrolling:touch}
.chart svg{width:100%;min-width:560px;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#333}
svg .grid{stroke:#e6e6e6}
svg .axis{stroke:#999;fill:none}
svg .band{fill:#cfe3f7}
svg .exp{fill:none;stroke:#2f6fb3;stroke-width:1;stroke-dasharray:3 2}
svg .cnt{fill:none;stroke:#111;stroke-width:1.1}
svg .all{fill:none;stroke:#aaa;stroke-width:.7;stroke-opacity:.7}
svg .line{fill:none;stroke:#2e7d32;stroke-width:1.4}
svg .above{fill:#d62728}
svg .warm{fill:#f1f1f1}
svg .pre{fill-opacity:.12}
svg .span{fill-opacity:.22}
svg .surge{fill:#d62728;stroke:#d62728}
svg .dictionary{fill:#7b3fa0;stroke:#7b3fa0}
svg .canary{fill:#e08a00;stroke:#e08a00}
svg .mark{stroke-width:1;fill:none}
svg text.lbl{font-weight:bold}
.legend{font-size:.85em;color:#555;margin:.2em 0 .8em}
.legend span{display:inline-block;margin-right:1em;white-space:nowrap}
.sw{display:inline-block;width:1.6em;height:.7em;vertical-align:middle;margin-right:.3em}
table{border-collapse:collapse;width:100%;font-size:.85em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f5f5f5}
td.n{text-align:right;white-space:nowrap}
td.t{min-width:7.5em}
.camp{min-width:12em}
td .dim div,td div.dim{font-size:.9em}
.camp{word-break:break-word}
.camp div{margin:0}
.dim{color:#777}
code{font-size:.95em}
td code{overflow-wrap:anywhere;display:inline-block;min-width:10em}
.tbl{overflow-x:auto}
@media (max-width:760px){
 table,thead,tbody,tr,td{display:block}
 thead{display:none}
 tr{border:1px solid #ddd;margin:0 0 10px;padding:4px}
 td{border:none;padding:2px 4px}
 td code{white-space:normal;word-break:break-all}
 td.n{text-align:left}
 td.t{min-width:0}
 td::before{content:attr(data-label) ": ";color:#777}
}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sum">{{if .Hours}}{{stamp .From}} to {{stamp .To}} ({{.Hours}} hours replayed){{else}}No complete hour replayed.{{end}}
· {{.Stats.Observations}} observations ({{.Stats.Recipients}} recipients) from {{.Stats.Lines}} lines{{if .Stats.Malformed}}, {{.Stats.Malformed}} malformed skipped{{end}}
· {{.Tracked}} addresses tracked, {{.AtRisk}} at risk at the end
{{- if not .WarmUntil.IsZero}} · warm-up and learning until {{stamp .WarmUntil}}{{end}}
· <strong>{{.OpenedSummary}}</strong>.</p>
{{with .Err}}<p class="err">The replay did not finish: {{.}}. What it read up to there is shown.</p>{{end}}
{{with .Inputs}}<p class="sum">Input: {{range $i, $f := .}}{{if $i}}, {{end}}<code>{{$f}}</code>{{end}}</p>{{end}}

{{with .Overview}}
<h2>First spams per hour</h2>
<div class="legend"><span><i class="sw" style="background:#111;height:2px"></i>counted first spams</span>{{if .All}}<span><i class="sw" style="background:#999;height:2px"></i>all first spams (also beyond a campaign's quota{{if .Clipped}}; cut at the top{{end}})</span>{{end}}<span><i class="sw" style="border-top:2px dashed #2f6fb3;height:0"></i>expected</span><span><i class="sw" style="background:#cfe3f7"></i>99 % band (quasi-Poisson)</span><span><i class="sw" style="background:#d62728;width:.6em;border-radius:50%"></i>hour above the band</span><span><i class="sw" style="background:rgba(214,39,40,.25)"></i>incident open</span><span><i class="sw" style="background:#f1f1f1"></i>warm-up</span></div>
{{template "chart" .}}
{{end}}
{{with .AtRiskChart}}
<h2>At-risk population</h2>
{{template "chart" .}}
{{end}}

<h2>Incidents</h2>
{{if .Incidents}}
<div class="tbl"><table>
<thead><tr><th>#</th><th>id</th><th>kind</th><th>trigger</th><th>scope</th><th>started</th><th>opened</th><th>resolved</th><th>recipients</th><th>observed/<wbr>expected</th><th>top campaigns</th><th>top tag</th></tr></thead>
<tbody>
{{range .Incidents}}<tr id="incident-{{.N}}">
<td data-label="#" class="n">{{.N}}</td>
<td data-label="id"><code>{{.ID}}</code></td>
<td data-label="kind">{{.Kind}}{{if eq .State "open"}} <strong>(open)</strong>{{end}}</td>
<td data-label="trigger">{{.Trigger}}</td>
<td data-label="scope">{{if .Scope}}{{.Scope}}{{else}}<span class="dim">all</span>{{end}}</td>
<td data-label="started" class="t">{{.Started}}</td>
<td data-label="opened" class="t">{{.Opened}}{{with .Delay}} <span class="dim">{{.}}</span>{{end}}</td>
<td data-label="resolved" class="t">{{if .Resolved}}{{.Resolved}} <span class="dim">open {{.Length}}</span>{{else}}still open{{end}}</td>
<td data-label="recipients" class="n">{{.Recipients}}</td>
<td data-label="observed / expected" class="n">{{.Observed}} / {{.Expected}}</td>
<td data-label="top campaigns" class="camp">{{range .Campaigns}}<div><span class="dim">{{.Dim}}</span> {{.Key}} <span class="dim">{{.Share}}</span></div>{{end}}</td>
<td data-label="top tag">{{if .TopTag}}{{.TopTag}}{{else if .Canary}}{{.Canary}} <span class="dim">(canary)</span>{{else}}<span class="dim">–</span>{{end}}{{with .TopSource}}<div class="dim">{{.}}</div>{{end}}</td>
</tr>
{{end}}</tbody>
</table></div>
<p class="legend">Started: the first event that explains the incident; opened: when the detector opened it (and how much later). Times are UTC. Recipients are counted, never named: the detector keeps keyed hashes only, and addresses in subjects are masked.</p>
{{else}}
<p>No incident opened.</p>
{{end}}

{{range .Zooms}}
<h2 id="zoom-{{.N}}">Incident {{.N}}: <code>{{.ID}}</code></h2>
{{template "chart" .Chart}}
{{end}}
{{if .MoreZooms}}<p class="dim">{{.MoreZooms}} more incidents are in the table, not charted one by one.</p>{{end}}

<p class="legend">Written by spamsurge {{.Version}} on {{stamp .Generated}}. The band is the central 99 % of the hourly count the detector expected: a Poisson count of mean expected/φ, times φ, the dispersion it had learnt. Counted first spams are the ones its whole-population tests saw; a campaign's first spams beyond its hourly quota, and those a scoped or share incident explains, are only in "all first spams".</p>
</body>
</html>
{{define "chart"}}<div class="chart">{{if .Empty}}<p class="dim">{{.Empty}}</p>{{else}}<svg viewBox="0 0 {{.W}} {{.H}}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{{.Title}}">
<title>{{.Title}}</title>
{{with .Warm}}<rect class="warm" x="{{.X}}" y="{{$.PY}}" width="{{.W}}" height="{{$.PH}}"/>{{end}}
{{range .YTicks}}<path class="grid" d="M{{$.PX}} {{.Pos}}h{{$.PW}}"/><text x="{{$.PX}}" y="{{.Pos}}" dx="-4" dy="3" text-anchor="end">{{.Label}}</text>{{end}}
{{range .Band}}<path class="band" d="{{.}}"/>{{end}}
{{range .Spans}}{{if .Started}}<rect class="pre {{.Kind}}" x="{{.SX}}" y="{{$.PY}}" width="{{.SW}}" height="{{$.PH}}"/>{{end}}<rect class="span {{.Kind}}" x="{{.OX}}" y="{{$.PY}}" width="{{.OW}}" height="{{$.PH}}"><title>{{.Title}}</title></rect><path class="mark {{.Kind}}" d="M{{.LineX}} {{.LineY1}}V{{.LineY2}}"/>{{end}}
{{with .Expected}}<path class="exp" d="{{.}}"/>{{end}}
{{with .All}}<path class="all" d="{{.}}"/>{{end}}
{{with .Counted}}<path class="cnt" d="{{.}}"/>{{end}}
{{with .Line}}<path class="line" d="{{.}}"/>{{end}}
{{range .Above}}<circle class="above" cx="{{.X}}" cy="{{.Y}}" r="1.6"/>{{end}}
{{range .Spans}}<text class="lbl {{.Kind}}" x="{{.LX}}" y="{{.LY}}" dy="8">{{.Label}}{{if .Ongoing}}…{{end}}<title>{{.Title}}</title></text>{{end}}
<path class="axis" d="M{{.PX}} {{.PY}}V{{printf "%.1f" (add .PY .PH)}}H{{printf "%.1f" (add .PX .PW)}}"/>
{{range .XTicks}}<path class="axis" d="M{{.Pos}} {{printf "%.1f" (add $.PY $.PH)}}v4"/><text x="{{.Pos}}" y="{{printf "%.1f" (add $.PY $.PH)}}" dy="15" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="{{.PX}}" y="12">{{.YLabel}}</text>
</svg>{{end}}</div>{{end}}`
