package store

import "sync"

// Memory is an in-process store for tests. It is safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	recs map[[8]byte]map[[16]byte]Record
	meta map[string][]byte
	// Commits counts Commit calls, Synced those with sync=true.
	Commits, Synced int
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{recs: map[[8]byte]map[[16]byte]Record{}, meta: map[string][]byte{}}
}

// Recipients calls fn for every record in space.
func (m *Memory) Recipients(space [8]byte, fn func(id [16]byte, r Record) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.recs[space] {
		if err := fn(id, r); err != nil {
			return err
		}
	}
	return nil
}

// Meta returns a named blob, nil if absent.
func (m *Memory) Meta(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.meta[name]
	if v == nil {
		return nil, nil
	}
	return append([]byte(nil), v...), nil
}

// Commit applies b.
func (m *Memory) Commit(b *Batch, sync bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	sp := m.recs[b.Space]
	if sp == nil {
		sp = map[[16]byte]Record{}
		m.recs[b.Space] = sp
	}
	for _, e := range b.Recs {
		if e.Rec == (Record{}) {
			delete(sp, e.ID)
			continue
		}
		sp[e.ID] = e.Rec
	}
	for k, v := range b.Meta {
		m.meta[k] = append([]byte(nil), v...)
	}
	m.Commits++
	if sync {
		m.Synced++
	}
	return nil
}

// Close does nothing.
func (m *Memory) Close() error { return nil }
