package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/daemon"
)

func serveCommand() command {
	var (
		cf *configFlag
		lf *logFlags
	)
	return command{
		name:    "serve",
		summary: "run the proxy, the detector and the HTTP endpoints",
		args:    "[--config FILE] [--log-format console|json] [--log-level LEVEL]",
		help:    "Runs the SMTP/LMTP proxy, the detector and the HTTP endpoints until SIGTERM/SIGINT.\nSIGHUP reloads the attribution lists.",
		flags: func(fs *flag.FlagSet) {
			cf = addConfigFlag(fs)
			lf = addLogFlags(fs, "info")
		},
		run: func(ctx context.Context, e *env) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			log, err := lf.logger(e.stderr)
			if err != nil {
				return err
			}
			defer log.Sync()
			reload, stop := notifyReload()
			defer stop()
			if err := daemon.Run(ctx, daemon.Options{Config: cfg, ConfigPath: absPath(cf.path), Logger: log, Reload: reload}); err != nil {
				// Said in the log, where an operator of the daemon looks.
				log.Error("stopped", zap.Error(err))
				return exitStatus(1)
			}
			return nil
		},
	}
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

// absPath is p made absolute, for the commands the incident pages print
// ("" stays "").
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
