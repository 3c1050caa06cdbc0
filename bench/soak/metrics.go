package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The series sampled from each daemon's /metrics.
const (
	mGoroutines = "go_goroutines"
	mHeap       = "go_memstats_heap_inuse_bytes"
	mRSS        = "process_resident_memory_bytes"
	mFDs        = "process_open_fds"
	mSessions   = "spamsurge_sessions_active"
	mRelayed    = `spamsurge_messages_total{result="relayed"}`
	mTempfail   = `spamsurge_messages_total{result="tempfail"}`
	mRejected   = `spamsurge_messages_total{result="rejected"}`
	mDSFail     = "spamsurge_downstream_failures_total" // summed over reasons
	mRcptOK     = `spamsurge_recipients_total{result="accepted"}`
)

var scrapeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// scrape reads one exposition; labelled series of mDSFail are summed
// under its bare name.
func scrape(addr string) (map[string]float64, error) {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		v[name] = f
		if strings.HasPrefix(name, mDSFail+"{") {
			v[mDSFail] += f
		}
	}
	return v, sc.Err()
}

// sample is one scrape of one lane's daemon.
type sample struct {
	at    time.Duration // since the traffic started (negative: before)
	lane  string
	phase string // baseline, load, idle (traffic paused), end (after the drain)
	v     map[string]float64
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// trendLimit bounds the fitted growth of one series over the measured
// window: floor absorbs the noise of a short run, perHour is the rate a
// leak must stay under over a long one.
type trendLimit struct {
	series  string
	label   string
	unit    float64 // divisor for display (MiB for bytes)
	unitTag string
	floor   float64
	perHour float64
}

func (l trendLimit) limit(window time.Duration) float64 {
	return max(l.floor, l.perHour*window.Hours())
}

func (l trendLimit) show(v float64) string {
	if l.unit == 1 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v/l.unit, 'f', 1, 64)
}
