// Package replay feeds recorded observations (the JSONL stream of package
// ingest) through
// the detector on a simulated clock: the observations' own timestamps. It
// shares every line of detector code with the live daemon.
//
// Bad input is never fatal unless Strict: a malformed line is reported with
// its file and line number, skipped and counted. Observations slightly out
// of order are put back in order through a reorder window; older ones are
// counted by the detector at its current time.
package replay

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
)

// Observer is the detector as replay uses it.
type Observer interface {
	Observe(ingest.Observation) []detector.Event
}

// Options for Run.
type Options struct {
	Detector Observer
	// Apply, when set, takes the observations instead of Detector (a
	// replay into a fleet's Redis: package fleet's Replayer); an error
	// ends the replay. Its events may come later than their observation.
	// Finish, when set, is called once at the end of the input, for the
	// events still to come.
	Apply  func(ingest.Observation) ([]detector.Event, error)
	Finish func() ([]detector.Event, error)
	// Strict makes the first malformed line an error.
	Strict bool
	// Reorder is how far back in time observations are put in order
	// (default 5 minutes); 0 uses the default, negative disables.
	Reorder time.Duration
	// OnEvent sees every incident event (e.g. to print JSON).
	OnEvent func(detector.Event) error
	// OnMalformed sees every malformed line (name, line number, reason).
	OnMalformed func(name string, line int, err error)
	// OnLate sees every observation more than Reorder older than the
	// newest one so far (name, line number, how far behind).
	OnLate func(name string, line int, behind time.Duration)
	// SkipReadErrors makes a read error the end of that input only (a
	// truncated gzip file): reported to OnReadError with the lines read
	// from it, counted in Stats.ReadErrors, and the next input follows.
	// Without it a read error ends the replay with that error.
	SkipReadErrors bool
	OnReadError    func(name string, lines int, err error)
	// MaxLine bounds one line (default 1 MiB).
	MaxLine int
	// MaxJump is how far an observation may be ahead of the stream
	// before it needs the next observation to confirm it (default 24
	// hours; negative: no check). One that the next observation does not
	// follow (it is back, more than MaxJump earlier) is a bogus
	// timestamp: it is reported through OnMalformed, counted in
	// Stats.Jumps and skipped, so it cannot move the detector's clock. A
	// real gap (a stopped daemon, rotated logs with a hole) is followed by
	// more observations after it and is kept.
	MaxJump time.Duration
}

// Stats summarises a run.
type Stats struct {
	Lines, Observations, Malformed, Recipients int
	Events                                     int
	Jumps                                      int // observations skipped as bogus time jumps
	// Ignored are lines without an observation that are no error (a
	// filter log's other lines: ingest.ErrIgnored); NoRecipients are
	// verdict lines without recipients (ingest.ErrNoRecipients), skipped.
	Ignored, NoRecipients int
	// Late are observations older than Reorder behind the newest one: fed
	// to the detector at its current time, and reported (OnLate).
	Late int
	// ReadErrors are inputs that ended in a read error (a truncated gzip
	// file); with Options.SkipReadErrors the replay went on with the next.
	ReadErrors  int
	First, Last time.Time
}

// Input is one named stream.
type Input struct {
	Name string
	R    io.Reader
	// Decode turns one line (trimmed, not blank) into an observation;
	// nil is ingest.Parse (the JSONL stream). ingest.ErrIgnored and
	// ingest.ErrNoRecipients are counted, not malformed.
	Decode func([]byte) (ingest.Observation, error)
}

// MalformedError is a line that is not an observation.
type MalformedError struct {
	Name string
	Line int
	Err  error
}

func (e *MalformedError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *MalformedError) Unwrap() error { return e.Err }

// Run replays the inputs in order, one after the other.
func Run(ctx context.Context, o Options, inputs ...Input) (Stats, error) {
	if o.Reorder == 0 {
		o.Reorder = 5 * time.Minute
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 1 << 20
	}
	if o.MaxJump == 0 {
		o.MaxJump = 24 * time.Hour
	}
	var st Stats
	events := func(evs []detector.Event) error {
		for _, ev := range evs {
			st.Events++
			if o.OnEvent != nil {
				if err := o.OnEvent(ev); err != nil {
					return err
				}
			}
		}
		return nil
	}
	h := &obsHeap{}
	var maxSeen time.Time
	seq := 0
	emit := func(ob *ingest.Observation) error {
		st.Observations++
		st.Recipients += len(ob.Rcpt)
		if st.First.IsZero() {
			st.First = ob.Time
		}
		st.Last = ob.Time
		if o.Apply == nil {
			return events(o.Detector.Observe(*ob))
		}
		evs, err := o.Apply(*ob)
		if eerr := events(evs); err == nil {
			err = eerr
		}
		return err
	}
	// Decoding runs in its own goroutine, a batch ahead of the detector
	// (JSON decoding costs about as much as detection).
	stop := make(chan struct{})
	defer close(stop)
	batches := make(chan *batch, 4)
	go produce(ctx, o.MaxLine, o.SkipReadErrors, inputs, batches, stop)
	// A jump ahead waits for the next observation (suspect) to say whether
	// the stream really moved there.
	var suspect *parsed
	var lastT time.Time
	jumped := func(it *parsed) {
		st.Jumps++
		if o.OnMalformed != nil {
			o.OnMalformed(it.name, it.line, fmt.Errorf("time %s jumps more than %s ahead of the stream, which does not follow it: skipped",
				it.o.Time.UTC().Format(time.RFC3339), o.MaxJump))
		}
	}
	accept := func(it *parsed) error {
		ob := &it.o
		if ob.Time.After(lastT) {
			lastT = ob.Time
		}
		if o.Reorder < 0 {
			return emit(ob)
		}
		if ob.Time.After(maxSeen) {
			maxSeen = ob.Time
		} else if behind := maxSeen.Sub(ob.Time); behind > o.Reorder {
			st.Late++
			if o.OnLate != nil {
				o.OnLate(it.name, it.line, behind)
			}
		}
		seq++
		heap.Push(h, item{ob, seq})
		for h.Len() > 0 && (*h)[0].o.Time.Before(maxSeen.Add(-o.Reorder)) {
			if err := emit(heap.Pop(h).(item).o); err != nil {
				return err
			}
		}
		return nil
	}
	for b := range batches {
		st.Lines += b.lines
		for i := range b.items {
			it := &b.items[i]
			if it.err != nil {
				st.Malformed++
				if o.OnMalformed != nil {
					o.OnMalformed(it.name, it.line, it.err)
				}
				if o.Strict {
					return st, &MalformedError{Name: it.name, Line: it.line, Err: it.err}
				}
				continue
			}
			if suspect != nil {
				if it.o.Time.Before(suspect.o.Time.Add(-o.MaxJump)) {
					jumped(suspect)
				} else if err := accept(suspect); err != nil {
					return st, err
				}
				suspect = nil
			}
			if o.MaxJump > 0 && !lastT.IsZero() && it.o.Time.After(lastT.Add(o.MaxJump)) {
				suspect = it
				continue
			}
			if err := accept(it); err != nil {
				return st, err
			}
		}
		for _, re := range b.readErrs {
			st.ReadErrors++
			if o.OnReadError != nil {
				o.OnReadError(re.name, re.line, re.err)
			}
		}
		st.Ignored += b.ignored
		st.NoRecipients += b.noRcpt
		if b.fatal != nil {
			return st, b.fatal
		}
	}
	if suspect != nil {
		// Nothing after it to confirm the jump.
		jumped(suspect)
	}
	for h.Len() > 0 {
		if err := emit(heap.Pop(h).(item).o); err != nil {
			return st, err
		}
	}
	if o.Finish != nil {
		evs, err := o.Finish()
		if eerr := events(evs); err == nil {
			err = eerr
		}
		return st, err
	}
	return st, nil
}

type parsed struct {
	o    ingest.Observation
	err  error
	name string
	line int
}

type batch struct {
	items           []parsed
	lines           int
	ignored, noRcpt int
	readErrs        []parsed // inputs that ended in a read error (SkipReadErrors)
	fatal           error    // a read error or cancellation: the end of the stream
}

const batchLen = 512

func produce(ctx context.Context, maxLine int, skipReadErrors bool, inputs []Input, out chan<- *batch, stop <-chan struct{}) {
	defer close(out)
	b := &batch{}
	send := func() bool {
		select {
		case out <- b:
			b = &batch{items: make([]parsed, 0, batchLen)}
			return true
		case <-stop:
			return false
		}
	}
	for _, in := range inputs {
		br := bufio.NewReaderSize(in.R, 1<<16)
		decode := in.Decode
		if decode == nil {
			decode = ingest.Parse
		}
		n := 0
		for {
			if n%4096 == 0 && ctx.Err() != nil {
				b.fatal = ctx.Err()
				send()
				return
			}
			raw, tooLong, err := readLine(br, maxLine)
			if len(raw) == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				if skipReadErrors {
					b.readErrs = append(b.readErrs, parsed{name: in.Name, line: n, err: err})
					break
				}
				b.fatal = fmt.Errorf("%s: %w", in.Name, err)
				send()
				return
			}
			n++
			b.lines++
			raw = bytes.TrimSpace(raw)
			if len(raw) == 0 {
				continue
			}
			p := parsed{name: in.Name, line: n}
			if tooLong {
				p.err = fmt.Errorf("line longer than %d bytes", maxLine)
			} else {
				p.o, p.err = decode(raw)
				switch {
				case p.err == nil:
				case errors.Is(p.err, ingest.ErrIgnored):
					b.ignored++
					continue
				case errors.Is(p.err, ingest.ErrNoRecipients):
					b.noRcpt++
					continue
				}
			}
			b.items = append(b.items, p)
			if len(b.items) == batchLen && !send() {
				return
			}
		}
	}
	send()
}

// readLine reads one line; a line over max is consumed and flagged.
func readLine(br *bufio.Reader, max int) ([]byte, bool, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) <= max {
			buf = append(buf, frag...)
		} else {
			// Drop the rest of an overlong line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return []byte{'x'}, true, nilIfEOF(err)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && len(buf) > 0 {
			return buf, false, nil
		}
		return buf, false, err
	}
}

func nilIfEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// item points into a decoded batch, which stays alive while it is queued:
// the heap moves 16 bytes, not an Observation.
type item struct {
	o   *ingest.Observation
	seq int
}

type obsHeap []item

func (h obsHeap) Len() int { return len(h) }
func (h obsHeap) Less(i, j int) bool {
	if !h[i].o.Time.Equal(h[j].o.Time) {
		return h[i].o.Time.Before(h[j].o.Time)
	}
	return h[i].seq < h[j].seq
}
func (h obsHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *obsHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *obsHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
