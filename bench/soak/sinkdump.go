package main

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// atSink is what one lane's next hop stored of one message ID.
type atSink struct {
	copies  int
	bad     int // copies whose length or CRC differ from the trailer's
	rcpts   int // X-Rcpt-Args lines of the last copy
	idMatch bool
}

// harvester reads the sink's per-message dump files (smtp-sink -d) as
// they complete and deletes them, so a long soak needs little disk.
//
// smtp-sink creates a message's file at MAIL and writes each line as it
// reads it; it deletes the file when the transaction is aborted (RSET, a
// lost connection) and closes it when it has read the final dot, before
// it answers. Every message ends with the trailer line, and the dot adds
// one empty line, so a file ending in "trailer\n\n" holds a message the
// sink took; anything else is in progress, or abandoned by a killed sink.
type harvester struct {
	dir string

	mu       sync.Mutex
	msgs     map[string]*atSink
	unknown  []string // complete files with no parsable trailer
	scanning sync.Mutex
}

func newHarvester(dir string) *harvester {
	return &harvester{dir: dir, msgs: map[string]*atSink{}}
}

// scan takes every complete file. With orphans (the sink is not running)
// it removes the incomplete ones too and returns how many; without, it
// returns how many are in progress.
func (h *harvester) scan(orphans bool) int {
	h.scanning.Lock()
	defer h.scanning.Unlock()
	names, _ := filepath.Glob(filepath.Join(h.dir, "m.*"))
	incomplete := 0
	for _, name := range names {
		b, err := readIfEnded(name)
		if err != nil {
			continue // deleted by the sink meanwhile (an aborted transaction)
		}
		if b == nil || !h.take(name, b) {
			incomplete++
			if orphans {
				os.Remove(name)
			}
			continue
		}
		os.Remove(name)
	}
	return incomplete
}

// readIfEnded returns the file's content when it ends in "\n\n", else
// nil: a message still arriving is not read whole at every scan.
func readIfEnded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var tail [2]byte
	if st.Size() < 2 {
		return nil, nil
	}
	if _, err := f.ReadAt(tail[:], st.Size()-2); err != nil {
		return nil, err
	}
	if tail != [2]byte{'\n', '\n'} {
		return nil, nil
	}
	return os.ReadFile(name)
}

// take records a complete dump; false when b is not one (yet).
func (h *harvester) take(name string, b []byte) bool {
	body := b[:len(b)-2]
	i := bytes.LastIndexByte(body, '\n') + 1
	trailer := string(body[i:])
	if !strings.HasPrefix(trailer, trailerPrefix) {
		return false
	}
	f := strings.Fields(strings.TrimPrefix(trailer, trailerPrefix))
	if len(f) != 3 {
		return false
	}
	id := f[0]
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	sum, err2 := strconv.ParseUint(f[2], 16, 32)
	if err1 != nil || err2 != nil {
		return false
	}
	// smtp-sink's own header: X-Client-*, X-Helo-Args, X-Mail-Args,
	// one X-Rcpt-Args per recipient, then a three-line Received.
	rcpts := 0
	start := -1
	for off := 0; off < i; {
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 {
			break
		}
		line := b[off : off+end]
		if bytes.HasPrefix(line, []byte("X-Rcpt-Args: ")) {
			rcpts++
		}
		off += end + 1
		if bytes.HasPrefix(line, []byte("Received: from ")) {
			for k := 0; k < 2 && off < i; k++ {
				off += bytes.IndexByte(b[off:], '\n') + 1
			}
			start = off
			break
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if start < 0 {
		h.unknown = append(h.unknown, filepath.Base(name))
		return true
	}
	content := b[start:i]
	m := h.msgs[id]
	if m == nil {
		m = &atSink{}
		h.msgs[id] = m
	}
	m.copies++
	m.rcpts = rcpts
	if int64(len(content)) != size || crc32.ChecksumIEEE(content) != uint32(sum) {
		m.bad++
	}
	m.idMatch = bytes.HasPrefix(content, []byte(fmt.Sprintf("Message-ID: <%s@soak.test>\n", id)))
	return true
}

func (h *harvester) get(id string) *atSink {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[id]
}

func (h *harvester) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}
