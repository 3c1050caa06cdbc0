package api

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ingest"
)

// DefaultMaxBodyBytes bounds a POST /api/v1/observations body.
const DefaultMaxBodyBytes = 16 << 20

// maxLineErrors bounds the per-line errors reported for one body.
const maxLineErrors = 100

// ErrBusy is what Submit returns when the detector cannot take more now.
var ErrBusy = errors.New("detector queue full, retry later")

func (o *Options) apiRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/incidents", o.auth(http.HandlerFunc(o.listIncidents)))
	mux.Handle("GET /api/v1/incidents/{id}", o.auth(http.HandlerFunc(o.getIncident)))
	mux.Handle("GET /api/v1/incidents/{id}/recipients", o.auth(http.HandlerFunc(o.getRecipients)))
	mux.Handle("POST /api/v1/observations", o.auth(http.HandlerFunc(o.postObservations)))
	// rspamd's http pusher can send Basic credentials only (its rule's
	// user and password): the token is taken as the password there.
	mux.Handle("POST /api/v1/rspamd", o.authOr(true, http.HandlerFunc(o.postRspamd)))
	// Anything else under /api/ is a 404 with a reason, after auth so
	// the API's shape is not revealed to strangers.
	mux.Handle("/api/", o.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})))
}

// auth admits a request with the bearer token (compared in constant time)
// or, when no token is configured, from a loopback client only.
func (o *Options) auth(next http.Handler) http.Handler { return o.authOr(false, next) }

// authOr is auth; with basic it also takes the token as the password of
// HTTP Basic authentication (any user name).
func (o *Options) authOr(basic bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Token == "" {
			if !loopback(r.RemoteAddr) {
				apiError(w, http.StatusForbidden, "the API answers loopback clients only unless http.token_file is set")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if basic && !ok {
			_, got, ok = r.BasicAuth()
		}
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spamsurge"`)
			if basic {
				// A browser asks for Basic credentials, never a bearer token.
				w.Header().Add("WWW-Authenticate", `Basic realm="spamsurge", charset="UTF-8"`)
			}
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// summary is an incident without its recipient list (which can be large
// and has its own endpoint).
type summary struct {
	detector.Incident
	RecipientIDs []string `json:"recipient_ids,omitempty"`
}

func (o *Options) incidents() []detector.Incident {
	if o.Incidents == nil {
		return nil
	}
	return o.Incidents()
}

func (o *Options) listIncidents(w http.ResponseWriter, r *http.Request) {
	out := []summary{}
	state := r.URL.Query().Get("state")
	if state != "" && state != detector.StateOpen && state != detector.StateResolved {
		apiError(w, http.StatusBadRequest, "state must be open or resolved")
		return
	}
	for _, in := range o.incidents() {
		if state != "" && in.State != state {
			continue
		}
		out = append(out, summary{Incident: in})
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": out})
}

func (o *Options) find(w http.ResponseWriter, r *http.Request) (detector.Incident, bool) {
	id := r.PathValue("id")
	for _, in := range o.incidents() {
		if in.ID == id {
			return in, true
		}
	}
	apiError(w, http.StatusNotFound, fmt.Sprintf("no incident %q", id))
	return detector.Incident{}, false
}

func (o *Options) getIncident(w http.ResponseWriter, r *http.Request) {
	if in, ok := o.find(w, r); ok {
		writeJSON(w, http.StatusOK, summary{Incident: in})
	}
}

// getRecipients lists the incident's recipients as keyed hashes, one per
// line; `spamsurge resolve` turns them into addresses from a customer list.
func (o *Options) getRecipients(w http.ResponseWriter, r *http.Request) {
	in, ok := o.find(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriter(w)
	for _, id := range in.RecipientIDs {
		bw.WriteString(id.String())
		bw.WriteByte('\n')
	}
	bw.Flush()
}

type lineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// postObservations takes a JSONL body (docs/observations.md). It is all or nothing:
// any bad line gets 400 with every bad line's number and reason, and
// nothing is fed to the detector, so a client can fix and resend.
func (o *Options) postObservations(w http.ResponseWriter, r *http.Request) {
	if o.Submit == nil {
		apiError(w, http.StatusServiceUnavailable, "the detector is not running")
		return
	}
	limit := o.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes; send smaller batches", limit))
			return
		}
		apiError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	var obs []ingest.Observation
	var errs []lineError
	bad := 0
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ob, err := ingest.Parse(line)
		if err == nil && o.NotAfter != nil {
			if limit := o.NotAfter(); ob.Time.After(limit) {
				err = fmt.Errorf("time %s is ahead of this server's clock by more than detector.max_clock_skew (%s)",
					ob.Time.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339))
			}
		}
		if err != nil {
			bad++
			if len(errs) < maxLineErrors {
				errs = append(errs, lineError{Line: n + 1, Error: err.Error()})
			}
			continue
		}
		obs = append(obs, ob)
	}
	if bad > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("%d malformed line(s); nothing accepted", bad), "lines": errs})
		return
	}
	if len(obs) == 0 {
		apiError(w, http.StatusBadRequest, "empty body: send one JSON observation per line")
		return
	}
	if err := o.Submit(obs); err != nil {
		if errors.Is(err, ErrBusy) {
			w.Header().Set("Retry-After", "5")
			apiError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		apiError(w, http.StatusServiceUnavailable, "detector unavailable")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(obs)})
}
