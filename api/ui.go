package api

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/ui"
)

// uiRoutes serves the incident pages (package ui), protected as /api/ is;
// a browser may give the token as the password of HTTP Basic
// authentication (any user name), which it asks for on a 401.
func (o *Options) uiRoutes(mux *http.ServeMux) {
	mux.Handle("GET /ui/{$}", o.authOr(true, http.HandlerFunc(o.uiIndex)))
	mux.Handle("GET /ui/incidents/{id}", o.authOr(true, http.HandlerFunc(o.uiIncident)))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("/ui/", o.authOr(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uiError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
	})))
}

func (o *Options) uiMeta() ui.Meta { return ui.Meta{ConfigPath: o.ConfigPath, Now: time.Now()} }

func (o *Options) uiIndex(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := ui.Index(&b, o.incidents(), o.uiMeta()); err != nil {
		o.Logger.Error("rendering /ui/", zap.Error(err))
		uiError(w, http.StatusInternalServerError, "the page could not be rendered")
		return
	}
	writeHTML(w, b.Bytes())
}

func (o *Options) uiIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, in := range o.incidents() {
		if in.ID != id {
			continue
		}
		var b bytes.Buffer
		if err := ui.Incident(&b, in, o.firstSeen(), o.uiMeta()); err != nil {
			o.Logger.Error("rendering an incident page", zap.Error(err))
			uiError(w, http.StatusInternalServerError, "the page could not be rendered")
			return
		}
		writeHTML(w, b.Bytes())
		return
	}
	uiError(w, http.StatusNotFound, fmt.Sprintf("no incident %q (it may have aged out of the recent incidents)", id))
}

func writeHTML(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Nothing outside the page: no script, no remote style or image.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

func uiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>%d</title><p>%s</p><p><a href=\"/ui/\">Incidents</a></p>\n", code, html.EscapeString(msg))
}

func (o *Options) firstSeen() *detector.FirstSeenCurve {
	if o.FirstSeen == nil {
		return nil
	}
	return o.FirstSeen()
}
