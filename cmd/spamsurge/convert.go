package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

func convertCommand() command {
	var lf *logInputFlags
	return command{
		name:    "convert",
		summary: "turn rspamd, amavisd-new or spamd logs into the observation stream (JSONL on stdout)",
		args:    "[--format rspamd|amavis|spamd] [--tz ZONE] [--domain D] FILE...",
		help: "Reads filter logs (docs/logs.md): plain, gzip or zstd, in time order whatever the\n" +
			"order given, and writes one observation line per verdict line to stdout\n" +
			"(docs/observations.md). The addresses are in it in plaintext: it goes where you\n" +
			"send stdout. A summary goes to stderr.",
		flags: func(fs *flag.FlagSet) { lf = addLogInputFlags(fs, "") },
		run: func(ctx context.Context, e *env) error {
			if len(e.args) == 0 {
				return errUsage
			}
			set, err := lf.open(e.args)
			if err != nil {
				return err
			}
			defer set.close()
			stop := set.progress(ctx, e.stderr, "convert")
			out := bufio.NewWriterSize(e.stdout, 1<<16)
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			var lines, obs, rcpts, ignored, noRcpt, readErrs int
			var first, last time.Time
			start := time.Now()
			var werr error
		files:
			for i, f := range set.files {
				br := bufio.NewReaderSize(f.Reader(), 1<<16)
				n := 0
				for {
					if n%4096 == 0 && ctx.Err() != nil {
						werr = ctx.Err()
						break files
					}
					raw, err := br.ReadSlice('\n')
					for errors.Is(err, bufio.ErrBufferFull) {
						// A line over 64 KiB: read and drop the rest of it.
						_, err = br.ReadSlice('\n')
						raw = []byte("\x00")
					}
					if len(raw) > 0 {
						n++
						lines++
						l := bytes.TrimSpace(raw)
						if len(l) == 0 {
							continue
						}
						var o ingest.Observation
						var perr error
						if len(raw) == 1 && raw[0] == 0 {
							perr = fmt.Errorf("line longer than %d bytes", 1<<16)
						} else {
							o, perr = set.parsers[i].Parse(l)
						}
						switch {
						case perr == nil:
							o.Time = o.Time.UTC()
							if werr = enc.Encode(o); werr != nil {
								break files
							}
							obs++
							rcpts += len(o.Rcpt)
							if first.IsZero() || o.Time.Before(first) {
								first = o.Time
							}
							if o.Time.After(last) {
								last = o.Time
							}
						case errors.Is(perr, ingest.ErrIgnored):
							ignored++
						case errors.Is(perr, ingest.ErrNoRecipients):
							noRcpt++
						default:
							set.malformedLine(f.Name, n, perr)
						}
					}
					if err != nil {
						if !errors.Is(err, io.EOF) {
							readErrs++
							stop()
							set.readError(e.stderr, f.Name, n, err)
							stop = set.progress(ctx, e.stderr, "convert")
						}
						break
					}
				}
			}
			ferr := out.Flush()
			stop()
			el := time.Since(start)
			fmt.Fprintf(e.stderr, "convert: %s: %d lines, %d observations (%d recipients), %s to %s; %.1fs (%.0f lines/s)\n",
				set.describe(), lines, obs, rcpts, first.Format(time.RFC3339), last.Format(time.RFC3339), el.Seconds(), float64(lines)/el.Seconds())
			set.summary(e.stderr, ignored, noRcpt)
			if readErrs > 0 {
				fmt.Fprintf(e.stderr, "  %d files ended in a read error (above)\n", readErrs)
			}
			if werr != nil {
				return werr
			}
			return ferr
		},
	}
}
