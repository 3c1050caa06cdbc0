package detector

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spamsurge/spamsurge/forensics"
	"github.com/spamsurge/spamsurge/recipients"
)

// Forensics is what a surge incident says about its list beyond the
// source tags: when it was copied (package forensics), and the evidence
// that dates it.
type Forensics struct {
	// ListSnapshot is when the list was copied: a 95 % interval, or
	// null, and then ListSnapshotReason says why.
	ListSnapshot       *forensics.Snapshot `json:"list_snapshot"`
	ListSnapshotReason string              `json:"list_snapshot_reason,omitempty"`
	// HitsFirstSeen and HitsAt count the incident's first spams by the
	// hour of the address's first mail and by the hour of the first
	// spam: [[hour since the Unix epoch, count], ...], oldest first.
	HitsFirstSeen HourCounts `json:"hits_first_seen,omitempty"`
	HitsAt        HourCounts `json:"hits_at,omitempty"`

	datedAt int // Recipients when last dated (0: never, or not since a restart)
}

// HourCounts counts by hour (hours since the Unix epoch).
type HourCounts map[int64]int

// MarshalJSON writes [[hour, count], ...] in hour order.
func (h HourCounts) MarshalJSON() ([]byte, error) {
	ks := make([]int64, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	out := make([][2]int64, len(ks))
	for i, k := range ks {
		out[i] = [2]int64{k, int64(h[k])}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *HourCounts) UnmarshalJSON(b []byte) error {
	var pairs [][2]int64
	if err := json.Unmarshal(b, &pairs); err != nil {
		return fmt.Errorf("hour counts: %w", err)
	}
	*h = make(HourCounts, len(pairs))
	for _, p := range pairs {
		(*h)[p[0]] += int(p[1])
	}
	return nil
}

// addFS adds a first spam to the incident: its recipient, campaign and,
// for dating, its first-mail and spam hours.
func (in *Incident) addFS(f *fsEvent) {
	in.add(f.id, f.mi, f.dormant)
	in.profileAdd(f)
	if f.seenHr == 0 {
		return
	}
	if in.HitsFirstSeen == nil {
		in.HitsFirstSeen, in.HitsAt = HourCounts{}, HourCounts{}
	}
	in.HitsFirstSeen[f.seenHr]++
	in.HitsAt[f.t.Unix()/3600]++
}

// seenHour is the hour of a first mail (minutes since the epoch; 0:
// not known) as the first-seen accounting counts it: from the hour the
// address matured, which a shared store's tally knows (not the minute),
// so that every instance of a fleet and a detector with its own
// recipients say the same.
func (d *Detector) seenHour(firstMail uint32) int64 {
	if firstMail == 0 {
		return 0
	}
	return d.pop.MatureHour(firstMail) - d.matureLag()
}

// matureLag is the hours from a first mail's hour (as seenHour has it) to
// the hour the address matures: the warm-up's hours and one, for a first
// mail not on the hour.
func (d *Detector) matureLag() int64 {
	return int64((d.pop.Warmup()+time.Hour-1)/time.Hour) + 1
}

// date brings in's list snapshot up to date (annotate calls it when its
// recipients changed): once it grew by a tenth since it was last dated (a
// dating costs milliseconds; one a first spam would slow a replay down
// twentyfold). It reports whether it did, and the profile follows it.
func (d *Detector) date(in *Incident) bool {
	if in.Kind != KindSurge {
		return false
	}
	if in.datedAt > 0 && in.Recipients < in.datedAt+max(1, in.datedAt/10) {
		return false
	}
	in.datedAt = in.Recipients
	if len(in.HitsFirstSeen) == 0 {
		in.ListSnapshot, in.ListSnapshotReason = nil, "no first-mail times recorded for its first spams"
		return true
	}
	seen, risk := d.pop.FirstSeen()
	// The at-risk histogram is by maturation hour: back to the hour of
	// the first mail, as seenHour.
	ev := forensics.Evidence{
		Seen:          forensics.Hours{From: seen.From, N: seen.N},
		Risk:          forensics.Hours{From: risk.From - d.matureLag(), N: risk.N},
		Warmup:        d.pop.Warmup(),
		HitsFirstMail: in.HitsFirstSeen,
		HitsAt:        in.HitsAt,
	}
	in.ListSnapshot, in.ListSnapshotReason = forensics.Date(ev)
	return true
}

// ListSnapshotText says when the list was copied, or why that is not
// known ("" for an incident that is not a surge).
func (f *Forensics) ListSnapshotText() string {
	switch {
	case f.ListSnapshot != nil:
		return f.ListSnapshot.String()
	case f.ListSnapshotReason != "":
		return "not dated: " + f.ListSnapshotReason
	}
	return ""
}

// FirstSeenCurve is the population's first-seen curve by day (UTC), as
// of the detector's last hour: what a list's dating is read against.
type FirstSeenCurve struct {
	From time.Time // the first day
	// AtRisk counts the at-risk addresses first mailed on each day, Seen
	// every tracked address whose first message (not spam) came that day.
	AtRisk, Seen []int
}

// FirstSeen is the curve as of the last hour the detector's clock passed
// (nil before the first). Safe to call from any goroutine.
func (d *Detector) FirstSeen() *FirstSeenCurve { return d.curve.Load() }

// publishCurve refreshes what FirstSeen returns (hourly: a pass over the
// hour histograms, a few thousand counters a year of history).
func (d *Detector) publishCurve() {
	seen, risk := d.pop.FirstSeen()
	risk.From -= d.matureLag()
	first := int64(-1)
	for _, h := range []recipients.Hours{seen, risk} {
		for i, n := range h.N {
			if n > 0 {
				if day := (h.From + int64(i)) / 24; first < 0 || day < first {
					first = day
				}
				break
			}
		}
	}
	if first < 0 {
		return
	}
	c := &FirstSeenCurve{From: time.Unix(first*86400, 0).UTC()}
	add := func(h recipients.Hours, to *[]int) {
		for i, n := range h.N {
			if n <= 0 { // below 0: a tally older than the histograms
				continue
			}
			day := int((h.From+int64(i))/24 - first)
			for len(*to) <= day {
				*to = append(*to, 0)
			}
			(*to)[day] += int(n)
		}
	}
	add(risk, &c.AtRisk)
	add(seen, &c.Seen)
	d.curve.Store(c)
}
