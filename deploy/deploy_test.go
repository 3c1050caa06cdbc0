package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"

	"go.yaml.in/yaml/v3"

	"github.com/spamsurge/spamsurge/config"
)

// The shipped files, relative to this package.
const (
	rulesFile      = "prometheus/rules.yml"
	promConfig     = "prometheus/prometheus.yml"
	amConfig       = "alertmanager/alertmanager.yml"
	dashboardFile  = "grafana/dashboards/spamsurge.json"
	dsProvisioning = "grafana/provisioning/datasources/prometheus.yml"
	dbProvisioning = "grafana/provisioning/dashboards/spamsurge.yml"
	composeFile    = "docker-compose.yml"
	unitFile       = "systemd/spamsurge.service"
	exampleConfig  = "spamsurge.yaml"
	dovecotConfig  = "dovecot/spamsurge.yaml"
	runbookFile    = "RUNBOOK.md"
	runbookURL     = "https://github.com/spamsurge/spamsurge/blob/main/deploy/RUNBOOK.md#"
)

// need returns the path of a tool (testkit.Need: fails without it in CI).
func need(t *testing.T, name string, paths ...string) string {
	t.Helper()
	return testkit.Need(t, "prometheus prometheus-alertmanager", name, paths...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := need(t, "promtool", "/usr/bin/promtool")
	t.Log(run(t, promtool, "check", "rules", rulesFile))
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := need(t, "promtool", "/usr/bin/promtool")
	files := ruleTestFiles(t)
	t.Log(run(t, promtool, append([]string{"test", "rules"}, files...)...))
}

func TestPromtoolCheckConfig(t *testing.T) {
	promtool := need(t, "promtool", "/usr/bin/promtool")
	t.Log(run(t, promtool, "check", "config", promConfig))
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := need(t, "amtool", "/usr/bin/amtool")
	t.Log(run(t, amtool, "check-config", amConfig))
	// The leak alerts, from the rules and from the daemon's own push,
	// reach the security team.
	for _, name := range []string{"SpamSurgeIncidentOpen", "SpamSurgeCanaryHit", "SpamSurgeFirstSpamRateHigh", "SpamSurgeLeakSuspected"} {
		out := run(t, amtool, "config", "routes", "test", "--config.file="+amConfig, "alertname="+name)
		if !strings.Contains(out, "security") {
			t.Errorf("alert %s is routed to %q, want the security receiver", name, strings.TrimSpace(out))
		}
	}
}

func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("prometheus/*_test.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool test files in prometheus/: %v", err)
	}
	return files
}

// --- rules -------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var rf ruleFile
	decodeYAML(t, rulesFile, &rf)
	var rules []rule
	for _, g := range rf.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The alerts the on-call issue asks for; more may exist.
var requiredAlerts = []string{
	"SpamSurgeIncidentOpen", "SpamSurgeCanaryHit", "SpamSurgeFirstSpamRateHigh",
	"SpamSurgeDetectorErrors", "SpamSurgeRelayTempfailRatioHigh", "SpamSurgeObservationsDropped",
	"SpamSurgeNextHopFailures", "SpamSurgeDown", "SpamSurgeDetectorWarmup", "SpamSurgeAttributionReloadFailed",
}

// TestAlertConventions: every alert has a known severity, a summary and a
// description, and a runbook_url whose anchor is a heading of RUNBOOK.md;
// the alerts that page for a leak have no `for` where one message is proof.
func TestAlertConventions(t *testing.T) {
	anchors := runbookAnchors(t)
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		seen[r.Alert] = true
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		u := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(u, runbookURL)
		if !ok {
			t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, u, runbookURL)
		} else if anchor != strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook_url anchor %q, want %q", r.Alert, anchor, strings.ToLower(r.Alert))
		} else if !anchors[anchor] {
			t.Errorf("%s: %s has no heading with anchor #%s", r.Alert, runbookFile, anchor)
		}
		if !strings.Contains(r.Annotations["description"], "{{") {
			t.Errorf("%s: the description shows no value or label", r.Alert)
		}
	}
	for _, a := range requiredAlerts {
		if !seen[a] {
			t.Errorf("alert %s is missing from %s", a, rulesFile)
		}
	}
	// The alerts the daemon pushes itself link to RUNBOOK.md#<lowercase name>.
	files, _ := filepath.Glob("../alert/*.go")
	pushed := regexp.MustCompile(`"(SpamSurge[A-Za-z]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pushed.FindAllSubmatch(b, -1) {
			if !anchors[strings.ToLower(string(m[1]))] {
				t.Errorf("%s pushes alert %s, but %s has no heading for it", f, m[1], runbookFile)
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "SpamSurgeCanaryHit" && r.For != "" {
			t.Errorf("SpamSurgeCanaryHit has for: %s; one canary hit is proof, it must page at once", r.For)
		}
	}
}

// runbookAnchors returns GitHub's anchors for the headings of RUNBOOK.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		h = drop.ReplaceAllString(strings.ToLower(h), "")
		anchors[strings.ReplaceAll(h, " ", "-")] = true
	}
	return anchors
}

type ruleTests struct {
	Tests []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertTestedBothWays: the promtool tests show each alert firing
// at least once and not firing at least once.
func TestEveryAlertTestedBothWays(t *testing.T) {
	firing, quiet := map[string]int{}, map[string]int{}
	for _, f := range ruleTestFiles(t) {
		var rt ruleTests
		decodeYAML(t, f, &rt)
		for _, tc := range rt.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname]++
				} else {
					quiet[a.Alertname]++
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if firing[r.Alert] == 0 {
			t.Errorf("%s: no promtool test shows it firing", r.Alert)
		}
		if quiet[r.Alert] == 0 {
			t.Errorf("%s: no promtool test shows it not firing", r.Alert)
		}
	}
}

// --- dashboard ---------------------------------------------------------

type panel struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *json.RawMessage `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	UID         string  `json:"uid"`
	Title       string  `json:"title"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the dashboard object", dashboardFile)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs returns every PromQL expression of the dashboard, named by
// where it is.
func dashboardExprs(d dashboard) map[string]string {
	exprs := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	for i, a := range d.Annotations.List {
		if a.Expr != "" {
			exprs[fmt.Sprintf("annotation %d", i)] = a.Expr
		}
	}
	lv := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if m := lv.FindStringSubmatch(v.Definition); m != nil {
			exprs["variable "+v.Name] = m[1]
		}
	}
	return exprs
}

// TestDashboard: valid JSON; unique panel ids inside a 24-column grid;
// every non-row panel has queries; the data source it uses is the one
// provisioned; the provisioning loads the folder the compose file mounts.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs uid and title")
	}
	ids := map[int]string{}
	n := 0
	for _, p := range allPanels(d.Panels) {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		n++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has an empty expression", p.Title, tg.RefID)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d panels; the dashboard should cover leak detection, the mail path and detector health", n)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	decodeYAML(t, dsProvisioning, &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("%s: want one prometheus data source with a uid, got %+v", dsProvisioning, ds.Datasources)
	}
	b, _ := os.ReadFile(dashboardFile)
	if !strings.Contains(string(b), fmt.Sprintf(`"value": %q`, ds.Datasources[0].UID)) {
		t.Errorf("the dashboard's $datasource default is not the provisioned uid %q", ds.Datasources[0].UID)
	}
	if u, err := url.Parse(ds.Datasources[0].URL); err != nil {
		t.Errorf("%s: url: %v", dsProvisioning, err)
	} else if _, ok := loadCompose(t).Services[u.Hostname()]; !ok {
		t.Errorf("%s: url %s is not a compose service", dsProvisioning, ds.Datasources[0].URL)
	}
	// Every $variable a query uses is a dashboard variable or Grafana's own.
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	varRef := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for where, e := range dashboardExprs(d) {
		for _, m := range varRef.FindAllStringSubmatch(e, -1) {
			if !vars[m[1]] && !strings.HasPrefix(m[1], "__") {
				t.Errorf("%s: $%s is not a dashboard variable", where, m[1])
			}
		}
	}
	var dp struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeYAML(t, dbProvisioning, &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("%s: want one file provider", dbProvisioning)
	}
	c := loadCompose(t)
	want := "./grafana/dashboards:" + dp.Providers[0].Options.Path
	if !slices.ContainsFunc(c.Services["grafana"].Volumes, func(v string) bool { return strings.HasPrefix(v, want) }) {
		t.Errorf("compose does not mount the dashboards where the provisioning looks (%s)", want)
	}
}

// --- metric names ------------------------------------------------------

// TestMetricNamesExist builds and runs the real daemon, scrapes /metrics,
// and checks that every metric named in a rule, a dashboard query or the
// dashboard's variables is exported (histogram suffixes included), defined
// by a recording rule, or Prometheus' own `up`. Detector metrics that
// `serve` does not export yet are accepted when detector/ defines them,
// and listed loudly.
func TestMetricNamesExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	exported, series := scrapeDaemon(t)
	pending := detectorSourceNames(t)

	known := map[string]string{"up": "Prometheus"}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			known[r.Record] = "recording rule"
		}
	}
	refs := map[string]string{} // expression → where
	for _, r := range loadRules(t) {
		name := r.Record
		if name == "" {
			name = r.Alert
		}
		refs[r.Expr] = rulesFile + " " + name
		// Annotation templates query recording rules too.
		for _, a := range r.Annotations {
			for _, m := range regexp.MustCompile(`printf "([^"]*)" \$labels`).FindAllStringSubmatch(a, -1) {
				refs[strings.ReplaceAll(m[1], `%q`, `"x"`)] = rulesFile + " " + name + " annotation"
			}
		}
	}
	for where, e := range dashboardExprs(loadDashboard(t)) {
		refs[e] = dashboardFile + " " + where
	}

	var notYet []string
	for expr, where := range refs {
		names, matchers := metricRefs(expr)
		if len(names) == 0 && !strings.Contains(expr, "vector(") {
			t.Errorf("%s: no metric name found in %q", where, expr)
		}
		for _, n := range names {
			switch {
			case exported[n] != "" || known[n] != "":
			case pending[n]:
				notYet = append(notYet, fmt.Sprintf("%s (%s)", n, where))
			default:
				t.Errorf("%s: metric %s is neither exported by `spamsurge serve` nor defined by a recording rule (nor in detector/ source)", where, n)
			}
		}
		// A label value that never occurs makes a selector match
		// nothing, silently. Series are pre-initialised, so every
		// legal value is on the first scrape.
		for _, m := range matchers {
			if m.label == "job" || m.label == "instance" || exported[m.name] == "" {
				continue
			}
			if !series[m.name][m.label+"="+m.value] {
				if pending[m.name] {
					t.Logf("*** %s: %s{%s=%q}: no such series yet (detector metric) ***", where, m.name, m.label, m.value)
					continue
				}
				t.Errorf("%s: %s{%s=%q} matches no series the daemon exports", where, m.name, m.label, m.value)
			}
		}
	}
	if len(notYet) > 0 {
		sort.Strings(notYet)
		notYet = slices.Compact(notYet)
		t.Logf("\n\n*** %d references to detector metrics NOT EXPORTED by `spamsurge serve` yet (defined in detector/; accepted until the detector is wired into serve):\n  %s\n", len(notYet), strings.Join(notYet, "\n  "))
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// daemonBinary builds cmd/spamsurge once per test process.
func daemonBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = testkit.BuildDaemon() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// daemon is a running `spamsurge serve`.
type daemon struct {
	cmd    *exec.Cmd
	http   string
	exited chan error // receives Wait's result once
	logs   *testkit.SyncBuffer
}

// startDaemon runs `spamsurge serve` on free loopback ports with a closed
// next hop and a closed Alertmanager (enough for the pusher to export its
// metrics), and waits until /metrics answers. It is stopped when the test
// ends.
func startDaemon(t *testing.T) *daemon { return startDaemonWith(t, "") }

// startDaemonWith starts the daemon with store lines added (indented).
func startDaemonWith(t *testing.T, storeLines string) *daemon {
	t.Helper()
	bin := daemonBinary(t)
	dir := t.TempDir()
	d := &daemon{http: testkit.FreePort(t), exited: make(chan error, 1), logs: &testkit.SyncBuffer{}}
	cfg := fmt.Sprintf(`smtp:
  listen: %s
downstream:
  address: %s
http:
  listen: %s
store:
  path: %s
  key_file: %s
%salerting:
  alertmanager_url: http://%s
attribution:
  tags: [{name: book, file: %s}]
  canaries: [{source: book, file: %s}]
sources:
  tail: [{path: %s, name: rspamd}]
`, testkit.FreePort(t), testkit.FreePort(t), d.http, filepath.Join(dir, "data"), filepath.Join(dir, "key"), storeLines, testkit.FreePort(t),
		testkit.WriteFile(t, dir, "book.txt", "a@example.net\n"), testkit.WriteFile(t, dir, "canaries.txt", "trap@example.net\n"),
		filepath.Join(dir, "rspamd.log"))
	cfgPath := filepath.Join(dir, "spamsurge.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("spamsurge output:\n%s", d.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := d.get("/metrics")
		if err == nil {
			return d
		}
		select {
		case e := <-d.exited:
			d.exited <- e
			t.Fatalf("spamsurge serve exited before answering /metrics: %v\n%s", e, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /metrics on %s: %v", d.http, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) get(path string) ([]byte, error) {
	resp, err := http.Get("http://" + d.http + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return b.Bytes(), nil
}

// scrapeDaemon returns the metric names the real daemon exports (name →
// type) and, per family, the label pairs its series carry.
func scrapeDaemon(t *testing.T) (map[string]string, map[string]map[string]bool) {
	t.Helper()
	// Every feature: a fleet member too (a real Redis), whose node
	// exports the spamsurge_store_* and spamsurge_fleet_* series.
	body, err := startDaemonWith(t, "  redis_url: redis://"+testkit.Redis(t)+"\n").get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return parseExposition(t, body)
}

// TestReloadSignal: the unit's ExecReload sends SIGHUP. A Go program that
// does not catch SIGHUP dies of it, and systemd counts that as a clean
// exit (no restart): `systemctl reload` would take the mail path down.
// So the unit may only carry ExecReload when the daemon survives SIGHUP.
func TestReloadSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	hasReload := regexp.MustCompile(`(?m)^ExecReload=.*-HUP`).Match(unit)
	d := startDaemon(t)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_, err = d.get("/healthz")
	survived := err == nil
	select {
	case e := <-d.exited:
		d.exited <- e
		survived = false
	default:
	}
	switch {
	case hasReload && !survived:
		t.Errorf("%s has ExecReload (SIGHUP) but `spamsurge serve` does not survive SIGHUP (%v): remove ExecReload or handle the signal", unitFile, err)
	case !hasReload && !survived:
		t.Errorf("`spamsurge serve` does not survive SIGHUP (%v), which must reload its lists (docs/cli.md)", err)
	case !hasReload && survived:
		t.Errorf("`spamsurge serve` reloads its lists on SIGHUP: %s needs `ExecReload=/bin/kill -HUP $MAINPID`", unitFile)
	}
	if survived && !strings.Contains(d.logs.String(), "SIGHUP") {
		t.Errorf("the daemon survived SIGHUP but did not log a reload:\n%s", d.logs.String())
	}
}

// parseExposition reads the text format: names from the TYPE lines (with
// _bucket/_sum/_count for histograms and summaries), label pairs from the
// samples, filed under the family name.
func parseExposition(t *testing.T, b []byte) (map[string]string, map[string]map[string]bool) {
	t.Helper()
	names := map[string]string{}
	series := map[string]map[string]bool{}
	family := func(sample string) string {
		for _, suf := range []string{"_bucket", "_sum", "_count", ""} {
			if f, ok := strings.CutSuffix(sample, suf); ok && names[f] != "" {
				return f
			}
		}
		return sample
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pair := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			parts := strings.Fields(f)
			if len(parts) != 2 {
				t.Fatalf("bad TYPE line %q", line)
			}
			names[parts[0]] = parts[1]
			if parts[1] == "histogram" || parts[1] == "summary" {
				for _, suf := range []string{"_sum", "_count"} {
					names[parts[0]+suf] = parts[1] + " part"
				}
				if parts[1] == "histogram" {
					names[parts[0]+"_bucket"] = "histogram part"
				}
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name = strings.Fields(name)[0]
		f := family(name)
		if series[f] == nil {
			series[f] = map[string]bool{}
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			for _, m := range pair.FindAllStringSubmatch(rest[:i], -1) {
				series[f][m[1]+"="+m[2]] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("no metrics in the exposition:\n%s", b)
	}
	return names, series
}

// detectorSourceNames returns the spamsurge_* metric names defined in the
// detector package's source: exported once the detector is wired into
// serve.
func detectorSourceNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../detector/*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`Name:\s*"(spamsurge_[a-z0-9_]+)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("no metric names found in ../detector/*.go")
	}
	return out
}

type matcher struct{ name, label, value string }

var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "offset": true, "bool": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// Aggregations may be followed by a grouping clause instead of "(".
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// metricRefs returns the metric names a PromQL expression selects and its
// equality label matchers. It is a scanner, not a parser: strings, label
// matchers, ranges, grouping lists, functions, keywords and numbers are
// skipped; what is left are metric names. Grafana's $variables count as
// numbers or strings, wherever they are.
func metricRefs(expr string) ([]string, []matcher) {
	var names []string
	var ms []matcher
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	skipString := func(i int) int { // expr[i] is the quote
		q := expr[i]
		for i++; i < len(expr); i++ {
			if expr[i] == '\\' && q != '`' {
				i++
			} else if expr[i] == q {
				return i + 1
			}
		}
		return i
	}
	skipTo := func(i int, close byte) int { // past the matching close
		for ; i < len(expr); i++ {
			switch expr[i] {
			case '"', '\'', '`':
				i = skipString(i) - 1
			case close:
				return i + 1
			}
		}
		return i
	}
	matchersOf := func(name, block string) {
		re := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"`)
		for _, m := range re.FindAllStringSubmatch(block, -1) {
			// Only "=": "=~", "!=" and "!~" are not single values.
			idx := strings.Index(block, m[0])
			if idx > 0 && (block[idx-1] == '!' || block[idx-1] == '~') {
				continue
			}
			if strings.Contains(m[0], "=~") || strings.Contains(m[2], "$") {
				continue
			}
			ms = append(ms, matcher{name, m[1], m[2]})
		}
	}
	lastName := ""
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			j := skipTo(i+1, '}')
			if lastName != "" {
				matchersOf(lastName, expr[i:j])
			}
			i = j
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '$' || c >= '0' && c <= '9' || c == '.':
			for i++; i < len(expr) && (isPart(expr[i]) || expr[i] == '.' || expr[i] == '{' || expr[i] == '}'); i++ {
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			lastName = ""
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				if next < len(expr) && expr[next] == '(' {
					j = skipTo(next+1, ')')
				}
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// a function call
			case promqlAggregations[word]:
				// "sum by (x) (...)"
			default:
				names = append(names, word)
				lastName = word
			}
			i = j
			continue
		default:
			i++
		}
		if c != '{' {
			lastName = ""
		}
	}
	return names, ms
}

func TestMetricRefs(t *testing.T) {
	for _, tc := range []struct {
		expr  string
		names []string
		ms    []matcher
	}{
		{`up{job="spamsurge"} == 0 or absent(up{job="spamsurge"})`, []string{"up", "up"},
			[]matcher{{"up", "job", "spamsurge"}, {"up", "job", "spamsurge"}}},
		{`sum without (result) (rate(spamsurge_messages_total{result="tempfail"}[10m])) / sum without (result) (rate(spamsurge_messages_total[10m]))`,
			[]string{"spamsurge_messages_total", "spamsurge_messages_total"},
			[]matcher{{"spamsurge_messages_total", "result", "tempfail"}}},
		{`histogram_quantile(0.99, sum by (le) (rate(spamsurge_relay_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]string{"spamsurge_relay_duration_seconds_bucket"}, nil},
		{`spamsurge:first_spam:ratio_to_expected15m > 5 and spamsurge:first_spam:increase15m >= 10 and spamsurge_detector_warmup == 0`,
			[]string{"spamsurge:first_spam:ratio_to_expected15m", "spamsurge:first_spam:increase15m", "spamsurge_detector_warmup"}, nil},
		{`5 * sum(clamp_min(x:y:z{a!="b",c="d"}, 1)) offset 5m`, []string{"x:y:z"}, []matcher{{"x:y:z", "c", "d"}}},
		{`a / on (job, instance) group_left (kind) b`, []string{"a", "b"}, nil},
		{`sum(spamsurge_incident_active{kind="canary"}) or vector(0)`, []string{"spamsurge_incident_active"},
			[]matcher{{"spamsurge_incident_active", "kind", "canary"}}},
		{`label_replace(foo, "dst", "$1", "src", "(.*)")`, []string{"foo"}, nil},
	} {
		names, ms := metricRefs(tc.expr)
		if !slices.Equal(names, tc.names) || !slices.Equal(ms, tc.ms) {
			t.Errorf("metricRefs(%q) = %q, %v; want %q, %v", tc.expr, names, ms, tc.names, tc.ms)
		}
	}
}

// --- compose -----------------------------------------------------------

type compose struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command []string `yaml:"command"`
		Volumes []string `yaml:"volumes"`
		Ports   []string `yaml:"ports"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	var c compose
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(false)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return c
}

// TestCompose: the compose file parses; it has spamsurge (built from the
// repository's Dockerfile), Prometheus, Alertmanager, Grafana and a test
// downstream; every bind-mounted file exists; named volumes are declared;
// host ports are loopback only; the mounted spamsurge config is valid and
// points at the compose services the Prometheus config scrapes.
func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for _, s := range []string{"spamsurge", "prometheus", "alertmanager", "grafana", "mailpit"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("compose: no service %q", s)
		}
	}
	ss := c.Services["spamsurge"]
	if ss.Build == nil {
		t.Fatal("compose: spamsurge is not built from the repository")
	}
	if _, err := os.Stat(filepath.Join(ss.Build.Context, ss.Build.Dockerfile)); err != nil {
		t.Errorf("compose: spamsurge build: %v", err)
	}
	var cfgMount string
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("compose: service %s mounts %s, which does not exist: %v", name, src, err)
				}
				if name == "spamsurge" && dst == "/etc/spamsurge/spamsurge.yaml" {
					cfgMount = src
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("compose: service %s uses volume %q, not declared under volumes:", name, src)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("compose: service %s publishes %q beyond loopback", name, p)
			}
		}
	}
	if !slices.Contains(ss.Command, "/etc/spamsurge/spamsurge.yaml") {
		t.Errorf("compose: spamsurge command %q does not use the mounted config", ss.Command)
	}
	if cfgMount == "" {
		t.Fatal("compose: no config mounted at /etc/spamsurge/spamsurge.yaml")
	}
	cfg := parseConfig(t, cfgMount)
	host, port, _ := net.SplitHostPort(cfg.Downstream.Address)
	if _, ok := c.Services[host]; !ok {
		t.Errorf("%s: downstream.address %s is not a compose service", cfgMount, cfg.Downstream.Address)
	}
	_ = port
	_, hport, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if h, _, _ := net.SplitHostPort(cfg.HTTP.Listen); h != "0.0.0.0" && h != "" {
		t.Errorf("%s: http.listen %s is not reachable from Prometheus's container", cfgMount, cfg.HTTP.Listen)
	}
	b, err := os.ReadFile(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "spamsurge:"+hport) {
		t.Errorf("%s does not scrape spamsurge:%s", promConfig, hport)
	}
	if cfg.Alerting.AlertmanagerURL != "http://alertmanager:9093" {
		t.Errorf("%s: alerting.alertmanager_url %q, want the compose Alertmanager", cfgMount, cfg.Alerting.AlertmanagerURL)
	}
}

// --- configs -----------------------------------------------------------

func parseConfig(t *testing.T, path string) config.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestExampleConfig: deploy/spamsurge.yaml is valid for the daemon's own
// loader and lists every key the daemon knows (a new key must be
// documented there).
func TestExampleConfig(t *testing.T) {
	parseConfig(t, exampleConfig)
	def, err := yaml.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	want, have := yamlKeys(t, def), map[string]bool{}
	b, _ := os.ReadFile(exampleConfig)
	for _, k := range yamlKeys(t, b) {
		have[k] = true
	}
	for _, k := range want {
		if !have[k] {
			t.Errorf("%s does not list the key %s: add it with a comment", exampleConfig, k)
		}
	}
}

// yamlKeys lists the dotted paths of the mapping keys (not inside lists).
func yamlKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				keys = append(keys, p)
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(&root, "")
	return keys
}

// TestDovecotConfig: the Dovecot example is LMTP on both sides, towards
// Dovecot's loopback listener, and Postfix's transport points at it.
func TestDovecotConfig(t *testing.T) {
	c := parseConfig(t, dovecotConfig)
	if c.SMTP.Protocol != "lmtp" || c.Downstream.Protocol != "lmtp" {
		t.Errorf("%s: protocols %s → %s, want lmtp → lmtp", dovecotConfig, c.SMTP.Protocol, c.Downstream.Protocol)
	}
	if c.Downstream.Address != "127.0.0.1:24" {
		t.Errorf("%s: downstream.address %s, want Dovecot's 127.0.0.1:24", dovecotConfig, c.Downstream.Address)
	}
	main, err := os.ReadFile("dovecot/main.cf")
	if err != nil {
		t.Fatal(err)
	}
	if want := "virtual_transport = lmtp:inet:" + c.SMTP.Listen; !strings.Contains(string(main), want) {
		t.Errorf("dovecot/main.cf lacks %q", want)
	}
	dc, err := os.ReadFile("dovecot/10-spamsurge-lmtp.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"address = 127.0.0.1", "port = 24"} {
		if !strings.Contains(string(dc), want) {
			t.Errorf("dovecot/10-spamsurge-lmtp.conf lacks %q", want)
		}
	}
}

// --- systemd -----------------------------------------------------------

// TestSystemdUnit: the sandboxing directives are there, the stop timeout
// outlasts smtp.shutdown_timeout of the example config, and, when
// systemd-analyze is installed, `verify` is silent and the offline
// security exposure stays low.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: bad line %q", unitFile, line)
			continue
		}
		dirs[k] = append(dirs[k], v)
	}
	for k, v := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "spamsurge", "ProtectSystem": "strict",
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
		"SystemCallFilter": "@system-service", "KillSignal": "SIGTERM", "ProtectHome": "yes",
		"PrivateDevices": "yes", "RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes",
	} {
		if !slices.Contains(dirs[k], v) {
			t.Errorf("%s: want %s=%s, have %q", unitFile, k, v, dirs[k])
		}
	}
	if len(dirs["RestrictAddressFamilies"]) == 0 {
		t.Errorf("%s: no RestrictAddressFamilies", unitFile)
	}
	stop, err := time.ParseDuration(strings.Join(dirs["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("%s: TimeoutStopSec: %v", unitFile, err)
	}
	cfg := parseConfig(t, exampleConfig)
	if stop <= cfg.SMTP.ShutdownTimeout.D()+5*time.Second {
		t.Errorf("%s: TimeoutStopSec=%s leaves no margin over smtp.shutdown_timeout %s", unitFile, stop, cfg.SMTP.ShutdownTimeout.D())
	}
	if !strings.Contains(strings.Join(dirs["ExecStart"], ""), "--config /etc/spamsurge/spamsurge.yaml") {
		t.Errorf("%s: ExecStart does not read /etc/spamsurge/spamsurge.yaml", unitFile)
	}
	if !strings.HasPrefix(cfg.Store.Path, "/var/lib/spamsurge/") || !strings.HasPrefix(cfg.Store.KeyFile, "/var/lib/spamsurge/") {
		t.Errorf("%s: store.path and store.key_file must be in the unit's StateDirectory /var/lib/spamsurge", exampleConfig)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("\n\n*** systemd-analyze NOT FOUND: the unit's directives were checked by name only. ***\n")
	}
	// verify needs ExecStart to exist: point it at a built binary.
	dir := t.TempDir()
	bin := daemonBinary(t)
	unit := filepath.Join(dir, "spamsurge.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/local/bin/spamsurge"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("unrecognized option")) || bytes.Contains(out, []byte("Unknown option")) {
			t.Logf("systemd-analyze security --offline is not supported here: %s", out)
			return
		}
		t.Errorf("systemd-analyze security: exposure above 2.0 or error: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Log(lines[len(lines)-1])
}

// --- a real Prometheus -------------------------------------------------

// TestPrometheusEvaluatesRules runs a real Prometheus with rules.yml
// against the real daemon (job "spamsurge", as prometheus.yml names it):
// the target is up, every rule evaluates without error, the recording
// rules produce series from the daemon's own metrics, and nothing fires on
// an idle daemon except what is expected (warm-up of a new store is not an
// alert).
func TestPrometheusEvaluatesRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon and Prometheus")
	}
	prom := need(t, "prometheus", "/usr/bin/prometheus")
	d := startDaemon(t)
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: spamsurge
    static_configs:
      - targets: [%q]
`, rules, d.http)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreePort(t)
	logs := &testkit.SyncBuffer{}
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	api := func(path string, v any) error {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	query := func(q string) (int, error) {
		var r struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		err := api("/api/v1/query?query="+url.QueryEscape(q), &r)
		return len(r.Data.Result), err
	}
	// Each recording rule the dashboard's first panels rely on, plus the
	// target itself, must show up within a few evaluations.
	want := []string{
		`up{job="spamsurge"} == 1`,
		`spamsurge:first_spam:increase15m`,
		`spamsurge:first_spam_expected_per_hour:avg15m`,
		`spamsurge:first_spam:ratio_to_expected15m`,
		`spamsurge:messages:increase10m`,
		`spamsurge:downstream_failures:increase5m`,
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, q := range want {
		for {
			n, err := query(q)
			if err == nil && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus: %s gives no series (err %v)", q, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	var rs struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := api("/api/v1/rules", &rs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rs.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s/%s: health %q, error %q", g.Name, r.Name, r.Health, r.LastError)
			}
			// A new store warms up: that alert is pending for its 11 days.
			if r.State == "pending" && r.Name == "SpamSurgeDetectorWarmup" {
				continue
			}
			if r.State != "" && r.State != "inactive" {
				t.Errorf("alert %s is %s on an idle daemon", r.Name, r.State)
			}
		}
	}
	if n != len(loadRules(t)) {
		t.Errorf("Prometheus loaded %d rules, rules.yml has %d", n, len(loadRules(t)))
	}
}

// TestAlertmanagerInhibitions loads alertmanager.yml into a real
// Alertmanager and posts alerts as Prometheus and the daemon would: the
// daemon's push inhibits the rule alert of the same kind, the detector's
// incident inhibits the metrics-only cross-check, the critical tier
// inhibits the warning tier, and nothing else is silenced (a leak alert
// from the rules still shows when the push is missing).
func TestAlertmanagerInhibitions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Alertmanager")
	}
	am := need(t, "prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg, err := filepath.Abs(amConfig)
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreePort(t)
	logs := &testkit.SyncBuffer{}
	cmd := exec.Command(am, "--config.file="+cfg, "--storage.path="+dir,
		"--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", logs.String())
		}
	})
	base := "http://" + addr + "/api/v2/alerts"

	rule := func(name, sev, instance, kind string) map[string]any {
		l := map[string]string{"alertname": name, "severity": sev, "job": "spamsurge", "instance": instance}
		if kind != "" {
			l["kind"] = kind
		}
		return map[string]any{"labels": l}
	}
	alerts := []map[string]any{
		// mx1: the daemon pushed its surge incident.
		{"labels": map[string]string{"alertname": "SpamSurgeLeakSuspected", "severity": "critical", "service": "spamsurge", "kind": "surge", "incident_id": "i1"}},
		rule("SpamSurgeIncidentOpen", "critical", "mx1:9464", "surge"),
		rule("SpamSurgeFirstSpamRateHigh", "critical", "mx1:9464", ""),
		// mx2: a canary hit seen by the rules only (the push failed).
		rule("SpamSurgeCanaryHit", "critical", "mx2:9464", "canary"),
		// mx3: both tiers of the temp-fail alert.
		rule("SpamSurgeRelayTempfailRatioHigh", "warning", "mx3:9464", ""),
		rule("SpamSurgeRelayTempfailRatioHigh", "critical", "mx3:9464", ""),
	}
	body, _ := json.Marshal(alerts)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(base, "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("posting alerts: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	key := func(l map[string]string) string { return l["alertname"] + "/" + l["severity"] + "@" + l["instance"] }
	want := map[string]bool{ // suppressed?
		"SpamSurgeLeakSuspected/critical@":                  false,
		"SpamSurgeIncidentOpen/critical@mx1:9464":           true,
		"SpamSurgeFirstSpamRateHigh/critical@mx1:9464":      true,
		"SpamSurgeCanaryHit/critical@mx2:9464":              false,
		"SpamSurgeRelayTempfailRatioHigh/warning@mx3:9464":  true,
		"SpamSurgeRelayTempfailRatioHigh/critical@mx3:9464": false,
	}
	// Inhibitions are computed as alerts arrive; poll until they settle.
	var got map[string]bool
	for {
		got = map[string]bool{}
		resp, err := http.Get(base)
		if err != nil {
			t.Fatal(err)
		}
		var as []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State       string   `json:"state"`
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&as)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			got[key(a.Labels)] = a.Status.State == "suppressed" && len(a.Status.InhibitedBy) > 0
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: not in Alertmanager", k)
		} else if g != w {
			t.Errorf("%s: inhibited %v, want %v", k, g, w)
		}
	}
}

// TestComposeFleet: docker-compose.fleet.yml, over docker-compose.yml,
// is a fleet of two instances on one Redis: both mount the fleet config,
// which points at the compose Redis and at a key in a volume both mount
// (one key, else the second is refused), each has its own data volume,
// host ports are loopback only, and Prometheus scrapes both (its config
// passes promtool).
func TestComposeFleet(t *testing.T) {
	const fleetFile, fleetProm = "docker-compose.fleet.yml", "prometheus/prometheus-fleet.yml"
	base := loadCompose(t)
	var c compose
	b, err := os.ReadFile(fleetFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", fleetFile, err)
	}
	for _, s := range []string{"redis", "spamsurge", "spamsurge-b", "prometheus"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("%s: no service %q", fleetFile, s)
		}
	}
	if img := c.Services["spamsurge-b"].Image; img != base.Services["spamsurge"].Image {
		t.Errorf("%s: spamsurge-b runs %q, not the image spamsurge builds (%q)", fleetFile, img, base.Services["spamsurge"].Image)
	}
	// What each instance mounts where, the base file's mounts under the
	// override's (compose merges them by container path).
	mounts := func(name string) map[string]string {
		m := map[string]string{}
		for _, f := range []compose{base, c} {
			for _, v := range f.Services[name].Volumes {
				src, dst, _ := strings.Cut(v, ":")
				dst, _, _ = strings.Cut(dst, ":")
				m[dst] = src
			}
		}
		return m
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: service %s mounts %s: %v", fleetFile, name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				if _, ok := base.Volumes[src]; !ok {
					t.Errorf("%s: service %s uses volume %q, declared in neither file", fleetFile, name, src)
				}
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: service %s publishes %q beyond loopback", fleetFile, name, p)
			}
		}
	}
	a, bm := mounts("spamsurge"), mounts("spamsurge-b")
	cfgPath := a["/etc/spamsurge/spamsurge.yaml"]
	if cfgPath == "" || bm["/etc/spamsurge/spamsurge.yaml"] != cfgPath {
		t.Fatalf("the instances mount different configs: %q and %q", cfgPath, bm["/etc/spamsurge/spamsurge.yaml"])
	}
	cfg := parseConfig(t, cfgPath)
	u, err := url.Parse(cfg.Store.RedisURL)
	if err != nil || u.Hostname() != "redis" {
		t.Errorf("%s: store.redis_url %q is not the compose Redis", cfgPath, cfg.Store.RedisURL)
	}
	volOf := func(m map[string]string, path string) string {
		best := ""
		for dst := range m {
			if (path == dst || strings.HasPrefix(path, dst+"/")) && len(dst) > len(best) {
				best = dst
			}
		}
		return m[best]
	}
	if ka, kb := volOf(a, cfg.Store.KeyFile), volOf(bm, cfg.Store.KeyFile); ka == "" || ka != kb {
		t.Errorf("store.key_file %s is in volume %q on one instance and %q on the other: the fleet needs one key", cfg.Store.KeyFile, ka, kb)
	}
	if da, db := volOf(a, cfg.Store.Path), volOf(bm, cfg.Store.Path); da == "" || da == db {
		t.Errorf("store.path %s: volumes %q and %q: each instance needs its own", cfg.Store.Path, da, db)
	}
	pb, err := os.ReadFile(fleetProm)
	if err != nil {
		t.Fatal(err)
	}
	_, hport, _ := net.SplitHostPort(cfg.HTTP.Listen)
	for _, target := range []string{"spamsurge:" + hport, "spamsurge-b:" + hport} {
		if !strings.Contains(string(pb), "'"+target+"'") {
			t.Errorf("%s does not scrape %s", fleetProm, target)
		}
	}
	if !slices.Contains(c.Services["prometheus"].Command, "--config.file=/etc/prometheus/prometheus-fleet.yml") {
		t.Errorf("%s: Prometheus does not load %s", fleetFile, fleetProm)
	}
	promtool := need(t, "promtool", "/usr/bin/promtool")
	t.Log(run(t, promtool, "check", "config", fleetProm))
}
