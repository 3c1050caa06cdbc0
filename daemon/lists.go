package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
)

// openLists loads attribution.tags and attribution.canaries (nil when none
// are configured). A missing or unreadable file is an error: the operator
// asked for the list, so the daemon does not start without it.
func openLists(cfg config.Config, reg prometheus.Registerer, log *zap.Logger) (*attribution.Set, error) {
	a := cfg.Attribution
	if len(a.Tags) == 0 && len(a.Canaries) == 0 {
		return nil, nil
	}
	o, err := listsOptions(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	return attribution.New(o)
}

// reloadOn reloads the lists on every receive from reload until the
// returned stop is called (the old lists stay in use when a reload fails;
// Reload logs and counts that). A reload asked for without lists is
// logged and ignored.
func reloadOn(reload <-chan struct{}, lists *attribution.Set, log *zap.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reloadLoop(ctx, reload, lists, log)
	}()
	return func() {
		cancel()
		<-done
	}
}

// The messages name SIGHUP: in the real daemon that is what sends on
// reload, and operators know the reload by it.
func reloadLoop(ctx context.Context, reload <-chan struct{}, lists *attribution.Set, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-reload:
			if !ok {
				reload = nil // closed: no more reloads, and no busy loop
				continue
			}
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
