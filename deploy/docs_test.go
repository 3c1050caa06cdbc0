package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// metricsDoc is the metric reference for users, relative to this package.
const metricsDoc = "../docs/metrics.md"

// docMetric is one row of a table in docs/metrics.md.
type docMetric struct {
	typ    string     // counter, gauge, histogram, summary
	labels []docLabel // none without labels
	line   int
}

// docLabel is one label of a row: its values, or free when they come
// from the operator's config.
type docLabel struct {
	name   string
	values []string
	free   bool
}

func (m docMetric) label(name string) (docLabel, bool) {
	for _, l := range m.labels {
		if l.name == name {
			return l, true
		}
	}
	return docLabel{}, false
}

func (m docMetric) labelNames() string {
	var n []string
	for _, l := range m.labels {
		n = append(n, l.name)
	}
	return strings.Join(n, ", ")
}

var backticked = regexp.MustCompile("`([^`]*)`")

// loadMetricsDoc parses the tables of docs/metrics.md: every row whose
// first cell is a backticked spamsurge_ name, as
// | `name` | type | `label` = `v1`, `v2` (or: the configured ...) | meaning |
// with several labels separated by ";": `a` = the configured ...; `b` = `v1`, `v2`
func loadMetricsDoc(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	for i, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `spamsurge_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			t.Errorf("%s:%d: want | metric | type | labels | meaning |, got %q", metricsDoc, i+1, line)
			continue
		}
		names := backticked.FindAllStringSubmatch(cells[0], -1)
		if len(names) != 1 {
			t.Errorf("%s:%d: want exactly one metric name per row, got %q", metricsDoc, i+1, cells[0])
			continue
		}
		name := names[0][1]
		m := docMetric{typ: strings.TrimSpace(cells[1]), line: i + 1}
		switch m.typ {
		case "counter", "gauge", "histogram", "summary":
		default:
			t.Errorf("%s:%d: %s: type %q is not counter, gauge, histogram or summary", metricsDoc, i+1, name, m.typ)
		}
		if lc := strings.TrimSpace(cells[2]); lc != "" {
			for _, part := range strings.Split(lc, ";") {
				toks := backticked.FindAllStringSubmatch(part, -1)
				if len(toks) == 0 {
					t.Errorf("%s:%d: %s: labels %q name no `label`", metricsDoc, i+1, name, part)
					continue
				}
				l := docLabel{name: toks[0][1], free: strings.Contains(part, "configured")}
				for _, v := range toks[1:] {
					l.values = append(l.values, v[1])
				}
				if len(l.values) == 0 && !l.free {
					t.Errorf("%s:%d: %s: label %s lists no values (write `label` = `v1`, `v2`, or say they are configured)", metricsDoc, i+1, name, l.name)
				}
				m.labels = append(m.labels, l)
			}
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s:%d: %s listed twice", metricsDoc, i+1, name)
		}
		out[name] = m
	}
	if len(out) == 0 {
		t.Fatalf("%s: no metric rows found", metricsDoc)
	}
	return out
}

// sourceMetricNames returns the spamsurge_* metric names defined anywhere
// in the module's Go source (tests and third_party/ excluded).
func sourceMetricNames(t *testing.T) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`Name:\s*"(spamsurge_[a-z0-9_]+)"`)
	out := map[string]string{} // name → file
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "third_party", "testdata", "docs":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out[string(m[1])] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no metric names found in the module's source")
	}
	return out
}

// TestMetricsDocSource: every metric the code defines is in
// docs/metrics.md, and every metric there is defined in the code. It needs
// no daemon, so it also runs with -short.
func TestMetricsDocSource(t *testing.T) {
	doc := loadMetricsDoc(t)
	src := sourceMetricNames(t)
	for _, n := range sortedKeys(src) {
		if _, ok := doc[n]; !ok {
			t.Errorf("%s defines %s, but %s does not list it: add a row (type, labels, meaning)", src[n], n, metricsDoc)
		}
	}
	for _, n := range sortedKeys(doc) {
		if _, ok := src[n]; !ok {
			t.Errorf("%s:%d: %s is not defined anywhere in the code: remove the row or fix the name", metricsDoc, doc[n].line, n)
		}
	}
}

// TestMetricsDocumented scrapes the real daemon (every feature configured,
// startDaemon) and checks docs/metrics.md against what it exports: each
// spamsurge_ family is listed with its type, its label and every label
// value it carries, and each listed label value occurs.
func TestMetricsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	doc := loadMetricsDoc(t)
	exported, series := scrapeDaemon(t)
	for _, n := range sortedKeys(exported) {
		typ := exported[n]
		if !strings.HasPrefix(n, "spamsurge_") || strings.HasSuffix(typ, " part") {
			continue
		}
		m, ok := doc[n]
		if !ok {
			t.Errorf("the daemon exports %s (%s), but %s does not list it", n, typ, metricsDoc)
			continue
		}
		if m.typ != typ {
			t.Errorf("%s:%d: %s is a %s, the daemon exports a %s", metricsDoc, m.line, n, m.typ, typ)
		}
		seen := map[string]bool{} // label=value
		for _, p := range sortedKeys(series[n]) {
			label, value, _ := strings.Cut(p, "=")
			if label == "le" || label == "quantile" {
				continue
			}
			l, listed := m.label(label)
			switch {
			case len(m.labels) == 0:
				t.Errorf("%s:%d: %s has no labels listed, the daemon exports %s", metricsDoc, m.line, n, p)
			case !listed:
				t.Errorf("%s:%d: %s: label %s listed, the daemon exports %s", metricsDoc, m.line, n, m.labelNames(), p)
			case !l.free && !slices.Contains(l.values, value):
				t.Errorf("%s:%d: %s: value %s=%q is not listed (have %s)", metricsDoc, m.line, n, label, value, strings.Join(l.values, ", "))
			}
			seen[label] = true
			seen[p] = true
		}
		for _, l := range m.labels {
			if !seen[l.name] {
				t.Errorf("%s:%d: %s: label %s listed, the daemon exports no series with it", metricsDoc, m.line, n, l.name)
			}
			for _, v := range l.values {
				if !l.free && !seen[l.name+"="+v] {
					t.Errorf("%s:%d: %s{%s=%q} is listed, the daemon exports no such series", metricsDoc, m.line, n, l.name, v)
				}
			}
		}
	}
	for _, n := range sortedKeys(doc) {
		if exported[n] == "" {
			t.Errorf("%s:%d: %s is listed, but the daemon (every feature configured) does not export it", metricsDoc, doc[n].line, n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
