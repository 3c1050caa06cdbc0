package logs

import (
	"bytes"
	"errors"

	"github.com/spamsurge/spamsurge/ingest"
)

// amavisd-new's main log line (log_level 0, 2.11 to 2.13), one per
// message and outcome:
//
//	amavis[123]: (12345-01) Passed CLEAN {RelayedInbound}, [198.51.100.4]:41022 [198.51.100.4] <s@x> -> <a@y>,<b@y>, Queue-ID: 4Xyz, Message-ID: <m@x>, mail_id: A1b2, Hits: -1.9, size: 2345, queued_as: 4Abc, 1234 ms
//	amavis[123]: (12345-02) Blocked SPAM {DiscardedInbound}, [198.51.100.4] <s@x> -> <a@y>, Message-ID: <m@x>, mail_id: ..., Hits: 1002.7, size: 163, 118 ms
//
// The per-recipient lines that follow it at higher log levels
// ("(12345-01) Passed SPAM, <s@x> -> <a@y>, Hits: ...", without the
// {actions}) are ignored: the main line already counts the message. A
// message some of whose recipients get it and some not is two main lines,
// Passed and Blocked, each with its recipients: two observations, one per
// line. Category SPAM or SPAMMY is spam, Blocked or not.
func (p *Parser) amavis(rest []byte) (ingest.Observation, error) {
	var o ingest.Observation
	b, ok := marker(rest, ": (", 160)
	if !ok || !bytes.Contains(rest[:len(rest)-len(b)], []byte("amavis")) {
		return o, ErrIgnored // not amavis's, or not a message's line
	}
	id := bytes.IndexByte(b, ')')
	if id < 1 || id > 64 || bytes.IndexByte(b[:id], ' ') >= 0 {
		return o, ErrIgnored
	}
	b = b[id+1:]
	switch {
	case bytes.HasPrefix(b, []byte(" Passed ")):
		b = b[len(" Passed "):]
	case bytes.HasPrefix(b, []byte(" Blocked ")):
		b = b[len(" Blocked "):]
	default:
		return o, ErrIgnored
	}
	// The category, then " {Actions}, " on the main line; a per-recipient
	// line has ", " right after the category.
	cat := b
	tags := -1
	for i := 0; i+1 < len(b); i++ {
		if b[i] == ',' && b[i+1] == ' ' && !bytes.HasPrefix(b, []byte("BANNED (")) && !bytes.HasPrefix(b, []byte("INFECTED (")) {
			return o, ErrIgnored // per-recipient line
		}
		if b[i] == ' ' && b[i+1] == '{' && amavisTags(b[i+1:]) > 0 {
			tags = i
			break
		}
	}
	if tags < 0 {
		return o, errors.New("amavis Passed/Blocked line without {actions}")
	}
	cat = b[:tags]
	b = b[tags+1+amavisTags(b[tags+1:]):]
	o.Spam = amavisSpam(cat)
	// [? %p ||%p ][?%a||[?%l||LOCAL ]\[%a\] ][?%e||\[%e\] ]%s -> %D
	lt := bytes.IndexByte(b, '<')
	if lt < 0 {
		return o, errors.New("amavis line without a sender")
	}
	if i := bytes.IndexByte(b[:lt], '['); i >= 0 {
		if j := bytes.IndexByte(b[i:lt], ']'); j > 0 {
			o.ClientIP = string(b[i+1 : i+j])
		}
	}
	b = b[lt:]
	sender, n := angle(b)
	if n < 0 {
		return o, errors.New("amavis sender not closed")
	}
	o.From = string(sender)
	b = b[n:]
	if !bytes.HasPrefix(b, []byte(" -> ")) {
		return o, errors.New(`amavis line without " -> " after the sender`)
	}
	b = b[len(" -> "):]
	for len(b) > 0 && b[0] == '<' {
		a, n := angle(b)
		if n < 0 {
			return o, errors.New("amavis recipient not closed")
		}
		if len(a) > 0 {
			o.Rcpt = append(o.Rcpt, string(a))
		}
		b = b[n:]
		if len(b) > 1 && b[0] == ',' && b[1] == '<' {
			b = b[1:]
		}
	}
	if len(b) > 0 && b[0] != ',' {
		return o, errors.New("amavis recipient list not followed by a comma")
	}
	if i := bytes.Index(b, []byte(", Message-ID: <")); i >= 0 {
		m := b[i+len(", Message-ID: "):]
		if mid, n := angle(m); n > 0 {
			o.MessageID = "<" + string(mid) + ">"
		}
	}
	return o, nil
}

// amavisTags returns the length of "{Word,Word}, " at b, or 0.
func amavisTags(b []byte) int {
	if len(b) < 4 || b[0] != '{' {
		return 0
	}
	for i := 1; i < len(b) && i < 256; i++ {
		c := b[i]
		switch {
		case c == '}':
			if i > 1 && i+2 < len(b) && b[i+1] == ',' && b[i+2] == ' ' {
				return i + 3
			}
			return 0
		case c == ',' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_':
		default:
			return 0
		}
	}
	return 0
}

func amavisSpam(cat []byte) bool {
	return string(cat) == "SPAM" || string(cat) == "SPAMMY"
}

// angle reads "<...>" at b (a '>' inside a quoted local part does not end
// it) and returns what is between and how many bytes it took, or n < 0.
func angle(b []byte) (addr []byte, n int) {
	if len(b) == 0 || b[0] != '<' {
		return nil, -1
	}
	q := false
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case q && c == '\\':
			i++
		case c == '"':
			q = !q
		case c == '>' && !q:
			return b[1:i], i + 1
		}
	}
	return nil, -1
}
