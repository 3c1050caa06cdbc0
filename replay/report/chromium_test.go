package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// TestChromium opens the page in headless Chromium: the screenshot (a
// desktop and a phone width) is no blank page and shows the charts' band
// and incident colours, the page logs no script or console error, and the
// DOM Chromium rendered holds every incident and chart.
func TestChromium(t *testing.T) {
	bin := testkit.Need(t, "chromium", "chromium", "chromium-browser", "google-chrome")
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte(render(t, synthetic(), meta())), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page
	run := func(args ...string) (stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(),
			"--enable-logging=stderr", "--v=0", "--hide-scrollbars"}
		cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, e.String())
		}
		for _, l := range strings.Split(e.String(), "\n") {
			if strings.Contains(l, "Uncaught") || strings.Contains(l, ":CONSOLE") {
				t.Errorf("chromium logged a page error: %s", l)
			}
		}
		return o.String(), e.String()
	}

	for _, c := range []struct {
		name string
		w, h int
	}{{"desktop", 1200, 2000}, {"phone", 390, 1800}} {
		shot := filepath.Join(dir, c.name+".png")
		run("--screenshot="+shot, "--window-size="+strconv.Itoa(c.w)+","+strconv.Itoa(c.h))
		img := decodePNG(t, shot)
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Fatalf("%s screenshot is %v", c.name, b)
		}
		st := pixels(img)
		t.Logf("%s: %.1f %% not white, luminance sd %.1f, %d band pixels, %d incident pixels", c.name, 100*st.notWhite, st.sd, st.band, st.incident)
		if st.notWhite < 0.03 || st.sd < 10 {
			t.Errorf("%s screenshot looks blank: %.1f %% not white, sd %.1f", c.name, 100*st.notWhite, st.sd)
		}
		// The SVG was drawn, not only the text around it.
		if st.band < 500 || st.incident < 100 {
			t.Errorf("%s screenshot: %d pixels of the band's blue, %d of an incident's red: the charts did not render", c.name, st.band, st.incident)
		}
	}

	dom, _ := run("--dump-dom")
	for _, id := range []string{"20260322T124500Z-surge-1", "20260312T030000Z-surge-2", "20260331T200000Z-dictionary-3"} {
		if !strings.Contains(dom, id) {
			t.Errorf("rendered DOM lacks incident %s", id)
		}
	}
	if n := strings.Count(dom, "<svg"); n != 5 {
		t.Errorf("rendered DOM has %d charts, want 5", n)
	}
	if !strings.Contains(dom, `id="incident-3"`) {
		t.Error("rendered DOM lacks the incident table's rows")
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

type pixStats struct {
	notWhite float64
	sd       float64
	band     int // pixels of the band's light blue (#cfe3f7)
	incident int // pixels of an open incident's red, over white or band
}

func pixels(img image.Image) pixStats {
	b := img.Bounds()
	var n, nw, band, inc int
	var sum, sum2 float64
	near := func(r, g, b, R, G, B, tol int) bool {
		return abs(r-R) <= tol && abs(g-G) <= tol && abs(b-B) <= tol
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r32, g32, b32, _ := img.At(x, y).RGBA()
			r, g, bl := int(r32>>8), int(g32>>8), int(b32>>8)
			l := 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)
			n++
			sum += l
			sum2 += l * l
			if r < 245 || g < 245 || bl < 245 {
				nw++
			}
			if near(r, g, bl, 0xcf, 0xe3, 0xf7, 6) {
				band++
			}
			// #d62728 at 22 % over white: about (245, 197, 197).
			if r > 200 && g < 215 && bl < 215 && r-g > 30 && abs(g-bl) < 12 {
				inc++
			}
		}
	}
	m := sum / float64(n)
	return pixStats{notWhite: float64(nw) / float64(n), sd: math.Sqrt(math.Max(0, sum2/float64(n)-m*m)), band: band, incident: inc}
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
