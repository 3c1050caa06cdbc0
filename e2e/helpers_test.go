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
	"syscall"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	var err error
	if binary, err = testkit.BuildDaemon(); err != nil {
		fmt.Fprintf(os.Stderr, "building spamsurge: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(filepath.Dir(binary))
	os.Exit(code)
}

// need returns the path of a tool (testkit.Need: fails without it in CI).
func need(t *testing.T, name string, paths ...string) string {
	t.Helper()
	return testkit.Need(t, "postfix swaks prometheus prometheus-alertmanager", name, paths...)
}

type proc struct {
	cmd *exec.Cmd
	out *testkit.SyncBuffer
}

// start runs a command until the test ends.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &testkit.SyncBuffer{}}
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
	s := &sink{addr: testkit.FreePort(t), dump: filepath.Join(t.TempDir(), "dump")}
	args := append([]string{"-u", "root", "-D", s.dump}, extra...)
	args = append(args, s.addr, "64")
	start(t, bin, args...)
	testkit.WaitListening(t, s.addr)
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

// delivered waits (30 s at most) for the sink's first message from a
// queueing MTA, then a moment more for a duplicate, which would follow
// closely, and returns the messages.
func (s *sink) delivered(t *testing.T) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.messages(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message did not arrive at the sink within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	return s.messages(t)
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
	d := &daemon{smtp: testkit.FreePort(t), http: testkit.FreePort(t)}
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
	testkit.WaitListening(t, d.smtp)
	testkit.WaitListening(t, d.http)
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
