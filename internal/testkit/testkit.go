// Package testkit holds what the tests that run real programs share (e2e,
// deploy, and the in-process daemon tests of daemon and cmd/spamsurge):
// tools looked up the CI way, free loopback ports, log captures and the
// daemon built once. Only tests and the bench programs import it.
package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Need returns the path of a tool, trying paths and then name on $PATH.
// Without it the test is skipped with a loud message on a laptop and fails
// when CI=true (CI installs every tool). install names the packages that
// provide it, for the message.
func Need(t testing.TB, install, name string, paths ...string) string {
	t.Helper()
	for _, p := range append(paths, name) {
		if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	msg := fmt.Sprintf("\n\n*** %s NOT FOUND: this test needs the real tool (apt-get install %s). ***\n", name, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a loopback address nothing listens on right now.
func FreePort(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreeAddr is FreePort for programs (bench/soak): the error is returned.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitListening waits up to 10 s until addr accepts connections.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	if err := WaitAddr(addr); err != nil {
		t.Fatal(err)
	}
}

// WaitRspamd waits until rspamd's worker at addr accepts connections:
// up to 2 minutes, for on its first start on a machine rspamd compiles
// its regular expressions into /var/lib/rspamd (15 s on a 2-core
// machine, seconds more under load), and later starts take a second.
func WaitRspamd(t testing.TB, addr string) {
	t.Helper()
	if err := waitAddr(addr, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// WaitAddr is WaitListening for programs: the error is returned.
func WaitAddr(addr string) error { return waitAddr(addr, 10*time.Second) }

func waitAddr(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer is a goroutine-safe log capture (a process's stdout and
// stderr write to it while the test reads it).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BuildDaemon builds cmd/spamsurge into a new temporary directory and
// returns the binary's path; remove its directory when done.
func BuildDaemon() (string, error) {
	dir, err := os.MkdirTemp("", "spamsurge-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "spamsurge")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/spamsurge/spamsurge/cmd/spamsurge").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// WriteFile writes content to dir/name (mode 0600) and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// LogWaiter is a logger whose messages a test can wait for without
// polling: every entry is also sent on a channel.
type LogWaiter struct {
	Log *zap.Logger
	Obs *observer.ObservedLogs
	// Done, when set, is the daemon's exit: waiting ends if it stops.
	Done chan error

	msgs chan string
}

// NewLogWaiter returns a LogWaiter that records every level.
func NewLogWaiter() *LogWaiter {
	w := &LogWaiter{msgs: make(chan string, 1000)}
	core, obs := observer.New(zapcore.DebugLevel)
	w.Obs = obs
	w.Log = zap.New(zapcore.RegisterHooks(core, func(e zapcore.Entry) error {
		select {
		case w.msgs <- e.Message:
		default:
		}
		return nil
	}))
	return w
}

// Wait waits up to 20 s for msg among the messages no earlier Wait has
// passed over.
func (w *LogWaiter) Wait(t testing.TB, msg string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-w.msgs:
			if m == msg {
				return
			}
		case err := <-w.Done:
			w.Done <- err // for the test's own cleanup
			t.Fatalf("the daemon stopped (%v) before %q was logged; log: %v", err, msg, w.Obs.All())
		case <-deadline:
			t.Fatalf("no %q logged; log: %v", msg, w.Obs.All())
		}
	}
}
