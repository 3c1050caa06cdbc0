// Package addr turns recipient addresses into the only form spamsurge keeps:
// a normalised address, identified by a keyed hash (ID).
//
// Normalisation lowercases the domain and maps it through IDNA (UTS #46
// lookup mapping, so "Bücher.Example" and "xn--bcher-kva.example" are the
// same mailbox); the local part is case-folded and its sub-address
// ("user+shop") stripped only when configured, because both are the
// receiving system's policy, not a rule of SMTP. The stripped detail is
// returned for attribution (which shop leaked) but is not part of the ID.
//
// An ID is SipHash-2-4 with 128-bit output, keyed with 16 bytes derived from
// the 32-byte key file (see Key). It is a keyed PRF: without the key, an ID
// cannot be reversed by hashing a dictionary of likely addresses, which an
// unkeyed hash of an address can. The package never logs, stores or prints a
// plaintext address; callers must not either.
package addr

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/dchest/siphash"
	"golang.org/x/net/idna"
)

// Limits from RFC 5321 §4.5.3.1 (local part 64 octets, domain 255) and the
// 320-octet total they imply (plus "@"). Anything larger is not an address.
const (
	MaxLen      = 320
	MaxLocalLen = 64
	MaxDomain   = 255
)

// ErrInvalid wraps every rejection of a malformed address.
var ErrInvalid = errors.New("invalid address")

// ID is the keyed hash of a normalised address.
type ID [16]byte

// Key64 is the id's first 64 bits, little-endian, never zero: the key of
// the recipient table and of the source lists' masks. A pointer receiver:
// it is on the hot path and an ID is 16 bytes.
func (id *ID) Key64() uint64 {
	k := binary.LittleEndian.Uint64(id[:8])
	if k == 0 {
		k = 1
	}
	return k
}

// String is the lowercase hex form used in logs, incidents and the API.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the hex form, so IDs are hex in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads the hex form.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("addr: id %q is not 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// ParseID reads a hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// Normalizer holds the receiving system's address policy. The zero value
// lowercases and IDNA-maps the domain only.
type Normalizer struct {
	// FoldLocal lowercases the local part (most mail stores treat
	// "Alice@" and "alice@" as one mailbox; RFC 5321 allows otherwise).
	FoldLocal bool
	// Separators are the sub-address separators to strip, e.g. "+" or
	// "+-"; empty keeps the local part whole.
	Separators string
}

var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	// Mail domains in the wild carry underscores and other characters
	// that STD3 forbids; they are still one domain each.
	idna.StrictDomainName(false),
)

// Normalize returns the canonical form of a and, when a sub-address was
// stripped, its detail ("shop" for "user+shop@"). Surrounding whitespace and
// one pair of angle brackets are removed. It rejects anything that is not a
// plausible mailbox with an error wrapping ErrInvalid; the error does not
// quote the address.
func (n Normalizer) Normalize(a string) (norm, detail string, err error) {
	if n.canonical(a) {
		return a, "", nil
	}
	return n.normalize(a)
}

// Byte classes of the canonical fast path.
const (
	cOther = iota
	cLocal // a-z 0-9 '.' '_' '-': allowed in a canonical local part and domain
	cAt
)

var class = func() (c [256]uint8) {
	for b := 'a'; b <= 'z'; b++ {
		c[b] = cLocal
	}
	for b := '0'; b <= '9'; b++ {
		c[b] = cLocal
	}
	c['.'], c['_'], c['-'], c['@'] = cLocal, cLocal, cLocal, cAt
	return
}()

// canonical reports, in one pass, whether a is already in the form
// normalize returns it in with no detail: lowercase letters, digits, '.',
// '_' and '-' around one '@', a local part of at most MaxLocalLen bytes with
// no sub-address separator, a plain domain (no trailing dot, no "??--"
// label prefix, labels of 1 to 63 bytes). Anything else takes the full
// path, which returns the same for every address accepted here.
func (n Normalizer) canonical(a string) bool {
	if len(a) > MaxLen {
		return false
	}
	for i := 0; i < len(n.Separators); i++ {
		if class[n.Separators[i]] != cOther {
			return false // a separator that could occur in a canonical local part
		}
	}
	at := 0
	for at < len(a) && class[a[at]] == cLocal {
		at++
	}
	if at == 0 || at > MaxLocalLen || at == len(a) || a[at] != '@' {
		return false
	}
	label := 0 // bytes in the current domain label
	for i := at + 1; i < len(a); i++ {
		c := a[i]
		if class[c] != cLocal {
			return false
		}
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case c == '-' && a[i-1] == '-' && i-at-1 >= 3 && (i-at-1 == 3 || a[i-4] == '.'):
			return false // plainASCIIDomain's test for "xn--" and other "??--" prefixes, as is
		}
		if label++; label > 63 {
			return false
		}
	}
	return label > 0 && len(a)-at-1 <= MaxDomain
}

func (n Normalizer) normalize(a string) (norm, detail string, err error) {
	if len(a) > MaxLen+2+64 { // room for brackets and whitespace only
		return "", "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	a = strings.TrimSpace(a)
	if strings.HasPrefix(a, "<") && strings.HasSuffix(a, ">") {
		a = a[1 : len(a)-1]
	}
	if len(a) > MaxLen {
		return "", "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	if !utf8.ValidString(a) {
		return "", "", fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%w: no @", ErrInvalid)
	}
	local, domain := a[:at], a[at+1:]
	if local == "" || domain == "" {
		return "", "", fmt.Errorf("%w: empty local part or domain", ErrInvalid)
	}
	if len(local) > MaxLocalLen {
		return "", "", fmt.Errorf("%w: local part longer than %d bytes", ErrInvalid, MaxLocalLen)
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c <= ' ' || c == 0x7f {
			return "", "", fmt.Errorf("%w: control character or space in local part", ErrInvalid)
		}
	}
	domain = strings.TrimSuffix(domain, ".")
	if strings.HasPrefix(domain, "[") {
		// Address literal: keep as is, lowercased (IPv6 hex).
		if !strings.HasSuffix(domain, "]") {
			return "", "", fmt.Errorf("%w: unterminated address literal", ErrInvalid)
		}
		domain = strings.ToLower(domain)
	} else {
		if !plainASCIIDomain(domain) {
			d, err := domainProfile.ToASCII(domain)
			if err != nil {
				return "", "", fmt.Errorf("%w: bad domain", ErrInvalid)
			}
			domain = d
		}
		domain = strings.ToLower(domain)
		if !validLabels(domain) {
			return "", "", fmt.Errorf("%w: bad domain", ErrInvalid)
		}
	}
	if len(domain) > MaxDomain {
		return "", "", fmt.Errorf("%w: domain longer than %d bytes", ErrInvalid, MaxDomain)
	}
	if n.Separators != "" && !strings.HasPrefix(local, "\"") {
		if i := strings.IndexAny(local, n.Separators); i > 0 {
			local, detail = local[:i], local[i+1:]
		}
	}
	if n.FoldLocal {
		local = strings.ToLower(local)
		detail = strings.ToLower(detail)
		// Folding can lengthen UTF-8 ("Ⱥ", 2 bytes, folds to "ⱥ", 3):
		// the canonical form must itself be valid.
		if len(local) > MaxLocalLen {
			return "", "", fmt.Errorf("%w: local part longer than %d bytes", ErrInvalid, MaxLocalLen)
		}
	}
	if len(local)+1+len(domain) == len(a) && a[:len(local)] == local && a[len(local)+1:] == domain && a[len(local)] == '@' {
		return a, detail, nil // already canonical: no copy (the common case)
	}
	return local + "@" + domain, detail, nil
}

// plainASCIIDomain reports whether d needs no IDNA mapping beyond
// lowercasing: letters, digits, '-', '_' and '.', and no A-label (an "xn--"
// label must be validated by the IDNA code). This is the hot path.
func plainASCIIDomain(d string) bool {
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
		if c == '-' && i >= 3 && d[i-1] == '-' && (i == 3 || d[i-4] == '.') {
			return false // "xn--" or any "??--" label prefix
		}
	}
	return true
}

// validLabels checks a lowercased ASCII domain: non-empty labels of at
// most 63 bytes, no spaces, controls or '@'.
func validLabels(d string) bool {
	if d == "" {
		return false
	}
	n := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
			continue
		case c <= ' ' || c == 0x7f || c == '@' || c >= 0x80,
			// Not a host name character: brackets, quotes, punctuation
			// (a domain ">" made "<<@>." normalise to "<<@>", which
			// reads as a bracketed path). Letters, digits, '-' and
			// '_' (seen in real mail) stay.
			!(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'):
			return false
		}
		n++
		if n > 63 {
			return false
		}
	}
	return n > 0
}

// Key is the secret that keys address hashes. Keep it apart from the store:
// whoever holds both can test guesses against the stored IDs.
type Key struct {
	sip0, sip1 uint64
	fp         [8]byte
}

// KeyLen is the size of a key file.
const KeyLen = 32

// NewKey derives a Key from secret material (at least 16 bytes).
func NewKey(secret []byte) (*Key, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("addr: key has %d bytes, need at least 16", len(secret))
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	k := &Key{}
	s := derive("spamsurge address siphash v1")
	for i := 0; i < 8; i++ {
		k.sip0 |= uint64(s[i]) << (8 * i)
		k.sip1 |= uint64(s[8+i]) << (8 * i)
	}
	copy(k.fp[:], derive("spamsurge key fingerprint v1"))
	return k, nil
}

// Fingerprint identifies the key without revealing it. The store keeps it so
// that a changed key is noticed (every address would look new otherwise).
func (k *Key) Fingerprint() [8]byte { return k.fp }

// Hash returns the ID of an already normalised address.
func (k *Key) Hash(norm string) ID {
	// Hash128 only reads its input: hash the string's bytes in place
	// rather than copying them into a zeroed buffer.
	lo, hi := siphash.Hash128(k.sip0, k.sip1, unsafe.Slice(unsafe.StringData(norm), len(norm)))
	var id ID
	binary.LittleEndian.PutUint64(id[:8], lo)
	binary.LittleEndian.PutUint64(id[8:], hi)
	return id
}

// LoadKey reads the key file at path, creating it with KeyLen random bytes
// and mode 0600 when it does not exist. A key file readable by group or
// others is refused: the key is what keeps stored IDs from being reversed.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, KeyLen)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("addr: key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("addr: key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("addr: key: %w", err)
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("addr: key: %w", err)
		}
		return NewKey(b)
	}
	if err != nil {
		return nil, fmt.Errorf("addr: key: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("addr: key file %s has mode %v; make it 0600", path, st.Mode().Perm())
	}
	if len(b) < KeyLen {
		return nil, fmt.Errorf("addr: key file %s has %d bytes, need %d", path, len(b), KeyLen)
	}
	return NewKey(b)
}
