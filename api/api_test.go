package api

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
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
