package detector

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/attribution"
)

// Profile says what kind of list a surge's addresses come from, next to
// its source tags: how many are dead accounts (an old backup is full of
// them), which recipient domains it concentrates in, and how many at-risk
// addresses share its profile: the candidates to notify, not only those
// hit so far.
type Profile struct {
	// DormantShare and LongDormantShare: recipients without mail for
	// detector.dormant, and for six times that, before their first spam.
	DormantShare     float64 `json:"dormant_share"`
	LongDormantShare float64 `json:"long_dormant_share"`
	// Domains are the recipient domains the incident draws from more than
	// the population does (lift at least 1.25, the binomial tail below
	// 10⁻³), most significant first, at most five; empty when it draws
	// from all alike or domains are not kept (detector.per_domain off).
	Domains []DomainLift `json:"domains,omitempty"`
	// Candidates is the estimated number of at-risk addresses that share
	// the profile.
	Candidates *Candidates `json:"candidates,omitempty"`
}

// DomainLift is one recipient domain's share of an incident against its
// share of the at-risk population.
type DomainLift struct {
	Domain          string  `json:"domain"`
	InIncident      int     `json:"in_incident"`
	Share           float64 `json:"share"`
	PopulationShare float64 `json:"population_share"`
	Lift            float64 `json:"lift"`
	Score           float64 `json:"score"`
}

// Candidates estimates the at-risk addresses (the incident's own included,
// as they were before their first spam) that share the incident's
// profile: in its top source list, of its domains, first mailed before
// the list was copied. Low and High follow the copy interval (addresses
// first mailed before its start, and before its end); without a dated
// list they are the estimate. Basis says which restrictions made it.
type Candidates struct {
	Estimate int    `json:"estimate"`
	Low      int    `json:"low"`
	High     int    `json:"high"`
	Basis    string `json:"basis"`
}

// profileAdd counts a first spam into the profile's tallies.
func (in *Incident) profileAdd(f *fsEvent) {
	if f.long {
		in.longDormant++
	}
	if f.domName != "" {
		if in.domHits == nil {
			in.domHits = map[string]int{}
		}
		in.domHits[f.domName]++
	}
}

// restoreProfile rebuilds the tallies of an incident loaded from the store
// from its profile (the domains beyond its top ones are lost).
func (in *Incident) restoreProfile() {
	p := in.Profile
	if p == nil {
		return
	}
	in.longDormant = int(p.LongDormantShare*float64(in.Recipients) + 0.5)
	in.domHits = map[string]int{}
	for _, dl := range p.Domains {
		in.domHits[dl.Domain] = dl.InIncident
	}
}

// profile computes in's profile (annotate calls it when its recipients
// changed): the shares each time, the domains and candidates (a pass
// over the first-seen histogram) when full, as the list was just dated.
func (d *Detector) profile(in *Incident, full bool) {
	if in.Kind != KindSurge || in.Recipients == 0 {
		return
	}
	n := in.Recipients
	p := &Profile{DormantShare: in.DormantShare, LongDormantShare: float64(in.longDormant) / float64(n)}
	if !full && in.Profile != nil {
		p.Domains, p.Candidates = in.Profile.Domains, in.Profile.Candidates
		in.Profile = p
		return
	}
	pop := d.pop.AtRisk() + n // the population before these first spams
	if d.pop.Domains() > 1 && len(in.domHits) > 0 {
		var cs []attribution.Count
		for name, c := range in.domHits {
			id, ok := d.pop.DomainID(name)
			if !ok {
				continue
			}
			cs = append(cs, attribution.Count{Tag: name, InIncident: c, Population: d.pop.DomainRisk(id) + c})
		}
		rows, _ := attribution.Rank(n, pop, cs, attribution.DefaultGuards)
		g := attribution.DefaultGuards
		for _, r := range rows {
			if r.InIncident >= g.MinCount && r.Lift >= g.MinLift && r.Score >= g.MinScore+math.Log10(float64(len(rows))) {
				p.Domains = append(p.Domains, DomainLift{Domain: r.Tag, InIncident: r.InIncident, Share: r.Share,
					PopulationShare: r.PopulationShare, Lift: r.Lift, Score: r.Score})
			}
		}
		sort.SliceStable(p.Domains, func(i, j int) bool { return p.Domains[i].Score > p.Domains[j].Score })
		if len(p.Domains) > topGroups {
			p.Domains = p.Domains[:topGroups]
		}
	}
	p.Candidates = d.candidates(in, p, pop)
	in.Profile = p
}

// candidates estimates the at-risk addresses of in's profile: the
// population before the incident, times the top tag's share of it, times
// its domains' share (taken as independent of the tag), times the share
// first mailed before the copy.
func (d *Detector) candidates(in *Incident, p *Profile, pop int) *Candidates {
	seg := float64(pop)
	var basis []string
	if in.TopTag != "" && in.TopTag != attribution.Untagged {
		for _, t := range in.Tags {
			if t.Tag == in.TopTag {
				seg *= t.PopulationShare
				basis = append(basis, "in source list "+t.Tag)
			}
		}
	}
	if len(p.Domains) > 0 {
		share := 0.0
		var names []string
		for _, dl := range p.Domains {
			share += dl.PopulationShare
			names = append(names, dl.Domain)
		}
		seg *= math.Min(share, 1)
		basis = append(basis, "of "+strings.Join(names, ", "))
	}
	c := &Candidates{}
	if s := in.ListSnapshot; s != nil {
		lo, hi := d.firstMailedBefore(in, s.NotBefore), d.firstMailedBefore(in, s.NotAfter)
		c.Low, c.High = int(seg*lo+0.5), int(seg*hi+0.5)
		c.Estimate = int(seg*(lo+hi)/2 + 0.5)
		basis = append(basis, "first mailed before the copy ("+s.NotBefore.UTC().Format(time.DateOnly)+" to "+s.NotAfter.UTC().Format(time.DateOnly)+")")
	} else {
		c.Estimate = int(seg + 0.5)
		c.Low, c.High = c.Estimate, c.Estimate
	}
	if len(basis) == 0 {
		c.Basis = "the whole at-risk population: no narrower profile stands out"
	} else {
		c.Basis = "at-risk addresses " + strings.Join(basis, ", ")
	}
	return c
}

// firstMailedBefore is the share of the population before in (the at-risk
// addresses and in's own) first mailed before t.
func (d *Detector) firstMailedBefore(in *Incident, t time.Time) float64 {
	b, a := d.pop.RiskBefore(t.Unix()/3600 + d.matureLag()) // as maturation hours
	before, all := float64(b), float64(a)
	tu := t.Unix() / 3600
	for h, n := range in.HitsFirstSeen {
		all += float64(n)
		if h < tu {
			before += float64(n)
		}
	}
	if all == 0 {
		return 1
	}
	return before / all
}

func (c *Candidates) String() string {
	if c.Low == c.High {
		return fmt.Sprintf("about %d (%s)", c.Estimate, c.Basis)
	}
	return fmt.Sprintf("about %d, %d to %d (%s)", c.Estimate, c.Low, c.High, c.Basis)
}
