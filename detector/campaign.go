package detector

import (
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
)

// group is one campaign's (sender domain, client network) spam to known
// addresses in an hour: recipients, first spams, first spams counted.
type group struct {
	n, fs, counted int
}

// novel reports whether a campaign's share of first spams among its known
// recipients marks it as working from a new list (a leak), with a prior of
// 10 recipients so that a campaign's first few messages do not decide.
func novel(cur, prev *group) bool {
	n, fs := 10, 0
	for _, g := range []*group{cur, prev} {
		if g != nil {
			n += g.n
			fs += g.fs
		}
	}
	return float64(fs) >= noveltyShare*float64(n)
}

const (
	noveltyShare = 0.2
	// perCampaign is how many first spams per hour an ordinary campaign
	// (one that is not novel) feeds into the statistics. Spam campaigns
	// sweep whole lists, so first spams come in clusters; counting every
	// one makes the counts overdispersed and the Poisson tests cry wolf.
	perCampaign = 3
)

type newRcpt struct {
	t  time.Time
	id addr.ID
}

// msgInfo is newMsgInfo with the campaign keys of the last spam
// remembered: a campaign sends many messages in a row, and newMsgInfo's
// keys (sender domain, client network, their dictionary key) are pure
// functions of From and ClientIP whose parsing and formatting allocate on
// every spam otherwise. The subject and Message-ID are the message's own.
func (d *Detector) msgInfo(o *ingest.Observation) *msgInfo {
	c := &d.lastCampaign
	if !c.ok || c.from != o.From || c.ip != o.ClientIP {
		mi := newMsgInfo(o)
		*c = campaignMemo{ok: true, from: o.From, ip: o.ClientIP, tmpl: *mi}
		return mi
	}
	mi := new(msgInfo)
	*mi = c.tmpl
	mi.subject, mi.msgID = o.Subject, o.MessageID
	return mi
}

type campaignMemo struct {
	ok       bool
	from, ip string
	tmpl     msgInfo // as newMsgInfo returned it
}

func (d *Detector) dictEvidence(t time.Time, mi *msgInfo, n int) {
	d.m.dictionary.Add(float64(n))
	d.dictGroups[mi.dictKey] += float64(n)
	d.hrDict += float64(n)
	d.win.cur().d += float64(n)
	if d.st.Warm || d.open[KindDictionary] != nil {
		if in := d.open[KindDictionary]; in != nil {
			in.DictionaryEvidence += n
			if in.Trigger == TriggerDictionaryBurst {
				in.Observed += float64(n)
			}
		}
		return
	}
	c := d.win.sum(shortWindow).d
	e := d.st.DictRate * shortWindow / 60
	if c < d.o.DictMin || c < 10*e {
		return
	}
	in := d.newIncident(KindDictionary, TriggerDictionaryBurst, t)
	in.StartedAt = t.Add(-shortWindow * time.Minute)
	in.Observed, in.Expected = c, e
	in.Score = c / math.Max(d.o.DictMin, 10*e)
	in.DictionaryEvidence = int(c)
	cut := t.Add(-shortWindow * time.Minute)
	for _, r := range d.recentNew {
		if !r.t.Before(cut) {
			if in.StartedAt.After(r.t) || in.Recipients == 0 {
				in.StartedAt = r.t
			}
			in.add(r.id, mi, false)
		}
	}
	d.open[KindDictionary] = in
	d.lastUpd[KindDictionary] = t
	d.announce(in, t, zap.String("trigger", in.Trigger), zap.Float64("evidence", c))
}
