package detector

import "time"

// Observation is one relayed transaction as the mail path saw it, after the
// next hop's final reply. It is the unit the detector learns from, whether it
// comes from the live proxy, replay or POST /api/v1/observations (the JSONL
// observation stream in CONTRACT.md).
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
