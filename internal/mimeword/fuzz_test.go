package mimeword

import (
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

var fuzzCharsets = []struct {
	label string
	enc   encoding.Encoding
}{
	{"windows-1251", charmap.Windows1251},
	{"koi8-r", charmap.KOI8R},
	{"HZ-GB-2312", simplifiedchinese.HZGB2312},
	{"gbk", simplifiedchinese.GBK},
	{"big5", traditionalchinese.Big5},
	{"ISO-2022-JP", japanese.ISO2022JP},
	{"shift_jis", japanese.ShiftJIS},
	{"euc-jp", japanese.EUCJP},
	{"euc-kr", korean.EUCKR},
	{"windows-1252", charmap.Windows1252},
}

// FuzzDecode: no input panics or yields an unbounded or invalid Subject;
// Decode agrees with mime.WordDecoder wherever that succeeds; and a word
// made from arbitrary bytes in any charset decodes to what x/text's own
// decoder makes of those bytes.
func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.encoded, []byte(fx.want), uint8(0), false)
	}
	f.Add("=?x-klingon?B?AAAA?= =?UTF-8?Q?a?=", []byte("\x1b$B"), uint8(5), true)
	f.Add("=?UTF-8?B?R3LDvMOfZ?= =?windows-1251?Q?=ZZ?= =?", []byte{0x81, 0xff, 0x00}, uint8(6), false)
	std := &mime.WordDecoder{CharsetReader: CharsetReader}
	f.Fuzz(func(t *testing.T, header string, raw []byte, cs uint8, q bool) {
		s := Subject(header)
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxSubjectRunes || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || 0x7f <= r && r < 0xa0 }) {
			t.Fatalf("Subject(%q) = %q", header, s)
		}
		if want, err := std.DecodeHeader(header); err == nil {
			if got := Decode(header); got != want {
				t.Fatalf("Decode(%q) = %q, mime.WordDecoder %q", header, got, want)
			}
		}
		if !strings.Contains(header, "=?") && Decode(header) != header {
			t.Fatalf("Decode changed %q", header)
		}

		c := fuzzCharsets[int(cs)%len(fuzzCharsets)]
		want, err := c.enc.NewDecoder().Bytes(raw)
		if err != nil {
			return
		}
		word := "=?" + c.label + "?B?" + base64.StdEncoding.EncodeToString(raw) + "?="
		if q {
			word = "=?" + c.label + "?Q?" + qEncode(raw) + "?="
		}
		if got := Decode(word + " " + word); got != string(want)+string(want) {
			t.Fatalf("Decode(%q) = %q, want %q twice", word, got, want)
		}
	})
}

func qEncode(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == ' ':
			sb.WriteByte('_')
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, "=%02X", c)
		}
	}
	return sb.String()
}
