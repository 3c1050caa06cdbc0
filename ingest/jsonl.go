package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// line is the wire form, with pointers to tell a missing field from a zero.
type line struct {
	Time      *time.Time `json:"time"`
	Rcpt      *[]string  `json:"rcpt"`
	Rejected  []string   `json:"rejected"`
	Spam      *bool      `json:"spam"`
	From      string     `json:"from"`
	ClientIP  string     `json:"client_ip"`
	Helo      string     `json:"helo"`
	Subject   string     `json:"subject"`
	MessageID string     `json:"message_id"`
}

// Parse decodes one JSONL observation, checking the required fields.
func Parse(b []byte) (Observation, error) {
	if o, ok := parseFast(b); ok {
		return o, nil
	}
	return parseJSON(b)
}

func parseJSON(b []byte) (Observation, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Observation{}, fmt.Errorf("not JSON: %v", err)
		}
		return Observation{}, err
	}
	switch {
	case l.Time == nil || l.Time.IsZero():
		return Observation{}, errors.New(`missing "time"`)
	case l.Rcpt == nil:
		return Observation{}, errors.New(`missing "rcpt"`)
	case l.Spam == nil:
		return Observation{}, errors.New(`missing "spam"`)
	}
	return Observation{Time: *l.Time, Rcpt: *l.Rcpt, Rejected: l.Rejected, Spam: *l.Spam,
		From: l.From, ClientIP: l.ClientIP, Helo: l.Helo, Subject: l.Subject, MessageID: l.MessageID}, nil
}
