package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

// Format is a log format Parser reads.
type Format string

// The formats.
const (
	Rspamd Format = "rspamd" // rspamd's task log line: the default log_format and spamsurge's (docs/logs.md)
	Amavis Format = "amavis" // amavisd-new's main log line (Passed/Blocked ...)
	Spamd  Format = "spamd"  // SpamAssassin spamd's "result:" line
	JSONL  Format = "jsonl"  // the observation stream itself (ingest.Parse)
)

// Formats are the log formats, in the order Detect tries them.
var Formats = []Format{Rspamd, Amavis, Spamd}

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Rspamd, Amavis, Spamd, JSONL:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (rspamd, amavis, spamd or jsonl)", s)
}

// ErrIgnored and ErrNoRecipients are returned by Parse for lines that are
// not observations but not malformed either: ingest's sentinels, so that
// replay can count them without knowing this package.
var (
	ErrIgnored      = ingest.ErrIgnored
	ErrNoRecipients = ingest.ErrNoRecipients
)

// Parser turns the lines of one log into observations, one line at a time.
// It keeps the state a log needs (the year of yearless syslog stamps); use
// one Parser per file, in the file's order. Parse never returns more than
// one observation for a line, and never panics on any input (fuzzed).
type Parser struct {
	Format Format
	// Location is the zone of stamps that carry none (default time.Local).
	Location *time.Location
	// Reference dates the first yearless stamp: the file's modification
	// time (default now). Later lines follow the ones before.
	Reference time.Time
	// Domain is appended to spamd users without "@" (user=alice →
	// alice@Domain); without it such lines have no recipient.
	Domain string

	// Truncated counts the observations whose recipient list the log had
	// shortened (rspamd's default format ends it with "..."): only the
	// logged recipients are in them.
	Truncated int

	prev         time.Time
	lastTime     time.Time
	lastStamp    [48]byte
	lastStampLen int
}

// NewParser returns a Parser for format f.
func NewParser(f Format) *Parser { return &Parser{Format: f} }

// Parse reads one line (without its line end). It returns the observation
// the line carries; ErrIgnored for a line of the log that carries none (the
// program's other messages); ErrNoRecipients for a verdict line without
// recipients; any other error for a line it cannot read (malformed).
func (p *Parser) Parse(line []byte) (ingest.Observation, error) {
	if p.Format == JSONL {
		return ingest.Parse(line)
	}
	t, rest, err := p.stamp(line)
	if err != nil {
		return ingest.Observation{}, err
	}
	var o ingest.Observation
	switch p.Format {
	case Rspamd:
		o, err = p.rspamd(rest)
	case Amavis:
		o, err = p.amavis(rest)
	case Spamd:
		o, err = p.spamd(rest)
	default:
		return o, fmt.Errorf("unknown format %q", p.Format)
	}
	if err != nil {
		return ingest.Observation{}, err
	}
	o.Time = t
	if len(o.Rcpt) == 0 {
		return ingest.Observation{}, ErrNoRecipients
	}
	return o, nil
}

// marker finds m in the first window bytes of b (where the program, not
// the message, writes) and returns what follows it.
func marker(b []byte, m string, window int) ([]byte, bool) {
	w := b
	if len(w) > window+len(m) {
		w = w[:window+len(m)]
	}
	i := bytes.Index(w, []byte(m))
	if i < 0 {
		return nil, false
	}
	return b[i+len(m):], true
}

// Detect names the format of a log from a sample of its first lines: the
// format most of its verdict lines are in, JSONL when its lines are
// observations, "" when neither.
func Detect(lines [][]byte) Format {
	counts := map[Format]int{}
	var best Format
	for _, l := range lines {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if l[0] == '{' {
			if _, err := ingest.Parse(l); err == nil {
				counts[JSONL]++
			}
			continue
		}
		for _, f := range Formats {
			p := Parser{Format: f}
			if _, err := p.Parse(l); err == nil || errors.Is(err, ErrNoRecipients) {
				counts[f]++
			}
		}
	}
	for _, f := range append([]Format{JSONL}, Formats...) {
		if counts[f] > counts[best] {
			best = f
		}
	}
	return best
}
