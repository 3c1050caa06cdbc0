package verdict

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/internal/mimeword"
)

// FuzzScanner checks that no input panics the scanner and that the Result
// does not depend on how the stream is cut into Writes. The seeds live in
// testdata/fuzz/FuzzScanner; split picks the cut and a chunk size.
func FuzzScanner(f *testing.F) {
	c, err := New([]config.VerdictRule{
		{Name: "X-Spam-Score", Threshold: threshold(5)},
		{Name: "X-Filter-Verdict", Pattern: `^spam\b`},
	})
	if err != nil {
		f.Fatal(err)
	}
	rules := append(c.Headers(), "")
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		// 200 puts the bound inside many inputs; 0 is the default.
		for _, bound := range []int{200, 0} {
			want, s := feed(c, string(data), bound, len(data)+1)
			if s.failed != nil {
				t.Fatalf("panic: %v", s.failed)
			}
			checkInvariants(t, want, rules, len(data), bound)

			cut := int(split) % (len(data) + 1)
			chunk := int(split)%61 + 1
			for _, sizes := range [][]int{{cut, len(data) + 1}, {chunk}, {1}} {
				got, s := feed(c, string(data), bound, sizes...)
				if got != want || s.failed != nil {
					t.Fatalf("bound %d, writes of %v:\ngot  %+v\nwant %+v (panic: %v)", bound, sizes, got, want, s.failed)
				}
			}
		}
	})
}

func checkInvariants(t *testing.T, r Result, rules []string, n, bound int) {
	t.Helper()
	if !slices.Contains(rules, r.Rule) {
		t.Errorf("Rule %q is no rule", r.Rule)
	}
	if r.Spam && r.Rule == "" {
		t.Error("spam without a rule")
	}
	if bound <= 0 {
		bound = DefaultMaxHeaderBytes
	}
	if r.Truncated && n <= bound {
		t.Errorf("Truncated with %d bytes under a %d-byte bound", n, bound)
	}
	if !utf8.ValidString(r.Subject) || utf8.RuneCountInString(r.Subject) > maxSubjectRunes {
		t.Errorf("bad Subject %q", r.Subject)
	}
	if len(r.RawSubject) > maxSubjectInput || strings.Contains(r.RawSubject, "\n") || r.Subject != mimeword.Subject(r.RawSubject) {
		t.Errorf("bad RawSubject %q (Subject %q)", r.RawSubject, r.Subject)
	}
	if len(r.MessageID) > maxMessageID || strings.ContainsAny(r.MessageID, "\r\n") {
		t.Errorf("bad MessageID %q", r.MessageID)
	}
}
