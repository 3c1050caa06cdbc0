// Package verdict reads the spam verdict that an upstream filter
// (SpamAssassin, amavisd-new, rspamd, or anything a configured rule
// describes) wrote into a message's header, while the message streams
// through the proxy.
//
// A Classifier holds the rules; it is built once and shared. A Scanner is
// made per message and fed the raw bytes as they pass (it is an io.Writer,
// meant for an io.TeeReader or io.MultiWriter on the DATA stream). It parses
// only the header block, and of that only up to maxHeaderBytes, then ignores
// the rest of the message.
//
// What this package must never do: buffer a whole message, or fail the mail
// path. Write always consumes everything and returns a nil error, whatever
// the input (binary garbage, no blank line, a gigabyte of header); the
// worst an odd message gets is an empty or partial Result.
//
// # Rules
//
// Recognised by default (names are case-insensitive):
//
//	X-Spam-Flag: YES               spam when the first word is "yes"
//	X-Spam-Status: Yes, score=...  likewise (SpamAssassin, amavisd-new); "No, ..." is ham
//	X-Spam: Yes                    likewise (rspamd)
//	X-Rspamd-Action: <action>      spam unless "no action" or "greylist" (or empty)
//
// Configured rules (config.VerdictRule) add a header name with either a
// pattern (a regular expression matched case-insensitively against the
// unfolded, trimmed value) or a threshold (the first decimal number in the
// value, such as "7.1" in "Yes, score=7.1", is at least the threshold; a
// value without a finite number never reaches it).
//
// # Precedence: the topmost verdict header wins
//
// A header field is a verdict header when at least one rule names it. The
// topmost verdict header in the header block decides alone: the message is
// spam when at least one of the rules naming that header matches its value,
// and ham otherwise. Verdict headers below it are ignored, whatever they
// say. Result.Rule names the deciding header (as the rule spells it), or is
// empty when the block holds no verdict header (then Spam is false).
//
// The reason: each hop prepends its headers, so the topmost verdict came
// from the filter nearest to us, and anything lower came from earlier hops
// or from the sender, who can write any header he likes. So point rules at
// headers your filter prepends; a header the filter edits in place (such as
// a rewritten Subject) keeps its position and can be outranked by a forged
// verdict header above it.
package verdict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/internal/mimeword"
)

// DefaultMaxHeaderBytes is the header bound NewScanner uses when given a
// non-positive one; it matches config's smtp.max_header_bytes default.
const DefaultMaxHeaderBytes = 256 << 10

// Limits on what Result carries.
const (
	maxSubjectRunes = mimeword.MaxSubjectRunes
	maxMessageID    = 250
	// Inputs beyond these are not worth keeping or decoding: a 200-rune
	// subject needs far less, and they cap the work and memory an odd
	// header can cause.
	maxSubjectInput = mimeword.MaxSubjectInput
	maxFromInput    = 8 << 10
)

// Result is what the header block said.
type Result struct {
	Spam bool
	// Rule is the header that decided (e.g. "X-Spam-Flag"), "" when none.
	Rule string
	// Subject is RawSubject decoded for display (mimeword.Subject: RFC
	// 2047 encoded words in any charset golang.org/x/text knows, trimmed,
	// at most 200 runes). Result fills it; Verdict leaves it "".
	Subject string
	// RawSubject is the first Subject field as written: unfolded,
	// trimmed, at most 4 KiB, not decoded (so possibly not UTF-8). It is
	// what the mail path passes on; the detector decodes it only for the
	// messages that carry a first spam.
	RawSubject string
	// MessageID is without CR/LF, at most 250 bytes.
	MessageID string
	// From is the header From address if parseable, else "" (and always
	// "" from Scanner.Verdict).
	From string
	// Truncated reports that the header block exceeded the bound.
	Truncated bool
}

// Classifier holds the verdict rules. It is safe for concurrent use.
type Classifier struct {
	fields  map[string]*field // by lower-case header name
	names   []string          // verdict header names, in rule order
	maxName int               // longest name worth reading
}

// field says what to do with one header name.
type field struct {
	name  string // as the first rule naming it spells it
	rules []func(string) bool
	meta  metaKind
}

type metaKind uint8

const (
	metaSubject metaKind = 1 << iota
	metaMessageID
	metaFrom
)

var defaultRules = []struct {
	name  string
	match func(string) bool
}{
	{"X-Spam-Flag", firstWordYes},
	{"X-Spam-Status", firstWordYes},
	{"X-Spam", firstWordYes},
	{"X-Rspamd-Action", rspamdActionSpam},
}

// defaultClassifier serves a nil *Classifier, so the zero value works.
var defaultClassifier = func() *Classifier {
	c, err := New(nil)
	if err != nil {
		panic(err) // the defaults are constants
	}
	return c
}()

// New builds a classifier from the default rules plus extra. It checks
// extra itself (config.Validate does too) and names the bad rule.
func New(extra []config.VerdictRule) (*Classifier, error) {
	c := &Classifier{fields: map[string]*field{}}
	for _, r := range defaultRules {
		c.addRule(r.name, r.match)
	}
	for i, r := range extra {
		match, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("verdict: rule %d (%q): %w", i, r.Name, err)
		}
		c.addRule(r.Name, match)
	}
	c.addMeta("Subject", metaSubject)
	c.addMeta("Message-ID", metaMessageID)
	c.addMeta("From", metaFrom)
	return c, nil
}

// Headers returns the verdict header names, in rule order: every value
// Result.Rule can take besides "" (for pre-initialised metric labels).
func (c *Classifier) Headers() []string {
	if c == nil {
		c = defaultClassifier
	}
	return append([]string(nil), c.names...)
}

func (c *Classifier) lookup(name string) *field {
	key := strings.ToLower(name)
	f := c.fields[key]
	if f == nil {
		f = &field{name: name}
		c.fields[key] = f
		c.maxName = max(c.maxName, len(key))
	}
	return f
}

func (c *Classifier) addRule(name string, match func(string) bool) {
	f := c.lookup(name)
	if len(f.rules) == 0 {
		c.names = append(c.names, f.name)
	}
	f.rules = append(f.rules, match)
}

func (c *Classifier) addMeta(name string, k metaKind) { c.lookup(name).meta |= k }

func compileRule(r config.VerdictRule) (func(string) bool, error) {
	if r.Name == "" || strings.ContainsFunc(r.Name, func(c rune) bool { return c <= ' ' || c == ':' || c >= 0x7f }) {
		return nil, fmt.Errorf("%q is not a header name", r.Name)
	}
	switch {
	case r.Pattern != "" && r.Threshold != nil:
		return nil, errors.New("set pattern or threshold, not both")
	case r.Threshold != nil:
		t := *r.Threshold
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("threshold %v is not a finite number", t)
		}
		return func(v string) bool {
			s, ok := firstNumber(v)
			return ok && s >= t
		}, nil
	case r.Pattern != "":
		re, err := regexp.Compile("(?i)" + r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("pattern: %w", err)
		}
		return re.MatchString, nil
	}
	return nil, errors.New("set pattern (a regular expression) or threshold (a score)")
}

// firstWordYes reports whether the value starts with the word "yes", as in
// "YES" or "Yes, score=7.1 required=5.0 tests=...".
func firstWordYes(v string) bool {
	if len(v) < 3 || !strings.EqualFold(v[:3], "yes") {
		return false
	}
	return len(v) == 3 || !isLetter(v[3])
}

func isLetter(b byte) bool { return 'a' <= b|0x20 && b|0x20 <= 'z' }

// rspamdActionSpam: rspamd's actions that let mail through untouched are
// "no action" and "greylist"; every other one ("add header", "rewrite
// subject", "soft reject", "reject", custom ones) means spam. An empty
// value is no action at all.
func rspamdActionSpam(v string) bool {
	a := strings.ToLower(strings.Join(strings.Fields(v), " "))
	return a != "" && a != "no action" && a != "greylist"
}

var numberRE = regexp.MustCompile(`[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)`)

// firstNumber finds the first decimal number; one that overflows a float64
// is no score.
func firstNumber(v string) (float64, bool) {
	m := numberRE.FindString(v)
	if m == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(m, 64)
	return f, err == nil
}

// NewScanner starts reading one message. maxHeaderBytes bounds the header
// bytes read and buffered; a non-positive value means
// DefaultMaxHeaderBytes. A nil Classifier uses the default rules only.
func (c *Classifier) NewScanner(maxHeaderBytes int) *Scanner {
	if c == nil {
		c = defaultClassifier
	}
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &Scanner{c: c, max: maxHeaderBytes}
}

// Scanner reads one message's header block as it streams past. Feed it the
// raw message with Write (any chunking; CRLF or bare LF line ends), then
// call Result. It is not safe for concurrent use.
type Scanner struct {
	c     *Classifier
	max   int // header bytes to read at most
	seen  int // header bytes read so far
	state scanState
	done  bool // past the header block or the bound: ignore the rest

	name         []byte // current field name, lower-cased
	nameOverflow bool   // longer than any name we look for
	cur          *field // current field if we want it, else nil
	pending      bool   // cur's value is in val and may still be folded
	val          []byte // cur's raw value, CRLF of folds removed

	acc progress

	// failed holds a recovered panic: never expected, but the mail path
	// must survive one. Tests assert it stays nil.
	failed any
}

// progress is what the fields seen so far have said; Result works on a copy.
type progress struct {
	res     Result
	decided bool     // a verdict header has been seen
	meta    metaKind // meta fields already taken (the first one counts)
	from    string   // the From value, parsed only by Result
}

type scanState uint8

const (
	atLineStart scanState = iota // next byte begins a line
	afterCR                      // a line began with CR: blank line if LF follows
	inName                       // reading a field name, up to ':'
	inValue                      // reading to the end of the line
)

// Write reads p. It never fails and always returns len(p), nil.
func (s *Scanner) Write(p []byte) (n int, err error) {
	n = len(p) // set first: it is also what a recovered panic returns
	if s.done {
		return n, nil
	}
	defer s.survive()
	budget := s.max - s.seen
	if len(p) > budget {
		p = p[:budget]
	}
	s.seen += len(p)
	s.scan(p)
	if !s.done && n > budget {
		s.truncate()
	}
	return n, nil
}

// survive turns a panic into a stopped scanner: a verdict is a bonus, the
// mail is not.
func (s *Scanner) survive() {
	if v := recover(); v != nil {
		s.failed = v
		s.done = true
		s.release()
	}
}

// scan is the header state machine. It keeps all state in s, so a message
// may be split anywhere between calls.
func (s *Scanner) scan(p []byte) {
	for len(p) > 0 && !s.done {
		switch s.state {
		case atLineStart:
			p = s.lineStart(p)
		case afterCR:
			if p[0] == '\n' {
				s.endOfHeader()
				return
			}
			// A lone CR starting a line: not a header line; skip it.
			s.flush()
			s.state = inValue
		case inName:
			p = s.readName(p)
		case inValue:
			p = s.readValue(p)
		}
	}
}

func (s *Scanner) lineStart(p []byte) []byte {
	switch p[0] {
	case '\n': // blank line with a bare LF
		s.endOfHeader()
		return nil
	case '\r':
		s.state = afterCR
		return p[1:]
	case ' ', '\t':
		// A fold continues the previous field (or a skipped line);
		// unfolding keeps the whitespace, so it is part of the value.
		s.state = inValue
		return p
	}
	s.flush()
	s.name = s.name[:0]
	s.nameOverflow = false
	s.state = inName
	return p
}

func (s *Scanner) readName(p []byte) []byte {
	for i, b := range p {
		switch b {
		case ':':
			s.startValue()
			return p[i+1:]
		case '\n': // no colon: not a header line
			s.state = atLineStart
			return p[i+1:]
		}
		// Room for the longest name plus some obsolete "Name :" spaces.
		if len(s.name) > s.c.maxName+16 {
			s.nameOverflow = true
			continue
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		s.name = append(s.name, b)
	}
	return nil
}

func (s *Scanner) startValue() {
	s.state = inValue
	if s.nameOverflow {
		return
	}
	// RFC 5322 obs-optional: whitespace may precede the colon.
	s.cur = s.c.fields[string(bytes.TrimRight(s.name, " \t"))]
	s.pending = s.cur != nil
	s.val = s.val[:0]
}

func (s *Scanner) readValue(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	line := p
	if i >= 0 {
		line = p[:i]
	}
	if s.pending {
		s.appendVal(line)
	}
	if i < 0 {
		return nil
	}
	// The CR of a CRLF may have come in an earlier Write; it is the
	// last byte of val either way.
	if s.pending && len(s.val) > 0 && s.val[len(s.val)-1] == '\r' {
		s.val = s.val[:len(s.val)-1]
	}
	s.state = atLineStart
	return p[i+1:]
}

// appendVal grows val no further than the bound: append's own growth
// would overshoot it. The bound always has room, since val holds only
// header bytes already counted against it.
func (s *Scanner) appendVal(b []byte) {
	if need := len(s.val) + len(b); need > cap(s.val) {
		v := make([]byte, len(s.val), min(max(2*cap(s.val), need, 256), s.max))
		copy(v, s.val)
		s.val = v
	}
	s.val = append(s.val, b...)
}

// flush applies the pending field, now known to be complete.
func (s *Scanner) flush() {
	if s.pending {
		s.acc.apply(s.cur, s.val)
	}
	s.cur, s.pending = nil, false
}

func (s *Scanner) endOfHeader() {
	s.flush()
	s.done = true
	s.release()
}

// truncate stops at the bound. The field being read may be cut short, so
// it does not count.
func (s *Scanner) truncate() {
	s.cur, s.pending = nil, false
	s.acc.res.Truncated = true
	s.done = true
	s.release()
}

// release drops the buffers once the scanner has nothing left to read.
func (s *Scanner) release() {
	s.name, s.val = nil, nil
}

// Result returns what the header said. Call it after the last Write; a
// header block that ends without a blank line (a message with no body) is
// complete then.
func (s *Scanner) Result() Result {
	return s.result(true)
}

// Verdict is Result without From and Subject: the From address takes a
// net/mail parse and the Subject an RFC 2047 decode, the dearest parts of
// reading a header, and the mail path uses neither (it passes RawSubject
// on).
func (s *Scanner) Verdict() Result {
	return s.result(false)
}

func (s *Scanner) result(from bool) (r Result) {
	defer func() {
		if v := recover(); v != nil {
			s.failed = v
			r = s.acc.res
		}
	}()
	acc := s.acc
	if !s.done && s.pending {
		acc.apply(s.cur, s.val)
	}
	if from {
		acc.res.From = parseFrom(acc.from)
		acc.res.Subject = mimeword.Subject(acc.res.RawSubject)
	}
	return acc.res
}

// apply takes one complete field into account.
func (a *progress) apply(f *field, raw []byte) {
	if (len(f.rules) == 0 || a.decided) && f.meta&^a.meta == 0 {
		return // nothing left to learn from this one
	}
	k := f.meta &^ a.meta
	if k == metaSubject && len(f.rules) == 0 {
		// Kept as written, a copy of at most maxSubjectInput bytes (a
		// slice of a longer string would hold all of it).
		a.meta |= k
		v := bytes.TrimSpace(raw)
		a.res.RawSubject = string(bytes.TrimSpace(v[:min(len(v), maxSubjectInput)]))
		return
	}
	v := strings.TrimSpace(string(raw))
	if len(f.rules) > 0 && !a.decided {
		a.decided = true
		a.res.Rule = f.name
		a.res.Spam = matchAny(f.rules, v)
	}
	if k != 0 {
		a.meta |= k
		switch k {
		case metaSubject:
			a.res.RawSubject = strings.Clone(strings.TrimSpace(v[:min(len(v), maxSubjectInput)]))
		case metaMessageID:
			a.res.MessageID = cleanMessageID(v)
		case metaFrom:
			a.from = v
		}
	}
}

func matchAny(rules []func(string) bool, v string) bool {
	for _, m := range rules {
		if m(v) {
			return true
		}
	}
	return false
}

// fromParser only wants the address, so it lets any charset in a display
// name through undecoded rather than fail on it.
var fromParser = &mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

func cleanMessageID(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	v = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, v)
	if len(v) > maxMessageID {
		i := maxMessageID
		for i > 0 && !utf8.RuneStart(v[i]) {
			i--
		}
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

func parseFrom(v string) string {
	if v == "" || len(v) > maxFromInput {
		return ""
	}
	list, err := fromParser.ParseList(v)
	if err != nil || len(list) == 0 {
		return ""
	}
	return list[0].Address
}
