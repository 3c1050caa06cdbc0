package detector

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/spamsurge/spamsurge/store"
)

func grepDir(t *testing.T, dir, s string) bool {
	t.Helper()
	hit := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			hit = true
		}
		return nil
	})
	return hit
}

func nil2mem() Store { return store.NewMemory() }
