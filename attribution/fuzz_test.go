package attribution

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadList: any file content is read without a panic; every line is
// counted exactly once; no problem quotes the line.
//
//	go test -fuzz=FuzzReadList ./attribution
func FuzzReadList(f *testing.F) {
	f.Add([]byte("a@example.net\r\n# c\r\n\r\nb@example.net"))
	f.Add([]byte("\xef\xbb\xbfA@B.example\nA@b.example\n<a@b.example>\n"))
	f.Add([]byte("x@" + strings.Repeat("y", 70000) + "\nz@example.net\n"))
	f.Add([]byte("\x00@\xff\n@\n a@[::1]\nuser+tag@xn--bcher-kva.example\n"))
	k := testKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "list.txt")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, reps, err := Load(Config{Key: k, Normalizer: norm, Tags: []Source{{"t", p}}})
		if err != nil {
			t.Fatal(err)
		}
		r := reps[0]
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if got := r.Loaded + r.Blank + r.Comments + r.Duplicates + r.Invalid; got != lines {
			t.Fatalf("%d lines counted, file has %d: %+v", got, lines, r)
		}
		if l.TagSize(0) != r.Loaded || len(l.mask) != r.Loaded {
			t.Fatalf("loaded %d, size %d, map %d", r.Loaded, l.TagSize(0), len(l.mask))
		}
		for _, pr := range r.Problems {
			if len(pr.Reason) > 100 {
				t.Fatalf("long reason (quoting input?): %q", pr.Reason)
			}
		}
	})
}
