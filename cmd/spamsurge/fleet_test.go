package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
