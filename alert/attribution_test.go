package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/detector"
)

func TestAlertNamesTheSource(t *testing.T) {
	p, err := New(Options{URL: "http://127.0.0.1:9093"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 13, 9, 30, 0, 0, time.UTC)
	in := detector.Incident{ID: "s-1", Kind: "surge", State: "open", StartedAt: now, Recipients: 200}
	in.TopTag = "addressbook"
	in.TopSource = "91 % of newly spammed addresses are in `addressbook` (8 % of the population), lift 11×"
	a := p.toAlert(&tracked{in: in}, now)
	if a.Annotations["top_source"] != in.TopSource || !strings.Contains(a.Annotations["description"], "Source: 91 % of newly spammed") {
		t.Fatalf("annotations %v", a.Annotations)
	}

	c := detector.Incident{ID: "c-2", Kind: "canary", State: "open", StartedAt: now, Recipients: 1}
	c.CanarySource = "billing-db"
	a = p.toAlert(&tracked{in: c}, now)
	if a.Labels["severity"] != "critical" || a.Annotations["canary_source"] != "billing-db" ||
		!strings.Contains(a.Annotations["summary"], "planted in billing-db") {
		t.Fatalf("canary alert %v %v", a.Labels, a.Annotations)
	}
	if _, ok := a.Annotations["top_source"]; ok {
		t.Fatal("canary alert with a top_source")
	}
}

// An incident the novel-campaign CUSUM opened says what it counted.
func TestAlertSaysWhichTestOpened(t *testing.T) {
	p, err := New(Options{URL: "http://127.0.0.1:9093"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 13, 9, 30, 0, 0, time.UTC)
	in := detector.Incident{ID: "s-1", Kind: "surge", State: "open", StartedAt: now, Recipients: 40, Observed: 40, Expected: 0.8, Trigger: "cusum_novel"}
	a := p.toAlert(&tracked{in: in}, now)
	if a.Annotations["trigger"] != "cusum_novel" || !strings.Contains(a.Annotations["summary"], "from campaigns that reach mostly never-spammed addresses") {
		t.Fatalf("annotations %v", a.Annotations)
	}
	in.Trigger = "window_10m"
	a = p.toAlert(&tracked{in: in}, now)
	if a.Annotations["trigger"] != "window_10m" || strings.Contains(a.Annotations["summary"], "campaigns") {
		t.Fatalf("annotations %v", a.Annotations)
	}
}
