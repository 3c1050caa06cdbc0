package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// proc is a child process in a process group of its own, so that stopping
// it stops everything it started; the kernel kills it too if the soak dies
// (Pdeathsig).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(logPath string, name string, args ...string) (*proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// signal sends sig to the whole process group.
func (p *proc) signal(sig syscall.Signal) { syscall.Kill(-p.cmd.Process.Pid, sig) }

// kill stops the group at once and waits for the process.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the group to end with SIGTERM, and kills it after grace.
// It returns the process's exit error (nil for a clean exit) or a note
// that it had to be killed.
func (p *proc) stop(grace time.Duration) error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("still running %v after SIGTERM: killed", grace)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// daemon is one running `spamsurge serve`.
type daemon struct {
	*proc
	smtp, http string
	log        string
}

func startDaemon(bin, dir, nextHop string, lmtp bool) (*daemon, error) {
	d := &daemon{log: filepath.Join(dir, "spamsurge.log")}
	var err error
	if d.smtp, err = testkit.FreeAddr(); err != nil {
		return nil, err
	}
	if d.http, err = testkit.FreeAddr(); err != nil {
		return nil, err
	}
	proto := "smtp"
	if lmtp {
		proto = "lmtp"
	}
	cfg := fmt.Sprintf(`smtp:
  listen: %s
  protocol: %s
  hostname: proxy.soak.test
downstream:
  address: %s
  protocol: %s
http:
  listen: %s
store:
  path: %s
`, d.smtp, proto, nextHop, proto, d.http, filepath.Join(dir, "data"))
	path := filepath.Join(dir, "spamsurge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if d.proc, err = startProc(d.log, bin, "serve", "--config", path, "--log-level", "info"); err != nil {
		return nil, err
	}
	for _, a := range []string{d.smtp, d.http} {
		if err := testkit.WaitAddr(a); err != nil {
			d.kill()
			return nil, fmt.Errorf("spamsurge: %w (log %s)", err, d.log)
		}
	}
	return d, nil
}

// sinkMode is how a next hop behaves between two restarts: smtp-sink's
// options. None of them refuses the final dot: smtp-sink writes the
// message before it answers the dot, so a refused dot would leave a
// message at the sink that was rightly never acknowledged, and the check
// could not tell that from a loss.
type sinkMode struct {
	name string
	args []string
}

var sinkModes = []sinkMode{
	{"4xx at RCPT", []string{"-r", "rcpt"}},
	{"5xx at MAIL", []string{"-f", "mail"}},
	{"421 at DATA", []string{"-Q", "data"}},
	{"drop at RCPT", []string{"-q", "rcpt"}},
	{"slow MAIL and DATA", []string{"-W", "mail:1:50", "-W", "data:2:50"}},
}

// sink is a lane's next hop, smtp-sink writing every message to its own
// file in dir (-d), restarted from time to time while traffic flows.
type sink struct {
	bin, addr, dir, logPath string
	lmtp                    bool

	mu       sync.Mutex
	p        *proc
	kills    []time.Time
	modes    map[string]int // epochs per mode
	partials int            // unfinished dumps a kill left behind
}

func newSink(bin, dir string, lmtp bool) (*sink, error) {
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &sink{bin: bin, addr: addr, dir: filepath.Join(dir, "dump"), logPath: filepath.Join(dir, "smtp-sink.log"), lmtp: lmtp, modes: map[string]int{}}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sink) start(m sinkMode) error {
	args := []string{"-d", filepath.Join(s.dir, "m."), "-m", "512", "-t", "120"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // smtp-sink refuses to run as root without -u
	}
	if s.lmtp {
		args = append(args, "-L")
	}
	args = append(args, m.args...)
	args = append(args, s.addr, "256")
	var err error
	// The port was just freed by the killed sink: retry while the
	// kernel still holds it.
	for try := 0; try < 50; try++ {
		var p *proc
		if p, err = startProc(s.logPath, s.bin, args...); err != nil {
			return err
		}
		if err = testkit.WaitAddr(s.addr); err == nil && !p.exited() {
			s.mu.Lock()
			s.p = p
			s.modes[m.name]++
			s.mu.Unlock()
			return nil
		}
		p.kill()
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("smtp-sink would not start on %s: %v (log %s)", s.addr, err, s.logPath)
}

// kill stops the sink as a crash would (SIGKILL), and removes the dumps of
// the transactions it had in flight: they were never answered.
func (s *sink) kill(h *harvester) { s.halt(h, true) }

// stop kills the sink for good, after the drain.
func (s *sink) stop(h *harvester) { s.halt(h, false) }

func (s *sink) halt(h *harvester, crash bool) {
	s.mu.Lock()
	p := s.p
	s.p = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.kill()
	if crash {
		s.mu.Lock()
		s.kills = append(s.kills, time.Now())
		s.mu.Unlock()
	}
	n := h.scan(true)
	s.mu.Lock()
	s.partials += n
	s.mu.Unlock()
}

// restarts kills and restarts the sink until ctx ends: up for upMin..upMax
// in the normal mode, a quarter of that in one of the failing modes (a
// third of the epochs), down for up to 2 s in between. It starts from the running normal sink. While the gate is
// closed (an idle check) nothing restarts. It leaves a normal sink
// running, for the drain at the end.
func (s *sink) restarts(ctx context.Context, g *gate, h *harvester, upMin, upMax time.Duration, r *rand.Rand) error {
	normal := sinkMode{name: "normal"}
	mode := normal // started by Run
	for {
		up := upMin + time.Duration(r.Int64N(int64(upMax-upMin)+1))
		if mode.name != "normal" {
			up /= 4
		}
		select {
		case <-ctx.Done():
		case <-time.After(up):
		}
		g.wait(ctx) // no restart during an idle check
		if ctx.Err() != nil && mode.name == "normal" {
			return nil
		}
		s.kill(h)
		if ctx.Err() == nil {
			time.Sleep(time.Duration(r.Int64N(int64(2 * time.Second))))
		}
		mode = normal
		if ctx.Err() == nil && r.IntN(3) == 0 {
			mode = sinkModes[r.IntN(len(sinkModes))]
		}
		if err := s.start(mode); err != nil {
			return err
		}
	}
}

// killedWithin tells whether the sink was killed at most d before t.
func (s *sink) killedWithin(t time.Time, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.kills {
		if !t.Before(k) && t.Sub(k) <= d {
			return true
		}
	}
	return false
}
