// Package tail follows a growing filter log (rspamd, amavisd-new, spamd,
// or the observation stream) and hands every verdict line's observation
// on, as `spamsurge serve` does with sources.tail (docs/config.md).
//
// A Tailer follows its path through rotation by rename (logrotate's
// create: the old file is read to its end, then the new one from its
// start) and by truncation (copytruncate: read again from the start),
// waits for a file that is absent (and reads it from its start when it
// appears), and leaves a line without its newline alone until it is
// complete. It wakes on fsnotify events of the file's directory and polls
// as well, so a file system without events (NFS) is still followed.
//
// Where it stands is a Position: the file's device and inode, the offset
// after the last whole line, and a hash of the file's first bytes (so a
// file truncated and written again past the offset is not taken for the
// one it was). Every observation is handed on with the Position after its
// line; the caller saves the Position once the observation is safely
// counted (serve: in the same store commit as the detector's state), and
// gives it back as Options.Start after a restart, so no line is counted
// twice and none is skipped. The Position holds offsets and a hash, never
// a line.
package tail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/ingest/logs"
)

// Position is where a Tailer stands in its file.
type Position struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Offset int64  `json:"offset"`
	// HeadLen and Head: the length and SHA-256 (hex, first 16 bytes) of
	// the file's first bytes (at most headMax, never past Offset).
	HeadLen int64  `json:"head_len,omitempty"`
	Head    string `json:"head,omitempty"`
}

// Marshal encodes p for storage.
func (p Position) Marshal() []byte {
	b, _ := json.Marshal(p)
	return b
}

// ParsePosition decodes a stored Position.
func ParsePosition(b []byte) (Position, error) {
	var p Position
	err := json.Unmarshal(b, &p)
	return p, err
}

// Emit hands an observation on (o nil: only the position moved, over
// lines without observations). pos is the position after the line. It
// may wait; it returns an error only when ctx ends, and then the Tailer
// stops without counting the line.
type Emit func(ctx context.Context, o *ingest.Observation, pos Position) error

// Options configure a Tailer.
type Options struct {
	Name   string // the source's label in metrics and logs
	Path   string
	Format logs.Format // "": detected from the first verdict line
	// Location is the zone of stamps that carry none (default local);
	// Domain is appended to spamd users without "@".
	Location *time.Location
	Domain   string
	// Backfill reads the file from its start when there is no Start
	// position; otherwise a first run starts at its end.
	Backfill bool
	// Start is the position saved by the last run (nil: first run).
	Start *Position
	Emit  Emit
	// Poll is how often the file is checked without an fsnotify event
	// (default 1s); Grace how long the old file is still read after a
	// new one appeared at the path while the new one stays empty
	// (default 5s: the writer may not have reopened its log yet).
	Poll, Grace time.Duration
	Logger      *zap.Logger
	Metrics     *Metrics // nil: none
	Now         func() time.Time
}

const (
	headMax  = 512
	maxLine  = 1 << 20 // longer lines are invalid
	readSize = 64 << 10
	// markEvery: a run of lines without observations emits its
	// position at least this often.
	markEvery = 1000
)

// Tailer follows one file. Run it once.
type Tailer struct {
	o   Options
	log *zap.Logger
	m   sourceMetrics

	f        *os.File
	dev, ino uint64
	off      int64  // after the last whole line handled
	buf      []byte // read past off, no newline yet
	discard  bool   // inside a line over maxLine
	headLen  int64
	head     string
	parser   *logs.Parser
	format   logs.Format
	dirty    int       // lines handled since the last emit
	absent   bool      // logged the path as absent
	newSeen  time.Time // when another file appeared at the path
	lastTime time.Time // of the last parsed line
	chunk    []byte
}

// New checks o and returns a Tailer.
func New(o Options) (*Tailer, error) {
	if o.Path == "" || o.Emit == nil {
		return nil, errors.New("tail: Path and Emit are required")
	}
	if o.Name == "" {
		o.Name = o.Path
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Tailer{o: o, log: o.Logger.With(zap.String("source", o.Name)), format: o.Format, chunk: make([]byte, readSize)}
	t.m = o.Metrics.source(o.Name)
	return t, nil
}

// errStop is an Emit that ended with the context.
var errStop = errors.New("stopping")

// Run follows the file until ctx ends. It returns nil then; it never
// gives up on a file that is absent or unreadable (it logs and waits).
func (t *Tailer) Run(ctx context.Context) error {
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	w := t.watch()
	if w != nil {
		defer w.Close()
	}
	var events <-chan fsnotify.Event
	var werrs <-chan error
	if w != nil {
		events, werrs = w.Events, w.Errors
	}
	tick := time.NewTicker(t.o.Poll)
	defer tick.Stop()
	if err := t.start(ctx); err != nil {
		return nil
	}
	for {
		if err := t.step(ctx); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if !t.mine(ev.Name) {
				continue
			}
		case err := <-werrs:
			// An overflow (a busy directory while we wait for the
			// queue) only loses wake-ups: the poll reads on.
			t.log.Debug("fsnotify error; polling goes on", zap.Error(err))
		case <-tick.C:
		}
	}
}

// watch watches the file's directory (events for the file itself do not
// survive its rotation); nil when it cannot: polling alone then.
func (t *Tailer) watch() *fsnotify.Watcher {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.log.Info("no fsnotify; polling", zap.Error(err))
		return nil
	}
	if err := w.Add(filepath.Dir(t.o.Path)); err != nil {
		t.log.Info("cannot watch the directory; polling", zap.Error(err))
		w.Close()
		return nil
	}
	return w
}

// mine: an event for the path or one of its rotated names.
func (t *Tailer) mine(name string) bool {
	return strings.HasPrefix(filepath.Clean(name), filepath.Clean(t.o.Path))
}

// start opens the file where this run begins: the saved position, or the
// rotated file that position is in (read to its end first), or the end
// of the file on a first run (its start with Backfill).
func (t *Tailer) start(ctx context.Context) error {
	f, err := os.Open(t.o.Path)
	if err != nil {
		t.noteAbsent(err)
		if s := t.o.Start; s != nil {
			// The saved file may be there under a rotated name.
			if rf := findFile(t.o.Path, s.Dev, s.Ino); rf != nil {
				if t.resume(rf, *s) {
					t.log.Info("resuming in the rotated file", zap.String("file", filepath.Base(rf.Name())), zap.Int64("offset", s.Offset))
					return t.mark(ctx)
				}
				rf.Close()
			}
		}
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		t.noteAbsent(err)
		return nil
	}
	dev, ino := fileID(fi)
	if s := t.o.Start; s != nil {
		if s.Dev == dev && s.Ino == ino {
			if t.resume(f, *s) {
				t.log.Info("resuming", zap.Int64("offset", s.Offset))
			} else {
				t.log.Warn("the file was truncated while spamsurge was stopped; reading it from its start")
				t.m.rotations("truncate")
				t.use(f, dev, ino, 0)
			}
			return t.mark(ctx)
		}
		// Rotated while we were stopped: finish the old file first
		// when it is still there, uncompressed.
		if rf := findFile(t.o.Path, s.Dev, s.Ino); rf != nil {
			if t.resume(rf, *s) {
				f.Close()
				t.log.Info("rotated while spamsurge was stopped; reading the rest of the old file first", zap.String("file", filepath.Base(rf.Name())))
				return t.mark(ctx)
			}
			rf.Close()
		}
		t.log.Warn("rotated while spamsurge was stopped and the old file is gone (compressed or removed): what it got after the saved position is not read; reading the new file from its start")
		t.m.rotations("rename")
		t.use(f, dev, ino, 0)
		return t.mark(ctx)
	}
	off := int64(0)
	if !t.o.Backfill {
		off = lastLineEnd(f, fi.Size())
	}
	t.use(f, dev, ino, off)
	t.log.Info("following", zap.Int64("offset", off), zap.Bool("backfill", t.o.Backfill))
	return t.mark(ctx)
}

// mark emits the position now (a first run must remember where it
// started, or a restart before the first verdict line would skip what
// came in between).
func (t *Tailer) mark(ctx context.Context) error {
	if t.f == nil {
		return nil
	}
	t.dirty = 1
	return t.flushMark(ctx)
}

// resume uses f at the saved position when f is still the file it was
// (not shorter, same first bytes); otherwise it returns false and
// leaves f open for the caller.
func (t *Tailer) resume(f *os.File, s Position) bool {
	fi, err := f.Stat()
	if err != nil || fi.Size() < s.Offset {
		return false
	}
	if s.HeadLen > 0 && headHash(f, s.HeadLen) != s.Head {
		return false
	}
	dev, ino := fileID(fi)
	t.use(f, dev, ino, s.Offset)
	return true
}

// findFile looks for the file with that identity in path's directory:
// the rotated log (mail.log.1, rspamd.log-20261202).
func findFile(path string, dev, ino uint64) *os.File {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if d, i := fileID(fi); d == dev && i == ino {
			f, err := os.Open(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil
			}
			return f
		}
	}
	return nil
}

// lastLineEnd is the offset after the last newline of the file's last
// 64 KiB (a line still being written is read when it is complete), or
// size when there is none.
func lastLineEnd(f *os.File, size int64) int64 {
	from := max(size-readSize, 0)
	b := make([]byte, size-from)
	n, _ := f.ReadAt(b, from)
	if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
		return from + int64(i) + 1
	}
	return size
}

func headHash(f *os.File, n int64) string {
	b := make([]byte, n)
	m, _ := f.ReadAt(b, 0)
	sum := sha256.Sum256(b[:m])
	return hex.EncodeToString(sum[:16])
}

// use makes f the followed file, from off.
func (t *Tailer) use(f *os.File, dev, ino uint64, off int64) {
	if t.f != nil && t.f != f {
		t.f.Close()
	}
	t.f, t.dev, t.ino, t.off = f, dev, ino, off
	t.buf, t.discard = t.buf[:0], false
	t.headLen, t.head = 0, ""
	t.updateHead()
	fi, _ := f.Stat()
	ref := time.Now()
	if fi != nil {
		ref = fi.ModTime()
	}
	t.parser = nil
	if t.format != "" {
		t.parser = &logs.Parser{Format: t.format, Location: t.o.Location, Reference: ref, Domain: t.o.Domain}
	}
	t.absent = false
	t.newSeen = time.Time{}
	t.m.setUp(true)
}

// updateHead hashes the first bytes of the file once there are more of
// them before off.
func (t *Tailer) updateHead() {
	if n := min(t.off, headMax); n > t.headLen {
		t.headLen, t.head = n, headHash(t.f, n)
	}
}

func (t *Tailer) noteAbsent(err error) {
	t.m.setUp(false)
	if !t.absent {
		t.absent = true
		if errors.Is(err, os.ErrNotExist) {
			t.log.Warn("source file absent; waiting for it")
		} else {
			t.log.Warn("source file unreadable; retrying", zap.Error(err))
		}
	}
}

func (t *Tailer) pos() Position {
	return Position{Dev: t.dev, Ino: t.ino, Offset: t.off, HeadLen: t.headLen, Head: t.head}
}

// step reads what is new and checks the path for rotation.
func (t *Tailer) step(ctx context.Context) error {
	t.m.lag(t.lastTime, t.o.Now())
	if t.f == nil {
		f, err := os.Open(t.o.Path)
		if err != nil {
			t.noteAbsent(err)
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			t.noteAbsent(err)
			return nil
		}
		dev, ino := fileID(fi)
		off := int64(0)
		if s := t.o.Start; s != nil && s.Dev == dev && s.Ino == ino && fi.Size() >= s.Offset {
			off = s.Offset // the saved file came back
		}
		t.use(f, dev, ino, off)
		t.log.Info("source file appeared; following it from its start")
		if err := t.mark(ctx); err != nil {
			return err
		}
	}
	if err := t.read(ctx); err != nil {
		return err
	}
	return t.rotated(ctx)
}

// read handles every whole line from off to the end of the file.
func (t *Tailer) read(ctx context.Context) error {
	for {
		n, err := t.f.ReadAt(t.chunk, t.off+int64(len(t.buf)))
		if n > 0 {
			if err := t.feed(ctx, t.chunk[:n]); err != nil {
				return err
			}
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				t.log.Warn("reading the source file", zap.Error(err))
			}
			return t.flushMark(ctx)
		}
	}
}

// feed splits data into lines after what is buffered.
func (t *Tailer) feed(ctx context.Context, data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if t.discard {
				t.off += int64(len(data))
				return nil
			}
			t.buf = append(t.buf, data...)
			if len(t.buf) > maxLine {
				// Over a megabyte without a newline: not a log line.
				t.m.line("invalid")
				t.off += int64(len(t.buf))
				t.buf, t.discard = t.buf[:0], true
			}
			return nil
		}
		end := t.off + int64(len(t.buf)) + int64(i) + 1
		if t.discard {
			t.discard = false
			t.off = end
			t.dirty++
		} else {
			line := data[:i]
			if len(t.buf) > 0 {
				t.buf = append(t.buf, line...)
				line = t.buf
			}
			if err := t.handle(ctx, line, end); err != nil {
				return err
			}
		}
		t.buf = t.buf[:0]
		data = data[i+1:]
	}
	return nil
}

// handle parses one whole line that ends at end.
func (t *Tailer) handle(ctx context.Context, line []byte, end int64) error {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if t.parser == nil {
		if f := logs.Detect([][]byte{line}); f != "" {
			t.format = f
			t.parser = &logs.Parser{Format: f, Location: t.o.Location, Reference: time.Now(), Domain: t.o.Domain}
			t.log.Info("format detected", zap.String("format", string(f)))
		}
	}
	var o ingest.Observation
	err := ErrUndetected
	if t.parser != nil {
		if t.format == logs.JSONL {
			line = bytes.TrimSpace(line)
		}
		o, err = t.parser.Parse(line)
	}
	switch {
	case err == nil:
		prev := t.off
		t.off = end
		t.updateHead()
		if e := t.o.Emit(ctx, &o, t.pos()); e != nil {
			t.off = prev
			return errStop
		}
		t.m.line("parsed")
		t.dirty = 0
		t.lastTime = o.Time
		t.m.lag(o.Time, t.o.Now())
		return nil
	case len(bytes.TrimSpace(line)) == 0, errors.Is(err, logs.ErrIgnored), errors.Is(err, logs.ErrNoRecipients), errors.Is(err, ErrUndetected):
		t.m.line("skipped")
	default:
		t.m.line("invalid")
		if ce := t.log.Check(zap.DebugLevel, "invalid line"); ce != nil {
			// The reason only: the line holds addresses.
			ce.Write(zap.Int64("offset", t.off), zap.String("reason", reason(err)))
		}
	}
	t.off = end
	t.updateHead()
	t.dirty++
	if t.dirty >= markEvery {
		return t.flushMark(ctx)
	}
	return nil
}

// ErrUndetected is a line read before the format of an "auto" source was
// known (skipped).
var ErrUndetected = errors.New("format not detected yet")

// reason keeps the start of a parse error, which never quotes the line
// in this package's parsers beyond a field name, but is cut to be safe.
func reason(err error) string {
	s := err.Error()
	if i := strings.IndexAny(s, "\"'<@"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// flushMark emits the position when lines were handled since the last
// emit.
func (t *Tailer) flushMark(ctx context.Context) error {
	if t.dirty == 0 {
		return nil
	}
	if err := t.o.Emit(ctx, nil, t.pos()); err != nil {
		return errStop
	}
	t.dirty = 0
	return nil
}

// rotated checks whether the path still names the file being read:
// truncated (copytruncate) → from the start; another file there
// (rename) → the old one to its end, then the new one from its start.
func (t *Tailer) rotated(ctx context.Context) error {
	fi, err := os.Stat(t.o.Path)
	if err != nil {
		// Renamed away, nothing new yet: the writer may still write
		// to the old file; keep reading it.
		return nil
	}
	dev, ino := fileID(fi)
	if dev == t.dev && ino == t.ino {
		cur, err := t.f.Stat()
		if err != nil {
			return nil
		}
		if cur.Size() < t.off+int64(len(t.buf)) || (t.headLen > 0 && headHash(t.f, t.headLen) != t.head) {
			t.log.Info("source file truncated; reading it from its start")
			t.m.rotations("truncate")
			t.off, t.buf, t.discard = 0, t.buf[:0], false
			t.headLen, t.head = 0, ""
			t.dirty++
			if err := t.flushMark(ctx); err != nil {
				return err
			}
			return t.read(ctx)
		}
		return nil
	}
	// Another file at the path. Wait until it has data (the writer
	// reopened its log) or the grace period is over.
	now := time.Now()
	if t.newSeen.IsZero() {
		t.newSeen = now
	}
	if fi.Size() == 0 && now.Sub(t.newSeen) < t.o.Grace {
		return nil
	}
	if err := t.read(ctx); err != nil {
		return err
	}
	if len(t.buf) > 0 && !t.discard {
		// The old file ended without a newline: its last line is
		// as complete as it will ever be.
		end := t.off + int64(len(t.buf))
		line := append([]byte(nil), t.buf...)
		if err := t.handle(ctx, line, end); err != nil {
			return err
		}
	}
	f, err := os.Open(t.o.Path)
	if err != nil {
		return nil
	}
	nfi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil
	}
	ndev, nino := fileID(nfi)
	t.log.Info("source file rotated; reading the new file from its start")
	t.m.rotations("rename")
	t.use(f, ndev, nino, 0)
	if err := t.mark(ctx); err != nil {
		return err
	}
	return t.read(ctx)
}

// String names the tailer in errors.
func (t *Tailer) String() string { return fmt.Sprintf("tail %s", t.o.Name) }
