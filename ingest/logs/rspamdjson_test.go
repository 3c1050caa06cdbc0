package logs

import (
	"errors"
	"testing"
	"time"
)

// What rspamd 3.4's metadata_exporter posted with formatter "json"
// (e2e.TestRealRspamdPush posts the live ones).
var rspamdExports = []string{
	`{"qid":"Q1","action":"reject","rspamd_server":"vm","fuzzy":[],"rcpt":["u1@example.net","u2+shop@example.net"],"score":20,"from":"sender@example.org","user":"unknown","ip":"203.0.113.9","symbols":[{"name":"TEST_SPAM","score":20,"metric_score":20}],"subject":"Win","scan_time":3,"header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":["Win"],"header_date":"unknown","message_id":"m1@example.org"}`,
	`{"qid":"unknown","action":"no action","rspamd_server":"vm","fuzzy":[],"rcpt":["x@example.net"],"score":0,"from":"","user":"unknown","ip":"unknown","symbols":[],"subject":"unknown","scan_time":0,"header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":"unknown","header_date":"unknown","message_id":"m2@example.org"}`,
	`{"qid":"unknown","action":"no action","rspamd_server":"vm","fuzzy":[],"rcpt":"unknown","score":0,"from":"unknown","user":"unknown","ip":"unknown","symbols":[],"subject":"hi","scan_time":0,"header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":["hi"],"header_date":"unknown","message_id":"m2@example.org"}`,
}

func TestParseRspamdExport(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	o, err := ParseRspamdExport([]byte(rspamdExports[0]), now)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Spam || !o.Time.Equal(now) || len(o.Rcpt) != 2 || o.Rcpt[1] != "u2+shop@example.net" || o.From != "sender@example.org" ||
		o.ClientIP != "203.0.113.9" || o.MessageID != "<m1@example.org>" || o.Subject != "Win" {
		t.Errorf("%+v", o)
	}
	// "unknown" is rspamd's word for what it does not know; a missing
	// Subject is "unknown" in header_subject too.
	o, err = ParseRspamdExport([]byte(rspamdExports[1]), now)
	if err != nil || o.Spam || o.ClientIP != "" || o.From != "" || o.Subject != "" || o.MessageID != "<m2@example.org>" {
		t.Errorf("%+v %v", o, err)
	}
	if _, err := ParseRspamdExport([]byte(rspamdExports[2]), now); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("rcpt unknown: %v", err)
	}
	for action, spam := range map[string]bool{"reject": true, "add header": true, "rewrite subject": true, "soft reject": true, "greylist": false, "no action": false} {
		o, err := ParseRspamdExport([]byte(`{"action":"`+action+`","rcpt":["a@example.net"]}`), now)
		if err != nil || o.Spam != spam {
			t.Errorf("%s: spam=%v %v", action, o.Spam, err)
		}
	}
}

// FuzzRspamdExport: any body gives an observation with recipients at
// now, ErrNoRecipients or an error; never a panic.
func FuzzRspamdExport(f *testing.F) {
	for _, s := range rspamdExports {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"action":"reject","rcpt":{}}`))
	f.Add([]byte(`{"action":null,"rcpt":[null]}`))
	now := time.Unix(1800000000, 0).UTC()
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseRspamdExport(b, now)
		if err != nil {
			return
		}
		if len(o.Rcpt) == 0 || !o.Time.Equal(now) {
			t.Fatalf("%+v", o)
		}
	})
}
