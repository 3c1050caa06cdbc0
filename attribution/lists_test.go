package attribution

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spamsurge/spamsurge/addr"
)

func testKey(t testing.TB) *addr.Key {
	k, err := addr.NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var norm = addr.Normalizer{FoldLocal: true, Separators: "+"}

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func id(t testing.TB, k *addr.Key, a string) addr.ID {
	n, _, err := norm.Normalize(a)
	if err != nil {
		t.Fatal(err)
	}
	return k.Hash(n)
}

func TestLoadBadInput(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t)
	book := write(t, dir, "book.txt", "\xef\xbb\xbfAlice@Example.NET\r\n"+
		"# exported 2026-05-01\r\n"+
		"\r\n"+
		"   \n"+
		"bob@example.net\r\n"+
		"alice@example.net\n"+ // duplicate after normalisation
		"alice+shop@example.net\n"+ // same mailbox (sub-address stripped)
		"not an address\n"+
		"carol@\n"+
		strings.Repeat("x", 5000)+"@example.net\n"+
		"dave#1@example.net\n"+ // '#' inside: an address, not a comment
		"erin@example.net") // no final newline
	login := write(t, dir, "login.txt", "bob@example.net\nfrank@example.org\n")
	can := write(t, dir, "canary.txt", "trap-7f3@example.net\nTRAP-7f3@example.net\n")
	can2 := write(t, dir, "canary2.txt", "trap-7f3@example.net\nbait@example.net\n")
	det := write(t, dir, "details.txt", "# known shops\nShop\nnews letter\nshop\n")

	l, reps, err := Load(Config{Key: k, Normalizer: norm,
		Tags:         []Source{{"addressbook", book}, {"webmail-login", login}},
		Canaries:     []Source{{"billing-db", can}, {"crm", can2}},
		KnownDetails: det,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	if r.Loaded != 4 || r.Blank != 2 || r.Comments != 1 || r.Duplicates != 2 || r.Invalid != 3 {
		t.Fatalf("report %+v", r)
	}
	wantLines := []int{6, 7, 8, 9, 10}
	if len(r.Problems) != len(wantLines) {
		t.Fatalf("problems %v", r.Problems)
	}
	for i, p := range r.Problems {
		if p.Line != wantLines[i] || p.File != book {
			t.Errorf("problem %d: %v", i, p)
		}
		if strings.Contains(p.String(), "example") || strings.Contains(p.String(), "xxxx") {
			t.Errorf("problem quotes the line: %v", p)
		}
	}
	if got := l.Tags(); len(got) != 2 || got[1] != "webmail-login" || l.TagSize(0) != 4 || l.TagSize(1) != 2 {
		t.Fatalf("tags %v sizes %d %d", got, l.TagSize(0), l.TagSize(1))
	}
	for a, want := range map[string]uint64{
		"alice@example.net": 1, "bob@example.net": 3, "frank@example.org": 2, "dave#1@example.net": 1,
		"erin@example.net": 1, "zed@example.net": 0, "ALICE+other@example.net": 1,
	} {
		if m := l.MaskOf(id(t, k, a)); m != want {
			t.Errorf("%s: mask %b, want %b", a, m, want)
		}
	}
	if s, ok := l.Canary(id(t, k, "trap-7f3@example.net")); !ok || s != "billing-db" {
		t.Errorf("canary source %q %v", s, ok)
	}
	if s, ok := l.Canary(id(t, k, "bait@example.net")); !ok || s != "crm" {
		t.Errorf("canary source %q %v", s, ok)
	}
	if _, ok := l.Canary(id(t, k, "alice@example.net")); ok || l.NumCanaries() != 2 {
		t.Errorf("alice is no canary; %d canaries", l.NumCanaries())
	}
	if reps[2].Duplicates != 1 || reps[3].Duplicates != 1 || !strings.Contains(reps[3].Problems[0].Reason, "billing-db") {
		t.Errorf("canary reports %+v %+v", reps[2], reps[3])
	}
	if d, known := l.DetailLabel("shop"); d != "shop" || !known {
		t.Errorf("known detail: %q %v", d, known)
	}
	if d, known := l.DetailLabel("amazon"); known || len(d) != 32 || d == "amazon" {
		t.Errorf("unknown detail: %q %v", d, known)
	}
	if reps[4].Loaded != 1 || reps[4].Invalid != 1 || reps[4].Duplicates != 1 {
		t.Errorf("details report %+v", reps[4])
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t)
	ok := write(t, dir, "ok.txt", "a@example.net\n")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Key: k, Tags: []Source{{"book", ok}, {"login", filepath.Join(dir, "missing.txt")}}}, "attribution.tags[1] (login): open"},
		{Config{Key: k, Canaries: []Source{{"crm", filepath.Join(dir, "missing.txt")}}}, "attribution.canaries[0] (crm): open"},
		{Config{Key: k, KnownDetails: filepath.Join(dir, "missing.txt")}, "attribution.known_details: open"},
		{Config{Key: k, Tags: []Source{{"book", ok}, {"book", ok}}}, "used twice"},
		{Config{Key: k, Tags: []Source{{Untagged, ok}}}, "reserved"},
		{Config{Key: k, Tags: []Source{{"", ok}}}, "needs name and file"},
		{Config{Tags: []Source{{"book", ok}}}, "no address key"},
	} {
		_, _, err := Load(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	var many []Source
	for i := 0; i <= MaxTags; i++ {
		many = append(many, Source{Name: strings.Repeat("t", i+1), File: ok})
	}
	if _, _, err := Load(Config{Key: k, Tags: many}); err == nil {
		t.Error("65 tags accepted")
	}
}

func TestSetReload(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t)
	book := write(t, dir, "book.txt", "a@example.net\nb@example.net\n")
	can := write(t, dir, "can.txt", "trap@example.net\n")
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zapcore.DebugLevel)
	s, err := New(Options{Config: Config{Key: k, Normalizer: norm, Tags: []Source{{"book", book}}, Canaries: []Source{{"crm", can}}},
		Registerer: reg, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Current()
	if first.TagSize(0) != 2 || testutil.ToFloat64(s.tagSize.WithLabelValues("book")) != 2 || testutil.ToFloat64(s.canarySize) != 1 {
		t.Fatal("initial sizes")
	}

	write(t, dir, "book.txt", "a@example.net\nb@example.net\nc@example.net\nnonsense\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Current() == first || s.Current().TagSize(0) != 3 || testutil.ToFloat64(s.tagSize.WithLabelValues("book")) != 3 {
		t.Fatal("reload did not take the new list")
	}

	// A vanished file: the old lists stay, the error is counted.
	second := s.Current()
	os.Remove(can)
	if err := s.Reload(); err == nil {
		t.Fatal("reload with a missing file succeeded")
	}
	if s.Current() != second || testutil.ToFloat64(s.reloadErrors) != 1 || testutil.ToFloat64(s.tagSize.WithLabelValues("book")) != 3 {
		t.Fatal("failed reload changed the lists or was not counted")
	}
	if testutil.ToFloat64(s.lastOK) != 0 {
		t.Fatal("last_reload_successful still 1 after a failed reload")
	}
	if logs.FilterMessage("reloading lists failed; keeping the previous ones").Len() != 1 {
		t.Fatal("failed reload not logged")
	}
	if logs.FilterMessage("list line skipped").FilterField(zap.Int("line", 4)).Len() != 1 {
		t.Fatalf("bad line not logged with its number: %v", logs.All())
	}
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "example.net") {
				t.Fatalf("log carries an address: %v", e)
			}
		}
	}
	if _, err := New(Options{Config: Config{Key: k, Canaries: []Source{{"crm", can}}}}); err == nil {
		t.Fatal("a missing file at start is not an error")
	}
	// The file is back: the next reload succeeds and says so.
	write(t, dir, "can.txt", "trap@example.net\n")
	if err := s.Reload(); err != nil || testutil.ToFloat64(s.lastOK) != 1 {
		t.Fatalf("reload after the file came back: %v, last_reload_successful %v", err, testutil.ToFloat64(s.lastOK))
	}
	var nilSet *Set
	if nilSet.Current() != nil || nilSet.Current().MaskOf(addr.ID{}) != 0 {
		t.Fatal("nil set")
	}
}
