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
	Matched    int  `json:"matched"`     // addresses printed
	OutsideTag *int `json:"outside_tag"` // with --tag: matched, but not in the tag's list
	NotInFile  int  `json:"not_in_file"` // the incident's recipients no candidate matched
}

// matchWriter writes the matching addresses in one format; close ends the
// output. Writes go to a bufio.Writer, whose Flush reports their errors.
type matchWriter interface {
	add(address string)
	close(resolveCounts) error
}

func newMatchWriter(format string, w io.Writer, incident, tag string) matchWriter {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"address", "incident"})
		return &csvMatches{w: cw, incident: incident}
	case "json":
		j := &jsonMatches{w: w}
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

func (t textMatches) add(a string) {
	io.WriteString(t.w, a)
	io.WriteString(t.w, "\n")
}

func (textMatches) close(resolveCounts) error { return nil }

// csvMatches: RFC 4180, a header row "address,incident", fields quoted
// when they hold a comma, a quote or a line end.
type csvMatches struct {
	w        *csv.Writer
	incident string
}

func (c *csvMatches) add(a string) { c.w.Write([]string{a, c.incident}) }

func (c *csvMatches) close(resolveCounts) error {
	c.w.Flush()
	return c.w.Error()
}

// jsonMatches: one object, streamed (the list may be long):
// {"incident":ID,["tag":NAME,]"addresses":[...],"counts":{...}}
type jsonMatches struct {
	w io.Writer
	n int
}

func (j *jsonMatches) add(a string) {
	if j.n > 0 {
		io.WriteString(j.w, ",")
	}
	j.n++
	io.WriteString(j.w, j.str(a))
}

func (j *jsonMatches) close(c resolveCounts) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	io.WriteString(j.w, `],"counts":`+string(b)+"}\n")
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
