package smtp

import (
	"strconv"
	"strings"
	"testing"
)

// refFormatResponse is what writeResponse wrote before formatResponse
// (split every text, grow the buffer from nil), kept as the reference.
func refFormatResponse(code int, enhCode EnhancedCode, text ...string) []byte {
	if enhCode == EnhancedCodeNotSet {
		cat := code / 100
		switch cat {
		case 2, 4, 5:
			enhCode = EnhancedCode{cat, 0, 0}
		default:
			enhCode = NoEnhancedCode
		}
	}
	text = strings.Split(strings.Join(text, "\n"), "\n")
	var buf []byte
	lastLineIndex := len(text) - 1
	for i := 0; i < lastLineIndex; i++ {
		buf = strconv.AppendInt(buf, int64(code), 10)
		buf = append(buf, '-')
		buf = append(buf, text[i]...)
		buf = append(buf, '\r', '\n')
	}
	buf = strconv.AppendInt(buf, int64(code), 10)
	buf = append(buf, ' ')
	if enhCode != NoEnhancedCode {
		buf = strconv.AppendInt(buf, int64(enhCode[0]), 10)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, int64(enhCode[1]), 10)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, int64(enhCode[2]), 10)
		buf = append(buf, ' ')
	}
	buf = append(buf, text[lastLineIndex]...)
	buf = append(buf, '\r', '\n')
	return buf
}

func TestFormatResponseMatchesReference(t *testing.T) {
	texts := [][]string{
		nil, {""}, {"OK"}, {"a", "b"}, {"a\nb"}, {"a\nb", "c"}, {"\n"}, {"x\n"}, {"", ""},
		{"Roger, accepting mail from <a@b>"}, {"host", "PIPELINING", "8BITMIME", "SIZE 1000"},
	}
	codes := []EnhancedCode{EnhancedCodeNotSet, NoEnhancedCode, {2, 0, 0}, {5, 7, 1}, {4, 123, 999}}
	for _, code := range []int{220, 250, 354, 421, 451, 550, 100, 999, 0} {
		for _, ec := range codes {
			for _, text := range texts {
				got := string(formatResponse(code, ec, text...))
				want := string(refFormatResponse(code, ec, text...))
				if got != want {
					t.Fatalf("formatResponse(%d, %v, %q) = %q, want %q", code, ec, text, got, want)
				}
			}
		}
	}
}
