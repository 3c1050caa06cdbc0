package main

import (
	"bytes"
	"strings"
	"testing"
)

// The README's first command, end to end: history, live SMTP through the
// real proxy, the leak, and the incident reported from the real API.
func TestDemoCatchesTheLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--http", "127.0.0.1:0", "--leak-after", "3s", "--addresses", "3000", "--timeout", "90s"}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{"the leak starts", "INCIDENT OPENED", "kind         surge", "cheap-pills.example", "/metrics", "/ui/incidents/",
		"which holds the true copy time"} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	// The demo's own addresses must never be printed.
	if strings.Contains(got, "@") && strings.Contains(got, "user0") {
		t.Errorf("demo printed an address:\n%s", got)
	}
}
