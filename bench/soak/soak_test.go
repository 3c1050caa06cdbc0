package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// TestSoak is the CI-sized soak: three minutes of the full traffic mix
// through both lanes, next hops killed every 20–40 s, an idle check every
// minute. It fails on any lost, duplicated, changed or unexplained message,
// on a growth trend, or on a daemon that does not come back to its idle
// baseline. About 3.5 minutes and a fraction of one core.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: three minutes of traffic; skipped with -short")
	}
	sinkBin := testkit.Need(t, "postfix", "smtp-sink", "/usr/sbin/smtp-sink")
	bin, err := testkit.BuildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })

	res, err := Run(context.Background(), Config{
		Binary:    bin,
		SinkBin:   sinkBin,
		Dir:       t.TempDir(),
		Duration:  3 * time.Minute,
		Interval:  10 * time.Second,
		Warmup:    30 * time.Second,
		IdleEvery: time.Minute,
		Clients:   4,
		Rate:      3,
		SinkUpMin: 20 * time.Second,
		SinkUpMax: 40 * time.Second,
		Progress:  logWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Report)
	for _, f := range res.Failures {
		t.Error(f)
	}
	// The run must have exercised what it claims to.
	for _, want := range []string{"| smtp |", "| lmtp |"} {
		if !strings.Contains(res.Report, want) {
			t.Errorf("report has no %q row", want)
		}
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
