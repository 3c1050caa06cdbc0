package ingest

import (
	"strings"
	"testing"
	"time"
)

const good1 = `{"time":"2026-05-13T09:14:02Z","rcpt":["alice@example.net"],"spam":true,"from":"x@spam.example","client_ip":"203.0.113.9","subject":"hi","message_id":"<1@x>"}`

func TestParseRequiredFields(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{good1, ""},
		{`{"time":"2026-05-13T09:15:00Z","rcpt":["bob@example.net"]}`, `missing "spam"`},
		{`{"rcpt":["c@example.net"],"spam":false}`, `missing "time"`},
		{`{"time":"2026-05-13T09:16:00Z","spam":false}`, `missing "rcpt"`},
		{`not json`, "not JSON"},
		{`{"time":"2026-05-13T09:17:00Z","rcpt":[],"rejected":["ghost@example.net"],"spam":true,"extra":1}`, ""},
	} {
		_, err := Parse([]byte(tc.in))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Parse(%s) = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good1))
	f.Add([]byte(`{"time":"2026-05-13T09:14:02Z","rcpt":[],"spam":false}`))
	f.Add([]byte(`{"time":null,"rcpt":null,"spam":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := Parse(b)
		if err != nil {
			return
		}
		if o.Time.IsZero() || o.Rcpt == nil {
			t.Fatalf("accepted %q as %+v", b, o)
		}
		_ = time.Now
	})
}

// FuzzFastMatchesParse: whenever the fast decoder accepts a line,
// encoding/json must accept it too and decode the same observation.
func FuzzFastMatchesParse(f *testing.F) {
	f.Add([]byte(good1))
	f.Add([]byte(`{"time":"2026-05-13T09:14:02.5+02:00","rcpt":[ "a@b" , "c@d" ],"rejected":[],"spam":false}`))
	f.Add([]byte(`{"spam":true,"rcpt":["x"],"time":"2026-05-13T09:14:02Z","helo":"h"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fo, ok := parseFast(b)
		if !ok {
			return
		}
		jo, err := parseJSON(b)
		if err != nil {
			t.Fatalf("fast accepted what encoding/json refuses: %q: %v", b, err)
		}
		if !fo.Time.Equal(jo.Time) || fo.Spam != jo.Spam || fo.From != jo.From || fo.ClientIP != jo.ClientIP ||
			fo.Helo != jo.Helo || fo.Subject != jo.Subject || fo.MessageID != jo.MessageID ||
			strings.Join(fo.Rcpt, "\x00") != strings.Join(jo.Rcpt, "\x00") || len(fo.Rcpt) != len(jo.Rcpt) ||
			strings.Join(fo.Rejected, "\x00") != strings.Join(jo.Rejected, "\x00") || len(fo.Rejected) != len(jo.Rejected) {
			t.Fatalf("%q: fast %+v, json %+v", b, fo, jo)
		}
	})
}
