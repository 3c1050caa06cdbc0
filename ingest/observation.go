// Package ingest is where every observation source meets the detector: the
// Observation type, the Sink a source hands observations to, the bounded
// Queue between the mail path and the detector, and the JSONL codec of the
// observation stream.
//
// A source (the SMTP proxy, POST /api/v1/observations, replay) builds
// Observations and gives them to a Sink. Sources on the mail path
// must never wait: Queue.Observe drops and counts instead
// (spamsurge_observations_dropped_total). Sources that can wait use
// Queue.Submit.
//
// # The observation stream (JSONL)
//
// `replay`, `simulate`, `convert` (from filter logs, package ingest/logs)
// and POST /api/v1/observations speak one format: one JSON
// object per line, one line per delivered message, in time order (replay
// puts lines up to 5 minutes out of order back in order):
//
//		{"time":"2026-05-13T09:14:02Z","rcpt":["alice@example.net"],"spam":true,"from":"x@spam.example","client_ip":"203.0.113.9","subject":"...","message_id":"<...>"}
//
//	  - time (required): RFC 3339, with a zone; sub-seconds allowed.
//	  - rcpt (required): the recipients the next hop accepted (may be empty,
//	    e.g. when every recipient is in rejected).
//	  - spam (required): the upstream filter's verdict.
//	  - rejected: recipients the next hop refused (dictionary-attack
//	    evidence; an address on a spammer's list even when it does not exist).
//	  - from (the envelope sender), client_ip, helo, subject, message_id:
//	    optional; they group the spam into campaigns (sender domain, client
//	    /24 or /48, normalised subject, Message-ID domain).
//
// Unknown keys are ignored and blank lines skipped. A line that is not
// JSON, or lacks a required key, is malformed: Parse says why, and the
// callers report it with its file and line (replay) or refuse the request
// naming the line (the API). docs/observations.md holds the same spec for
// users; keep the two in step.
package ingest

import (
	"errors"
	"time"
)

// Observation is one relayed transaction as the mail path saw it, after the
// next hop's final reply. It is the unit the detector learns from, whether it
// comes from the live proxy, replay or POST /api/v1/observations (the JSONL
// observation stream, above).
//
// Addresses arrive in plaintext here and must never leave the detector in
// plaintext: they are normalised and hashed before anything is stored, logged
// or exported.
type Observation struct {
	Time time.Time `json:"time"`
	// Rcpt are the recipients the next hop accepted.
	Rcpt []string `json:"rcpt"`
	// Rejected are recipients the next hop refused (dictionary-attack evidence).
	Rejected  []string `json:"rejected,omitempty"`
	Spam      bool     `json:"spam"`
	From      string   `json:"from,omitempty"`
	ClientIP  string   `json:"client_ip,omitempty"`
	Helo      string   `json:"helo,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
}

// Sink takes observations. Implementations used by the mail path must never
// block and never fail it: they queue or drop (and count the drop).
type Sink interface {
	Observe(Observation)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Observation)

// Observe calls f(o).
func (f SinkFunc) Observe(o Observation) { f(o) }

// ErrIgnored is a line of an input that carries no observation and is no
// error either: a log line of the filter's other messages (ingest/logs).
var ErrIgnored = errors.New("not a verdict line")

// ErrNoRecipients is a verdict line that names no recipient: it cannot be
// an observation (ingest/logs); sources count and skip it.
var ErrNoRecipients = errors.New("no recipients")
