package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/ingest"
)

// What rspamd 3.4's metadata_exporter posted (json formatter), captured
// from the real program: a message with recipients and a null sender, and
// one scanned without any envelope.
const (
	rspamdPost       = `{"qid":"Q1","action":"reject","rspamd_server":"vm","fuzzy":[],"rcpt":["u1@example.net","u2+shop@example.net"],"score":20,"from":"","user":"unknown","ip":"203.0.113.9","symbols":[{"name":"TEST_SPAM","score":20,"metric_score":20}],"subject":"hi","scan_time":3,"header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":["hi"],"header_date":"unknown","message_id":"m1@example.org"}`
	rspamdPostNoRcpt = `{"qid":"unknown","action":"no action","rspamd_server":"vm","fuzzy":[],"rcpt":"unknown","score":0,"from":"unknown","user":"unknown","ip":"unknown","symbols":[],"subject":"hi","scan_time":0,"header_from":["a@example.org"],"header_to":["b@example.net"],"header_subject":["hi"],"header_date":"unknown","message_id":"m2@example.org"}`
)

func TestAPIRspamd(t *testing.T) {
	reg := prometheus.NewRegistry()
	var got []ingest.Observation
	full := false
	h := Handler(Options{Gatherer: reg, Registerer: reg, Logger: zap.NewNop(), Token: "s3cret",
		Offer: func(o ingest.Observation) bool {
			if full {
				return false
			}
			got = append(got, o)
			return true
		}})
	// Protected as every /api/ route.
	if code, _ := req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "", rspamdPost); code != 401 {
		t.Fatalf("without the token: %d", code)
	}
	// rspamd sends Basic credentials (the rule's user and password): the
	// token is the password.
	r := httptest.NewRequest("POST", "/api/v1/rspamd", strings.NewReader(rspamdPostNoRcpt))
	r.RemoteAddr = "192.0.2.1:1"
	r.SetBasicAuth("rspamd", "wrong")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 401 {
		t.Errorf("Basic with a wrong password: %d", rec.Code)
	}
	r.SetBasicAuth("rspamd", "s3cret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Errorf("Basic with the token as password: %d %s", rec.Code, rec.Body)
	}
	// Only there: the other routes want the bearer token.
	r = httptest.NewRequest("GET", "/api/v1/incidents", nil)
	r.SetBasicAuth("rspamd", "s3cret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 401 {
		t.Errorf("Basic on /api/v1/incidents: %d", rec.Code)
	}
	t0 := time.Now()
	code, body := req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "s3cret", rspamdPost)
	if code != 200 || !strings.Contains(body, `"accepted": 1`) {
		t.Fatalf("%d %s", code, body)
	}
	if len(got) != 1 {
		t.Fatalf("offered %d", len(got))
	}
	o := got[0]
	if !o.Spam || strings.Join(o.Rcpt, ",") != "u1@example.net,u2+shop@example.net" || o.From != "" ||
		o.ClientIP != "203.0.113.9" || o.MessageID != "<m1@example.org>" || o.Subject != "hi" || o.Time.Before(t0.Add(-time.Second)) {
		t.Errorf("observation %+v", o)
	}
	// No recipients: nothing to count, and no error for rspamd to log.
	code, body = req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "s3cret", rspamdPostNoRcpt)
	if code != 200 || !strings.Contains(body, `"accepted": 0`) || len(got) != 1 {
		t.Errorf("no rcpt: %d %s (offered %d)", code, body, len(got))
	}
	for _, tc := range []struct{ body, want string }{
		{"", "empty"},
		{"not json", "syntax error"},
		{`{"rcpt":["a@example.net"]}`, `missing "action"`},
		{`{"action":"reject"}`, `missing "rcpt"`},
		{`{"action":"reject","rcpt":42}`, `"rcpt" is not a list`},
		{`{"action":"reject","rcpt":[1,2]}`, `"rcpt" is not a list`},
		{`{"action":7,"rcpt":[]}`, "wrong type"},
		{`{"action":"reject","rcpt":["a@x"]} {"action":"reject","rcpt":["b@x"]}`, "one message per request"},
		{`[` + rspamdPost + `]`, "not a JSON object"},
	} {
		code, body := req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "s3cret", tc.body)
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if code != 400 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%q: %d %s, want 400 with %q", tc.body, code, body, tc.want)
		}
		if strings.Contains(body, "a@x") || strings.Contains(body, "example.net") {
			t.Errorf("%q: the answer quotes the body: %s", tc.body, body)
		}
	}
	code, body = req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "s3cret", `{"action":"reject","rcpt":["`+strings.Repeat("a", MaxRspamdBodyBytes)+`"]}`)
	if code != 413 {
		t.Errorf("a huge body: %d %s", code, body)
	}
	full = true
	code, body = req(t, h, "POST", "/api/v1/rspamd", "127.0.0.1:1", "s3cret", rspamdPost)
	if code != 503 || !strings.Contains(body, "queue full") {
		t.Errorf("queue full: %d %s", code, body)
	}
	want := map[string]float64{"accepted": 1, "skipped": 2, "invalid": 10, "dropped": 1}
	for r, n := range want {
		if v := counterValue(t, reg, "spamsurge_rspamd_messages_total", "result", r); v != n {
			t.Errorf("spamsurge_rspamd_messages_total{result=%q} = %v, want %v", r, v, n)
		}
	}
	// Without a detector.
	off := Handler(Options{Gatherer: prometheus.NewRegistry()})
	if code, body := req(t, off, "POST", "/api/v1/rspamd", "127.0.0.1:1", "", rspamdPost); code != 503 || !strings.Contains(body, "not running") {
		t.Errorf("no detector: %d %s", code, body)
	}
}

// counterValue reads one labelled counter from a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
