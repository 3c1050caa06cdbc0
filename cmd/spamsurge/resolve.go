package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/daemon"
	"github.com/spamsurge/spamsurge/store"
)

// resolve turns an incident's keyed hashes back into addresses, from a file
// of candidates the operator already holds (the customer list). stdout is
// the one place spamsurge ever writes a plaintext address, by design, and
// only the candidates that match; everything else (counts, errors) goes to
// stderr without addresses.
func resolveCommand() command {
	var (
		cf                               *configFlag
		incident, addresses, tag, format string
		profile                          bool
	)
	return command{
		name:    "resolve",
		summary: "print the addresses from a file that belong to an incident",
		args:    "--config FILE --incident ID --addresses FILE [--tag NAME] [--profile] [--format text|csv|json]",
		help: "Prints the candidate addresses that belong to the incident, matched by keyed hash.\n" +
			"The incident's hashes come from the running daemon's API, or from the store when\n" +
			"the daemon is stopped (a fleet's: the snapshot its instances write to Redis). A summary line (counts only) goes to stderr. --config is the\n" +
			"daemon's own file: resolve reads its key, store, http.listen and tags.\n" +
			"--profile adds the candidates that share the incident's profile (its source list, its\n" +
			"domains, first mailed before the list was copied), not only the addresses hit so far.",
		flags: func(fs *flag.FlagSet) {
			cf = addConfigFlag(fs)
			fs.StringVar(&incident, "incident", "", "incident `id`")
			fs.StringVar(&addresses, "addresses", "", "`file` of candidate addresses, one per line (# comments, blank lines skipped)")
			fs.StringVar(&tag, "tag", "", "only addresses in this source tag's list (attribution.tags `name`)")
			fs.StringVar(&format, "format", "text", "output `format`: text (one address a line), csv or json")
			fs.BoolVar(&profile, "profile", false, "also print the candidates that share the incident's profile (csv and json say which are which)")
		},
		run: func(ctx context.Context, e *env) error {
			if incident == "" || addresses == "" || len(e.args) > 0 {
				return errUsage
			}
			if !validFormat(format) {
				return usageError{fmt.Errorf("--format: %q is not text, csv or json", format)}
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			return resolve(ctx, cfg, resolveArgs{incident: incident, addresses: addresses, tag: tag, format: format, profile: profile}, e.stdout, e.stderr)
		},
	}
}

// resolveArgs are resolve's flags.
type resolveArgs struct {
	incident, addresses, tag string
	format                   string // text, csv or json; "" is text
	profile                  bool   // also the profile's candidates (profile.go)
}

func resolve(ctx context.Context, cfg config.Config, a resolveArgs, stdout, stderr io.Writer) error {
	incident, addresses, tag := a.incident, a.addresses, a.tag
	// Never create a key here: a new key would match nothing.
	keyPath := daemon.KeyFile(cfg)
	if _, err := os.Stat(keyPath); err != nil {
		return fmt.Errorf("store.key_file: %w (resolve needs the key the daemon hashes with)", err)
	}
	key, err := addr.LoadKey(keyPath)
	if err != nil {
		return fmt.Errorf("store.key_file: %w", err)
	}
	norm := daemon.DetectorOptions(cfg).Normalizer

	var lists *attribution.Lists
	if tag != "" {
		var names []string
		for _, t := range cfg.Attribution.Tags {
			if t.Name == tag {
				lists, _, err = attribution.Load(attribution.Config{Key: key, Normalizer: norm,
					Tags: []attribution.Source{{Name: t.Name, File: t.File}}})
				if err != nil {
					return err
				}
			}
			names = append(names, t.Name)
		}
		if lists == nil {
			return fmt.Errorf("--tag %s: no such tag in attribution.tags (have: %s)", tag, strings.Join(names, ", "))
		}
	}

	ids, from, err := incidentRecipients(ctx, cfg, key, incident)
	if err != nil {
		return err
	}
	var pm *profileMatcher
	if a.profile {
		if pm, err = newProfileMatcher(ctx, cfg, key, norm, incident, addresses); err != nil {
			return err
		}
		defer pm.close()
	}
	want := make(map[addr.ID]bool, len(ids))
	for _, id := range ids {
		want[id] = false // not yet printed
	}

	buf := bufio.NewWriter(stdout)
	out := newMatchWriter(a.format, buf, incident, tag, a.profile)
	var read, invalid, matched, outsideTag, dups, candidates int
	_, err = attribution.ReadList(addresses, func(line int, s string) {
		read++
		n, _, err := norm.Normalize(s)
		if err != nil {
			invalid++
			return
		}
		id := key.Hash(n)
		printed, in := want[id]
		if !in {
			if pm != nil && pm.match(n, id) && (lists == nil || lists.MaskOf(id) != 0) {
				want[id] = true // printed: a repeat is a duplicate
				candidates++
				out.add(s, matchProfile)
			}
			return
		}
		if printed {
			dups++
			return
		}
		want[id] = true
		if lists != nil && lists.MaskOf(id) == 0 {
			outsideTag++
			return
		}
		matched++
		out.add(s, matchHit)
	})
	if err != nil {
		return fmt.Errorf("--addresses: %w", err)
	}
	c := resolveCounts{Recipients: len(ids), Candidates: read, Invalid: invalid, Duplicates: dups,
		Matched: matched, NotInFile: len(ids) - matched - outsideTag}
	if lists != nil {
		c.OutsideTag = &outsideTag
	}
	if pm != nil {
		c.ProfileCandidates = &candidates
	}
	if err := out.close(c); err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	// One line, counts only.
	fmt.Fprintf(stderr, "incident %s: %d of %d candidates matched by hash", incident, matched, read)
	if lists != nil {
		fmt.Fprintf(stderr, " in tag %s (%d more matched outside it)", tag, outsideTag)
	}
	fmt.Fprintf(stderr, "; invalid lines skipped: %d, duplicates: %d; the incident has %d recipients (from %s), not in the candidate file: %d\n",
		invalid, dups, len(ids), from, c.NotInFile)
	if pm != nil {
		fmt.Fprintf(stderr, "incident %s: %d more candidates share its profile: %s\n", incident, candidates, pm.describe())
	}
	return nil
}

// incidentRecipients gets the incident's recipient ids from the daemon's
// API, or, when nothing listens on http.listen, from the store (a
// fleet's: its snapshot in Redis, then store.path if set).
func incidentRecipients(ctx context.Context, cfg config.Config, key *addr.Key, incident string) ([]addr.ID, string, error) {
	base := "http://" + dialable(cfg.HTTP.Listen)
	ids, err := recipientsFromAPI(ctx, cfg, base, incident)
	if err == nil {
		return ids, "the daemon at " + base, nil
	}
	var unreachable *unreachableError
	if !errors.As(err, &unreachable) {
		return nil, "", err
	}
	if daemon.Fleet(cfg) {
		// A fleet's instances write their state to Redis at shutdown
		// (and every few minutes): the fleet's snapshot.
		ids, rerr := recipientsFromRedis(ctx, cfg, key, incident)
		if rerr == nil {
			return ids, "the fleet's snapshot in Redis", nil
		}
		if cfg.Store.Path == "" {
			return nil, "", fmt.Errorf("the daemon's API at %s is not reachable (%v), and reading the fleet's snapshot in Redis failed: %w", base, unreachable.err, rerr)
		}
		ids, serr := recipientsFromStore(cfg, incident)
		if serr != nil {
			return nil, "", fmt.Errorf("the daemon's API at %s is not reachable (%v), reading the fleet's snapshot in Redis failed (%v), and reading the store failed: %w", base, unreachable.err, rerr, serr)
		}
		return ids, "the store at " + cfg.Store.Path, nil
	}
	ids, serr := recipientsFromStore(cfg, incident)
	if serr != nil {
		return nil, "", fmt.Errorf("the daemon's API at %s is not reachable (%v), and reading the store failed: %w", base, unreachable.err, serr)
	}
	return ids, "the store at " + cfg.Store.Path, nil
}

// recipientsFromRedis finds the incident in the fleet's snapshot.
func recipientsFromRedis(ctx context.Context, cfg config.Config, key *addr.Key, incident string) ([]addr.ID, error) {
	blobs, written, err := redisBlobs(ctx, cfg, key)
	if err != nil {
		return nil, err
	}
	ids, found, err := findIncident(blobs, incident)
	if err != nil {
		return nil, fmt.Errorf("the fleet's snapshot: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("the fleet's snapshot (written %s) has no incident %q", written.Format(time.RFC3339), incident)
	}
	return ids, nil
}

// redisBlobs reads the detector's blobs from the fleet's snapshot.
func redisBlobs(ctx context.Context, cfg config.Config, key *addr.Key) (map[string][]byte, time.Time, error) {
	rs, err := daemon.OpenRedis(ctx, cfg, key)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rs.Close()
	snap, err := rs.GetSnapshot(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if snap == nil {
		return nil, time.Time{}, errors.New("Redis holds no snapshot of the fleet (an instance writes one every few minutes and when it stops)")
	}
	return snap.Blobs, snap.Written, nil
}

// findIncident looks for an incident's recipients in the detector's
// stored incident blobs.
func findIncident(blobs map[string][]byte, incident string) ([]addr.ID, bool, error) {
	for _, name := range incidentMetas {
		raw := blobs[name]
		if len(raw) == 0 {
			continue
		}
		var ins []struct {
			ID           string    `json:"id"`
			RecipientIDs []addr.ID `json:"recipient_ids"`
		}
		if err := json.Unmarshal(raw, &ins); err != nil {
			return nil, false, fmt.Errorf("stored incidents are unreadable: %w", err)
		}
		for _, in := range ins {
			if in.ID == incident {
				return in.RecipientIDs, true, nil
			}
		}
	}
	return nil, false, nil
}

type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }

// dialable turns a listen address into one to connect to: an unspecified
// host (0.0.0.0, ::, empty) means this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func recipientsFromAPI(ctx context.Context, cfg config.Config, base, incident string) ([]addr.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := askDaemon(ctx, cfg, base, "/api/v1/incidents/"+url.PathEscape(incident)+"/recipients", incident)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ids []addr.ID
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		id, err := addr.ParseID(line)
		if err != nil {
			return nil, fmt.Errorf("the daemon at %s sent a malformed recipient id: %w", base, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading from the daemon at %s: %w", base, err)
	}
	return ids, nil
}

// askDaemon GETs path from the daemon at base with the bearer token from
// http.token_file, never through an HTTP proxy (the token and the hashes
// stay between us and the daemon): the response on 200, an
// unreachableError when nothing listens, else an error that says why.
func askDaemon(ctx context.Context, cfg config.Config, base, path, incident string) (*http.Response, error) {
	token, err := daemon.ReadToken(cfg.HTTP.TokenFile)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &unreachableError{err}
		}
		return nil, fmt.Errorf("asking the daemon at %s: %w", base, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return nil, fmt.Errorf("the daemon at %s has no incident %q (GET /api/v1/incidents lists them)", base, incident)
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("the daemon at %s refused the bearer token (http.token_file)", base)
	case http.StatusForbidden:
		return nil, fmt.Errorf("the daemon at %s answers loopback clients only without a token: set http.token_file", base)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return nil, fmt.Errorf("the daemon at %s answered %s: %s", base, resp.Status, strings.TrimSpace(string(msg)))
}

// Store meta blobs holding incidents (detector: "incidents"; open canary
// incidents: "canary_incidents").
var incidentMetas = []string{"incidents", "canary_incidents"}

func recipientsFromStore(cfg config.Config, incident string) ([]addr.ID, error) {
	blobs, err := storeBlobs(cfg)
	if err != nil {
		return nil, err
	}
	ids, found, err := findIncident(blobs, incident)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", cfg.Store.Path, err)
	}
	if !found {
		return nil, fmt.Errorf("the store %s has no incident %q", cfg.Store.Path, incident)
	}
	return ids, nil
}

// storeBlobs reads the detector's incident blobs from the stopped
// daemon's store.
func storeBlobs(cfg config.Config) (map[string][]byte, error) {
	if cfg.Store.Path == "" {
		return nil, errors.New("store.path is not set")
	}
	// Opening a missing path would create an empty store.
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store.path: %s does not exist", cfg.Store.Path)
	}
	st, err := store.OpenPebble(cfg.Store.Path)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("the store %s is locked by another process — the daemon is probably running: make its API reachable at http.listen, or stop it: %w", cfg.Store.Path, err)
		}
		return nil, err
	}
	defer st.Close()
	blobs := map[string][]byte{}
	for _, name := range incidentMetas {
		if blobs[name], err = st.Meta(name); err != nil {
			return nil, err
		}
	}
	return blobs, nil
}
