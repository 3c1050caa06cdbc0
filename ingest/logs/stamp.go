package logs

import (
	"errors"
	"time"
)

// The timestamp prefixes a log line can start with (docs/logs.md):
//
//	Dec  2 03:10:36 host tag[pid]: ...                 RFC 3164 (syslog, journalctl's default), no year
//	<13>Dec  2 03:10:36 host tag: ...                  the same with its priority
//	<13>1 2026-12-02T03:10:36.5Z host app pid - - ...  RFC 5424
//	2026-12-02T03:10:36.123456+01:00 host tag: ...     ISO 8601 / RFC 3339 (rsyslog's file format)
//	2026-12-02T03:10:36+0100 host tag: ...             journalctl -o short-iso (and short-iso-precise)
//	2026-12-02 03:10:36[.123] #pid(normal) ...         rspamd's own log file, local time
//	Wed Dec  2 03:10:36 2026 [pid] info: ...           spamd's own log file (-s FILE), local time
//	Dec  2 03:10:36.728 [pid] info: ...                spamd logging to stderr
//
// Stamps without a zone are in Parser.Location; stamps without a year get
// one from the lines before (or Parser.Reference for the first).

var errNoStamp = errors.New("no timestamp at the start of the line")

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func month(b []byte) (time.Month, bool) {
	if len(b) < 3 {
		return 0, false
	}
	for i, m := range months {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// num reads exactly n digits at b[i:].
func num(b []byte, i, n int) (int, bool) {
	if i < 0 || i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// clock reads HH:MM:SS at b[i:] and an optional fraction; it returns the
// index after them.
func clock(b []byte, i int) (h, m, s, ns, end int, ok bool) {
	h, ok1 := num(b, i, 2)
	m, ok2 := num(b, i+3, 2)
	s, ok3 := num(b, i+6, 2)
	if !ok1 || !ok2 || !ok3 || b[i+2] != ':' || b[i+5] != ':' || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, 0, 0, false
	}
	end = i + 8
	if end < len(b) && (b[end] == '.' || b[end] == ',') {
		j := end + 1
		scale := 100000000
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			if scale > 0 {
				ns += int(b[j]-'0') * scale
				scale /= 10
			}
			j++
		}
		if j == end+1 {
			return 0, 0, 0, 0, 0, false
		}
		end = j
	}
	return h, m, s, ns, end, true
}

// zone reads Z, ±HH:MM or ±HHMM at b[i:].
func zone(b []byte, i int) (*time.Location, int, bool) {
	if i >= len(b) {
		return nil, i, false
	}
	if b[i] == 'Z' || b[i] == 'z' {
		return time.UTC, i + 1, true
	}
	if b[i] != '+' && b[i] != '-' {
		return nil, i, false
	}
	hh, ok := num(b, i+1, 2)
	if !ok || hh > 23 {
		return nil, i, false
	}
	j := i + 3
	if j < len(b) && b[j] == ':' {
		j++
	}
	mm, ok := num(b, j, 2)
	if !ok || mm > 59 {
		return nil, i, false
	}
	off := hh*3600 + mm*60
	if b[i] == '-' {
		off = -off
	}
	if off == 0 {
		return time.UTC, j + 2, true
	}
	return fixedZone(off), j + 2, true
}

var zones = map[int]*time.Location{}

func fixedZone(off int) *time.Location {
	if l, ok := zones[off]; ok {
		return l
	}
	l := time.FixedZone("", off)
	if len(zones) < 64 {
		zones[off] = l
	}
	return l
}

// stamp parses the line's timestamp and returns the rest of the line after
// it (and after the space that follows).
func (p *Parser) stamp(b []byte) (time.Time, []byte, error) {
	// The same stamp as the line before (most lines of a busy log):
	// parsed once.
	if n := p.lastStampLen; n > 0 && len(b) > n && string(b[:n]) == string(p.lastStamp[:n]) {
		return p.lastTime, b[n:], nil
	}
	t, n, err := p.parseStamp(b)
	if err != nil {
		return t, nil, err
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, nil, errNoStamp
	}
	if n <= len(p.lastStamp) {
		p.lastStampLen = n
		copy(p.lastStamp[:], b[:n])
	} else {
		p.lastStampLen = 0
	}
	p.lastTime = t
	return t, b[n:], nil
}

// parseStamp returns the time and how many bytes of b it and its trailing
// space took.
func (p *Parser) parseStamp(b []byte) (time.Time, int, error) {
	i := 0
	if len(b) > 0 && b[0] == '<' {
		// A syslog priority: <PRI> then RFC 3164, or <PRI>1 then RFC 5424.
		j := 1
		for j < len(b) && j < 5 && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == 1 || j >= len(b) || b[j] != '>' {
			return time.Time{}, 0, errNoStamp
		}
		i = j + 1
		if len(b) > i+1 && b[i] == '1' && b[i+1] == ' ' {
			i += 2 // RFC 5424: VERSION SP TIMESTAMP (always ISO 8601 with a zone)
			t, n, ok := p.iso(b, i, true)
			if !ok {
				return time.Time{}, 0, errNoStamp
			}
			return t, n, nil
		}
	}
	if len(b) < i+15 {
		return time.Time{}, 0, errNoStamp
	}
	c := b[i]
	switch {
	case c >= '0' && c <= '9':
		t, n, ok := p.iso(b, i, false)
		if !ok {
			return time.Time{}, 0, errNoStamp
		}
		return t, n, nil
	case c >= 'A' && c <= 'Z':
		if _, ok := month(b[i:]); ok && b[i+3] == ' ' {
			return p.bsd(b, i)
		}
		// ctime: "Wed Dec  2 03:10:36 2026"
		if b[i+3] == ' ' {
			if _, ok := month(b[i+4:]); ok {
				return p.ctime(b, i+4)
			}
		}
	}
	return time.Time{}, 0, errNoStamp
}

// day reads "dd" or " d" (or "d ", as some relays write it) at b[i:i+2].
func day(b []byte, i int) (int, bool) {
	if i+2 > len(b) {
		return 0, false
	}
	d1, d2 := b[i], b[i+1]
	var d int
	switch {
	case d1 == ' ' && d2 >= '1' && d2 <= '9':
		d = int(d2 - '0')
	case d1 >= '0' && d1 <= '3' && d2 >= '0' && d2 <= '9':
		d = int(d1-'0')*10 + int(d2-'0')
	default:
		return 0, false
	}
	return d, d >= 1 && d <= 31
}

// bsd parses "Mmm dd HH:MM:SS[.frac] " at b[i:] (RFC 3164, no year).
func (p *Parser) bsd(b []byte, i int) (time.Time, int, error) {
	mo, _ := month(b[i:])
	d, ok := day(b, i+4)
	if !ok || b[i+6] != ' ' {
		return time.Time{}, 0, errNoStamp
	}
	h, m, s, ns, end, ok := clock(b, i+7)
	if !ok {
		return time.Time{}, 0, errNoStamp
	}
	if end < len(b) && b[end] == ' ' {
		end++
	}
	return p.withYear(mo, d, h, m, s, ns), end, nil
}

// ctime parses "Mmm dd HH:MM:SS YYYY " at b[i:] (the weekday before it).
func (p *Parser) ctime(b []byte, i int) (time.Time, int, error) {
	mo, _ := month(b[i:])
	d, ok := day(b, i+4)
	if !ok || len(b) < i+21 || b[i+6] != ' ' {
		return time.Time{}, 0, errNoStamp
	}
	h, m, s, ns, end, ok := clock(b, i+7)
	if !ok || end >= len(b) || b[end] != ' ' {
		return time.Time{}, 0, errNoStamp
	}
	y, ok := num(b, end+1, 4)
	if !ok {
		return time.Time{}, 0, errNoStamp
	}
	end += 5
	if end < len(b) && b[end] == ' ' {
		end++
	}
	t := time.Date(y, mo, d, h, m, s, ns, p.loc())
	if t.Day() != d {
		return time.Time{}, 0, errNoStamp // Feb 30
	}
	p.prev = t
	return t, end, nil
}

// iso parses YYYY-MM-DD[T ]HH:MM:SS[.frac][zone] at b[i:]; with needZone
// the zone is required (RFC 5424).
func (p *Parser) iso(b []byte, i int, needZone bool) (time.Time, int, bool) {
	y, ok1 := num(b, i, 4)
	mo, ok2 := num(b, i+5, 2)
	d, ok3 := num(b, i+8, 2)
	if !ok1 || !ok2 || !ok3 || b[i+4] != '-' || b[i+7] != '-' || mo < 1 || mo > 12 || d < 1 || d > 31 ||
		len(b) < i+19 || (b[i+10] != 'T' && b[i+10] != ' ') {
		return time.Time{}, 0, false
	}
	h, m, s, ns, end, ok := clock(b, i+11)
	if !ok {
		return time.Time{}, 0, false
	}
	loc, end2, hasZone := zone(b, end)
	if hasZone {
		end = end2
	} else if needZone {
		return time.Time{}, 0, false
	} else {
		loc = p.loc()
	}
	if end < len(b) && b[end] != ' ' {
		return time.Time{}, 0, false
	}
	if end < len(b) {
		end++
	}
	t := time.Date(y, time.Month(mo), d, h, m, s, ns, loc)
	if t.Day() != d {
		return time.Time{}, 0, false
	}
	p.prev = t
	return t, end, true
}

func (p *Parser) loc() *time.Location {
	if p.Location != nil {
		return p.Location
	}
	return time.Local
}

// withYear gives a yearless stamp its year: the year that puts it nearest
// after the line before (so Dec 31 → Jan 1 moves to the next year, and a
// line slightly out of order across New Year stays in the old one); for
// the first line, the year that puts it at or before Reference (the file's
// modification time: a log is written before it was last modified).
func (p *Parser) withYear(mo time.Month, d, h, m, s, ns int) time.Time {
	loc := p.loc()
	var t time.Time
	if p.prev.IsZero() {
		ref := p.Reference
		if ref.IsZero() {
			ref = time.Now()
		}
		ref = ref.In(loc)
		t = time.Date(ref.Year(), mo, d, h, m, s, ns, loc)
		// A day of slack for clocks and zones.
		if t.After(ref.Add(24 * time.Hour)) {
			t = time.Date(ref.Year()-1, mo, d, h, m, s, ns, loc)
		}
	} else {
		y := p.prev.In(loc).Year()
		t = time.Date(y, mo, d, h, m, s, ns, loc)
		const half = 183 * 24 * time.Hour
		switch {
		case t.Before(p.prev.Add(-half)):
			t = time.Date(y+1, mo, d, h, m, s, ns, loc)
		case t.After(p.prev.Add(half)):
			t = time.Date(y-1, mo, d, h, m, s, ns, loc)
		}
	}
	if t.Day() != d {
		// Feb 29 in a year without it: time.Date normalised it to Mar 1.
		// Try the nearest leap years either side.
		for _, dy := range []int{-1, 1, -2, 2, -3, 3} {
			if u := time.Date(t.Year()+dy, mo, d, h, m, s, ns, loc); u.Day() == d {
				t = u
				break
			}
		}
	}
	p.prev = t
	return t
}
