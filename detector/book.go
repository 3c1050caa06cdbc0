package detector

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// The incidents' one life cycle, whatever their kind (surge, dictionary,
// canary) and whatever test opened them: newIncident, announce, updates,
// retire.

// newIncident starts an incident of kind, opened by trigger at t, with the
// next id of the sequence. The caller fills in its evidence, files it
// (open or canaries) and announces it.
func (d *Detector) newIncident(kind, trigger string, t time.Time) *Incident {
	d.st.Seq++
	return &Incident{
		ID:        fmt.Sprintf("%s-%s-%d", t.Format("20060102T150405Z"), kind, d.st.Seq),
		Kind:      kind,
		State:     StateOpen,
		StartedAt: t,
		OpenedAt:  t,
		UpdatedAt: t,
		Trigger:   trigger,
	}
}

// announce makes an incident just filed known: metrics, the log (with the
// kind's own fields), and the opened event.
func (d *Detector) announce(in *Incident, t time.Time, fields ...zap.Field) {
	d.m.active.WithLabelValues(in.Kind).Set(1)
	d.m.incidents.WithLabelValues(in.Kind).Inc()
	d.dirtyMeta = true
	d.log.Warn("incident opened", append([]zap.Field{zap.String("id", in.ID), zap.String("kind", in.Kind)}, fields...)...)
	d.out = append(d.out, in.snapshot(EventOpened, t))
}

// retire resolves an incident the caller took out of its file: it joins
// the recently resolved (the last keepResolved), and the resolved event
// goes out.
func (d *Detector) retire(in *Incident, t time.Time) {
	at := t
	in.State, in.ResolvedAt, in.UpdatedAt = StateResolved, &at, t
	d.resolved = append(d.resolved, in)
	if len(d.resolved) > keepResolved {
		d.resolved = d.resolved[len(d.resolved)-keepResolved:]
	}
	d.dirtyMeta = true
	d.log.Info("incident resolved", zap.String("id", in.ID), zap.String("kind", in.Kind), zap.Int("recipients", in.Recipients))
	d.out = append(d.out, in.snapshot(EventResolved, t))
}
