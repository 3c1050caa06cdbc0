package fleet

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/recipients"
)

// entry is one journal entry (JSON): a message some instance applied to
// the shared store, or a tick of its clock. It holds what the detector's
// statistics read, and never an address: recipients are their keyed
// hashes, the envelope sender is cut to its domain.
type entry struct {
	// Tick: the instance's clock (a few seconds behind the wall clock,
	// so that the messages before it are in the journal first).
	Tick *time.Time `json:"tick,omitempty"`
	// Mark names a tick that is no instance's clock: "replay", the end
	// of a replay into Redis (the fleet's snapshot is at it).
	Mark string `json:"mark,omitempty"`

	Time      time.Time `json:"t,omitzero"`
	Spam      bool      `json:"s,omitempty"`
	From      string    `json:"f,omitempty"` // "@" + the sender's domain
	ClientIP  string    `json:"ip,omitempty"`
	Subject   string    `json:"sub,omitempty"`
	MessageID string    `json:"mid,omitempty"`
	Rejected  int       `json:"rj,omitempty"`
	Outs      []out     `json:"o,omitempty"`
	// RejCanaries are canaries among the refused recipients.
	RejCanaries []out `json:"rc,omitempty"`
}

// out is one recipient's outcome. Mail and Spam carry only their kind.
// (ID aliases the outcome's id until the entry is marshalled.)
type out struct {
	Kind    recipients.Kind `json:"k"`
	ID      []byte          `json:"id"`
	Detail  string          `json:"d,omitempty"`
	Domain  string          `json:"dom,omitempty"`
	Dormant bool            `json:"dr,omitempty"`
	LongDor bool            `json:"ldr,omitempty"` // long dormant
	Hour    int64           `json:"h,omitempty"`   // EarlySpam: maturation hour
	Source  string          `json:"src,omitempty"`
}

// senderDomain cuts an envelope sender to "@domain" (the campaign key the
// detector reads of it).
func senderDomain(from string) string {
	i := strings.LastIndexByte(from, '@')
	if i < 0 {
		return ""
	}
	return from[i:]
}

// newEntry is the journal entry of a message applied to the store.
func newEntry(o *ingest.Observation, rc []recipients.Rcpt, outs []recipients.Outcome, hours []int64, rejected int, rejCanaries []recipients.Outcome) entry {
	e := entry{
		Time: o.Time.UTC(), Spam: o.Spam, From: senderDomain(o.From), ClientIP: o.ClientIP,
		Subject: o.Subject, MessageID: o.MessageID, Rejected: rejected,
		Outs: make([]out, len(outs)),
	}
	for i := range outs {
		oc := &outs[i]
		if oc.Kind == recipients.Mail || oc.Kind == recipients.Spam {
			// The statistics read only the kind of these (most
			// recipients): the entry stays small.
			e.Outs[i] = out{Kind: oc.Kind}
			continue
		}
		e.Outs[i] = out{Kind: oc.Kind, ID: oc.ID[:], Detail: oc.Detail,
			Domain: rc[i].Domain, Dormant: oc.Dormant, LongDor: oc.LongDormant, Source: oc.Source}
		if i < len(hours) {
			e.Outs[i].Hour = hours[i]
		}
	}
	for _, oc := range rejCanaries {
		e.RejCanaries = append(e.RejCanaries, out{Kind: recipients.Canary, ID: oc.ID[:], Source: oc.Source})
	}
	return e
}

func (o *out) outcome() (recipients.Outcome, error) {
	var oc recipients.Outcome
	switch {
	case o.Kind > recipients.Canary:
		return oc, errBadEntry
	case o.Kind == recipients.Mail || o.Kind == recipients.Spam:
		oc.Kind = o.Kind
		return oc, nil
	case len(o.ID) != len(oc.ID):
		return oc, errBadEntry
	}
	oc.Kind, oc.Detail, oc.Dormant, oc.LongDormant, oc.Source = o.Kind, o.Detail, o.Dormant, o.LongDor, o.Source
	copy(oc.ID[:], o.ID)
	return oc, nil
}

var errBadEntry = errors.New("fleet: malformed journal entry")

// applied turns a message entry into the detector's input.
func (e *entry) applied() (*detector.Applied, error) {
	a := &detector.Applied{
		Obs: ingest.Observation{Time: e.Time, Spam: e.Spam, From: e.From, ClientIP: e.ClientIP,
			Subject: e.Subject, MessageID: e.MessageID},
		Rejected: e.Rejected,
		Outs:     make([]recipients.Outcome, len(e.Outs)),
		Domains:  make([]string, len(e.Outs)),
		Hours:    make([]int64, len(e.Outs)),
	}
	for i := range e.Outs {
		oc, err := e.Outs[i].outcome()
		if err != nil {
			return nil, err
		}
		a.Outs[i], a.Domains[i], a.Hours[i] = oc, e.Outs[i].Domain, e.Outs[i].Hour
	}
	for i := range e.RejCanaries {
		oc, err := e.RejCanaries[i].outcome()
		if err != nil {
			return nil, err
		}
		a.RejectedCanaries = append(a.RejectedCanaries, oc)
	}
	return a, nil
}

func decodeEntry(b []byte) (*entry, error) {
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, errBadEntry
	}
	if e.Tick == nil && e.Time.IsZero() {
		return nil, errBadEntry
	}
	return &e, nil
}
