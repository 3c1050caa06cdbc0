// Package e2e runs the real spamsurge binary against real mail software:
// Postfix's smtp-sink as the next hop and swaks as the client, on free
// loopback ports. A missing tool skips the test loudly on a laptop and fails
// it when CI=true.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spamsurge-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "spamsurge")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/spamsurge").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building spamsurge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need returns the path of a tool, skipping (or, in CI, failing) without it.
func need(t *testing.T, name string, paths ...string) string {
	t.Helper()
	for _, p := range append(paths, name) {
		if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	msg := fmt.Sprintf("\n\n*** %s NOT FOUND: this test needs the real tool (apt-get install postfix swaks). ***\n", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log capture.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// start runs a command until the test ends.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.out.String())
		}
	})
	return p
}

// sink is a running smtp-sink writing every message to one dump file.
type sink struct {
	addr string
	dump string
}

func startSink(t *testing.T, extra ...string) *sink {
	t.Helper()
	bin := need(t, "smtp-sink", "/usr/sbin/smtp-sink")
	s := &sink{addr: freePort(t), dump: filepath.Join(t.TempDir(), "dump")}
	args := append([]string{"-u", "root", "-D", s.dump}, extra...)
	args = append(args, s.addr, "64")
	start(t, bin, args...)
	waitListening(t, s.addr)
	return s
}

// messages returns the message texts in the dump, without smtp-sink's own
// header lines (X-Client-*, X-*-Args and its three-line Received).
func (s *sink) messages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(s.dump)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, m := range strings.Split(string(b), "X-Client-Addr: ")[1:] {
		// The Received header smtp-sink adds is three lines; the
		// message starts after it.
		i := strings.Index(m, "Received: from ")
		if i < 0 {
			t.Fatalf("dump without Received: %q", m)
		}
		rest := m[i:]
		for k := 0; k < 3; k++ {
			rest = rest[strings.IndexByte(rest, '\n')+1:]
		}
		// smtp-sink appends one empty line after each message.
		msgs = append(msgs, strings.TrimSuffix(rest, "\n"))
	}
	return msgs
}

// daemon is a running `spamsurge serve`.
type daemon struct {
	*proc
	smtp, http string
	dir        string // holds the config, the store and its key
}

// conf adds lines to the daemon's config sections.
type conf struct {
	smtp, downstream, top string // indented YAML lines for smtp:, downstream:, and top-level
}

func startDaemon(t *testing.T, downstream string, c conf) *daemon {
	t.Helper()
	d := &daemon{smtp: freePort(t), http: freePort(t)}
	dir := t.TempDir()
	d.dir = dir
	cfg := fmt.Sprintf(`smtp:
  listen: %s
  hostname: proxy.test
%s
downstream:
  address: %s
%s
http:
  listen: %s
store:
  path: %s
%s
`, d.smtp, c.smtp, downstream, c.downstream, d.http, filepath.Join(dir, "data"), c.top)
	path := filepath.Join(dir, "spamsurge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.proc = start(t, binary, "serve", "--config", path, "--log-level", "debug")
	waitListening(t, d.smtp)
	waitListening(t, d.http)
	return d
}

// metric returns the value of one exposition line, e.g.
// `spamsurge_messages_total{result="relayed"}`.
func (d *daemon) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscanf(line[len(series)+1:], "%g", &v)
			return v
		}
	}
	t.Fatalf("series %s not exported", series)
	return 0
}

// swaks runs swaks against addr and returns its transcript.
func swaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	bin := need(t, "swaks", "/usr/bin/swaks")
	host, port, _ := net.SplitHostPort(addr)
	all := append([]string{"--server", host, "--port", port, "--helo", "client.test", "--timeout", "20"}, args...)
	cmd := exec.Command(bin, all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var _ = io.Discard
