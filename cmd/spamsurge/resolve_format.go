package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
)

// resolve's output formats: the matching addresses on stdout, as written
// in the candidate file.

func validFormat(f string) bool { return f == "" || f == "text" || f == "csv" || f == "json" }

// resolveCounts is the summary; the json format ends with it.
type resolveCounts struct {
	Recipients int  `json:"recipients"`  // the incident's
	Candidates int  `json:"candidates"`  // lines read from the candidate file (comments and blank lines aside)
	Invalid    int  `json:"invalid"`     // lines that are no address
	Duplicates int  `json:"duplicates"`  // lines matching an address already matched
	Matched    int  `json:"matched"`     // the incident's recipients printed
	OutsideTag *int `json:"outside_tag"` // with --tag: matched, but not in the tag's list
	NotInFile  int  `json:"not_in_file"` // the incident's recipients no candidate matched
	// With --profile: the other addresses printed, which share the
	// incident's profile.
	ProfileCandidates *int `json:"profile_candidates,omitempty"`
}

// Why an address is printed.
const (
	matchHit     = "recipient" // one of the incident's recipients
	matchProfile = "profile"   // shares its profile (--profile)
)

// matchWriter writes the matching addresses in one format; close ends the
// output. Writes go to a bufio.Writer, whose Flush reports their errors.
type matchWriter interface {
	add(address, why string)
	close(resolveCounts) error
}

// newMatchWriter: with profile, csv gets a third column "match" and json
// a "match" list parallel to "addresses" (the formats without it are
// unchanged).
func newMatchWriter(format string, w io.Writer, incident, tag string, profile bool) matchWriter {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if profile {
			cw.Write([]string{"address", "incident", "match"})
		} else {
			cw.Write([]string{"address", "incident"})
		}
		return &csvMatches{w: cw, incident: incident, why: profile}
	case "json":
		j := &jsonMatches{w: w, why: profile}
		io.WriteString(w, `{"incident":`+j.str(incident))
		if tag != "" {
			io.WriteString(w, `,"tag":`+j.str(tag))
		}
		io.WriteString(w, `,"addresses":[`)
		return j
	}
	return textMatches{w}
}

// textMatches: one address a line (the default, and the format before
// --format existed).
type textMatches struct{ w io.Writer }

func (t textMatches) add(a, _ string) {
	io.WriteString(t.w, a)
	io.WriteString(t.w, "\n")
}

func (textMatches) close(resolveCounts) error { return nil }

// csvMatches: RFC 4180, a header row "address,incident", fields quoted
// when they hold a comma, a quote or a line end.
type csvMatches struct {
	w        *csv.Writer
	incident string
	why      bool
}

func (c *csvMatches) add(a, why string) {
	if c.why {
		c.w.Write([]string{a, c.incident, why})
		return
	}
	c.w.Write([]string{a, c.incident})
}

func (c *csvMatches) close(resolveCounts) error {
	c.w.Flush()
	return c.w.Error()
}

// jsonMatches: one object, streamed (the list may be long):
// {"incident":ID,["tag":NAME,]"addresses":[...],"counts":{...}}
type jsonMatches struct {
	w    io.Writer
	n    int
	why  bool
	whys []string
}

func (j *jsonMatches) add(a, why string) {
	if j.n > 0 {
		io.WriteString(j.w, ",")
	}
	j.n++
	io.WriteString(j.w, j.str(a))
	if j.why {
		j.whys = append(j.whys, why)
	}
}

func (j *jsonMatches) close(c resolveCounts) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	io.WriteString(j.w, "]")
	if j.why {
		w, _ := json.Marshal(append([]string{}, j.whys...))
		io.WriteString(j.w, `,"match":`+string(w))
	}
	io.WriteString(j.w, `,"counts":`+string(b)+"}\n")
	return nil
}

// str is s as a JSON string, UTF-8 as is (no \u003c for <).
func (*jsonMatches) str(s string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.Encode(s)
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
