package addr

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	fold := Normalizer{FoldLocal: true, Separators: "+"}
	keep := Normalizer{}
	cases := []struct {
		n            Normalizer
		in           string
		norm, detail string
	}{
		{keep, "Alice@Example.NET", "Alice@example.net", ""},
		{fold, "Alice@Example.NET", "alice@example.net", ""},
		{fold, " <Alice+Shop@Example.net.> ", "alice@example.net", "shop"},
		{keep, "alice+shop@example.net", "alice+shop@example.net", ""},
		{fold, "+leading@example.net", "+leading@example.net", ""},
		{fold, "user@Bücher.Example", "user@xn--bcher-kva.example", ""},
		{fold, "user@xn--bcher-kva.example", "user@xn--bcher-kva.example", ""},
		{fold, "user@BÜCHER.example", "user@xn--bcher-kva.example", ""},
		{fold, `"a@b"@example.net`, `"a@b"@example.net`, ""},
		{fold, "postmaster@[IPv6:2001:DB8::1]", "postmaster@[ipv6:2001:db8::1]", ""},
		{Normalizer{Separators: "+-"}, "bob-news@example.net", "bob@example.net", "news"},
	}
	for _, c := range cases {
		norm, detail, err := c.n.Normalize(c.in)
		if err != nil {
			t.Errorf("Normalize(%q): %v", c.in, err)
			continue
		}
		if norm != c.norm || detail != c.detail {
			t.Errorf("Normalize(%q) = %q, %q; want %q, %q", c.in, norm, detail, c.norm, c.detail)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	n := Normalizer{FoldLocal: true, Separators: "+"}
	for _, in := range []string{
		"", "alice", "alice@", "@example.net", "<>",
		strings.Repeat("a", 10<<10) + "@example.net",
		strings.Repeat("a", 65) + "@example.net",
		"alice@" + strings.Repeat("a", 300),
		"al ice@example.net", "alice\x00@example.net",
		"alice@exa mple.net", "\xff@example.net",
		"alice@[1.2.3.4",
	} {
		if norm, _, err := n.Normalize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%.40q) = %q, %v; want ErrInvalid", in, norm, err)
		} else if len(in) > 3 && strings.Contains(err.Error(), in) {
			t.Errorf("error quotes the address: %v", err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	k1, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeyLen {
		t.Fatalf("key file mode %v size %d", st.Mode().Perm(), st.Size())
	}
	k2, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Hash("a@b") != k2.Hash("a@b") || k1.Fingerprint() != k2.Fingerprint() {
		t.Fatal("reloaded key hashes differently")
	}
	other, err := LoadKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash("a@b") == k1.Hash("a@b") || other.Fingerprint() == k1.Fingerprint() {
		t.Fatal("two random keys hash alike")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil {
		t.Fatal("world-readable key accepted")
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("tiny"), 0o600)
	if _, err := LoadKey(short); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestHashAndID(t *testing.T) {
	k, err := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := k.Hash("alice@example.net"), k.Hash("alicf@example.net")
	if a == b {
		t.Fatal("different addresses, same id")
	}
	if a != k.Hash("alice@example.net") {
		t.Fatal("hash not deterministic")
	}
	s := a.String()
	if len(s) != 32 || strings.Contains(s, "alice") {
		t.Fatalf("id string %q", s)
	}
	back, err := ParseID(s)
	if err != nil || back != a {
		t.Fatalf("ParseID(%q) = %v, %v", s, back, err)
	}
	if _, err := ParseID("zz"); err == nil {
		t.Fatal("bad hex accepted")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Alice+x@Example.NET", "<a@b>", "a@Bücher.example", `"q@"@x`, "@", "a@[::1]", "a@xn--"} {
		f.Add(s)
	}
	n := Normalizer{FoldLocal: true, Separators: "+"}
	f.Fuzz(func(t *testing.T, in string) {
		norm, detail, err := n.Normalize(in)
		// The one-pass fast path agrees with the full path.
		if n2, d2, e2 := n.normalize(in); n2 != norm || d2 != detail || (e2 == nil) != (err == nil) {
			t.Fatalf("%q: Normalize (%q %q %v), full path (%q %q %v)", in, norm, detail, err, n2, d2, e2)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if len(norm) > MaxLen+MaxDomain || !strings.Contains(norm, "@") {
			t.Fatalf("accepted %q as %q", in, norm)
		}
		// Normalising is idempotent: the canonical form maps to itself.
		again, _, err := n.Normalize(norm)
		if err != nil {
			t.Fatalf("Normalize(%q) ok but its result %q fails: %v", in, norm, err)
		}
		if again != norm {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, norm, again)
		}
	})
}

var sink ID

// BenchmarkHash compares the chosen SipHash-128 with HMAC-SHA256 (reused
// state, truncated to 16 bytes) on a typical address.
func BenchmarkHash(b *testing.B) {
	a := "firstname.lastname@example-provider.net"
	b.Run("siphash128", func(b *testing.B) {
		k, _ := NewKey(make([]byte, 32))
		for b.Loop() {
			sink = k.Hash(a)
		}
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		m := hmac.New(sha256.New, make([]byte, 32))
		var buf [32]byte
		for b.Loop() {
			m.Reset()
			m.Write([]byte(a))
			copy(sink[:], m.Sum(buf[:0]))
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	n := Normalizer{FoldLocal: true, Separators: "+"}
	for b.Loop() {
		n.Normalize("Firstname.Lastname+news@Example-Provider.net")
	}
}

// BenchmarkNormalizeCanonical is the common case: an address already in
// canonical form (the one-pass fast path).
func BenchmarkNormalizeCanonical(b *testing.B) {
	n := Normalizer{FoldLocal: true, Separators: "+"}
	for b.Loop() {
		n.Normalize("firstname.lastname123456@example-provider.net")
	}
}

// TestCanonicalFastPath checks that the one-pass fast path of Normalize
// returns exactly what the full path returns, on random addresses built
// from the bytes that matter to either path, under several policies.
func TestCanonicalFastPath(t *testing.T) {
	const alphabet = "ab-._@+xnXN09 <>\"[]:éÜ\x00\x7f"
	pols := []Normalizer{{}, {FoldLocal: true, Separators: "+"}, {FoldLocal: true, Separators: "+-"}, {Separators: "."}, {Separators: "@"}}
	r := uint64(1)
	next := func(n int) int { r ^= r << 13; r ^= r >> 7; r ^= r << 17; return int(r % uint64(n)) }
	fast := 0
	check := func(in string) {
		for _, n := range pols {
			n1, d1, e1 := n.Normalize(in)
			n2, d2, e2 := n.normalize(in)
			if n1 != n2 || d1 != d2 || (e1 == nil) != (e2 == nil) {
				t.Fatalf("%+v %q: fast path (%q %q %v), full path (%q %q %v)", n, in, n1, d1, e1, n2, d2, e2)
			}
			if n.canonical(in) {
				fast++
			}
		}
	}
	for _, s := range []string{"a@b", "0@0.--", "a@b.--", "a@xn--b", "a@ab--c", "a@abc--d", "a@b.xn--c", "a@b.", "a@.b", "a@b..c", "@b", "a@", "a@@b",
		strings.Repeat("a", 64) + "@b", strings.Repeat("a", 65) + "@b", "a@" + strings.Repeat("b", 63), "a@" + strings.Repeat("b", 64),
		"a@" + strings.Repeat("b.", 127) + "b", "a@" + strings.Repeat("b.", 128) + "b", strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 127) + "bb"} {
		check(s)
	}
	for i := 0; i < 300000; i++ {
		b := make([]byte, 1+next(12))
		for j := range b {
			b[j] = alphabet[next(len(alphabet))]
		}
		if next(2) == 0 {
			b = append(b[:next(len(b))], '@')
			b = append(b, alphabet[next(4)], 'x', '.', 'n')
		}
		check(string(b))
	}
	if fast == 0 {
		t.Fatal("the fast path never ran")
	}
}
