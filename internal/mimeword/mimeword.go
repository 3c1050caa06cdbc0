// Package mimeword decodes the RFC 2047 encoded words of header values
// ("=?windows-1251?B?...?=") in every charset golang.org/x/text knows,
// through go-message's charset package, for what spamsurge shows: campaign
// subjects in incidents, the API and alerts.
//
// Decoding is for display, never for the mail path: the header scanner
// (verdict) keeps a Subject as written, and the detector decodes it only
// for the messages that carry a first spam.
//
// Nothing here fails: a word that cannot be decoded (an unknown or
// unsupported charset, bad base64 or quoted-printable, a malformed word)
// stays as written, and the words around it are decoded all the same.
package mimeword

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Limits of Subject.
const (
	// MaxSubjectRunes is the longest subject Subject returns.
	MaxSubjectRunes = 200
	// MaxSubjectInput is the most of a raw Subject worth decoding, and
	// what the header scanner keeps: 200 runes take far less even in the
	// wordiest encoding (UTF-8 Q of 4-byte runes, about 3 KiB).
	MaxSubjectInput = 4 << 10
)

// Subject decodes a raw Subject value (unfolded) for display: encoded
// words decoded, invalid UTF-8 replaced by U+FFFD, control characters
// (folding tabs, stray CRs, C1 controls) turned into spaces, trimmed, at
// most MaxSubjectRunes runes. Only the first MaxSubjectInput bytes of raw
// are read.
func Subject(raw string) string {
	if len(raw) > MaxSubjectInput {
		raw = raw[:MaxSubjectInput]
	}
	v := strings.ToValidUTF8(Decode(raw), "\uFFFD")
	v = strings.Map(func(r rune) rune {
		if r < ' ' || 0x7f <= r && r < 0xa0 {
			return ' '
		}
		return r
	}, v)
	return strings.TrimSpace(truncateRunes(strings.TrimSpace(v), MaxSubjectRunes))
}

func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// Decode decodes the encoded words in a header value and drops the
// white space between two adjacent decoded words (RFC 2047 6.2). It
// finds words as mime.WordDecoder.DecodeHeader does, and gives the same
// result whenever that succeeds with go-message's charsets; where
// DecodeHeader fails the whole value over one word in a charset it cannot
// convert, Decode keeps that word as written and decodes the rest.
// The result may not be valid UTF-8 (a UTF-8 word may hold any bytes).
func Decode(v string) string {
	i := strings.Index(v, "=?")
	if i < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	b.WriteString(v[:i])
	v = v[i:]
	between := false // v follows a decoded word
	for {
		start := strings.Index(v, "=?")
		if start < 0 {
			break
		}
		cur := start + len("=?")
		i := strings.IndexByte(v[cur:], '?')
		if i < 0 {
			break
		}
		cs := v[cur : cur+i]
		cur += i + len("?")
		if len(v) < cur+len("Q??=") {
			break
		}
		enc := v[cur]
		cur++
		if v[cur] != '?' {
			break
		}
		cur++
		j := strings.Index(v[cur:], "?=")
		if j < 0 {
			break
		}
		text := v[cur : cur+j]
		end := cur + j + len("?=")

		text, ok := decodeWord(cs, enc, text)
		if !ok { // kept as written, with what precedes it
			between = false
			b.WriteString(v[:end])
			v = v[end:]
			continue
		}
		if start > 0 && (!between || hasNonWhitespace(v[:start])) {
			b.WriteString(v[:start])
		}
		b.WriteString(text)
		v = v[end:]
		between = true
	}
	b.WriteString(v)
	return b.String()
}

// decodeWord decodes one word's text in encoding enc (B or Q) from charset
// cs to UTF-8.
func decodeWord(cs string, enc byte, text string) (string, bool) {
	var content []byte
	var err error
	switch enc {
	case 'B', 'b':
		content, err = base64.StdEncoding.DecodeString(text)
	case 'Q', 'q':
		content, err = qDecode(text)
	default:
		return "", false
	}
	if err != nil {
		return "", false
	}
	var b strings.Builder
	if err := convert(&b, cs, content); err != nil {
		return "", false
	}
	return b.String(), true
}

// convert is mime.WordDecoder's: UTF-8, ISO-8859-1 and US-ASCII natively,
// every other charset through CharsetReader.
func convert(b *strings.Builder, cs string, content []byte) error {
	switch {
	case strings.EqualFold("utf-8", cs):
		b.Write(content)
	case strings.EqualFold("iso-8859-1", cs):
		for _, c := range content {
			b.WriteRune(rune(c))
		}
	case strings.EqualFold("us-ascii", cs):
		for _, c := range content {
			if c >= utf8.RuneSelf {
				b.WriteRune(unicode.ReplacementChar)
			} else {
				b.WriteByte(c)
			}
		}
	default:
		r, err := CharsetReader(strings.ToLower(cs), bytes.NewReader(content))
		if err != nil {
			return err
		}
		// Not io.Copy: a strings.Builder has no ReadFrom, so it would
		// allocate 32 KiB for a word of a few dozen bytes.
		out, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		b.Write(out)
	}
	return nil
}

// CharsetReader converts from a charset to UTF-8 with go-message's
// charsets (golang.org/x/text's encodings, by IANA and WHATWG names and
// aliases), for a mime.WordDecoder. An RFC 2231 language suffix
// ("utf-8*en") is dropped.
func CharsetReader(cs string, r io.Reader) (io.Reader, error) {
	if i := strings.IndexByte(cs, '*'); i >= 0 {
		cs = cs[:i]
	}
	if cs == "" {
		return nil, fmt.Errorf("no charset")
	}
	if replacement(cs) {
		return nil, fmt.Errorf("charset %q: not supported", cs)
	}
	return charset.Reader(cs, r)
}

// replacement reports a charset that go-message would find only in the
// WHATWG index as its "replacement" encoding (ISO-2022-KR, ISO-2022-CN:
// deemed unsafe for browsers), which turns a whole word into one U+FFFD.
// Kept as written, the word still tells one campaign from another.
func replacement(cs string) bool {
	if e, _ := ianaindex.MIME.Encoding(cs); e != nil {
		return false
	}
	if e, _ := ianaindex.MIME.Encoding("cs" + cs); e != nil {
		return false
	}
	e, err := htmlindex.Get(cs)
	return err == nil && e == encoding.Replacement
}

func hasNonWhitespace(s string) bool {
	for _, b := range s {
		switch b {
		case ' ', '\t', '\n', '\r': // linear white space, not \v
		default:
			return true
		}
	}
	return false
}

var errQ = fmt.Errorf("mimeword: invalid Q encoding")

// qDecode is mime's: "_" is a space, "=XX" a byte (lower-case hex
// accepted), other printable ASCII itself.
func qDecode(s string) ([]byte, error) {
	dec := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			dec = append(dec, ' ')
		case c == '=':
			if i+2 >= len(s) {
				return nil, errQ
			}
			h, ok1 := fromHex(s[i+1])
			l, ok2 := fromHex(s[i+2])
			if !ok1 || !ok2 {
				return nil, errQ
			}
			dec = append(dec, h<<4|l)
			i += 2
		case ' ' <= c && c <= '~' || c == '\n' || c == '\r' || c == '\t':
			dec = append(dec, c)
		default:
			return nil, errQ
		}
	}
	return dec, nil
}

func fromHex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	}
	return 0, false
}
