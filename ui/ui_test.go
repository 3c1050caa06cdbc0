package ui

import (
	"bytes"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/forensics"
)

func sample() (detector.Incident, *detector.FirstSeenCurve) {
	t0 := time.Date(2026, 4, 26, 13, 0, 0, 0, time.UTC)
	in := detector.Incident{ID: "20260426T132748Z-surge-1", Kind: detector.KindSurge, State: "open",
		StartedAt: t0, OpenedAt: t0.Add(30 * time.Minute), UpdatedAt: t0.Add(20 * time.Hour),
		Trigger: "cusum_novel", Recipients: 120, Observed: 120, Expected: 0.4, Score: 3.2}
	in.Profile = &detector.Profile{DormantShare: 0.4, LongDormantShare: 0.25,
		Domains:    []detector.DomainLift{{Domain: "shop17.example", InIncident: 100, Share: 0.83, PopulationShare: 0.02, Lift: 41.5, Score: 80}},
		Candidates: &detector.Candidates{Estimate: 640, Low: 600, High: 700, Basis: "at-risk addresses of shop17.example"}}
	in.Campaigns.Subject = []detector.Group{{Key: "<script>alert(1)</script>", Count: 100, Share: 0.83}}
	in.ListSnapshot = &forensics.Snapshot{NotBefore: time.Date(2026, 4, 2, 16, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 4, 11, 4, 0, 0, 0, time.UTC), Confidence: 0.95}
	in.HitsAt = detector.HourCounts{}
	in.HitsFirstSeen = detector.HourCounts{}
	for i := range 20 {
		in.HitsAt[t0.Unix()/3600+int64(i)] = 6
		in.HitsFirstSeen[time.Date(2026, 3, 3+i, 9, 0, 0, 0, time.UTC).Unix()/3600] = 6
	}
	c := &detector.FirstSeenCurve{From: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	for d := range 50 {
		c.AtRisk = append(c.AtRisk, 300/(d+1)+100)
	}
	return in, c
}

func TestIncidentPage(t *testing.T) {
	in, c := sample()
	var b bytes.Buffer
	if err := Incident(&b, in, c, Meta{ConfigPath: "/etc/spam surge.yaml", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		in.ID, "Between 2026-04-02 16:00 UTC and 2026-04-11 04:00 UTC", "8.5 days wide",
		"spamsurge resolve --config '/etc/spam surge.yaml' --incident 20260426T132748Z-surge-1 --addresses customers.txt --format csv",
		"&lt;script&gt;", `name="viewport"`, "about 640</b> (600 to 700): at-risk addresses of shop17.example", "41.5×", "25 %",
	} {
		if !strings.Contains(page, want) && !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("a campaign key reached the page unescaped")
	}
	if n := strings.Count(page, "<svg"); n != 2 {
		t.Errorf("%d charts, want the timeline and the snapshot", n)
	}
	// Not dated: the reason instead, and no curve yet.
	in.ListSnapshot, in.ListSnapshotReason = nil, "12 first spams: at least 20 are needed to date the list"
	b.Reset()
	if err := Incident(&b, in, nil, Meta{}); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); !strings.Contains(page, "Not dated") || !strings.Contains(page, in.ListSnapshotReason) || strings.Count(page, "<svg") != 1 {
		t.Errorf("undated page: %s", page)
	}
}

func TestIndexPage(t *testing.T) {
	in, _ := sample()
	older := in
	older.ID, older.OpenedAt, older.Kind, older.ListSnapshot = "20260301T000000Z-canary-2", in.OpenedAt.Add(-time.Hour), detector.KindCanary, nil
	var b bytes.Buffer
	if err := Index(&b, []detector.Incident{older, in}, Meta{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	i, j := strings.Index(page, in.ID), strings.Index(page, older.ID)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("index lists %s at %d and %s at %d: want both, newest first", in.ID, i, older.ID, j)
	}
	if !strings.Contains(page, `href="/ui/incidents/`+in.ID+`"`) {
		t.Error("no link to the incident's page")
	}
	b.Reset()
	Index(&b, nil, Meta{})
	if !strings.Contains(b.String(), "No incident") {
		t.Error("empty index says nothing")
	}
}
