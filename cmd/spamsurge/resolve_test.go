package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/api"
	"github.com/spamsurge/spamsurge/detector"
	"github.com/spamsurge/spamsurge/store"
)

// resolveFixture is a config directory with a key, a customer file and a
// tag list, and an incident whose recipients are some of the customers.
type resolveFixture struct {
	dir, cfg, customers string
	key                 *addr.Key
	incident            detector.Incident
}

func newResolveFixture(t *testing.T, listen, token string) *resolveFixture {
	t.Helper()
	dir := t.TempDir()
	f := &resolveFixture{dir: dir}
	keyPath := filepath.Join(dir, "key")
	var err error
	if f.key, err = addr.LoadKey(keyPath); err != nil {
		t.Fatal(err)
	}
	hash := func(a string) addr.ID {
		n, _, err := (addr.Normalizer{FoldLocal: true, Separators: "+"}).Normalize(a)
		if err != nil {
			t.Fatal(err)
		}
		return f.key.Hash(n)
	}
	// Recipients: alice, bob, carol (book), and one not in the customer file.
	f.incident = detector.Incident{ID: "20260513T091402Z-surge-7", Kind: "surge", State: "open"}
	for _, a := range []string{"alice@example.net", "bob@example.net", "carol@example.net", "stranger@example.org"} {
		f.incident.RecipientIDs = append(f.incident.RecipientIDs, hash(a))
	}
	f.incident.Recipients = len(f.incident.RecipientIDs)
	f.customers = filepath.Join(dir, "customers.txt")
	os.WriteFile(f.customers, []byte("# customer list\r\nAlice@Example.NET\r\n\r\nbob+shop@example.net\r\ndave@example.net\r\nnot an address\r\ncarol@example.net\r\nalice@example.net\r\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "book.txt"), []byte("carol@example.net\nbob@example.net\n"), 0o600)
	tokenLine := ""
	if token != "" {
		os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
		tokenLine = "  token_file: " + filepath.Join(dir, "token") + "\n"
	}
	f.cfg = filepath.Join(dir, "spamsurge.yaml")
	os.WriteFile(f.cfg, []byte(fmt.Sprintf(`store:
  path: %s
  key_file: %s
http:
  listen: %s
%sdetector:
  fold_local_part: true
  subaddress_separators: "+"
attribution:
  tags:
    - {name: addressbook, file: %s}
`, filepath.Join(dir, "data"), keyPath, listen, tokenLine, filepath.Join(dir, "book.txt"))), 0o600)
	return f
}

func runResolveCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(append([]string{"resolve"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestResolveThroughTheAPI(t *testing.T) {
	var f *resolveFixture
	srv := httptest.NewServer(api.Handler(api.Options{Logger: zap.NewNop(), Token: "s3cret", Incidents: func() []detector.Incident {
		return []detector.Incident{f.incident}
	}}))
	defer srv.Close()
	f = newResolveFixture(t, strings.TrimPrefix(srv.URL, "http://"), "s3cret")

	code, out, errOut := runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The file's own spelling, each mailbox once, in file order.
	if out != "Alice@Example.NET\nbob+shop@example.net\ncarol@example.net\n" {
		t.Fatalf("stdout %q", out)
	}
	if strings.Contains(errOut, "@") || !strings.Contains(errOut, "6 candidates read, 1 invalid skipped, 3 matched") ||
		!strings.Contains(errOut, "1 recipients not in the candidate file") {
		t.Fatalf("stderr %q", errOut)
	}

	code, out, errOut = runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers, "--tag", "addressbook")
	if code != 0 || out != "bob+shop@example.net\ncarol@example.net\n" {
		t.Fatalf("--tag: exit %d stdout %q stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "2 matched in tag addressbook (1 more matched outside it)") {
		t.Fatalf("--tag stderr %q", errOut)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--incident", "nope", "--addresses", f.customers}, `has no incident "nope"`},
		{[]string{"--incident", f.incident.ID, "--addresses", f.customers, "--tag", "billing"}, "no such tag in attribution.tags (have: addressbook)"},
		{[]string{"--incident", f.incident.ID, "--addresses", filepath.Join(f.dir, "missing.txt")}, "--addresses: open"},
	} {
		code, out, errOut := runResolveCmd(t, append([]string{"--config", f.cfg}, c.args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", c.args, code, out, errOut, c.want)
		}
	}

	// A wrong token is refused, not worked around through the store.
	os.WriteFile(filepath.Join(f.dir, "token"), []byte("wrong"), 0o600)
	if code, out, errOut := runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers); code != 1 || out != "" || !strings.Contains(errOut, "refused the bearer token") {
		t.Fatalf("wrong token: exit %d %q %q", code, out, errOut)
	}
}

func TestResolveFromTheStore(t *testing.T) {
	f := newResolveFixture(t, closedPort(t), "")
	st, err := store.OpenPebble(filepath.Join(f.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal([]detector.Incident{f.incident})
	var b store.Batch
	b.PutMeta("incidents", raw)
	if err := st.Commit(&b, true); err != nil {
		t.Fatal(err)
	}

	// While the store is open (as a running daemon holds it), resolve
	// says so.
	code, out, errOut := runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers)
	if code != 1 || out != "" || !strings.Contains(errOut, "locked by another process — the daemon is probably running") {
		t.Fatalf("locked store: exit %d stdout %q stderr %q", code, out, errOut)
	}
	st.Close()

	code, out, errOut = runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers)
	if code != 0 || out != "Alice@Example.NET\nbob+shop@example.net\ncarol@example.net\n" || !strings.Contains(errOut, "(from the store at") {
		t.Fatalf("from the store: exit %d stdout %q stderr %q", code, out, errOut)
	}
}

func TestResolveNeedsTheKeyAndTheStore(t *testing.T) {
	f := newResolveFixture(t, closedPort(t), "")
	// No store yet: a clear error, and no empty store created.
	code, _, errOut := runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers)
	if code != 1 || !strings.Contains(errOut, "is not reachable") || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("no store: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "data")); err == nil {
		t.Fatal("resolve created a store")
	}
	os.Remove(filepath.Join(f.dir, "key"))
	code, _, errOut = runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers)
	if code != 1 || !strings.Contains(errOut, "resolve needs the key the daemon hashes with") {
		t.Fatalf("no key: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "key")); err == nil {
		t.Fatal("resolve created a key")
	}
	if code, _, _ := runResolveCmd(t, "--config", f.cfg); code != 2 {
		t.Fatalf("missing flags: exit %d", code)
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:9464": "127.0.0.1:9464", ":9464": "127.0.0.1:9464", "[::]:9464": "[::1]:9464",
		"127.0.0.1:9464": "127.0.0.1:9464", "10.0.0.2:80": "10.0.0.2:80",
	} {
		if got := dialable(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
}
