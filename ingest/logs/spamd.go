package logs

import (
	"bytes"
	"errors"
	"strings"

	"github.com/spamsurge/spamsurge/ingest"
)

// SpamAssassin spamd's result line, one per scanned message and user (the
// recipient when the MTA runs spamc -u RECIPIENT at delivery):
//
//	spamd[123]: spamd: result: Y 1002 - GTUBE,MISSING_DATE scantime=0.1,size=161,user=bob@example.net,uid=65534,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=55570,mid=<m@x>,autolearn=no autolearn_force=no
//
// "Y" is spam, "." not. Non-ASCII bytes are written as \x{C3}. A user
// without "@" is a local account: it becomes user@Parser.Domain, or the
// line has no recipient.
const spamdMarker = "spamd: result: "

func (p *Parser) spamd(rest []byte) (ingest.Observation, error) {
	var o ingest.Observation
	b, ok := marker(rest, spamdMarker, 120)
	if !ok {
		return o, ErrIgnored
	}
	if len(b) < 2 || (b[0] != 'Y' && b[0] != '.') || b[1] != ' ' {
		return o, errors.New(`spamd result not "Y" or "."`)
	}
	o.Spam = b[0] == 'Y'
	dash := bytes.Index(b, []byte(" - "))
	if dash < 0 || dash > 24 {
		return o, errors.New("spamd result without its score")
	}
	b = b[dash+3:]
	// The rules (no spaces), then the key=value list.
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return o, errors.New("spamd result without its key=value list")
	}
	kv := b[sp+1:]
	user, ok := spamdField(kv, "user=")
	if !ok {
		return o, errors.New("spamd result without user=")
	}
	if mid, ok := spamdField(kv, "mid="); ok && len(mid) > 0 && !bytes.Equal(mid, []byte("(unknown)")) {
		o.MessageID = string(mid)
	}
	u := unescapeSpamd(user)
	switch {
	case u == "":
	case strings.IndexByte(u, '@') > 0:
		o.Rcpt = []string{u}
	case p.Domain != "":
		o.Rcpt = []string{u + "@" + p.Domain}
	}
	return o, nil
}

// spamdField finds key=value in "a=1,b=2,..." (the first key of that name,
// which comes before the message's own mid=).
func spamdField(kv []byte, key string) ([]byte, bool) {
	i := 0
	for {
		j := bytes.Index(kv[i:], []byte(key))
		if j < 0 {
			return nil, false
		}
		j += i
		if j == 0 || kv[j-1] == ',' {
			v := kv[j+len(key):]
			if key == "mid=" {
				// The Message-ID may hold commas: it ends at ",autolearn=" (or
				// the end).
				if e := bytes.Index(v, []byte(",autolearn=")); e >= 0 {
					return v[:e], true
				}
				return v, true
			}
			if e := bytes.IndexByte(v, ','); e >= 0 {
				v = v[:e]
			}
			return v, true
		}
		i = j + len(key)
	}
}

// unescapeSpamd turns spamd's \x{C3} back into the byte.
func unescapeSpamd(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+5 < len(b)+1 && i+2 < len(b) && b[i+1] == 'x' && b[i+2] == '{' {
			j := bytes.IndexByte(b[i+3:], '}')
			if j > 0 && j <= 4 {
				v, ok := hexVal(b[i+3 : i+3+j])
				if ok && v < 256 {
					out = append(out, byte(v))
					i += 3 + j
					continue
				}
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func hexVal(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A') + 10
		default:
			return 0, false
		}
	}
	return v, true
}
