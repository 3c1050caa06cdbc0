package replay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
)

type recorder struct{ obs []ingest.Observation }

func (r *recorder) Observe(o ingest.Observation) []detector.Event {
	r.obs = append(r.obs, o)
	return nil
}

const good1 = `{"time":"2026-05-13T09:14:02Z","rcpt":["alice@example.net"],"spam":true,"from":"x@spam.example","client_ip":"203.0.113.9","subject":"hi","message_id":"<1@x>"}`

func TestMalformedLinesSkippedAndCounted(t *testing.T) {
	in := strings.Join([]string{
		good1,
		`{"time":"2026-05-13T09:15:00Z","rcpt":["bob@example.net"]}`, // no spam
		`not json at all`,
		``,
		`{"rcpt":["c@example.net"],"spam":false}`,                             // no time
		`{"time":"yesterday","rcpt":["c@example.net"],"spam":false}`,          // bad time
		`{"time":"2026-05-13T09:16:00Z","spam":false}`,                        // no rcpt
		`{"time":"2026-05-13T09:16:00Z","rcpt":"c@example.net","spam":false}`, // rcpt not a list
		`{"time":"2026-05-13T09:17:00Z","rcpt":[],"rejected":["ghost@example.net"],"spam":true}`,
	}, "\n")
	var bad []int
	r := &recorder{}
	st, err := Run(context.Background(), Options{Detector: r, OnMalformed: func(name string, line int, err error) {
		if name != "f.jsonl" {
			t.Errorf("name %q", name)
		}
		bad = append(bad, line)
	}}, Input{Name: "f.jsonl", R: strings.NewReader(in)})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 3, 5, 6, 7, 8}
	if len(bad) != len(want) {
		t.Fatalf("malformed lines %v, want %v", bad, want)
	}
	for i := range want {
		if bad[i] != want[i] {
			t.Fatalf("malformed lines %v, want %v", bad, want)
		}
	}
	if st.Malformed != 6 || st.Observations != 2 || len(r.obs) != 2 {
		t.Fatalf("stats %+v, observed %d", st, len(r.obs))
	}
	if o := r.obs[0]; o.Rcpt[0] != "alice@example.net" || !o.Spam || o.ClientIP != "203.0.113.9" || o.MessageID != "<1@x>" {
		t.Fatalf("decoded %+v", o)
	}
	if o := r.obs[1]; len(o.Rejected) != 1 || len(o.Rcpt) != 0 {
		t.Fatalf("decoded %+v", o)
	}
}

func TestStrictStopsAtFirstMalformed(t *testing.T) {
	r := &recorder{}
	_, err := Run(context.Background(), Options{Detector: r, Strict: true},
		Input{Name: "f", R: strings.NewReader(good1 + "\n{oops\n" + good1 + "\n")})
	var me *MalformedError
	if !errors.As(err, &me) || me.Line != 2 || !strings.Contains(err.Error(), "f:2:") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverlongLine(t *testing.T) {
	r := &recorder{}
	long := `{"time":"2026-05-13T09:14:02Z","rcpt":["` + strings.Repeat("a", 5000) + `@x"],"spam":true}`
	st, err := Run(context.Background(), Options{Detector: r, MaxLine: 1000},
		Input{Name: "f", R: strings.NewReader(long + "\n" + good1 + "\n")})
	if err != nil || st.Malformed != 1 || len(r.obs) != 1 {
		t.Fatalf("err %v stats %+v", err, st)
	}
}

func TestReorderWindow(t *testing.T) {
	line := func(ts string) string {
		return `{"time":"` + ts + `","rcpt":["a@example.net"],"spam":false}`
	}
	in := strings.Join([]string{
		line("2026-05-13T10:00:00Z"),
		line("2026-05-13T10:03:00Z"),
		line("2026-05-13T10:01:00Z"), // 2 min late: put back in order
		line("2026-05-13T10:20:00Z"),
		line("2026-05-13T10:00:30Z"), // 20 min late: beyond the window, passed on as is
	}, "\n")
	r := &recorder{}
	if _, err := Run(context.Background(), Options{Detector: r}, Input{Name: "f", R: strings.NewReader(in)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range r.obs {
		got = append(got, o.Time.Format("15:04:05"))
	}
	want := "10:00:00 10:01:00 10:03:00 10:00:30 10:20:00"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, Options{Detector: &recorder{}}, Input{Name: "f", R: strings.NewReader(good1)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// A single line dated far ahead of the stream is a bogus timestamp: it is
// reported and skipped, and the detector's clock never sees it. A real gap
// (more lines follow it) is kept.
func TestTimeJumpSkippedRealGapKept(t *testing.T) {
	line := func(ts string, rcpt string) string {
		return `{"time":"` + ts + `","rcpt":["` + rcpt + `"],"spam":false}`
	}
	in := strings.Join([]string{
		line("2026-05-13T10:00:00Z", "a@example.net"),
		line("2026-05-13T10:01:00Z", "b@example.net"),
		line("9999-12-01T00:00:00Z", "bogus@example.net"),
		line("2026-05-13T10:02:00Z", "c@example.net"),
		line("2026-05-17T08:00:00Z", "after-gap@example.net"), // four days later: a hole in the log
		line("2026-05-17T08:01:00Z", "d@example.net"),
		line("9999-01-01T00:00:00Z", "last-bogus@example.net"), // nothing after it
	}, "\n")
	r := &recorder{}
	var reported []int
	st, err := Run(context.Background(), Options{Detector: r, OnMalformed: func(_ string, line int, err error) {
		if !strings.Contains(err.Error(), "jumps") {
			t.Errorf("line %d: %v", line, err)
		}
		reported = append(reported, line)
	}}, Input{Name: "f", R: strings.NewReader(in)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range r.obs {
		got = append(got, o.Rcpt[0])
	}
	want := "a@example.net b@example.net c@example.net after-gap@example.net d@example.net"
	if strings.Join(got, " ") != want {
		t.Fatalf("detector saw %v, want %s", got, want)
	}
	if st.Jumps != 2 || len(reported) != 2 || reported[0] != 3 || reported[1] != 7 {
		t.Fatalf("jumps %d, reported lines %v; want 2: lines 3 and 7", st.Jumps, reported)
	}
}
