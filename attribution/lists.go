package attribution

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spamsurge/spamsurge/addr"
)

// MaxTags is the number of tag lists one configuration may name (a tag set
// is a 64-bit mask per address).
const MaxTags = 64

// Untagged names the addresses in no tag list, in rankings and sentences.
const Untagged = "untagged"

// maxProblems bounds the problems kept per file (the counts stay exact).
const maxProblems = 20

// Source is one list file: a tag name or a canary source, and its path.
type Source struct {
	Name string
	File string
}

// Lists are the loaded source lists, as keyed hashes only. A Lists is never
// modified after Load, so it may be shared between goroutines; a nil *Lists
// has no tags, no canaries and no known details.
type Lists struct {
	tags  []string
	sizes []int
	// mask maps an address's 64-bit key (Key64) to its tag bits. Keyed
	// like the detector's table: two addresses collide only if their ids
	// share 64 bits, which a keyed PRF makes negligible.
	mask        map[uint64]uint64
	canary      map[addr.ID]uint16 // → index in sources
	sources     []string
	canarySizes []int
	details     map[addr.ID]string // hash of a known detail → the detail
	key         *addr.Key
}

// Key64 is the 64-bit key of an id used by Lists.Mask (and the detector's
// recipient table): its first eight bytes, little-endian, never zero.
func Key64(id addr.ID) uint64 { return id.Key64() }

// Tags returns the tag names in configuration order (bit i of a mask is
// Tags()[i]).
func (l *Lists) Tags() []string {
	if l == nil {
		return nil
	}
	return l.tags
}

// TagSize is the number of distinct addresses loaded for tag i.
func (l *Lists) TagSize(i int) int { return l.sizes[i] }

// Mask returns the tag bits of the address with 64-bit key k (see Key64).
func (l *Lists) Mask(k uint64) uint64 {
	if l == nil || len(l.mask) == 0 {
		return 0
	}
	return l.mask[k]
}

// MaskOf returns the tag bits of id.
func (l *Lists) MaskOf(id addr.ID) uint64 { return l.Mask(Key64(id)) }

// TagIndex returns the bit of the tag called name, or -1.
func (l *Lists) TagIndex(name string) int {
	for i, t := range l.Tags() {
		if t == name {
			return i
		}
	}
	return -1
}

// Canary reports whether id is a canary, and the source it was planted in.
func (l *Lists) Canary(id addr.ID) (source string, ok bool) {
	if l == nil || len(l.canary) == 0 {
		return "", false
	}
	i, ok := l.canary[id]
	if !ok {
		return "", false
	}
	return l.sources[i], true
}

// Canaries calls fn for every canary id.
func (l *Lists) Canaries(fn func(id addr.ID, source string)) {
	if l == nil {
		return
	}
	for id, i := range l.canary {
		fn(id, l.sources[i])
	}
}

// NumCanaries is the number of canary addresses.
func (l *Lists) NumCanaries() int {
	if l == nil {
		return 0
	}
	return len(l.canary)
}

// DetailLabel is how a sub-address detail appears in incidents: the detail
// itself when the operator listed it as known, else its keyed hash (hex).
// A nil Lists cannot hash, so it returns "".
func (l *Lists) DetailLabel(detail string) (label string, known bool) {
	if l == nil || l.key == nil || detail == "" {
		return "", false
	}
	h := hashDetail(l.key, detail)
	if d, ok := l.details[h]; ok {
		return d, true
	}
	return h.String(), false
}

// hashDetail keys a sub-address detail apart from addresses (a detail
// never contains "@", so it cannot equal a normalised address).
func hashDetail(k *addr.Key, detail string) addr.ID { return k.Hash("detail:" + detail) }

// Problem is one skipped line of a list file. Reason never quotes the line.
type Problem struct {
	File   string
	Line   int
	Reason string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason) }

// FileReport says what loading one file did.
type FileReport struct {
	Kind string // tag, canary or details
	Name string // tag name or canary source
	File string
	// Loaded counts the distinct addresses (or details) kept.
	Loaded                               int
	Blank, Comments, Duplicates, Invalid int
	// Problems are the first skipped lines with their reasons (invalid
	// and duplicate lines; blank and comment lines are not problems).
	Problems []Problem
}

func (r *FileReport) problem(line int, reason string) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, Problem{File: r.File, Line: line, Reason: reason})
	}
}

// Config is what Load reads.
type Config struct {
	Key        *addr.Key // required: the store's address key
	Normalizer addr.Normalizer
	Tags       []Source
	Canaries   []Source
	// KnownDetails is a file of sub-address details ("shop", "newsletter")
	// to show in plaintext; other details appear as keyed hashes.
	KnownDetails string
}

func (c *Config) validate() error {
	if c.Key == nil {
		return errors.New("attribution: no address key")
	}
	if len(c.Tags) > MaxTags {
		return fmt.Errorf("attribution.tags: %d lists, at most %d", len(c.Tags), MaxTags)
	}
	seen := map[string]bool{}
	for i, t := range c.Tags {
		switch {
		case t.Name == "" || t.File == "":
			return fmt.Errorf("attribution.tags[%d]: needs name and file", i)
		case t.Name == Untagged:
			return fmt.Errorf("attribution.tags[%d]: the name %q is reserved for addresses in no list", i, Untagged)
		case seen[t.Name]:
			return fmt.Errorf("attribution.tags[%d]: name %q used twice (put both files in one list, or name them apart)", i, t.Name)
		}
		seen[t.Name] = true
	}
	for i, c := range c.Canaries {
		if c.Name == "" || c.File == "" {
			return fmt.Errorf("attribution.canaries[%d]: needs source and file", i)
		}
	}
	return nil
}

// Load reads every list of c. A file that cannot be opened or read is an
// error naming its key; bad lines are skipped and reported.
func Load(c Config) (*Lists, []FileReport, error) {
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	l := &Lists{key: c.Key, sizes: make([]int, len(c.Tags))}
	var reports []FileReport

	total := 0
	for _, t := range c.Tags {
		if st, err := os.Stat(t.File); err == nil {
			total += int(st.Size() / 24) // a typical address line
		}
	}
	l.mask = make(map[uint64]uint64, total)
	for i, t := range c.Tags {
		l.tags = append(l.tags, t.Name)
		rep := FileReport{Kind: "tag", Name: t.Name, File: t.File}
		bit := uint64(1) << i
		err := readList(t.File, &rep, func(line int, s string) {
			norm, _, err := c.Normalizer.Normalize(s)
			if err != nil {
				rep.Invalid++
				rep.problem(line, reasonOf(err))
				return
			}
			k := Key64(c.Key.Hash(norm))
			m := l.mask[k]
			if m&bit != 0 {
				rep.Duplicates++
				rep.problem(line, "duplicate of an earlier line (after normalisation)")
				return
			}
			l.mask[k] = m | bit
			rep.Loaded++
		})
		if err != nil {
			return nil, reports, fmt.Errorf("attribution.tags[%d] (%s): %w", i, t.Name, err)
		}
		l.sizes[i] = rep.Loaded
		reports = append(reports, rep)
	}

	l.canary = map[addr.ID]uint16{}
	for i, cs := range c.Canaries {
		rep := FileReport{Kind: "canary", Name: cs.Name, File: cs.File}
		idx := -1
		for j, s := range l.sources {
			if s == cs.Name {
				idx = j // several files may plant for one source
			}
		}
		if idx < 0 {
			idx = len(l.sources)
			l.sources = append(l.sources, cs.Name)
			l.canarySizes = append(l.canarySizes, 0)
		}
		err := readList(cs.File, &rep, func(line int, s string) {
			norm, _, err := c.Normalizer.Normalize(s)
			if err != nil {
				rep.Invalid++
				rep.problem(line, reasonOf(err))
				return
			}
			id := c.Key.Hash(norm)
			if j, dup := l.canary[id]; dup {
				rep.Duplicates++
				if int(j) == idx {
					rep.problem(line, "duplicate of an earlier line (after normalisation)")
				} else {
					rep.problem(line, "already a canary of source "+l.sources[j]+"; kept there")
				}
				return
			}
			l.canary[id] = uint16(idx)
			l.canarySizes[idx]++
			rep.Loaded++
		})
		if err != nil {
			return nil, reports, fmt.Errorf("attribution.canaries[%d] (%s): %w", i, cs.Name, err)
		}
		reports = append(reports, rep)
	}

	if c.KnownDetails != "" {
		l.details = map[addr.ID]string{}
		rep := FileReport{Kind: "details", File: c.KnownDetails}
		err := readList(c.KnownDetails, &rep, func(line int, s string) {
			s = strings.TrimSpace(s)
			if c.Normalizer.FoldLocal {
				s = strings.ToLower(s)
			}
			if len(s) > addr.MaxLocalLen || strings.ContainsAny(s, "@ \t\"<>") {
				rep.Invalid++
				rep.problem(line, "not a sub-address detail (no @, spaces, quotes; at most 64 bytes)")
				return
			}
			h := hashDetail(c.Key, s)
			if _, dup := l.details[h]; dup {
				rep.Duplicates++
				rep.problem(line, "duplicate of an earlier line")
				return
			}
			l.details[h] = s
			rep.Loaded++
		})
		if err != nil {
			return nil, reports, fmt.Errorf("attribution.known_details: %w", err)
		}
		reports = append(reports, rep)
	}
	return l, reports, nil
}

// reasonOf is a Normalize error without the "invalid address" prefix (the
// error never quotes the address).
func reasonOf(err error) string {
	s := err.Error()
	if !strings.HasPrefix(s, addr.ErrInvalid.Error()) {
		return "invalid address"
	}
	return s
}

// maxLine is the longest line considered: an address is at most 320 bytes,
// so anything much longer is garbage, skipped without buffering it whole.
const maxLine = 4096

// readList calls fn for each line that is not blank or a comment, with its
// 1-based number. CRLF and a UTF-8 byte order mark are accepted. Comments
// are whole lines starting with '#' ('#' is legal inside a local part).
func readList(path string, rep *FileReport, fn func(line int, s string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	n := 0
	for {
		b, isPrefix, err := br.ReadLine()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		n++
		if isPrefix || len(b) > maxLine {
			for isPrefix && err == nil {
				_, isPrefix, err = br.ReadLine()
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("%s: %w", path, err)
			}
			rep.Invalid++
			rep.problem(n, fmt.Sprintf("line longer than %d bytes", maxLine))
			continue
		}
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		b = bytes.TrimSpace(b)
		switch {
		case len(b) == 0:
			rep.Blank++
		case b[0] == '#':
			rep.Comments++
		default:
			fn(n, string(b))
		}
	}
}

// ReadList calls fn for every line of a list file that is not blank or a
// comment, with its number, and reports the counts (`spamsurge resolve`
// reads candidate files this way).
func ReadList(path string, fn func(line int, s string)) (FileReport, error) {
	rep := FileReport{File: path}
	err := readList(path, &rep, fn)
	return rep, err
}
