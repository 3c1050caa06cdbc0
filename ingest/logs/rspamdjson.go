package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

// RspamdExport is what rspamd's metadata_exporter posts with formatter
// "json" (rspamd 3.4, plugins/metadata_exporter.lua, get_general_metadata
// unflattened): one object per scanned message. rspamd writes the string
// "unknown" for what it does not know (no client IP, no SMTP sender or
// recipients, a missing header); header_* are lists of decoded values or
// that string. It carries no time: the message was scanned just now.
//
//	{"qid":"unknown","action":"no action","rspamd_server":"mx1","fuzzy":[],"rcpt":["x@example.net"],
//	 "score":0,"from":"","user":"unknown","ip":"unknown","symbols":[],"subject":"hi","scan_time":0,
//	 "header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":["hi"],
//	 "header_date":"unknown","message_id":"m2@example.org"}
type RspamdExport struct {
	Action        *string         `json:"action"`
	Rcpt          json.RawMessage `json:"rcpt"`
	From          any             `json:"from"`
	IP            any             `json:"ip"`
	QID           any             `json:"qid"`
	MessageID     any             `json:"message_id"`
	HeaderSubject json.RawMessage `json:"header_subject"`
	Subject       any             `json:"subject"`
}

// ParseRspamdExport turns one metadata_exporter JSON document into an
// observation at now. It returns ErrNoRecipients when rspamd knew no SMTP
// recipient (a scan without Rcpt), and an error saying what is wrong for
// anything that is not such a document. It never panics (fuzzed).
func ParseRspamdExport(b []byte, now time.Time) (ingest.Observation, error) {
	var e RspamdExport
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return ingest.Observation{}, fmt.Errorf("not a JSON object: %v", jsonReason(err))
	}
	if dec.More() {
		return ingest.Observation{}, errors.New("more than one JSON value: send one message per request (formatter \"json\")")
	}
	if e.Action == nil || *e.Action == "" {
		return ingest.Observation{}, errors.New(`missing "action": not what metadata_exporter's json formatter sends`)
	}
	o := ingest.Observation{Time: now, Spam: rspamdSpam([]byte(*e.Action))}
	rc := bytes.TrimSpace(e.Rcpt)
	switch {
	case len(rc) == 0:
		return ingest.Observation{}, errors.New(`missing "rcpt"`)
	case rc[0] == '[':
		if err := json.Unmarshal(rc, &o.Rcpt); err != nil {
			return ingest.Observation{}, errors.New(`"rcpt" is not a list of addresses`)
		}
	case rc[0] == '"', bytes.Equal(rc, []byte("{}")), bytes.Equal(rc, []byte("null")):
		// "unknown", or an empty Lua table written as an object.
	default:
		return ingest.Observation{}, errors.New(`"rcpt" is not a list of addresses`)
	}
	var keep []string
	for _, r := range o.Rcpt {
		if r = strings.TrimSpace(r); r != "" {
			keep = append(keep, r)
		}
	}
	o.Rcpt = keep
	if len(o.Rcpt) == 0 {
		return ingest.Observation{}, ErrNoRecipients
	}
	o.From = known(e.From)
	if ip := known(e.IP); ip != "" {
		o.ClientIP = ip
	}
	if mid := known(e.MessageID); mid != "" && mid != "undef" {
		o.MessageID = "<" + strings.Trim(mid, "<>") + ">"
	}
	// header_subject tells a missing Subject ("unknown") from one that
	// reads "unknown"; subject is the decoded first one.
	if hs := bytes.TrimSpace(e.HeaderSubject); len(hs) > 0 && hs[0] == '[' {
		if s, ok := e.Subject.(string); ok {
			o.Subject = s
		}
	}
	return o, nil
}

// known is a string field's value, "" for rspamd's "unknown" or a value
// of another type.
func known(v any) string {
	s, ok := v.(string)
	if !ok || s == "unknown" {
		return ""
	}
	return s
}

// jsonReason is a decoding error without the input quoted in it.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q has the wrong type (%s)", te.Field, te.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "empty or cut short"
	}
	return "unreadable"
}
