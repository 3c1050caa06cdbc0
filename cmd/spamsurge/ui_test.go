package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/sim"
)

// The real daemon serves the page of an incident a replayed history
// opened (the backup scenario: a list copied three weeks before its use),
// and headless Chromium renders it: the screenshot is no blank page, and
// the DOM it rendered shows the incident's id, the interval the list was
// copied in (which holds the true copy time) and both charts.
func TestIncidentPageInChromium(t *testing.T) {
	bin := testkit.Need(t, "chromium", "chromium", "chromium-browser", "google-chrome")
	dir := t.TempDir()
	var hist bytes.Buffer
	tr, err := sim.Run(sim.Config{Scenario: "backup", Seed: 1, Addresses: 6000}, &hist)
	if err != nil {
		t.Fatal(err)
	}
	obs := testkit.WriteFile(t, dir, "history.jsonl", hist.String())
	cfg := config.Default()
	cfg.SMTP.Listen = closedPort(t)
	cfg.Downstream.Address = closedPort(t)
	cfg.HTTP.Listen = closedPort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	cfgFile := testkit.WriteFile(t, dir, "spamsurge.yaml", "store: {path: "+cfg.Store.Path+"}\n")
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", cfgFile, obs}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	startServe(t, cfg, nil)
	base := "http://" + cfg.HTTP.Listen

	var in *detector.Incident
	for _, x := range fullIncidents(t, base) {
		if x.Kind == detector.KindSurge && x.ListSnapshot != nil {
			in = &x
		}
	}
	if in == nil {
		t.Fatalf("no dated surge incident after the replay: %s", errb.String())
	}
	if c := *tr.ListCopiedAt; c.Before(in.ListSnapshot.NotBefore) || c.After(in.ListSnapshot.NotAfter) {
		t.Fatalf("list copied %s, dated %+v", c, in.ListSnapshot)
	}
	index := get(t, base+"/ui/", "", http.StatusOK)
	if !strings.Contains(index, `href="/ui/incidents/`+in.ID+`"`) {
		t.Fatalf("/ui/ does not link %s", in.ID)
	}
	get(t, base+"/ui/incidents/no-such-id", "", http.StatusNotFound)

	page := base + "/ui/incidents/" + in.ID
	chrome := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}, args...), page)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, e.String())
		}
		return o.String()
	}
	for _, size := range []string{"1200,2400", "390,2400"} {
		shot := filepath.Join(dir, "page.png")
		chrome("--screenshot="+shot, "--window-size="+size)
		notWhite, sd := inkOf(t, shot)
		t.Logf("screenshot %s: %.1f %% not white, luminance sd %.1f", size, notWhite*100, sd)
		if notWhite < 0.03 || sd < 10 {
			t.Errorf("screenshot %s looks blank: %.1f %% not white, sd %.1f", size, notWhite*100, sd)
		}
	}
	dom := chrome("--dump-dom")
	want := "Between " + in.ListSnapshot.NotBefore.UTC().Format("2006-01-02 15:04 UTC") + " and " + in.ListSnapshot.NotAfter.UTC().Format("2006-01-02 15:04 UTC")
	for _, s := range []string{in.ID, want, "spamsurge resolve --config"} {
		if !strings.Contains(dom, s) {
			t.Errorf("the page Chromium rendered lacks %q", s)
		}
	}
	if n := strings.Count(dom, "<svg"); n != 2 {
		t.Errorf("the page Chromium rendered has %d charts, want 2 (timeline, snapshot)", n)
	}
}

// With http.token_file set the pages answer 401 without the token, asking
// a browser for it (Basic, any user name), and serve it with the token as
// a bearer token or the Basic password.
func TestIncidentPagesNeedTheToken(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.SMTP.Listen = closedPort(t)
	cfg.Downstream.Address = closedPort(t)
	cfg.HTTP.Listen = closedPort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.HTTP.TokenFile = testkit.WriteFile(t, dir, "token", "s3cret-token\n")
	startServe(t, cfg, nil)
	base := "http://" + cfg.HTTP.Listen
	for _, p := range []string{"/ui/", "/ui/incidents/x"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), "Basic") {
			t.Fatalf("%s without the token: %s, WWW-Authenticate %q", p, resp.Status, resp.Header.Values("WWW-Authenticate"))
		}
	}
	get(t, base+"/ui/", "Bearer s3cret-token", http.StatusOK)
	get(t, base+"/ui/", "basic", http.StatusOK)
	get(t, base+"/ui/", "Bearer wrong", http.StatusUnauthorized)
}

func get(t *testing.T, url, auth string, want int) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	switch {
	case auth == "basic":
		req.SetBasicAuth("security", "s3cret-token")
	case auth != "":
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %.300s", url, resp.Status, want, b)
	}
	return string(b)
}

func fullIncidents(t *testing.T, base string) []detector.Incident {
	t.Helper()
	var body struct{ Incidents []detector.Incident }
	if err := json.Unmarshal([]byte(get(t, base+"/api/v1/incidents", "", http.StatusOK)), &body); err != nil {
		t.Fatal(err)
	}
	return body.Incidents
}

// inkOf is a screenshot's share of pixels that are not white, and the
// spread of its luminance.
func inkOf(t *testing.T, path string) (notWhite, sd float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var n, nw int
	var sum, sum2 float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl := rgb(img, x, y)
			l := 0.299*r + 0.587*g + 0.114*bl
			n++
			sum += l
			sum2 += l * l
			if r < 245 || g < 245 || bl < 245 {
				nw++
			}
		}
	}
	m := sum / float64(n)
	return float64(nw) / float64(n), math.Sqrt(math.Max(0, sum2/float64(n)-m*m))
}

func rgb(img image.Image, x, y int) (r, g, b float64) {
	r32, g32, b32, _ := img.At(x, y).RGBA()
	return float64(r32 >> 8), float64(g32 >> 8), float64(b32 >> 8)
}
