package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/store"
)

// profileMatcher tells whether a candidate address shares an incident's
// profile (resolve --profile): it is in the incident's top source list
// (when it names one), of one of its profile's domains (when it has
// some), and, where the recipient records can be read (the daemon
// stopped, an embedded store), it was at risk when the incident started
// and first mailed before the list's copy interval ended.
type profileMatcher struct {
	in      detector.Incident
	lists   *attribution.Lists
	domains map[string]bool
	// recs holds the records of the candidate file's addresses (nil: not
	// readable, and why).
	recs   map[addr.ID]store.Record
	noRecs string
	warmup time.Duration
}

func newProfileMatcher(ctx context.Context, cfg config.Config, key *addr.Key, norm addr.Normalizer, incident, addresses string) (*profileMatcher, error) {
	in, err := incidentDetail(ctx, cfg, incident)
	if err != nil {
		return nil, err
	}
	if in.Kind != detector.KindSurge {
		return nil, fmt.Errorf("--profile: incident %s is a %s incident: only a surge has a profile", incident, in.Kind)
	}
	pm := &profileMatcher{in: in, domains: map[string]bool{}, warmup: daemon.DetectorOptions(cfg).Warmup}
	if t := in.TopTag; t != "" && t != attribution.Untagged {
		for _, tl := range cfg.Attribution.Tags {
			if tl.Name == t {
				if pm.lists, _, err = attribution.Load(attribution.Config{Key: key, Normalizer: norm, Tags: []attribution.Source{{Name: tl.Name, File: tl.File}}}); err != nil {
					return nil, err
				}
			}
		}
		if pm.lists == nil {
			return nil, fmt.Errorf("--profile: the incident is attributed to source list %s, which is not in attribution.tags", t)
		}
	}
	if in.Profile != nil {
		for _, d := range in.Profile.Domains {
			pm.domains[d.Domain] = true
		}
	}
	pm.loadRecords(cfg, key, norm, addresses)
	if pm.lists == nil && len(pm.domains) == 0 && (in.ListSnapshot == nil || pm.recs == nil) {
		return nil, fmt.Errorf("--profile: incident %s names no source list, no domain and (with the records readable) no copy time: every customer would share its profile; leave --profile out", incident)
	}
	return pm, nil
}

// loadRecords reads, from an embedded store the daemon is not holding,
// the records of the candidate file's addresses.
func (pm *profileMatcher) loadRecords(cfg config.Config, key *addr.Key, norm addr.Normalizer, addresses string) {
	switch {
	case daemon.Fleet(cfg):
		pm.noRecs = "the fleet's records are in Redis"
		return
	case cfg.Store.Path == "":
		pm.noRecs = "store.path is not set"
		return
	}
	if _, err := os.Stat(cfg.Store.Path); err != nil {
		pm.noRecs = err.Error()
		return
	}
	st, err := store.OpenPebble(cfg.Store.Path)
	if err != nil {
		pm.noRecs = "the store is not readable (" + err.Error() + "; is the daemon running?)"
		return
	}
	defer st.Close()
	want := map[addr.ID]bool{}
	if _, err := attribution.ReadList(addresses, func(_ int, s string) {
		if n, _, err := norm.Normalize(s); err == nil {
			want[key.Hash(n)] = true
		}
	}); err != nil {
		pm.noRecs = err.Error()
		return
	}
	recs := map[addr.ID]store.Record{}
	err = st.Recipients(key.Fingerprint(), func(id [16]byte, r store.Record) error {
		if want[addr.ID(id)] {
			recs[addr.ID(id)] = r
		}
		return nil
	})
	if err != nil {
		pm.noRecs = err.Error()
		return
	}
	pm.recs = recs
}

// match reports whether the normalised address n (hashed id) shares the
// profile.
func (pm *profileMatcher) match(n string, id addr.ID) bool {
	if pm.lists != nil && pm.lists.MaskOf(id) == 0 {
		return false
	}
	if len(pm.domains) > 0 {
		i := strings.LastIndexByte(n, '@')
		if i < 0 || !pm.domains[n[i+1:]] {
			return false
		}
	}
	if pm.recs != nil {
		r, ok := pm.recs[id]
		if !ok || r.FirstSpam != 0 {
			return false // never mailed here, or spammed already: not at risk
		}
		first := time.Unix(int64(r.FirstMail)*60, 0)
		if first.Add(pm.warmup).After(pm.in.StartedAt) {
			return false // not established when the incident started
		}
		if s := pm.in.ListSnapshot; s != nil && first.After(s.NotAfter) {
			return false // first mailed after the list was copied
		}
	}
	return true
}

// describe says what the profile required, for the summary line.
func (pm *profileMatcher) describe() string {
	var parts []string
	if pm.lists != nil {
		parts = append(parts, "in source list "+pm.in.TopTag)
	}
	if len(pm.domains) > 0 {
		var ds []string
		for _, d := range pm.in.Profile.Domains {
			ds = append(ds, d.Domain)
		}
		parts = append(parts, "of "+strings.Join(ds, ", "))
	}
	if pm.recs != nil {
		s := "at risk when it started"
		if pm.in.ListSnapshot != nil {
			s += ", first mailed before " + pm.in.ListSnapshot.NotAfter.UTC().Format(time.RFC3339)
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "not checked against the recipient records ("+pm.noRecs+")")
	}
	if c := pm.in.Profile; c != nil && c.Candidates != nil {
		parts = append(parts, fmt.Sprintf("the daemon estimates %d such addresses, its recipients included", c.Candidates.Estimate))
	}
	return strings.Join(parts, "; ")
}

func (pm *profileMatcher) close() {}

// incidentDetail gets the whole incident: from the daemon's API, or, when
// nothing listens, from the fleet's snapshot in Redis or the store.
func incidentDetail(ctx context.Context, cfg config.Config, incident string) (detector.Incident, error) {
	base := "http://" + dialable(cfg.HTTP.Listen)
	in, err := incidentFromAPI(ctx, cfg, base, incident)
	if err == nil {
		return in, nil
	}
	var unreachable *unreachableError
	if !errors.As(err, &unreachable) {
		return in, err
	}
	blobs, err := incidentBlobs(ctx, cfg)
	if err != nil {
		return in, err
	}
	for _, name := range incidentMetas {
		var ins []detector.Incident
		if raw := blobs[name]; len(raw) > 0 {
			if err := json.Unmarshal(raw, &ins); err != nil {
				return in, fmt.Errorf("stored incidents are unreadable: %w", err)
			}
		}
		for _, x := range ins {
			if x.ID == incident {
				return x, nil
			}
		}
	}
	return in, fmt.Errorf("no incident %q in the stored state", incident)
}

func incidentFromAPI(ctx context.Context, cfg config.Config, base, incident string) (detector.Incident, error) {
	var in detector.Incident
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := askDaemon(ctx, cfg, base, "/api/v1/incidents/"+url.PathEscape(incident), incident)
	if err != nil {
		return in, err
	}
	defer resp.Body.Close()
	return in, json.NewDecoder(resp.Body).Decode(&in)
}

// incidentBlobs reads the stored incident blobs: the fleet's snapshot, or
// the embedded store.
func incidentBlobs(ctx context.Context, cfg config.Config) (map[string][]byte, error) {
	if !daemon.Fleet(cfg) {
		return storeBlobs(cfg)
	}
	key, err := addr.LoadKey(daemon.KeyFile(cfg))
	if err != nil {
		return nil, err
	}
	blobs, _, err := redisBlobs(ctx, cfg, key)
	return blobs, err
}
