package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/detector"
)

// openLists loads attribution.tags and attribution.canaries (nil when none
// are configured). A missing or unreadable file is an error: the operator
// asked for the list, so the daemon does not start without it.
func openLists(cfg config.Config, reg prometheus.Registerer, log *zap.Logger) (*attribution.Set, error) {
	a := cfg.Attribution
	if len(a.Tags) == 0 && len(a.Canaries) == 0 {
		return nil, nil
	}
	key, err := addr.LoadKey(detector.KeyFile(cfg))
	if err != nil {
		return nil, err
	}
	return attribution.New(attribution.Options{Config: attribution.ConfigFrom(cfg, key), Registerer: reg, Logger: log})
}

// watchHUP reloads the lists on every SIGHUP until the returned stop is
// called (the old lists stay in use when a reload fails; Reload logs and
// counts that). SIGHUP is caught from the moment it returns, even without
// lists, so it never kills the daemon.
func watchHUP(lists *attribution.Set, log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reloadOn(ctx, hup, lists, log)
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

func reloadOn(ctx context.Context, hup <-chan os.Signal, lists *attribution.Set, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if lists == nil {
				log.Info("SIGHUP: no attribution lists configured, nothing to reload")
				continue
			}
			if lists.Reload() == nil {
				log.Info("SIGHUP: attribution lists reloaded")
			}
		}
	}
}
