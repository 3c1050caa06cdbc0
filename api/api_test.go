package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "spamsurge_test_total", Help: "x"}).Add(3)
	var notReady error
	h := Handler(Options{Gatherer: reg, Logger: zap.NewNop(), Ready: func() error { return notReady }})

	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "spamsurge_test_total 3") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz while ready: %d", code)
	}
	notReady = errors.New("next hop unreachable")
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "next hop unreachable") {
		t.Errorf("/readyz while not ready: %d %q", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

func req(t *testing.T, h http.Handler, method, path, remote, token, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

func testIncidents() []detector.Incident {
	var id addr.ID
	id[0] = 0xab
	return []detector.Incident{
		{ID: "inc-1", Kind: "surge", State: "open", Recipients: 1, Observed: 40, Expected: 2, RecipientIDs: []addr.ID{id}},
		{ID: "inc-0", Kind: "surge", State: "resolved", Recipients: 0},
	}
}

func TestAPIAuth(t *testing.T) {
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(), Token: "s3cret", Incidents: testIncidents})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"s3cret ", 200}, {"s3cret", 200}} {
		if code, body := req(t, h, "GET", "/api/v1/incidents", "192.0.2.1:1234", tc.token, ""); code != tc.want {
			t.Errorf("token %q: %d %s, want %d", tc.token, code, body, tc.want)
		}
	}
	// The metrics and health endpoints need no token.
	if code, _ := req(t, h, "GET", "/metrics", "192.0.2.1:1234", "", ""); code != 200 {
		t.Errorf("/metrics needs no token, got %d", code)
	}

	open := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(), Incidents: testIncidents})
	if code, body := req(t, open, "GET", "/api/v1/incidents", "192.0.2.1:1234", "", ""); code != 403 || !strings.Contains(body, "loopback") {
		t.Errorf("no token, remote client: %d %s", code, body)
	}
	for _, remote := range []string{"127.0.0.1:5555", "[::1]:5555"} {
		if code, _ := req(t, open, "GET", "/api/v1/incidents", remote, "", ""); code != 200 {
			t.Errorf("no token, loopback %s: %d", remote, code)
		}
	}
}

func TestAPIIncidents(t *testing.T) {
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(), Incidents: testIncidents})
	code, body := req(t, h, "GET", "/api/v1/incidents", "127.0.0.1:1", "", "")
	var list struct {
		Incidents []map[string]any `json:"incidents"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Incidents) != 2 {
		t.Fatalf("list: %d %v %s", code, err, body)
	}
	for _, k := range []string{"id", "kind", "state", "opened_at", "recipients"} {
		if _, ok := list.Incidents[0][k]; !ok {
			t.Errorf("incident lacks %q: %v", k, list.Incidents[0])
		}
	}
	if _, ok := list.Incidents[0]["recipient_ids"]; ok {
		t.Errorf("the list carries recipient ids; they have their own endpoint")
	}
	if code, body := req(t, h, "GET", "/api/v1/incidents?state=open", "127.0.0.1:1", "", ""); code != 200 || strings.Contains(body, "inc-0") {
		t.Errorf("state=open: %d %s", code, body)
	}
	if code, _ := req(t, h, "GET", "/api/v1/incidents?state=bogus", "127.0.0.1:1", "", ""); code != 400 {
		t.Errorf("state=bogus: %d", code)
	}
	if code, body := req(t, h, "GET", "/api/v1/incidents/inc-1", "127.0.0.1:1", "", ""); code != 200 || !strings.Contains(body, `"observed": 40`) {
		t.Errorf("one incident: %d %s", code, body)
	}
	if code, body := req(t, h, "GET", "/api/v1/incidents/inc-1/recipients", "127.0.0.1:1", "", ""); code != 200 || body != "ab000000000000000000000000000000\n" {
		t.Errorf("recipients: %d %q", code, body)
	}
	if code, body := req(t, h, "GET", "/api/v1/incidents/nope", "127.0.0.1:1", "", ""); code != 404 || !strings.Contains(body, "nope") {
		t.Errorf("unknown incident: %d %s", code, body)
	}
	if code, _ := req(t, h, "GET", "/api/v1/whatever", "127.0.0.1:1", "", ""); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
}

func TestAPIObservations(t *testing.T) {
	var got []ingest.Observation
	busy := false
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(), MaxBodyBytes: 1000,
		Submit: func(obs []ingest.Observation) error {
			if busy {
				return ErrBusy
			}
			got = append(got, obs...)
			return nil
		}})
	good := `{"time":"2026-05-13T09:14:02Z","rcpt":["alice@example.net"],"spam":true}` + "\n" +
		`{"time":"2026-05-13T09:15:02Z","rcpt":["bob@example.net"],"spam":false,"rejected":["ghost@example.net"]}` + "\n"
	if code, body := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", good); code != 202 || !strings.Contains(body, `"accepted": 2`) || len(got) != 2 {
		t.Fatalf("good body: %d %s (%d submitted)", code, body, len(got))
	}
	bad := good + "{not json}\n" + `{"rcpt":["x@example.net"],"spam":true}` + "\n"
	code, body := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", bad)
	if code != 400 || !strings.Contains(body, `"line": 3`) || !strings.Contains(body, `"line": 4`) || len(got) != 2 {
		t.Errorf("bad lines: %d %s (%d submitted; want none of this body)", code, body, len(got))
	}
	if code, body := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", strings.Repeat(good, 20)); code != 413 {
		t.Errorf("large body: %d %s", code, body)
	}
	if code, _ := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", "\n\n"); code != 400 {
		t.Errorf("empty body: %d", code)
	}
	busy = true
	if code, _ := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", good); code != 503 {
		t.Errorf("busy: %d", code)
	}
	if code, _ := req(t, h, "GET", "/api/v1/observations", "127.0.0.1:1", "", ""); code != 404 && code != 405 {
		t.Errorf("GET observations: %d", code)
	}
}

// An observation dated further ahead than the server's clock allows is
// refused with 400 naming the line, and nothing of the body is taken.
func TestAPIObservationFromTheFuture(t *testing.T) {
	var got []ingest.Observation
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(),
		NotAfter: func() time.Time { return now.Add(5 * time.Minute) },
		Submit:   func(obs []ingest.Observation) error { got = append(got, obs...); return nil }})
	body := `{"time":"2026-12-01T12:03:00Z","rcpt":["alice@example.net"],"spam":true}` + "\n" +
		`{"time":"9999-12-01T00:00:00Z","rcpt":["bob@example.net"],"spam":false}` + "\n"
	code, resp := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", body)
	if code != 400 || !strings.Contains(resp, `"line": 2`) || !strings.Contains(resp, "max_clock_skew") || len(got) != 0 {
		t.Fatalf("future line: %d %s (%d submitted)", code, resp, len(got))
	}
	// Within the skew it is taken.
	if code, resp := req(t, h, "POST", "/api/v1/observations", "127.0.0.1:1", "", strings.SplitAfter(body, "\n")[0]); code != 202 {
		t.Fatalf("observation 3 minutes ahead: %d %s", code, resp)
	}
}
