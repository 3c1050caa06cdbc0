// Command soak runs mixed SMTP and LMTP traffic through the real spamsurge
// binary for a set time, with Postfix's smtp-sink as the next hop, and
// checks that nothing grows and no mail is lost or duplicated.
//
// Two lanes run side by side: spamsurge in SMTP mode in front of smtp-sink,
// and spamsurge in LMTP mode in front of smtp-sink -L. Clients send 1 KB to
// 10 MB messages to 1–50 recipients, pipelined or not; some read replies
// slowly, some drop the connection mid-DATA, some leave without QUIT. Each
// next hop is killed and restarted while traffic flows, sometimes into a
// mode that refuses or delays a stage. Every transaction's outcome is
// recorded by its client; every message carries a unique Message-ID and a
// trailer with its length and CRC, and smtp-sink writes each message it
// takes to a file (-d) that the soak reads and deletes as it goes.
//
// At the end: every message acknowledged with 250 is at its next hop
// exactly once and intact; none is there twice; one at the next hop
// without a 250 is allowed only just after a kill of it (smtp-sink writes
// the message before it answers the dot); spamsurge's relayed counter
// equals the clients' 250s; the goroutines, heap, RSS and open files that
// the daemons export have no growth trend under load, and goroutines and
// fds come back to the idle baseline at every pause and at the end.
//
// bench/README.md ("Soak") has the figures of a one-hour run and the
// reasons for the limits. Exit status: 0 pass, 1 fail, 2 the run could not
// be made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

func main() { os.Exit(run()) }

func run() int {
	var cfg Config
	var out, keep string
	flag.DurationVar(&cfg.Duration, "duration", time.Hour, "how long traffic flows")
	flag.DurationVar(&cfg.Interval, "interval", time.Minute, "time between samples of the daemons' metrics")
	flag.DurationVar(&cfg.Warmup, "warmup", 0, "samples before this are left out of the trends (default duration/6)")
	flag.DurationVar(&cfg.IdleEvery, "idle-every", 10*time.Minute, "pause the traffic this often to check the daemons come back to their idle baseline")
	flag.IntVar(&cfg.Clients, "clients", 6, "concurrent client connections per lane")
	flag.Float64Var(&cfg.Rate, "rate", 5, "transactions per second per lane, at most")
	flag.DurationVar(&cfg.SinkUpMin, "sink-up-min", 30*time.Second, "shortest time a next hop runs between two kills")
	flag.DurationVar(&cfg.SinkUpMax, "sink-up-max", 90*time.Second, "longest time a next hop runs between two kills")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "random seed (default: from the clock; printed)")
	bin := flag.String("binary", "", "spamsurge binary (default: build ./cmd/spamsurge)")
	sinkBin := flag.String("smtp-sink", "", "smtp-sink (default: /usr/sbin/smtp-sink or $PATH)")
	flag.StringVar(&out, "out", "", "write every sample to this file: CSV, or a markdown table when it ends in .md")
	flag.StringVar(&keep, "dir", "", "work directory, kept afterwards (default: a temporary one, removed)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Binary = *bin
	if cfg.Binary == "" {
		b, err := testkit.BuildDaemon()
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
		defer os.RemoveAll(filepath.Dir(b))
		cfg.Binary = b
	}
	cfg.SinkBin = *sinkBin
	if cfg.SinkBin == "" {
		for _, p := range []string{"/usr/sbin/smtp-sink", "smtp-sink"} {
			if found, err := exec.LookPath(p); err == nil {
				cfg.SinkBin = found
				break
			}
		}
		if cfg.SinkBin == "" {
			fmt.Fprintln(os.Stderr, "soak: smtp-sink not found (apt-get install postfix)")
			return 2
		}
	}
	cfg.Dir = keep
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "spamsurge-soak")
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	cfg.Progress = os.Stderr

	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	fmt.Print(res.Report)
	if out != "" {
		f, err := os.Create(out)
		if err == nil {
			writeSamples(f, res.Samples, strings.HasSuffix(out, ".md"))
			err = f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
	}
	if len(res.Failures) > 0 {
		fmt.Fprintf(os.Stderr, "soak: FAIL (%d problems)\n", len(res.Failures))
		return 1
	}
	fmt.Fprintln(os.Stderr, "soak: PASS")
	return 0
}
