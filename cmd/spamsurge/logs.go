package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/ingest/logs"
)

// What convert and replay share: the filter logs (docs/logs.md) as
// inputs, in time order, decompressed, with a parser each, and the
// summary of what was in them.

// logFlags are --format, --tz and --domain.
type logInputFlags struct {
	format, tz, domain string
}

func addLogInputFlags(fs *flag.FlagSet, formatDefault string) *logInputFlags {
	f := &logInputFlags{}
	fs.StringVar(&f.format, "format", formatDefault, "input `format`: rspamd, amavis, spamd or jsonl (default: detected per file)")
	fs.StringVar(&f.tz, "tz", "Local", "time `zone` of log stamps that carry none (syslog, rspamd's and spamd's own files), e.g. UTC or Europe/Berlin")
	fs.StringVar(&f.domain, "domain", "", "`domain` for spamd users without @ (user=alice is alice@DOMAIN); without it such lines have no recipient")
	return f
}

// logSet is the opened inputs.
type logSet struct {
	files   []*logs.File
	parsers []*logs.Parser
	// The first malformed lines, for the summary.
	samples   []string
	malformed int
}

const maxSamples = 5

// open opens the files (FILE "-" is stdin, JSONL or --format), detects
// their formats and puts them in time order.
func (f *logInputFlags) open(names []string) (*logSet, error) {
	var format logs.Format
	if f.format != "" {
		var err error
		if format, err = logs.ParseFormat(f.format); err != nil {
			return nil, usageError{fmt.Errorf("--format: %w", err)}
		}
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return nil, usageError{fmt.Errorf("--tz: %w", err)}
	}
	s := &logSet{}
	for _, name := range names {
		if name == "-" {
			return nil, usageError{fmt.Errorf("FILE - (stdin) is for --format jsonl; give log files by name")}
		}
		lf, err := logs.Open(name, format, loc)
		if err != nil {
			s.close()
			return nil, err
		}
		s.files = append(s.files, lf)
	}
	logs.OrderFiles(s.files)
	for _, lf := range s.files {
		s.parsers = append(s.parsers, lf.Parser(loc, f.domain))
	}
	return s, nil
}

func (s *logSet) close() {
	for _, f := range s.files {
		f.Close()
	}
}

func (s *logSet) malformedLine(name string, line int, err error) {
	s.malformed++
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, fmt.Sprintf("%s:%d: %v", name, line, err))
	}
}

func (s *logSet) truncated() int {
	n := 0
	for _, p := range s.parsers {
		n += p.Truncated
	}
	return n
}

// describe is the files' order and formats, for the summary.
func (s *logSet) describe() string {
	var b strings.Builder
	for i, f := range s.files {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", f.Name, f.Format)
	}
	return b.String()
}

// summary writes what convert and replay report about the logs.
func (s *logSet) summary(w io.Writer, ignored, noRcpt int) {
	if n := s.truncated(); n > 0 {
		fmt.Fprintf(w, "  %d observations have a shortened recipient list (rspamd's default log_format logs 8 recipients and \"...\"; docs/logs.md has the log_format that logs every one)\n", n)
	}
	fmt.Fprintf(w, "  %d other log lines ignored, %d verdict lines without recipients skipped, %d malformed lines skipped\n", ignored, noRcpt, s.malformed)
	for _, m := range s.samples {
		fmt.Fprintf(w, "  malformed: %s\n", m)
	}
	if s.malformed > len(s.samples) {
		fmt.Fprintf(w, "  (and %d more malformed)\n", s.malformed-len(s.samples))
	}
}

func (s *logSet) readError(w io.Writer, name string, lines int, err error) {
	for _, f := range s.files {
		if f.Name == name {
			fmt.Fprintf(w, "%s: read error after %d lines (%d of %d bytes of the file): %v; going on with the next file\n", name, lines, f.Consumed(), f.Size, err)
			return
		}
	}
	fmt.Fprintf(w, "%s: read error after %d lines: %v\n", name, lines, err)
}

// progress shows a bar with rate and ETA on stderr while it is a
// terminal, over the bytes read from the files on disk; quiet otherwise.
// The returned function stops it.
func (s *logSet) progress(ctx context.Context, stderr io.Writer, what string) func() {
	f, ok := stderr.(*os.File)
	if !ok {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	var total int64
	for _, lf := range s.files {
		total += lf.Size
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			var n int64
			for _, lf := range s.files {
				n += lf.Consumed()
			}
			bar.Set64(n)
			select {
			case <-ctx.Done():
				bar.Finish()
				fmt.Fprintln(stderr)
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// decoder is the Decode of replay.Input for file i.
func (s *logSet) decoder(i int) func([]byte) (ingest.Observation, error) {
	return s.parsers[i].Parse
}
