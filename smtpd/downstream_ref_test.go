package smtpd

import (
	"strconv"
	"strings"
	"testing"
)

// refParseEnhanced is parseEnhanced as it was before it stopped splitting
// (commit fd66fb3), kept as the reference.
func refParseEnhanced(s string, code int) ([3]int, string, bool) {
	head, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(head, ".")
	if len(parts) != 3 {
		return [3]int{}, s, false
	}
	var ec [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || len(p) > 3 {
			return [3]int{}, s, false
		}
		ec[i] = n
	}
	if ec[0] != code/100 {
		return [3]int{}, s, false
	}
	return ec, rest, true
}

func TestParseEnhancedMatchesReference(t *testing.T) {
	parts := []string{"", "0", "2", "5", "1", "10", "999", "1000", "+1", "-0", "-1", "+", "-", "a", "1a", " 1", "007", "+99", "++1", "٣"}
	var inputs []string
	for _, a := range parts {
		for _, b := range parts {
			for _, c := range parts {
				inputs = append(inputs, a+"."+b+"."+c, a+"."+b+"."+c+" text here", a+"."+b, a+"."+b+"."+c+".4 x")
			}
		}
	}
	inputs = append(inputs, "", " ", "2.0.0", "2.0.0 ", "5.1.1 <a@b>: unknown", "2..0 x", "text only", "2.0.0\tx", ".", "..", "...")
	for _, s := range inputs {
		for _, code := range []int{250, 354, 451, 550, 199} {
			ec, rest, ok := parseEnhanced(s, code)
			wec, wrest, wok := refParseEnhanced(s, code)
			if ec != wec || rest != wrest || ok != wok {
				t.Fatalf("parseEnhanced(%q, %d) = %v %q %v, want %v %q %v", s, code, ec, rest, ok, wec, wrest, wok)
			}
		}
	}
}
