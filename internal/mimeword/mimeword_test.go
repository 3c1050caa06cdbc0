package mimeword

import (
	"mime"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

type fixture struct{ charset, enc, encoded, want string }

// fixtures reads testdata/subjects.tsv (made by testdata/mkfixtures.sh with
// iconv, so the bytes do not come from the decoders under test).
func fixtures(t testing.TB) []fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/subjects.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		c := strings.Split(line, "\t")
		if len(c) != 4 {
			t.Fatalf("bad fixture line %q", line)
		}
		fs = append(fs, fixture{c[0], c[1], c[2], c[3]})
	}
	return fs
}

// TestCharsets decodes a real subject in each charset, B and Q.
func TestCharsets(t *testing.T) {
	fs := fixtures(t)
	seen := map[string]int{}
	for _, f := range fs {
		seen[f.charset]++
		t.Run(f.charset+"-"+f.enc, func(t *testing.T) {
			if got := Subject(f.encoded); got != f.want {
				t.Errorf("Subject(%q) = %q, want %q", f.encoded, got, f.want)
			}
			// Labels are case-insensitive.
			lower := strings.Replace(f.encoded, f.charset, strings.ToLower(f.charset), 1)
			if got := Subject(lower); got != f.want {
				t.Errorf("Subject(%q) = %q, want %q", lower, got, f.want)
			}
		})
	}
	for _, cs := range []string{"windows-1251", "KOI8-R", "GB2312", "Big5", "ISO-2022-JP", "Shift_JIS", "windows-1252"} {
		if seen[cs] != 2 {
			t.Errorf("%s: %d fixtures, want B and Q", cs, seen[cs])
		}
	}
}

// TestSeveralWords: words of different charsets in one subject, the white
// space between adjacent words dropped, the text around them kept.
func TestSeveralWords(t *testing.T) {
	byName := map[string]fixture{}
	for _, f := range fixtures(t) {
		byName[f.charset+"-"+f.enc] = f
	}
	ru, jp, cn := byName["windows-1251-B"], byName["ISO-2022-JP-Q"], byName["Big5-B"]
	tests := []struct{ in, want string }{
		{ru.encoded + " " + jp.encoded, ru.want + jp.want},
		{ru.encoded + "\t  " + cn.encoded, ru.want + cn.want},
		{"Re: " + ru.encoded + " (fwd) " + jp.encoded + " !", "Re: " + ru.want + " (fwd) " + jp.want + " !"},
		// A word split in two at a character boundary, as mailers fold.
		{"=?KOI8-R?B?98HbIA==?= =?KOI8-R?B?2sHLwdo=?=", "Ваш заказ"},
	}
	for _, tt := range tests {
		if got := Subject(tt.in); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestUndecodable: what cannot be decoded stays as written, never empties
// or breaks the rest.
func TestUndecodable(t *testing.T) {
	ru := "=?windows-1251?B?0ero5OroIOTuIDkwJSDy7uv86u4g8eXj7uTt/w==?="
	const ruText = "Скидки до 90% только сегодня"
	tests := []struct{ name, in, want string }{
		{"unknown charset", "=?x-klingon?B?AAAA?=", "=?x-klingon?B?AAAA?="},
		{"unknown charset beside a known one", "=?x-klingon?B?AAAA?= " + ru, "=?x-klingon?B?AAAA?= " + ruText},
		{"known one beside an unknown charset", ru + " =?x-klingon?Q?abc?=", ruText + " =?x-klingon?Q?abc?="},
		{"charset x/text lists but cannot convert", "=?ISO-2022-KR?B?QUJD?=", "=?ISO-2022-KR?B?QUJD?="},
		{"charset only WHATWG's replacement knows", "=?ISO-2022-CN?B?QUJD?= =?csISO2022KR?B?QUJD?=", "=?ISO-2022-CN?B?QUJD?= =?csISO2022KR?B?QUJD?="},
		{"HZ is decoded", "=?HZ-GB-2312?B?fns5J08yfn0=?=", "恭喜"},
		{"empty charset", "=??B?QUJD?=", "=??B?QUJD?="},
		{"bad base64", "=?KOI8-R?B?98Hb!!?= ok", "=?KOI8-R?B?98Hb!!?= ok"},
		{"truncated base64", "=?UTF-8?B?R3LDvMOfZ?=", "=?UTF-8?B?R3LDvMOfZ?="},
		{"bad Q hex", "=?windows-1251?Q?=ZZ=D1?=", "=?windows-1251?Q?=ZZ=D1?="},
		{"Q escape cut short", "=?windows-1251?Q?ab=D?=", "=?windows-1251?Q?ab=D?="},
		{"unknown encoding", "=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="},
		{"unterminated word", "=?UTF-8?B?R3LDvMOfZQ==", "=?UTF-8?B?R3LDvMOfZQ=="},
		{"unterminated word after a good one", ru + " =?UTF-8?Q?abc", ruText + " =?UTF-8?Q?abc"},
		{"no encoding", "=?UTF-8??=", "=?UTF-8??="},
		{"lone marker", "50% off =? now", "50% off =? now"},
		{"invalid bytes in a UTF-8 word", "=?UTF-8?B?/w==?=x", "\uFFFDx"},
		{"invalid bytes in Shift_JIS", "=?Shift_JIS?B?gf8=?=", "\uFFFD"},
		{"controls decoded", "=?UTF-8?Q?a=09b=0Dc=00d=C2=85e?=", "a b c d e"},
		{"escape of a broken ISO-2022-JP", "=?ISO-2022-JP?B?GyRCJCIbKA==?=", "あ\uFFFD\uFFFD"},
		{"language suffix", "=?UTF-8*en?Q?hello?=", "hello"},
		{"raw 8-bit", "caf\xe9", "caf\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Subject(tt.in)
			if got != tt.want {
				t.Errorf("Subject(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("not UTF-8: %q", got)
			}
		})
	}
}

// TestSubjectBounds: at most 200 runes out, at most 4 KiB read.
func TestSubjectBounds(t *testing.T) {
	long := strings.Repeat("限", 300)
	if got := Subject(long); got != strings.Repeat("限", 200) {
		t.Errorf("300 runes: got %d runes", utf8.RuneCountInString(got))
	}
	// 200 runes in the wordiest usual form (UTF-8 Q, 4-byte runes, folded
	// words of 75 characters) fit in what is read.
	var b strings.Builder
	for range 200 / 4 {
		b.WriteString("=?UTF-8?Q?=F0=9F=8E=81=F0=9F=8E=81=F0=9F=8E=81=F0=9F=8E=81?= ")
	}
	if b.Len() > MaxSubjectInput {
		t.Fatalf("%d bytes", b.Len())
	}
	if got := Subject(b.String()); got != strings.Repeat("🎁", 200) {
		t.Errorf("UTF-8 Q emoji: %q", got)
	}
	// Beyond the input bound nothing is read: a word cut there stays as
	// written (and is no crash).
	in := strings.Repeat("a", MaxSubjectInput-10) + "=?UTF-8?Q?hello?="
	if got := Subject(in); got != in[:MaxSubjectInput][:200] {
		t.Errorf("cut: %q", got)
	}
	if got := Subject(strings.Repeat(" ", MaxSubjectInput) + "x"); got != "" {
		t.Errorf("past the bound: %q", got)
	}
}

// TestMatchesStandardLibrary: where mime.WordDecoder.DecodeHeader (with
// the same charsets) succeeds, Decode says the same.
func TestMatchesStandardLibrary(t *testing.T) {
	d := &mime.WordDecoder{CharsetReader: CharsetReader}
	var ins []string
	for _, f := range fixtures(t) {
		ins = append(ins, f.encoded, "x "+f.encoded+" y "+f.encoded+"\t"+f.encoded)
	}
	ins = append(ins, "=?utf-8?q?a?b?=", "=?abc =?utf-8?q?x?=", "=?utf-8?q?=3D=3F?= =?utf-8?b?!?= =?utf-8?q?z?=", "plain")
	for _, in := range ins {
		want, err := d.DecodeHeader(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := Decode(in); got != want {
			t.Errorf("Decode(%q) = %q, DecodeHeader %q", in, got, want)
		}
	}
}
