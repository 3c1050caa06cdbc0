package attribution

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spamsurge/spamsurge/config"
)

func TestConfigFrom(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spamsurge.yaml")
	os.WriteFile(p, []byte(`detector:
  fold_local_part: true
  subaddress_separators: "+-"
attribution:
  tags:
    - {name: webmail-login, file: /lists/login.txt}
  canaries:
    - {source: billing-db, file: /lists/canaries.txt}
  known_details: /lists/details.txt
`), 0o600)
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(t)
	got := ConfigFrom(c, k)
	if got.Key != k || !got.Normalizer.FoldLocal || got.Normalizer.Separators != "+-" || got.KnownDetails != "/lists/details.txt" ||
		len(got.Tags) != 1 || got.Tags[0] != (Source{"webmail-login", "/lists/login.txt"}) ||
		len(got.Canaries) != 1 || got.Canaries[0] != (Source{"billing-db", "/lists/canaries.txt"}) {
		t.Fatalf("%+v", got)
	}
	os.WriteFile(p, []byte("attribution:\n  known_detail: x\n"), 0o600)
	if _, err := config.Load(p); err == nil {
		t.Fatal("misspelt key accepted")
	}
}
