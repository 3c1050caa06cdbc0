// Command backtest renders an observation stream (JSONL, as `spamsurge
// simulate` writes it) as a spam filter's log: rspamd's task lines (its
// default log_format, or spamsurge's) or amavisd-new's main lines through
// syslog, one line per observation, shaped like the real programs' lines
// in ingest/logs/testdata. `spamsurge replay` then reads them as it reads
// an operator's logs: the recorded backtest of bench/README.md.
//
//	spamsurge simulate --scenario drip --truth drip.truth.json | go run ./bench/backtest -format amavis -o mail.log.gz
//
// What these logs cannot say is lost, as it is with the real programs:
// the subject, the HELO name and the refused recipients (an observation
// with refused recipients only has no line). -o FILE.gz writes gzip; the
// file's modification time is set to its last line's, so that a replay
// dates syslog's yearless stamps as it would the real log's.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

func main() {
	format := flag.String("format", fmtRspamd, "log format: "+strings.Join(formats, ", "))
	out := flag.String("o", "", "output `file` (default stdout; FILE.gz: gzip)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: backtest [-format %s] [-o FILE[.gz]] [FILE.jsonl...]\n(stdin without FILE)\n", strings.Join(formats, "|"))
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*format, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "backtest:", err)
		os.Exit(1)
	}
}

func run(format, out string, inputs []string) error {
	var w io.Writer = os.Stdout
	var f *os.File
	var zw *gzip.Writer
	if out != "" {
		var err error
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
		if strings.HasSuffix(out, ".gz") {
			zw = gzip.NewWriter(f)
			w = zw
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	r, err := newRenderer(format, bw)
	if err != nil {
		return err
	}
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	bad := 0
	for _, name := range inputs {
		in := io.Reader(os.Stdin)
		if name != "-" {
			fi, err := os.Open(name)
			if err != nil {
				return err
			}
			defer fi.Close()
			in = fi
		}
		n, err := renderStream(r, in)
		bad += n
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
		if !r.Last.IsZero() {
			if err := os.Chtimes(out, r.Last, r.Last); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "backtest: %d %s lines", r.n, format)
	if r.n > 0 {
		fmt.Fprintf(os.Stderr, " up to %s", r.Last.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(os.Stderr, "; %d observations with refused recipients only (no line), %d malformed input lines skipped\n", r.Skipped, bad)
	return nil
}

// renderStream writes every observation of a JSONL stream; malformed lines
// are counted and skipped.
func renderStream(r *renderer, in io.Reader) (bad int, err error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		o, err := ingest.Parse(line)
		if err != nil {
			bad++
			continue
		}
		if err := r.write(&o); err != nil {
			return bad, err
		}
	}
	return bad, sc.Err()
}
