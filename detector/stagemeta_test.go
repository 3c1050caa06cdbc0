package detector

import (
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/store"
)

// countingStore counts commits and what they carried.
type countingStore struct {
	*store.Memory
	commits int
	meta    map[string]int // blob name → commits that wrote it
}

func (c *countingStore) Commit(b *store.Batch, sync bool) error {
	c.commits++
	for k := range b.Meta {
		c.meta[k]++
	}
	return c.Memory.Commit(b, sync)
}

// A blob staged with StageMeta goes out with the next flush, in the same
// commit as the recipient state of the observations before it, even when
// nothing else changed; Close writes one still staged.
func TestStageMetaCommitsWithTheState(t *testing.T) {
	st := &countingStore{Memory: store.NewMemory(), meta: map[string]int{}}
	h := newHarness(t, st, testKey(t, 1), nil)
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	h.obs(t0, false, "a@example.net")
	h.d.StageMeta("tail:x", []byte("pos1"))
	h.tick(t0.Add(2 * time.Second))
	if st.meta["tail:x"] != 1 {
		t.Fatalf("staged blob written %d times after a flush, want 1", st.meta["tail:x"])
	}
	if b, _ := h.d.Meta("tail:x"); string(b) != "pos1" {
		t.Fatalf("Meta = %q", b)
	}
	// Nothing pending but the blob: still flushed.
	h.d.StageMeta("tail:x", []byte("pos2"))
	before := st.commits
	h.tick(t0.Add(4 * time.Second))
	if st.commits != before+1 {
		t.Fatalf("a staged blob alone did not make a commit")
	}
	// Not flushed by a tick: Close writes it.
	h.d.StageMeta("tail:x", []byte("pos3"))
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Memory.Meta("tail:x"); string(b) != "pos3" {
		t.Fatalf("after Close Meta = %q, want pos3", b)
	}
}
