package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config `file` (default: built-in defaults)")
	lf := addLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spamsurge serve [--config FILE] [--log-format console|json] [--log-level LEVEL]\n\nRuns the SMTP/LMTP proxy, the detector and the HTTP endpoints until SIGTERM/SIGINT.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge: %v\n", err)
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "spamsurge: %v\n", err)
		return 2
	}
	defer log.Sync()
	reload, stop := notifyReload()
	defer stop()
	if err := daemon.Run(ctx, daemon.Options{Config: cfg, Logger: log, Reload: reload}); err != nil {
		log.Error("stopped", zap.Error(err))
		return 1
	}
	return 0
}

// notifyReload turns SIGHUP into daemon.Options.Reload until stop is
// called. SIGHUP is caught from the moment it returns, lists or not, so it
// never kills the daemon; SIGHUPs that come while a reload is pending
// make no second one (as signal.Notify drops them into a full channel).
func notifyReload() (reload <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-hup:
				select {
				case out <- struct{}{}:
				default: // one is pending already
				}
			}
		}
	}()
	return out, func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}
