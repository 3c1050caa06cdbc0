package logs

import (
	"bytes"
	"errors"

	"github.com/spamsurge/spamsurge/ingest"
)

// rspamd's task log line (the "rspamd_task_write_log:" notice), in one of
// two log_formats:
//
// The default (rspamd 3.x; the recipient list stops after task_max_elts+1
// addresses, 8 by default, with "..."):
//
//	id: <MID>, qid: <QID>, ip: IP, user: U, from: <SENDER>, (default: F (no action): [0.00/15.00] [SYM(1.0){opt;}]), len: 161, time: 1.2ms, dns req: 0, digest: <32 hex> rcpts: <A,B,...>,  mime_rcpt: <TO>,
//
// (qid, ip, user, from, rcpts and mime_rcpt only when known), and
// spamsurge's (docs/logs.md), which puts the attacker's fields last:
//
//	spamsurge: action=<reject> score=<15.00/15.00> qid=<QID> ip=<IP> rcpts=<A,B> from=<SENDER> mid=<MID>
const rspamdMarker = "rspamd_task_write_log: "

// RspamdLogFormat is spamsurge's log_format for rspamd (docs/logs.md): the
// verdict and the envelope first, every SMTP recipient (a Lua function:
// $smtp_rcpts stops after 8 in rspamd 3.4, whatever the config), the
// sender's own fields last.
const RspamdLogFormat = `spamsurge: action=<$action> score=<$scores> qid=<$qid> ip=<$ip> rcpts=<$lua{return function(task) local t = {} for _, r in ipairs(task:get_recipients('smtp') or {}) do t[#t+1] = r.addr end return table.concat(t, ',') end}> from=<$smtp_from> mid=<$mid>`

var errAmbiguous = errors.New("ambiguous: the line holds the log's own syntax twice (a crafted Message-ID or symbol option?)")

func (p *Parser) rspamd(rest []byte) (ingest.Observation, error) {
	var o ingest.Observation
	body, ok := marker(rest, rspamdMarker, 160)
	if !ok {
		return o, ErrIgnored
	}
	if bytes.HasPrefix(body, []byte("spamsurge: ")) {
		return p.rspamdOurs(body[len("spamsurge: "):])
	}
	if !bytes.HasPrefix(body, []byte("id: <")) {
		return o, errors.New("rspamd task line in an unknown log_format (docs/logs.md)")
	}
	const verdictMark = "(default: "
	vi := bytes.Index(body, []byte(verdictMark))
	if vi < 1 || body[vi-1] != ' ' {
		return o, errors.New(`rspamd task line without "(default: ..." verdict`)
	}
	if once(body[vi+len(verdictMark):], verdictMark) {
		return o, errAmbiguous
	}
	head, v := body[:vi-1], body[vi+len(verdictMark):]
	// v: "S (reject): [15.00/15.00] [...]..."
	if len(v) < 4 || (v[0] != 'T' && v[0] != 'F' && v[0] != 'S') || v[1] != ' ' || v[2] != '(' {
		return o, errors.New("rspamd verdict not T/F/S (action)")
	}
	ae := bytes.Index(v[3:], []byte("): ["))
	if ae < 0 || ae > 64 {
		return o, errors.New("rspamd verdict without its action")
	}
	o.Spam = rspamdSpam(v[3 : 3+ae])
	const digestMark = ", digest: <"
	di := bytes.Index(v, []byte(digestMark))
	if di < 0 {
		return o, errors.New("rspamd task line without its digest")
	}
	if once(v[di+len(digestMark):], digestMark) {
		return o, errAmbiguous
	}
	tail := v[di+len(digestMark):]
	de := bytes.IndexByte(tail, '>')
	if de < 0 {
		return o, errors.New("rspamd digest not closed")
	}
	tail = tail[de+1:]
	if r, ok := bytes.CutPrefix(tail, []byte(" rcpts: <")); ok {
		end := bytes.Index(r, []byte(">,  mime_rcpt: <"))
		if end < 0 {
			end = bytes.LastIndex(r, []byte(">,"))
		}
		if end < 0 {
			return o, errors.New("rspamd rcpts not closed")
		}
		o.Rcpt = p.rspamdList(r[:end])
	}
	// head: "id: <MID>[, qid: <QID>][, ip: IP][, user: U][, from: <S>],"
	head = bytes.TrimSuffix(head, []byte(","))
	midEnd := len(head)
	if i := bytes.LastIndex(head, []byte(", from: <")); i >= 0 && bytes.HasSuffix(head, []byte(">")) {
		o.From = string(head[i+len(", from: <") : len(head)-1])
		midEnd = min(midEnd, i)
	}
	if i := bytes.LastIndex(head[:midEnd], []byte(", user: ")); i >= 0 {
		midEnd = i
	}
	if i := bytes.LastIndex(head[:midEnd], []byte(", ip: ")); i >= 0 {
		o.ClientIP = string(head[i+len(", ip: ") : midEnd])
		midEnd = i
	}
	if i := bytes.LastIndex(head[:midEnd], []byte(", qid: <")); i >= 0 {
		midEnd = i
	}
	if mid := head[len("id: <"):midEnd]; len(mid) > 1 && mid[len(mid)-1] == '>' {
		if m := string(mid[:len(mid)-1]); m != "undef" {
			o.MessageID = "<" + m + ">"
		}
	}
	return o, nil
}

// once reports whether m occurs in b (a second time, after the first).
func once(b []byte, m string) bool { return bytes.Contains(b, []byte(m)) }

// rspamdOurs reads spamsurge's log_format (after "spamsurge: ").
func (p *Parser) rspamdOurs(b []byte) (ingest.Observation, error) {
	var o ingest.Observation
	field := func(name string) ([]byte, bool) {
		k := []byte(name + "=<")
		if !bytes.HasPrefix(b, k) {
			return nil, false
		}
		b = b[len(k):]
		end := bytes.Index(b, []byte("> "))
		if end < 0 {
			return nil, false
		}
		v := b[:end]
		b = b[end+2:]
		return v, true
	}
	action, ok1 := field("action")
	_, ok2 := field("score")
	qid, ok3 := field("qid")
	ip, ok4 := field("ip")
	_, _ = qid, ip
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return o, errors.New("spamsurge rspamd format: action, score, qid or ip missing")
	}
	if s := string(ip); s != "undef" {
		o.ClientIP = s
	}
	o.Spam = rspamdSpam(action)
	if !bytes.HasPrefix(b, []byte("rcpts=<")) {
		return o, errors.New("spamsurge rspamd format: rcpts missing")
	}
	b = b[len("rcpts=<"):]
	end := bytes.Index(b, []byte("> from=<"))
	if end < 0 {
		return o, errors.New("spamsurge rspamd format: from missing")
	}
	o.Rcpt = p.rspamdList(b[:end])
	b = b[end+len("> from=<"):]
	end = bytes.Index(b, []byte("> mid=<"))
	if end < 0 || !bytes.HasSuffix(b, []byte(">")) {
		return o, errors.New("spamsurge rspamd format: mid missing")
	}
	o.From = string(b[:end])
	if m := string(b[end+len("> mid=<") : len(b)-1]); m != "undef" && m != "" {
		o.MessageID = "<" + m + ">"
	}
	return o, nil
}

// rspamdList splits "a@x,b@y,..." (a trailing "..." is rspamd's
// shortening: counted in Truncated).
func (p *Parser) rspamdList(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	if r, ok := bytes.CutSuffix(b, []byte("...")); ok {
		p.Truncated++
		b = bytes.TrimSuffix(r, []byte(","))
	}
	var out []string
	for len(b) > 0 {
		var a []byte
		a, b, _ = bytes.Cut(b, []byte(","))
		if len(a) > 0 {
			out = append(out, string(a))
		}
	}
	return out
}

// rspamdSpam: the verdict package's rule for X-Rspamd-Action: anything but
// "no action" and "greylist" is spam ("reject" included: a rejected
// message still shows the address is on a list).
func rspamdSpam(action []byte) bool {
	return !bytes.EqualFold(action, []byte("no action")) && !bytes.EqualFold(action, []byte("greylist"))
}
