package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replay into a Redis store is refused with the key that asks for it
// (until writing history into a fleet is built), not run into nothing.
func TestReplayIntoRedisRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("store: {path: \"\", key_file: "+filepath.Join(dir, "k")+", redis_url: \"redis://127.0.0.1:1\"}\n"), 0o600)
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"time":"2026-05-01T00:00:00Z","rcpt":["a@b.example"],"spam":false}`+"\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", cfg, in}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "store.redis_url: replay into a Redis store is not available yet") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
