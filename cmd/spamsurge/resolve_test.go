package main

import (
	"bytes"
	"encoding/csv"
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
	if want := "incident " + f.incident.ID + ": 3 of 6 candidates matched by hash; invalid lines skipped: 1, duplicates: 1; the incident has 4 recipients (from the daemon at " + srv.URL + "), not in the candidate file: 1\n"; errOut != want {
		t.Fatalf("stderr %q\nwant   %q", errOut, want)
	}

	code, out, errOut = runResolveCmd(t, "--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers, "--tag", "addressbook")
	if code != 0 || out != "bob+shop@example.net\ncarol@example.net\n" {
		t.Fatalf("--tag: exit %d stdout %q stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, ": 2 of 6 candidates matched by hash in tag addressbook (1 more matched outside it); invalid lines skipped: 1, duplicates: 1;") ||
		!strings.HasSuffix(errOut, "not in the candidate file: 1\n") || strings.Count(errOut, "\n") != 1 {
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

// TestResolveFormats: --format csv and json carry odd addresses (a comma,
// quotes, UTF-8) intact; text stays the default; the counts agree.
func TestResolveFormats(t *testing.T) {
	var f *resolveFixture
	srv := httptest.NewServer(api.Handler(api.Options{Logger: zap.NewNop(), Incidents: func() []detector.Incident {
		return []detector.Incident{f.incident}
	}}))
	defer srv.Close()
	f = newResolveFixture(t, strings.TrimPrefix(srv.URL, "http://"), "")
	odd := []string{`"smith,john"@example.net`, `"say\"hi\""@example.net`, "jürgen@exämple.net", "用户@例子.中国", "=cmd@example.net"}
	for _, a := range odd {
		n, _, err := (addr.Normalizer{FoldLocal: true, Separators: "+"}).Normalize(a)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		f.incident.RecipientIDs = append(f.incident.RecipientIDs, f.key.Hash(n))
	}
	f.incident.Recipients = len(f.incident.RecipientIDs)
	lines := append([]string{"Alice@Example.NET", "not an address", "dave@example.net"}, odd...)
	lines = append(lines, "alice@example.net", odd[0])
	os.WriteFile(f.customers, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	matched := append([]string{"Alice@Example.NET"}, odd...)
	args := []string{"--config", f.cfg, "--incident", f.incident.ID, "--addresses", f.customers}

	// text, by default and by name.
	for _, extra := range [][]string{nil, {"--format", "text"}} {
		code, out, errOut := runResolveCmd(t, append(args, extra...)...)
		if code != 0 || out != strings.Join(matched, "\n")+"\n" {
			t.Fatalf("%v: exit %d stdout %q stderr %q", extra, code, out, errOut)
		}
		if !strings.Contains(errOut, ": 6 of 10 candidates matched by hash; invalid lines skipped: 1, duplicates: 2; the incident has 9 recipients") ||
			!strings.HasSuffix(errOut, "not in the candidate file: 3\n") || strings.Contains(errOut, "@") {
			t.Fatalf("%v: stderr %q", extra, errOut)
		}
	}

	code, out, errOut := runResolveCmd(t, append(args, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("csv: exit %d %s", code, errOut)
	}
	wantCSV := "address,incident\n" +
		"Alice@Example.NET," + f.incident.ID + "\n" +
		`"""smith,john""@example.net",` + f.incident.ID + "\n" +
		`"""say\""hi\""""@example.net",` + f.incident.ID + "\n" +
		"jürgen@exämple.net," + f.incident.ID + "\n" +
		"用户@例子.中国," + f.incident.ID + "\n" +
		"=cmd@example.net," + f.incident.ID + "\n"
	if out != wantCSV {
		t.Fatalf("csv:\n%s\nwant\n%s", out, wantCSV)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != len(matched)+1 {
		t.Fatalf("csv does not read back: %v %q", err, recs)
	}
	for i, a := range matched {
		if recs[i+1][0] != a || recs[i+1][1] != f.incident.ID {
			t.Errorf("csv row %d: %q, want %q", i+1, recs[i+1], a)
		}
	}

	code, out, errOut = runResolveCmd(t, append(args, "--format=json", "--tag", "addressbook")...)
	if code != 0 {
		t.Fatalf("json: exit %d %s", code, errOut)
	}
	// --tag: none of the odd ones is in the address book, nor Alice.
	if want := `{"incident":"` + f.incident.ID + `","tag":"addressbook","addresses":[],"counts":{"recipients":9,"candidates":10,"invalid":1,"duplicates":2,"matched":0,"outside_tag":6,"not_in_file":3}}` + "\n"; out != want {
		t.Fatalf("json --tag:\n%s\nwant\n%s", out, want)
	}
	code, out, errOut = runResolveCmd(t, append(args, "--format", "json")...)
	if code != 0 {
		t.Fatalf("json: exit %d %s", code, errOut)
	}
	var got struct {
		Incident  string         `json:"incident"`
		Tag       *string        `json:"tag"`
		Addresses []string       `json:"addresses"`
		Counts    map[string]any `json:"counts"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("json %q: %v", out, err)
	}
	if got.Incident != f.incident.ID || got.Tag != nil || strings.Join(got.Addresses, "\n") != strings.Join(matched, "\n") ||
		fmt.Sprint(got.Counts) != "map[candidates:10 duplicates:2 invalid:1 matched:6 not_in_file:3 outside_tag:<nil> recipients:9]" {
		t.Fatalf("json: %+v", got)
	}
	if !strings.Contains(out, `"用户@例子.中国"`) || !strings.Contains(out, `"\"say\\\"hi\\\"\"@example.net"`) {
		t.Errorf("json escapes more than it must: %s", out)
	}

	// A bad --format is a usage error, reported before any work.
	for _, bad := range []string{"xml", "CSV", ""} {
		code, out, errOut = runResolveCmd(t, append(args, "--format", bad)...)
		if bad == "" {
			if code != 0 {
				t.Errorf("--format '': exit %d %s", code, errOut)
			}
			continue
		}
		if want := "spamsurge resolve: --format: \"" + bad + "\" is not text, csv or json\n"; code != 2 || out != "" || errOut != want {
			t.Errorf("--format %s: exit %d stdout %q stderr %q, want 2 and %q", bad, code, out, errOut, want)
		}
	}
}
