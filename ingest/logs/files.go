package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// File is one input log, opened for reading: decompressed when it is gzip
// or zstd (by its first bytes, not its name).
type File struct {
	Name    string
	Format  Format    // as given, or detected from its first lines
	First   time.Time // the time of its first stamped line (zero: none found)
	Size    int64     // bytes on disk (compressed)
	ModTime time.Time

	f    *os.File
	read *countingReader
	dec  io.Reader
	zr   *zstd.Decoder
}

// Reader returns the decompressed content.
func (f *File) Reader() io.Reader { return f.dec }

// Consumed is how many bytes of the file on disk have been read so far
// (for progress).
func (f *File) Consumed() int64 { return f.read.n.Load() }

// Close closes the file.
func (f *File) Close() error {
	if f.zr != nil {
		f.zr.Close()
	}
	return f.f.Close()
}

// Parser returns a Parser for the file: its format, loc for stamps without
// a zone, the file's modification time as the reference year.
func (f *File) Parser(loc *time.Location, domain string) *Parser {
	return &Parser{Format: f.Format, Location: loc, Reference: f.ModTime, Domain: domain}
}

// sniffLines is how much of a file Open reads to detect its format and
// first time.
const sniffLines = 2000

// Open opens name, detects its compression and, when format is "", its
// format from its first lines; it finds its first time either way.
func Open(name string, format Format, loc *time.Location) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f := &File{Name: name, Format: format, Size: st.Size(), ModTime: st.ModTime(), f: fh}
	// Sniff with a decoder of its own, then start again for the reader.
	sample, err := f.sample()
	if err != nil && len(sample) == 0 {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Format == "" {
		f.Format = Detect(sample)
		if f.Format == "" {
			fh.Close()
			return nil, fmt.Errorf("%s: not a log format spamsurge reads (rspamd, amavis, spamd, jsonl): give --format", name)
		}
	}
	p := f.Parser(loc, "")
	for _, l := range sample {
		if f.Format == JSONL {
			if o, err := p.Parse(bytes.TrimSpace(l)); err == nil {
				f.First = o.Time
				break
			}
			continue
		}
		if t, _, err := p.stamp(l); err == nil {
			f.First = t
			break
		}
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		fh.Close()
		return nil, err
	}
	if err := f.open(); err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func (f *File) open() error {
	f.read = &countingReader{r: f.f}
	br := bufio.NewReaderSize(f.read, 1<<16)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		f.dec = zr
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return err
		}
		f.zr, f.dec = zr, zr
	default:
		f.dec = br
	}
	return nil
}

func (f *File) sample() ([][]byte, error) {
	if err := f.open(); err != nil {
		return nil, err
	}
	defer func() {
		if f.zr != nil {
			f.zr.Close()
			f.zr = nil
		}
	}()
	var out [][]byte
	sc := bufio.NewScanner(f.dec)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for len(out) < sniffLines && sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return out, err
	}
	return out, nil
}

// OrderFiles sorts files oldest first: by the time of their first line;
// files without one by rotation (name.log.2.gz before name.log.1 before
// name.log), after the others of their name.
func OrderFiles(files []*File) {
	sort.SliceStable(files, func(i, j int) bool {
		a, b := files[i], files[j]
		if !a.First.IsZero() && !b.First.IsZero() && !a.First.Equal(b.First) {
			return a.First.Before(b.First)
		}
		if a.First.IsZero() != b.First.IsZero() {
			return !a.First.IsZero()
		}
		ba, na := rotation(a.Name)
		bb, nb := rotation(b.Name)
		if ba == bb && na != nb {
			return na > nb
		}
		return false
	})
}

// rotation splits "dir/mail.log.2.gz" into ("dir/mail.log", 2); the live
// file, without a number, sorts after every rotated one.
func rotation(name string) (string, int) {
	base := name
	for _, ext := range []string{".gz", ".zst", ".zstd"} {
		base = strings.TrimSuffix(base, ext)
	}
	ext := filepath.Ext(base)
	if n, err := strconv.Atoi(strings.TrimPrefix(ext, ".")); err == nil && ext != "" {
		return strings.TrimSuffix(base, ext), n
	}
	// logrotate's dateext: mail.log-20261201
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		if n, err := strconv.Atoi(base[i+1:]); err == nil {
			return base[:i], -n
		}
	}
	return base, math.MinInt
}

type countingReader struct {
	r io.Reader
	n atomicInt64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type atomicInt64 = atomic.Int64
