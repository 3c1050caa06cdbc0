package tail

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spamsurge/spamsurge/ingest"
)

// fixture is a line rspamd 3.4 logged (ingest/logs/testdata/rspamd.log);
// rline makes the i-th of a log of them, told apart by its Message-ID.
var fixture = func() string {
	b, err := os.ReadFile("../logs/testdata/rspamd.log")
	if err != nil {
		panic(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "rspamd_task_write_log") && strings.Contains(l, "<gtube1@example.org>") {
			return l
		}
	}
	panic("no task line in the fixture")
}()

func rline(i int) string {
	l := strings.Replace(fixture, "<gtube1@example.org>", fmt.Sprintf("<m%04d@example.org>", i), 1)
	// Stamped now, in rspamd's own format.
	return time.Now().Format("2006-01-02 15:04:05") + l[len("2026-12-02 03:08:19"):] + "\n"
}

// other is a line of rspamd's that is no verdict.
const other = "2026-12-02 03:08:19 #28563(normal) <6aceb0>; lua; some other notice\n"

// sink records what a Tailer emits: the Message-IDs in order and the last
// position (what the daemon would have committed).
type sink struct {
	mu   sync.Mutex
	mids []string
	pos  *Position
	ch   chan struct{}
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 1)} }

func (s *sink) emit(_ context.Context, o *ingest.Observation, p Position) error {
	s.mu.Lock()
	if o != nil {
		s.mids = append(s.mids, o.MessageID)
	}
	s.pos = &p
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.mids...)
}

func (s *sink) last() *Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// wait waits until n observations were emitted (5 s at most) and checks
// they are exactly the lines want, each once, in order.
func (s *sink) wait(t *testing.T, want ...int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.got()) < len(want) && time.Now().Before(deadline) {
		select {
		case <-s.ch:
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A duplicate would follow closely.
	time.Sleep(100 * time.Millisecond)
	var w []string
	for _, i := range want {
		w = append(w, fmt.Sprintf("<m%04d@example.org>", i))
	}
	if got := s.got(); strings.Join(got, " ") != strings.Join(w, " ") {
		t.Fatalf("emitted %d observations\n%v\nwant %d\n%v", len(got), got, len(w), w)
	}
}

// waitPos waits until a position was emitted.
func (s *sink) waitPos(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.last() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no position emitted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type run struct {
	t      *Tailer
	m      *Metrics
	cancel context.CancelFunc
	done   chan struct{}
}

// follow runs a Tailer on path until stop or the test's end.
func follow(t *testing.T, path string, s *sink, mod func(*Options)) *run {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	o := Options{Name: "test", Path: path, Emit: s.emit, Poll: 20 * time.Millisecond, Grace: 150 * time.Millisecond, Metrics: m}
	if mod != nil {
		mod(&o)
	}
	tl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: tl, m: m, cancel: cancel, done: make(chan struct{})}
	go func() { tl.Run(ctx); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

func (r *run) stop() {
	r.cancel()
	<-r.done
}

func (r *run) lines(result string) float64 {
	return testutil.ToFloat64(r.m.lines.WithLabelValues("test", result))
}

func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func rlines(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, rline(i))
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// A first run starts at the end of the file: what was there before is
// history it does not read.
func TestFirstRunStartsAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, rlines(1, 3)...)
	s := newSink()
	r := follow(t, path, s, nil)
	s.waitPos(t)
	appendTo(t, path, rlines(4, 5)...)
	s.wait(t, 4, 5)
	if v := r.lines("parsed"); v != 2 {
		t.Errorf("parsed = %v, want 2", v)
	}
}

// backfill: true reads the file from its start on the first run.
func TestBackfillReadsFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, rline(1), other, rline(2), rline(3))
	s := newSink()
	r := follow(t, path, s, func(o *Options) { o.Backfill = true })
	s.wait(t, 1, 2, 3)
	appendTo(t, path, rline(4))
	s.wait(t, 1, 2, 3, 4)
	if v := r.lines("skipped"); v != 1 {
		t.Errorf("skipped = %v, want 1 (the other notice)", v)
	}
}

// A line without its newline yet is not parsed (it would be cut short);
// it is when the rest arrives, once and whole.
func TestPartialLineWaitsForItsNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, "")
	s := newSink()
	r := follow(t, path, s, nil)
	s.waitPos(t)
	l := rline(1)
	appendTo(t, path, l[:len(l)/2])
	time.Sleep(200 * time.Millisecond) // ten polls
	if got := s.got(); len(got) != 0 {
		t.Fatalf("a partial line was parsed: %v", got)
	}
	if v := r.lines("invalid") + r.lines("skipped"); v != 0 {
		t.Fatalf("a partial line was counted: %v", v)
	}
	appendTo(t, path, l[len(l)/2:], rline(2))
	s.wait(t, 1, 2)
	if v := r.lines("invalid"); v != 0 {
		t.Errorf("invalid = %v", v)
	}
}

// logrotate's default (create): the log is renamed, the writer still
// writes a line to the old file before it reopens, a new file takes the
// name. Every line is read once: the old file to its end, then the new
// one from its start.
func TestRotationByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rspamd.log")
	appendTo(t, path, "")
	s := newSink()
	r := follow(t, path, s, nil)
	s.waitPos(t)
	appendTo(t, path, rlines(1, 3)...)
	s.wait(t, 1, 2, 3)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", rline(4)) // the writer has not reopened yet
	appendTo(t, path, "")            // logrotate's create
	time.Sleep(50 * time.Millisecond)
	appendTo(t, path+".1", rline(5))
	appendTo(t, path, rlines(6, 7)...) // reopened
	s.wait(t, seq(1, 7)...)
	if v := testutil.ToFloat64(r.m.rotations.WithLabelValues("test", "rename")); v != 1 {
		t.Errorf("rotations{rename} = %v, want 1", v)
	}
	// And again, with a compressed rotation in between.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, rlines(8, 9)...)
	s.wait(t, seq(1, 9)...)
}

// copytruncate: the file is copied and truncated in place; the writer
// goes on at the start of the same file.
func TestRotationByTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, "")
	s := newSink()
	r := follow(t, path, s, nil)
	s.waitPos(t)
	appendTo(t, path, rlines(1, 4)...)
	s.wait(t, 1, 2, 3, 4)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	appendTo(t, path, rline(5))
	s.wait(t, 1, 2, 3, 4, 5)
	if v := testutil.ToFloat64(r.m.rotations.WithLabelValues("test", "truncate")); v != 1 {
		t.Errorf("rotations{truncate} = %v, want 1", v)
	}
}

// A restart resumes at the saved position: the lines written while
// spamsurge was stopped are read, none of the ones before again; also
// when the log was rotated meanwhile, or truncated and written again past
// the saved offset (the hash of its first bytes tells).
func TestRestartResumesExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rspamd.log")
	appendTo(t, path, rlines(1, 2)...)
	s := newSink()
	r := follow(t, path, s, nil) // first run: from the end
	s.waitPos(t)
	appendTo(t, path, rlines(3, 5)...)
	s.wait(t, 3, 4, 5)
	r.stop()
	saved := *s.last()

	appendTo(t, path, rlines(6, 7)...) // while stopped
	s2 := newSink()
	r = follow(t, path, s2, func(o *Options) { o.Start = &saved })
	appendTo(t, path, rlines(8, 9)...)
	s2.wait(t, 6, 7, 8, 9)
	r.stop()
	saved = *s2.last()

	// Stopped, then the log rotated: the rest of the old file, then
	// the new one.
	appendTo(t, path, rline(10))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, rlines(11, 12)...)
	s3 := newSink()
	r = follow(t, path, s3, func(o *Options) { o.Start = &saved })
	s3.wait(t, 10, 11, 12)
	r.stop()
	saved = *s3.last()

	// Stopped, then truncated and written again beyond the saved
	// offset: read from the start.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, rlines(13, 16)...)
	s4 := newSink()
	r = follow(t, path, s4, func(o *Options) { o.Start = &saved })
	s4.wait(t, 13, 14, 15, 16)
	if v := testutil.ToFloat64(r.m.rotations.WithLabelValues("test", "truncate")); v != 1 {
		t.Errorf("rotations{truncate} = %v, want 1", v)
	}

	// A restart right after a first run's start, before any verdict
	// line: the lines in between are not skipped.
	path2 := filepath.Join(dir, "other.log")
	appendTo(t, path2, rline(1))
	s5 := newSink()
	r = follow(t, path2, s5, nil)
	s5.waitPos(t)
	r.stop()
	saved = *s5.last()
	appendTo(t, path2, rline(2))
	s6 := newSink()
	follow(t, path2, s6, func(o *Options) { o.Start = &saved })
	s6.wait(t, 2)
}

// The saved position holds offsets and a hash, never a line.
func TestPositionHoldsNoLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, "")
	s := newSink()
	follow(t, path, s, nil)
	s.waitPos(t)
	appendTo(t, path, rline(1))
	s.wait(t, 1)
	b := s.last().Marshal()
	if bytes.Contains(b, []byte("example")) || bytes.Contains(b, []byte("@")) {
		t.Fatalf("position %s holds text of the log", b)
	}
	p, err := ParsePosition(b)
	if err != nil || p != *s.last() {
		t.Fatalf("round trip: %+v %v", p, err)
	}
}

// An absent file is waited for (source_up 0) and read from its start
// when it appears.
func TestAbsentFileAppears(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "rspamd.log")
	s := newSink()
	r := follow(t, path, s, nil)
	time.Sleep(100 * time.Millisecond)
	if v := testutil.ToFloat64(r.m.up.WithLabelValues("test")); v != 0 {
		t.Fatalf("up = %v while absent", v)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, rlines(1, 2)...)
	s.wait(t, 1, 2)
	if v := testutil.ToFloat64(r.m.up.WithLabelValues("test")); v != 1 {
		t.Errorf("up = %v once followed", v)
	}
}

// Without a format, the first verdict line names it; malformed lines are
// counted invalid, other lines skipped; the lag is the last line's age.
func TestAutoFormatAndCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rspamd.log")
	appendTo(t, path, "")
	s := newSink()
	r := follow(t, path, s, nil)
	s.waitPos(t)
	broken := strings.Replace(rline(2), "(default: S (reject)", "(default: Q (reject)", 1)
	appendTo(t, path, other, rline(1), broken, other, rline(3))
	s.wait(t, 1, 3)
	if p, sk, inv := r.lines("parsed"), r.lines("skipped"), r.lines("invalid"); p != 2 || sk != 2 || inv != 1 {
		t.Errorf("parsed %v skipped %v invalid %v, want 2 2 1", p, sk, inv)
	}
	if r.t.format != "rspamd" {
		t.Errorf("format %q", r.t.format)
	}
	// Lines stamped now, in whole seconds.
	if lag := testutil.ToFloat64(r.m.lagSec.WithLabelValues("test")); lag < 0 || lag > 5 {
		t.Errorf("lag = %v s, want a few at most", lag)
	}
}
