package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/internal/testkit"
)

// replay into a Redis that does not answer fails at once, naming the
// configuration that points at it, and replays nothing.
func TestReplayIntoUnreachableRedis(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("store: {path: \"\", key_file: "+filepath.Join(dir, "k")+", redis_url: \"redis://127.0.0.1:1\"}\n"), 0o600)
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"time":"2026-05-01T00:00:00Z","rcpt":["a@b.example"],"spam":false}`+"\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", cfg, in}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "store.redis") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// replay into a real Redis: a canary in last month's history opens the
// canary incident, the fleet's snapshot keeps it, and resolve finds its
// address there while no daemon answers.
func TestReplayIntoRedisThenResolve(t *testing.T) {
	redis := testkit.Redis(t)
	dir := t.TempDir()
	canaries := testkit.WriteFile(t, dir, "canaries.txt", "trap-7f3@example.net\n")
	cfg := testkit.WriteFile(t, dir, "c.yaml", fmt.Sprintf(`store: {key_file: %s, redis_url: "redis://%s/0"}
http: {listen: "127.0.0.1:1"}
attribution:
  canaries:
    - {source: billing-db, file: %s}
`, filepath.Join(dir, "key"), redis, canaries))
	in := testkit.WriteFile(t, dir, "in.jsonl", `{"time":"2026-05-01T00:00:00Z","rcpt":["alice@example.net"],"spam":false}
{"time":"2026-05-01T00:01:00Z","rcpt":["bob@example.net","trap-7f3@example.net"],"spam":true,"from":"x@spam.example"}
`)
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--json", "--config", cfg, in}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "fleet: the history is in Redis") {
		t.Fatalf("replay did not say where the history went: %s", errb.String())
	}
	var ev struct {
		ID, Kind, Event string
	}
	if err := json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &ev); err != nil || ev.Kind != "canary" || ev.Event != "opened" {
		t.Fatalf("replay events %q (%v)", out.String(), err)
	}
	cands := testkit.WriteFile(t, dir, "cands.txt", "alice@example.net\ntrap-7f3@example.net\n")
	out.Reset()
	errb.Reset()
	if code := run([]string{"resolve", "--config", cfg, "--incident", ev.ID, "--addresses", cands}, &out, &errb); code != 0 {
		t.Fatalf("resolve: exit %d: %s", code, errb.String())
	}
	if out.String() != "trap-7f3@example.net\n" || !strings.Contains(errb.String(), "the fleet's snapshot in Redis") {
		t.Fatalf("resolve: stdout %q, stderr %s", out.String(), errb.String())
	}
	// Replayed again on top (a second month): it goes on from the first.
	out.Reset()
	errb.Reset()
	in2 := testkit.WriteFile(t, dir, "in2.jsonl", `{"time":"2026-06-01T00:00:00Z","rcpt":["carol@example.net"],"spam":false}
`)
	if code := run([]string{"replay", "--config", cfg, in2}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "3 tracked") {
		t.Fatalf("second replay: exit %d: %s", code, errb.String())
	}
}

// A fleet instance started while its Redis is down starts all the same
// (its proxy and HTTP side up: mail is not held back by the detector) and
// says why detection is off (/readyz, 503), retries in the background,
// and turns detection on when Redis comes up: a canary hit then opens the
// canary incident.
func TestServeWaitsForRedis(t *testing.T) {
	bin := testkit.Need(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	dir := t.TempDir()
	redisAddr, err := testkit.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	canaries := testkit.WriteFile(t, dir, "canaries.txt", "trap-7f3@example.net\n")
	cfg := config.Default()
	cfg.SMTP.Listen = closedPort(t)
	cfg.Downstream.Address = closedPort(t)
	cfg.HTTP.Listen = closedPort(t)
	cfg.Store.Path = filepath.Join(dir, "data")
	cfg.Store.KeyFile = filepath.Join(dir, "key")
	cfg.Store.RedisURL = "redis://" + redisAddr + "/0"
	cfg.Attribution.Canaries = []config.CanaryList{{Source: "billing-db", File: canaries}}
	w := startServe(t, cfg, nil)
	base := "http://" + cfg.HTTP.Listen
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	why, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(why), "retrying") {
		t.Fatalf("/readyz with Redis down: %s %q", resp.Status, why)
	}

	_, port, _ := net.SplitHostPort(redisAddr)
	args := append([]string{"--port", port, "--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, testkit.RedisArgs...)
	rc := exec.Command(bin, args...)
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rc.Process.Kill(); rc.Wait() }()
	w.Wait(t, "fleet store reachable: detection on")
	deadline := time.Now().Add(30 * time.Second)
	// (The next hop is down here: /readyz stays 503 for that, and must
	// stop blaming the detector.)
	for {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		why, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(why), "detector unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still says %q after Redis came up", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	postObservation(t, base, `{"time":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","rcpt":["trap-7f3@example.net"],"spam":true}`)
	for {
		ins := incidentsOf(t, base)
		if len(ins) == 1 && ins[0].Kind == "canary" && ins[0].CanarySource == "billing-db" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no canary incident after Redis came up: %+v", ins)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
