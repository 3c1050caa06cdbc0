package ingest

import (
	"time"
	"unicode/utf8"
)

// parseFast decodes the common shape of an observation line without
// reflection: one flat object whose keys are the known ones, with plain
// strings (no escapes), string arrays and booleans. Anything else — escapes,
// unknown keys, nulls, numbers, duplicate keys, odd whitespace — returns
// ok=false and the line goes through encoding/json (Parse), which is the
// reference: FuzzFastMatchesParse checks that both agree.
func parseFast(b []byte) (o Observation, ok bool) {
	p := fastParser{b: b}
	if !p.lit('{') {
		return o, false
	}
	var seen uint16
	var haveTime, haveRcpt, haveSpam bool
	first := true
	for {
		p.ws()
		if p.peek() == '}' {
			p.i++
			break
		}
		if !first && !p.lit(',') {
			return o, false
		}
		first = false
		p.ws()
		key, okk := p.str()
		if !okk || !p.lit(':') {
			return o, false
		}
		p.ws()
		var bit uint16
		switch key {
		case "time":
			bit = 1
			s, ok := p.str()
			if !ok {
				return o, false
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || t.IsZero() {
				return o, false
			}
			o.Time, haveTime = t, true
		case "rcpt":
			bit = 2
			l, ok := p.strs()
			if !ok {
				return o, false
			}
			o.Rcpt, haveRcpt = l, true
		case "rejected":
			bit = 4
			l, ok := p.strs()
			if !ok {
				return o, false
			}
			o.Rejected = l
		case "spam":
			bit = 8
			switch {
			case p.word("true"):
				o.Spam = true
			case p.word("false"):
			default:
				return o, false
			}
			haveSpam = true
		case "from", "client_ip", "helo", "subject", "message_id":
			s, ok := p.str()
			if !ok {
				return o, false
			}
			switch key {
			case "from":
				bit, o.From = 16, s
			case "client_ip":
				bit, o.ClientIP = 32, s
			case "helo":
				bit, o.Helo = 64, s
			case "subject":
				bit, o.Subject = 128, s
			case "message_id":
				bit, o.MessageID = 256, s
			}
		default:
			return o, false
		}
		if seen&bit != 0 {
			return o, false
		}
		seen |= bit
		p.ws()
	}
	p.ws()
	if p.i != len(p.b) || !haveTime || !haveRcpt || !haveSpam {
		return o, false
	}
	return o, true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *fastParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t') {
		p.i++
	}
}

func (p *fastParser) lit(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) word(w string) bool {
	if len(p.b)-p.i >= len(w) && string(p.b[p.i:p.i+len(w)]) == w {
		p.i += len(w)
		return true
	}
	return false
}

// str reads a string without escapes or control characters, valid UTF-8.
func (p *fastParser) str() (string, bool) {
	if !p.lit('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

func (p *fastParser) strs() ([]string, bool) {
	if !p.lit('[') {
		return nil, false
	}
	out := []string{}
	p.ws()
	if p.lit(']') {
		return out, true
	}
	for {
		p.ws()
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		p.ws()
		if p.lit(']') {
			return out, true
		}
		if !p.lit(',') {
			return nil, false
		}
	}
}
