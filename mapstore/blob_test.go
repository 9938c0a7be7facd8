package mapstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	pg  = PageSize
	win = 8 << 10 // window size of smallOpts
)

func TestOpenOptions(t *testing.T) {
	dir := testDir(t)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"no dir", Options{}},
		{"window not power of two", Options{Dir: dir, WindowSize: 3 * pg}},
		{"window below page", Options{Dir: dir, WindowSize: 512}},
		{"negative limit", Options{Dir: dir, SizeLimit: -1}},
		{"negative windows", Options{Dir: dir, MaxWindows: -1}},
	} {
		if _, err := Open(c.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Open = %v, want ErrInvalid", c.name, err)
		}
	}
	s := newStore(t, Options{Dir: dir, MaxFileSize: math.MaxInt64})
	if s.MaxFileSize() != maxFile || (s.tmpfs && maxFile != math.MaxInt64) {
		t.Errorf("MaxFileSize = %d, want %d (tmpfs: %v)", s.MaxFileSize(), int64(maxFile), s.tmpfs)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("store directory: %v, %v", st.Mode(), err)
	}
	if got := s.Stats(); got != (Stats{}) {
		t.Errorf("Stats of a new store = %+v", got)
	}
}

func TestOpenTightensDirMode(t *testing.T) {
	dir := testDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	newStore(t, Options{Dir: dir})
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestWriteRead(t *testing.T) {
	tests := []struct {
		name     string
		off      int64
		n        int
		wantN    int
		wantErr  error
		wantSize int64
		wantPgs  int64 // pages allocated
	}{
		{"first bytes", 0, 10, 10, nil, 10, 1},
		{"whole page", 0, pg, pg, nil, pg, 1},
		{"across a page boundary", pg - 3, 10, 10, nil, pg + 7, 2},
		{"across a window boundary", win - 5, 10, 10, nil, win + 5, 2},
		{"across two windows", win - 1, 2*win + 2, 2*win + 2, nil, 3*win + 1, 2*win/pg + 2},
		{"unaligned middle", 12345, 777, 777, nil, 12345 + 777, 1},
		{"far past EOF", 1 << 40, 100, 100, nil, 1<<40 + 100, 1},
		{"far past EOF across page", 1<<40 - 1, 2, 2, nil, 1<<40 + 1, 2},
		{"empty write", 1 << 30, 0, 0, nil, 0, 0},
		{"empty write at max", maxFile, 0, 0, nil, 0, 0},
		{"negative offset", -1, 10, 0, ErrInvalid, 0, 0},
		{"negative offset empty", -1, 0, 0, ErrInvalid, 0, 0},
		{"last byte below max", maxFile - 1, 1, 1, nil, maxFile, 1},
		{"cut at max", maxFile - 10, 20, 10, ErrTooBig, maxFile, 1},
		{"at max", maxFile, 1, 0, ErrTooBig, 0, 0},
		{"past max", math.MaxInt64, 1, 0, ErrTooBig, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, smallOpts())
			b := mustCreate(t, s)
			p := pattern(tt.n, 1)
			n, err := b.WriteAt(p, tt.off)
			if n != tt.wantN || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WriteAt = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if b.Size() != tt.wantSize {
				t.Errorf("Size = %d, want %d", b.Size(), tt.wantSize)
			}
			if b.Allocated() != tt.wantPgs*pg {
				t.Errorf("Allocated = %d, want %d", b.Allocated(), tt.wantPgs*pg)
			}
			if s.Stats().Used != tt.wantPgs*pg {
				t.Errorf("Used = %d", s.Stats().Used)
			}
			if n > 0 {
				if got := readRange(t, b, tt.off, n); !bytes.Equal(got, p[:n]) {
					t.Errorf("read back differs")
				}
				// The bytes before the write are a hole.
				lo := max(0, tt.off-3*pg)
				if got := readRange(t, b, lo, int(tt.off-lo)); !isZero(got) {
					t.Errorf("bytes before the write are not zero")
				}
			}
		})
	}
}

func TestReadAt(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	data := pattern(3*pg, 2)
	mustWrite(t, b, data, pg) // [pg, 4pg), hole before
	if err := b.Truncate(6*pg + 100); err != nil {
		t.Fatal(err)
	}
	whole := append(append(make([]byte, pg), data...), make([]byte, 2*pg+100)...)
	tests := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{"all", 0, len(whole), len(whole), nil},
		{"hole only", 10, 100, 100, nil},
		{"hole into data", pg - 10, 20, 20, nil},
		{"data into trailing hole", 4*pg - 10, 20, 20, nil},
		{"past the end", 6 * pg, 200, 100, io.EOF},
		{"at the end", 6*pg + 100, 10, 0, io.EOF},
		{"far past the end", 1 << 50, 10, 0, io.EOF},
		{"empty at the end", 6*pg + 100, 0, 0, nil},
		{"empty", 5, 0, 0, nil},
		{"negative", -1, 10, 0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bytes.Repeat([]byte{0xee}, tt.n)
			n, err := b.ReadAt(p, tt.off)
			if n != tt.wantN || err != tt.wantErr {
				t.Fatalf("ReadAt = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if n > 0 && !bytes.Equal(p[:n], whole[tt.off:tt.off+int64(n)]) {
				t.Errorf("bytes differ")
			}
		})
	}
	// Reading holes must not allocate store pages.
	if b.Allocated() != 3*pg {
		t.Errorf("Allocated after reads = %d", b.Allocated())
	}
}

func TestTruncate(t *testing.T) {
	type want struct {
		size, alloc int64
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, b *Blob)
		size    int64
		wantErr error
		want    want
	}{
		{"grow empty", nil, 1 << 40, nil, want{1 << 40, 0}},
		{"grow to max", nil, maxFile, nil, want{maxFile, 0}},
		{"past max", nil, maxFile + 1, ErrTooBig, want{0, 0}}, // skipped if maxFile is math.MaxInt64
		{"negative", nil, -1, ErrInvalid, want{0, 0}},
		{"shrink to partial page", func(t *testing.T, b *Blob) { mustWrite(t, b, pattern(3*pg, 3), 0) },
			pg + 10, nil, want{pg + 10, 2 * pg}},
		{"shrink to page boundary", func(t *testing.T, b *Blob) { mustWrite(t, b, pattern(3*pg, 3), 0) },
			2 * pg, nil, want{2 * pg, 2 * pg}},
		{"shrink to zero", func(t *testing.T, b *Blob) { mustWrite(t, b, pattern(3*win, 3), 0) },
			0, nil, want{0, 0}},
		{"same size frees preallocation past EOF", func(t *testing.T, b *Blob) {
			mustWrite(t, b, pattern(100, 3), 0)
			if err := b.Allocate(2*pg, 4*pg, true); err != nil {
				t.Fatal(err)
			}
		}, 100, nil, want{100, pg}},
		{"grow keeps preallocation", func(t *testing.T, b *Blob) {
			mustWrite(t, b, pattern(100, 3), 0)
			if err := b.Allocate(2*pg, 4*pg, true); err != nil {
				t.Fatal(err)
			}
		}, 101, nil, want{101, 5 * pg}},
		{"shrink far file", func(t *testing.T, b *Blob) { mustWrite(t, b, pattern(100, 3), 1<<40) },
			1 << 39, nil, want{1 << 39, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.size < -1 {
				t.Skip("no size past math.MaxInt64")
			}
			s := newStore(t, smallOpts())
			b := mustCreate(t, s)
			if tt.setup != nil {
				tt.setup(t, b)
			}
			var before []byte
			if b.Size() < 1<<30 {
				before = contents(t, b)
			}
			err := b.Truncate(tt.size)
			if err != tt.wantErr {
				t.Fatalf("Truncate = %v, want %v", err, tt.wantErr)
			}
			if got := (want{b.Size(), b.Allocated()}); got != tt.want {
				t.Errorf("size, allocated = %v, want %v", got, tt.want)
			}
			if err != nil || tt.size > 1<<30 {
				return
			}
			// The old bytes up to the new size stay; growing again shows
			// zeros past it.
			keep := min(int64(len(before)), tt.size)
			if err := b.Truncate(tt.size + 3*pg); err != nil {
				t.Fatal(err)
			}
			got := contents(t, b)
			if !bytes.Equal(got[:keep], before[:keep]) || !isZero(got[keep:]) {
				t.Errorf("contents after truncate and grow are wrong")
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name      string
		limit     int64
		off, n    int64
		keep      bool
		wantErr   error
		wantSize  int64
		wantAlloc int64
	}{
		{"one page", 0, 0, pg, false, nil, pg, pg},
		{"unaligned spans pages", 0, pg - 1, 2, false, nil, pg + 1, 2 * pg},
		{"keep size", 0, 0, 3 * pg, true, nil, 0, 3 * pg},
		{"across windows", 0, win - pg, 2 * win, false, nil, 3*win - pg, 2 * win},
		{"far", 0, 1 << 40, 10, false, nil, 1<<40 + 10, pg},
		{"zero length", 0, 0, 0, false, ErrInvalid, 0, 0},
		{"negative length", 0, 0, -1, false, ErrInvalid, 0, 0},
		{"negative offset", 0, -1, 10, false, ErrInvalid, 0, 0},
		{"past max", 0, maxFile - 10, 11, false, ErrTooBig, 0, 0},
		{"overflow", 0, math.MaxInt64, math.MaxInt64, false, ErrTooBig, 0, 0},
		{"up to max", 0, maxFile - 10, 10, true, nil, 0, pg},
		{"fits the limit", 4 * pg, 0, 4 * pg, false, nil, 4 * pg, 4 * pg},
		{"over the limit: nothing", 4 * pg, 0, 5 * pg, false, ErrNoSpace, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := smallOpts()
			o.SizeLimit = tt.limit
			s := newStore(t, o)
			b := mustCreate(t, s)
			if err := b.Allocate(tt.off, tt.n, tt.keep); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Allocate = %v, want %v", err, tt.wantErr)
			}
			if b.Size() != tt.wantSize || b.Allocated() != tt.wantAlloc {
				t.Errorf("size %d allocated %d, want %d %d", b.Size(), b.Allocated(), tt.wantSize, tt.wantAlloc)
			}
			// Allocated pages read as zeros and are holes to SeekData,
			// as on tmpfs.
			if tt.wantSize > 0 && tt.wantSize < 1<<30 {
				if !isZero(contents(t, b)) {
					t.Error("allocated pages do not read as zeros")
				}
			}
			if _, err := b.SeekData(0); !errors.Is(err, ErrNoData) {
				t.Errorf("SeekData(0) = %v, want ErrNoData", err)
			}
		})
	}
}

func TestAllocateThenWrite(t *testing.T) {
	s := newStore(t, Options{SizeLimit: 4 * pg})
	b := mustCreate(t, s)
	if err := b.Allocate(0, 4*pg, true); err != nil {
		t.Fatal(err)
	}
	// The space is reserved: writing into it cannot fail for space.
	p := pattern(4*pg, 5)
	mustWrite(t, b, p, 0)
	if !bytes.Equal(contents(t, b), p) || b.Allocated() != 4*pg {
		t.Error("write into allocated pages")
	}
	if n, err := b.WriteAt([]byte{1}, 4*pg); n != 0 || !errors.Is(err, ErrNoSpace) {
		t.Errorf("write past the limit = %d, %v", n, err)
	}
}

func TestPunchHole(t *testing.T) {
	tests := []struct {
		name      string
		off, n    int64
		wantErr   error
		wantAlloc int64 // of 4 pages written at 0
	}{
		{"whole page", pg, pg, nil, 3 * pg},
		{"inside one page", 10, 20, nil, 4 * pg},
		{"partial ends keep their pages", pg + 1, 2*pg - 2, nil, 4 * pg},
		{"partial ends around whole pages", pg - 1, 2*pg + 2, nil, 2 * pg},
		{"all and beyond size", 0, 1 << 40, nil, 0},
		{"past size", 8 * pg, pg, nil, 4 * pg},
		{"zero length", 0, 0, ErrInvalid, 4 * pg},
		{"negative offset", -1, 10, ErrInvalid, 4 * pg},
		{"past max", maxFile - 1, 2, ErrTooBig, 4 * pg},
		{"up to max", maxFile - 1, 1, nil, 4 * pg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, smallOpts())
			b := mustCreate(t, s)
			data := pattern(4*pg, 6)
			mustWrite(t, b, data, 0)
			err := b.PunchHole(tt.off, tt.n)
			if err != tt.wantErr {
				t.Fatalf("PunchHole = %v, want %v", err, tt.wantErr)
			}
			if b.Size() != 4*pg || b.Allocated() != tt.wantAlloc {
				t.Errorf("size %d allocated %d, want %d %d", b.Size(), b.Allocated(), 4*pg, tt.wantAlloc)
			}
			want := bytes.Clone(data)
			if err == nil && tt.off < int64(len(want)) {
				clear(want[tt.off:min(int64(len(want)), tt.off+tt.n)])
			}
			if !bytes.Equal(contents(t, b), want) {
				t.Error("contents wrong")
			}
		})
	}
}

func TestPunchPreallocatedAndEmpty(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	if err := b.PunchHole(0, 1<<40); err != nil {
		t.Fatalf("punch of a blob without a store file: %v", err)
	}
	if err := b.Allocate(0, 10*pg, true); err != nil {
		t.Fatal(err)
	}
	if err := b.PunchHole(pg, 2*pg); err != nil {
		t.Fatal(err)
	}
	if b.Allocated() != 8*pg || b.Size() != 0 {
		t.Errorf("allocated %d size %d", b.Allocated(), b.Size())
	}
}

func TestZeroRange(t *testing.T) {
	tests := []struct {
		name      string
		off, n    int64
		keep      bool
		wantErr   error
		wantSize  int64
		wantAlloc int64 // of 4 data pages at 0
		wantData  int64 // SeekHole(0)
	}{
		{"whole middle page", pg, pg, false, nil, 4 * pg, 4 * pg, pg},
		{"partial", 10, 20, false, nil, 4 * pg, 4 * pg, 4 * pg},
		{"first pages", 0, 2 * pg, false, nil, 4 * pg, 4 * pg, 0},
		{"beyond size grows", 3 * pg, 3*pg + 5, false, nil, 6*pg + 5, 7 * pg, 3 * pg},
		{"beyond size keep", 3 * pg, 3*pg + 5, true, nil, 4 * pg, 7 * pg, 3 * pg},
		{"far hole", 1 << 40, 10, false, nil, 1<<40 + 10, 5 * pg, 4 * pg},
		{"zero length", 0, 0, false, ErrInvalid, 4 * pg, 4 * pg, 4 * pg},
		{"negative", -5, 10, false, ErrInvalid, 4 * pg, 4 * pg, 4 * pg},
		{"past max", maxFile, 1, false, ErrTooBig, 4 * pg, 4 * pg, 4 * pg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, smallOpts())
			b := mustCreate(t, s)
			data := pattern(4*pg, 7)
			mustWrite(t, b, data, 0)
			err := b.ZeroRange(tt.off, tt.n, tt.keep)
			if err != tt.wantErr {
				t.Fatalf("ZeroRange = %v, want %v", err, tt.wantErr)
			}
			if b.Size() != tt.wantSize || b.Allocated() != tt.wantAlloc {
				t.Errorf("size %d allocated %d, want %d %d", b.Size(), b.Allocated(), tt.wantSize, tt.wantAlloc)
			}
			if h, err := b.SeekHole(0); err != nil || h != tt.wantData {
				t.Errorf("SeekHole(0) = %d, %v, want %d", h, err, tt.wantData)
			}
			if b.Size() > 1<<30 {
				return
			}
			want := make([]byte, b.Size())
			copy(want, data)
			if err == nil {
				clear(want[min(tt.off, b.Size()):min(tt.off+tt.n, b.Size())])
			}
			if !bytes.Equal(contents(t, b), want) {
				t.Error("contents wrong")
			}
		})
	}
}

func TestZeroRangeNoSpace(t *testing.T) {
	s := newStore(t, Options{SizeLimit: 4 * pg})
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(3*pg, 8), 0)
	// Needs two new pages, only one is free: nothing changes.
	if err := b.ZeroRange(pg, 4*pg, false); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("ZeroRange = %v", err)
	}
	if !bytes.Equal(contents(t, b), pattern(3*pg, 8)) || b.Size() != 3*pg || b.Allocated() != 3*pg {
		t.Error("a failed ZeroRange changed the blob")
	}
	if err := b.ZeroRange(pg, 3*pg, false); err != nil {
		t.Fatalf("ZeroRange that fits = %v", err)
	}
}

func TestSeek(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	// Layout by page: 0 hole, 1 data, 2 data, 3 allocated, 4 hole, 5 data
	// (partly past size), preallocated pages 7, 8 past size.
	mustWrite(t, b, []byte{1}, pg+5)
	mustWrite(t, b, []byte{1}, 2*pg)
	if err := b.Allocate(3*pg, pg, false); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, b, []byte{1, 2, 3}, 5*pg)
	if err := b.Allocate(7*pg, 2*pg, true); err != nil {
		t.Fatal(err)
	}
	size := int64(5*pg + 3)
	if b.Size() != size {
		t.Fatalf("size %d", b.Size())
	}
	tests := []struct {
		off              int64
		data, hole       int64
		dataErr, holeErr error
	}{
		{0, pg, 0, nil, nil},
		{100, pg, 100, nil, nil},
		{pg, pg, 3 * pg, nil, nil},
		{pg + 1, pg + 1, 3 * pg, nil, nil},
		{2*pg + 7, 2*pg + 7, 3 * pg, nil, nil},
		{3 * pg, 5 * pg, 3 * pg, nil, nil},
		{4*pg + 9, 5 * pg, 4*pg + 9, nil, nil},
		{5 * pg, 5 * pg, size, nil, nil},
		{size - 1, size - 1, size, nil, nil},
		{size, 0, 0, ErrNoData, ErrNoData},
		{7 * pg, 0, 0, ErrNoData, ErrNoData},
		{-1, 0, 0, ErrNoData, ErrNoData},
	}
	for _, tt := range tests {
		d, err := b.SeekData(tt.off)
		if err != tt.dataErr || (err == nil && d != tt.data) {
			t.Errorf("SeekData(%d) = %d, %v; want %d, %v", tt.off, d, err, tt.data, tt.dataErr)
		}
		h, err := b.SeekHole(tt.off)
		if err != tt.holeErr || (err == nil && h != tt.hole) {
			t.Errorf("SeekHole(%d) = %d, %v; want %d, %v", tt.off, h, err, tt.hole, tt.holeErr)
		}
	}
	// Data that ends in a hole before the end of the file, and a file
	// with no data at all.
	e := mustCreate(t, s)
	if _, err := e.SeekData(0); err != ErrNoData {
		t.Errorf("SeekData of empty blob = %v", err)
	}
	if err := e.Truncate(10 * pg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SeekData(0); err != ErrNoData {
		t.Errorf("SeekData of sparse blob = %v", err)
	}
	if h, err := e.SeekHole(5); h != 5 || err != nil {
		t.Errorf("SeekHole of sparse blob = %d, %v", h, err)
	}
}

// TestSeekLikeTmpfs compares SeekData and SeekHole with lseek on a tmpfs
// file given the same writes, fallocates and truncates.
func TestSeekLikeTmpfs(t *testing.T) {
	f, err := os.CreateTemp("/dev/shm", "mapstore-seek-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	step := func(name string, onFile func() error, onBlob func() error) {
		if err := onFile(); err != nil {
			t.Fatalf("%s on tmpfs: %v", name, err)
		}
		if err := onBlob(); err != nil {
			t.Fatalf("%s on blob: %v", name, err)
		}
	}
	write := func(off int64, n int) {
		p := pattern(n, 9)
		step("write", func() error { _, err := f.WriteAt(p, off); return err },
			func() error { _, err := b.WriteAt(p, off); return err })
	}
	write(pg+5, 10)
	write(3*pg-1, 2)
	step("fallocate", func() error { return unix.Fallocate(fd, 0, 6*pg, 2*pg) },
		func() error { return b.Allocate(6*pg, 2*pg, false) })
	write(9*pg, pg)
	step("fallocate keep", func() error { return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 12*pg, pg) },
		func() error { return b.Allocate(12*pg, pg, true) })
	step("punch", func() error {
		return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 2*pg+10, pg)
	}, func() error { return b.PunchHole(2*pg+10, pg) })
	compare := func() {
		t.Helper()
		fi, _ := f.Stat()
		if fi.Size() != b.Size() {
			t.Fatalf("size %d, tmpfs %d", b.Size(), fi.Size())
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		if st.Blocks*512 != b.Allocated() {
			t.Errorf("allocated %d, tmpfs %d", b.Allocated(), st.Blocks*512)
		}
		for off := int64(-1); off < fi.Size()+2*pg; off += 511 {
			wd, werr := unix.Seek(fd, off, unix.SEEK_DATA)
			gd, gerr := b.SeekData(off)
			if (werr == nil) != (gerr == nil) || (werr == nil && wd != gd) || (werr != nil && !errors.Is(gerr, werr)) {
				t.Errorf("SeekData(%d) = %d, %v; tmpfs %d, %v", off, gd, gerr, wd, werr)
			}
			wh, werr := unix.Seek(fd, off, unix.SEEK_HOLE)
			gh, gerr := b.SeekHole(off)
			if (werr == nil) != (gerr == nil) || (werr == nil && wh != gh) || (werr != nil && !errors.Is(gerr, werr)) {
				t.Errorf("SeekHole(%d) = %d, %v; tmpfs %d, %v", off, gh, gerr, wh, werr)
			}
		}
	}
	compare()
	step("truncate", func() error { return f.Truncate(9*pg + 100) }, func() error { return b.Truncate(9*pg + 100) })
	compare()
	step("truncate same", func() error { return f.Truncate(9*pg + 100) }, func() error { return b.Truncate(9*pg + 100) })
	compare()
	step("grow", func() error { return f.Truncate(20 * pg) }, func() error { return b.Truncate(20 * pg) })
	compare()
}

func TestCopyFrom(t *testing.T) {
	type result struct {
		n   int64
		err error
	}
	tests := []struct {
		name                 string
		same                 bool
		srcOff, dstOff, n    int64
		want                 result
		wantDstSize          int64
		wantDstAlloc         int64
		checkHoleAt, holeLen int64 // a range of dst that must be a hole (SeekHole)
	}{
		// src: 6 pages; pages 0, 1 data, 2, 3 hole, 4, 5 data.
		{"all", false, 0, 0, 6 * pg, result{6 * pg, nil}, 6 * pg, 4 * pg, 2 * pg, 2 * pg},
		{"clipped at EOF", false, 4 * pg, 0, 100 * pg, result{2 * pg, nil}, 2 * pg, 2 * pg, 0, 0},
		{"at EOF", false, 6 * pg, 0, 10, result{0, nil}, 0, 0, 0, 0},
		{"past EOF", false, 1 << 40, 0, 10, result{0, nil}, 0, 0, 0, 0},
		{"zero length", false, 0, 0, 0, result{0, nil}, 0, 0, 0, 0},
		{"unaligned", false, 100, 3*pg + 5, 5 * pg, result{5 * pg, nil}, 8*pg + 5, 5 * pg, 0, 0},
		{"to far offset", false, 0, 1 << 40, 6 * pg, result{6 * pg, nil}, 1<<40 + 6*pg, 4 * pg, 1<<40 + 2*pg, 2 * pg},
		{"dst at max", false, 0, maxFile, 10, result{0, ErrTooBig}, 0, 0, 0, 0},
		// Cut at max if the offset leaves room for 4000 bytes below 2^63.
		{"dst cut at max", false, 0, maxFile - 10, min(4000, math.MaxInt64-(maxFile-10)), result{10, nil}, maxFile, pg, 0, 0},
		{"dst offset overflows", false, 0, math.MaxInt64 - 10, 6 * pg, result{0, ErrTooBig}, 0, 0, 0, 0},
		{"negative", false, -1, 0, 10, result{0, ErrInvalid}, 0, 0, 0, 0},
		{"negative n", false, 0, 0, -1, result{0, ErrInvalid}, 0, 0, 0, 0},
		{"overflow", false, 1, 0, math.MaxInt64, result{0, ErrTooBig}, 0, 0, 0, 0},
		{"same blob overlapping", true, 0, pg, 2 * pg, result{0, ErrInvalid}, 6 * pg, 4 * pg, 0, 0},
		{"same blob overlapping backwards", true, pg, 0, 2 * pg, result{0, ErrInvalid}, 6 * pg, 4 * pg, 0, 0},
		{"same blob disjoint", true, 0, 6 * pg, 6 * pg, result{6 * pg, nil}, 12 * pg, 8 * pg, 8 * pg, 2 * pg},
		{"same blob adjacent unaligned", true, 0, 6*pg - 100, 100, result{100, nil}, 6 * pg, 4 * pg, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, smallOpts())
			src := mustCreate(t, s)
			mustWrite(t, src, pattern(2*pg, 10), 0)
			mustWrite(t, src, pattern(2*pg, 11), 4*pg)
			srcData := contents(t, src)
			dst := src
			if !tt.same {
				dst = mustCreate(t, s)
			}
			var before []byte
			if tt.same {
				before = bytes.Clone(srcData)
			}
			n, err := dst.CopyFrom(src, tt.srcOff, tt.dstOff, tt.n)
			if n != tt.want.n || !errors.Is(err, tt.want.err) || (tt.want.err == nil && err != nil) {
				t.Fatalf("CopyFrom = %d, %v; want %v", n, err, tt.want)
			}
			if dst.Size() != tt.wantDstSize || dst.Allocated() != tt.wantDstAlloc {
				t.Errorf("dst size %d allocated %d, want %d %d", dst.Size(), dst.Allocated(), tt.wantDstSize, tt.wantDstAlloc)
			}
			if tt.holeLen > 0 {
				if h, err := dst.SeekHole(tt.checkHoleAt); h != tt.checkHoleAt || err != nil {
					t.Errorf("SeekHole(%d) = %d, %v: hole not kept", tt.checkHoleAt, h, err)
				}
				if d, err := dst.SeekData(tt.checkHoleAt); d != tt.checkHoleAt+tt.holeLen || err != nil {
					t.Errorf("SeekData(%d) = %d, %v", tt.checkHoleAt, d, err)
				}
			}
			if n > 0 {
				got := readRange(t, dst, tt.dstOff, int(n))
				if !bytes.Equal(got, srcData[tt.srcOff:tt.srcOff+n]) {
					t.Error("copied bytes differ")
				}
			}
			if tt.same && n > 0 && !bytes.Equal(readRange(t, src, 0, len(before)), before) && tt.dstOff >= int64(len(before)) {
				t.Error("source changed")
			}
		})
	}
}

func TestCopyFromOverwritesWithHoles(t *testing.T) {
	s := newStore(t, smallOpts())
	src, dst := mustCreate(t, s), mustCreate(t, s)
	if err := src.Truncate(4 * pg); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, src, pattern(10, 1), 2*pg)
	mustWrite(t, dst, pattern(5*pg, 2), 0)
	// Copy src [0, 4pg) onto dst at 10: the hole of src replaces the data
	// of dst; whole pages become holes, partial ones are zeroed.
	if n, err := dst.CopyFrom(src, 0, 10, 4*pg); n != 4*pg || err != nil {
		t.Fatalf("CopyFrom = %d, %v", n, err)
	}
	want := pattern(5*pg, 2)
	copy(want[10:], contents(t, src))
	if !bytes.Equal(contents(t, dst), want) {
		t.Error("contents differ")
	}
	// dst pages 1 is wholly inside the hole [10, 2pg+10): freed.
	if d, _ := dst.SeekHole(0); d != pg {
		t.Errorf("SeekHole(0) = %d, want %d", d, pg)
	}
	if dst.Allocated() != 4*pg {
		t.Errorf("allocated %d", dst.Allocated())
	}
}

func TestCopyFromNoSpace(t *testing.T) {
	s := newStore(t, Options{SizeLimit: 5 * pg, WindowSize: win})
	src, dst := mustCreate(t, s), mustCreate(t, s)
	p := pattern(3*pg, 3)
	mustWrite(t, src, p, 0)
	n, err := dst.CopyFrom(src, 0, 0, 3*pg)
	if n != 2*pg || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("CopyFrom = %d, %v; want %d, ErrNoSpace", n, err, 2*pg)
	}
	if dst.Size() != 2*pg || !bytes.Equal(contents(t, dst), p[:2*pg]) {
		t.Error("the part copied is wrong")
	}
	if n, err := dst.CopyFrom(src, 2*pg, 2*pg, pg); n != 0 || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("CopyFrom when full = %d, %v", n, err)
	}
}

func TestCopyBetweenStores(t *testing.T) {
	a, b := newStore(t, Options{}), newStore(t, Options{})
	x, y := mustCreate(t, a), mustCreate(t, b)
	if _, err := x.CopyFrom(y, 0, 0, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("CopyFrom another store = %v", err)
	}
}

func TestNoSpacePartialWrite(t *testing.T) {
	s := newStore(t, Options{SizeLimit: 10*pg + 100, WindowSize: win})
	a, b := mustCreate(t, s), mustCreate(t, s)
	mustWrite(t, a, pattern(4*pg, 1), 0)
	// b: 6 pages left, a write of 8 pages from the middle of page 1 can
	// write up to the end of page 6.
	p := pattern(8*pg, 2)
	n, err := b.WriteAt(p, pg+10)
	if n != 6*pg-10 || !errors.Is(err, ErrNoSpace) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("WriteAt = %d, %v; want %d, ErrNoSpace", n, err, 6*pg-10)
	}
	if b.Size() != 7*pg || !bytes.Equal(readRange(t, b, pg+10, n), p[:n]) {
		t.Error("acknowledged bytes lost")
	}
	// Now full: nothing more.
	if n, err := b.WriteAt(p, 20*pg); n != 0 || !errors.Is(err, ErrNoSpace) {
		t.Errorf("WriteAt when full = %d, %v", n, err)
	}
	// Writes into allocated pages go on.
	mustWrite(t, b, []byte("overwrite"), pg+10)
	if s.Stats().Used != 10*pg || s.Stats().Limit != 10*pg+100 {
		t.Errorf("stats %+v", s.Stats())
	}
	// Freeing makes room again.
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.WriteAt(p[:4*pg], 20*pg); n != 4*pg || err != nil {
		t.Errorf("WriteAt after free = %d, %v", n, err)
	}
	if !bytes.Equal(readRange(t, b, pg+10, 9), []byte("overwrite")) {
		t.Error("data lost")
	}
}

func TestSync(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	if err := b.Sync(0, 0); err != nil {
		t.Errorf("Sync without store file: %v", err)
	}
	mustWrite(t, b, pattern(3*win, 1), 0)
	for _, c := range []struct {
		off, n int64
		want   error
	}{
		{0, 0, nil}, {10, 10, nil}, {win - 1, 2, nil}, {0, math.MaxInt64, nil},
		{1 << 40, 10, nil}, {-1, 0, ErrInvalid}, {0, -1, ErrInvalid},
	} {
		if err := b.Sync(c.off, c.n); err != c.want {
			t.Errorf("Sync(%d, %d) = %v, want %v", c.off, c.n, err, c.want)
		}
	}
}

func TestFree(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	keep := mustCreate(t, s)
	mustWrite(t, b, pattern(3*win, 1), 0)
	mustWrite(t, keep, pattern(10, 1), 0)
	path := storePath(s, b)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("store file still there: %v", err)
	}
	if st := s.Stats(); st.Used != pg || st.Blobs != 1 {
		t.Errorf("stats after free %+v", st)
	}
	checkClosed(t, b)
	// A blob never written has no store file and frees fine.
	e := mustCreate(t, s)
	if _, err := os.Stat(storePath(s, e)); !os.IsNotExist(err) {
		t.Errorf("store file for an empty blob: %v", err)
	}
	if err := e.Free(); err != nil {
		t.Error(err)
	}
}

func checkClosed(t *testing.T, b *Blob) {
	t.Helper()
	p := make([]byte, 1)
	if _, err := b.ReadAt(p, 0); err != ErrClosed {
		t.Errorf("ReadAt = %v", err)
	}
	if _, err := b.WriteAt(p, 0); err != ErrClosed {
		t.Errorf("WriteAt = %v", err)
	}
	for name, err := range map[string]error{
		"Truncate":  b.Truncate(0),
		"Allocate":  b.Allocate(0, 1, false),
		"PunchHole": b.PunchHole(0, 1),
		"ZeroRange": b.ZeroRange(0, 1, false),
		"Sync":      b.Sync(0, 0),
		"Free":      b.Free(),
	} {
		if err != ErrClosed {
			t.Errorf("%s = %v", name, err)
		}
	}
	if _, err := b.SeekData(0); err != ErrClosed {
		t.Errorf("SeekData = %v", err)
	}
	if _, err := b.SeekHole(0); err != ErrClosed {
		t.Errorf("SeekHole = %v", err)
	}
	if _, err := b.CopyFrom(b, 0, 1, 1); err != ErrClosed {
		t.Errorf("CopyFrom = %v", err)
	}
}

func TestCloseAndReopen(t *testing.T) {
	dir := testDir(t)
	opts := smallOpts()
	opts.Dir = dir
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Create()
	b, _ := s.Create()
	e, _ := s.Create() // never written: no store file
	pa := pattern(3*win+17, 1)
	if _, err := a.WriteAt(pa, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(pattern(2*pg, 2), pg); err != nil {
		t.Fatal(err)
	}
	if err := b.Allocate(5*pg, 3*pg, true); err != nil { // dropped at reopen
		t.Fatal(err)
	}
	ids := []uint64{a.ID(), b.ID(), e.ID()}
	sizeA := a.Size()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkClosed(t, a)
	if _, err := s.Create(); err != ErrClosed {
		t.Errorf("Create after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	s2 := newStore(t, opts)
	files, err := s2.Files()
	if err != nil || len(files) != 2 || files[0] != ids[0] || files[1] != ids[1] {
		t.Fatalf("Files = %v, %v", files, err)
	}
	if err := s2.Check(); err == nil {
		t.Error("Check does not report store files not adopted")
	}
	a2, err := s2.OpenBlob(ids[0], sizeA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents(t, a2), append(make([]byte, 5), pa...)) {
		t.Error("contents of a after reopen differ")
	}
	// b reopened shorter: the bytes past the size are gone for good.
	b2, err := s2.OpenBlob(ids[1], pg+100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Allocated() != pg {
		t.Errorf("b allocated %d after reopen", b2.Allocated())
	}
	if err := b2.Truncate(3 * pg); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3*pg)
	copy(want[pg:pg+100], pattern(2*pg, 2))
	if !bytes.Equal(contents(t, b2), want) {
		t.Error("contents of b after reopen differ")
	}
	e2, err := s2.OpenBlob(ids[2], 1000, nil)
	if err != nil || e2.Size() != 1000 || e2.Allocated() != 0 {
		t.Fatalf("OpenBlob of a blob without file = %v, %v", e2, err)
	}
	if _, err := s2.OpenBlob(ids[0], 0, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenBlob twice = %v", err)
	}
	if _, err := s2.OpenBlob(99, -1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenBlob negative size = %v", err)
	}
	n, err := s2.Create()
	if err != nil || n.ID() <= ids[2] {
		t.Errorf("Create after reopen = %v, %v", n, err)
	}
	s2.SetNextID(1000)
	if n, _ := s2.Create(); n.ID() != 1000 {
		t.Errorf("Create after SetNextID = %d", n.ID())
	}
	if st := s2.Stats(); st.Blobs != 5 || st.Used != a2.Allocated()+b2.Allocated() {
		t.Errorf("stats %+v", st)
	}
}

func TestOpenBlobRejectsNonRegular(t *testing.T) {
	s := newStore(t, Options{})
	if err := os.Mkdir(s.dir+"/00000000000000aa", 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenBlob(0xaa, 0, nil); err == nil {
		t.Error("OpenBlob of a directory succeeded")
	}
	if err := s.Check(); err == nil {
		t.Error("Check does not report a stray directory")
	}
	os.Remove(s.dir + "/00000000000000aa")
	// A symlink is never followed.
	if err := os.Symlink("/etc/passwd", s.dir+"/00000000000000ab"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenBlob(0xab, 0, nil); err == nil {
		t.Error("OpenBlob through a symlink succeeded")
	}
	os.Remove(s.dir + "/00000000000000ab")
	if st := s.Stats(); st.Blobs != 0 || st.FDs != 0 {
		t.Errorf("failed OpenBlob left %+v", st)
	}
}

// TestAllocateTwice: allocating pages an earlier Allocate reserved makes
// them data, as on tmpfs, also past the end of the file, where reads and
// seeks do not see them until the file grows over them.
func TestAllocateTwice(t *testing.T) {
	s := newStore(t, Options{})
	b := mustCreate(t, s)
	mustWrite(t, b, []byte("x"), 0)
	if err := b.Allocate(pg, 2*pg, false); err != nil {
		t.Fatal(err)
	}
	if off, err := b.SeekData(pg); !errors.Is(err, ErrNoData) || b.Size() != 3*pg {
		t.Errorf("after the first allocate: SeekData = %d, %v; size %d", off, err, b.Size())
	}
	if err := b.Allocate(pg, pg, true); err != nil {
		t.Fatal(err)
	}
	if off, err := b.SeekData(pg); err != nil || off != pg {
		t.Errorf("after the second allocate: SeekData = %d, %v, want %d", off, err, pg)
	}
	if h, err := b.SeekHole(pg); err != nil || h != 2*pg {
		t.Errorf("after the second allocate: SeekHole = %d, %v, want %d", h, err, 2*pg)
	}
	// Past the end, size kept, twice: data, but only seen once the file
	// grows over it.
	for i := 0; i < 2; i++ {
		if err := b.Allocate(5*pg, 2*pg, true); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := b.SeekHole(2 * pg); err != nil || h != 2*pg {
		t.Errorf("SeekHole = %d, %v, want %d", h, err, 2*pg)
	}
	if err := b.Truncate(8 * pg); err != nil {
		t.Fatal(err)
	}
	if off, err := b.SeekData(3 * pg); err != nil || off != 5*pg {
		t.Errorf("after growing over them: SeekData = %d, %v, want %d", off, err, 5*pg)
	}
	if p := readRange(t, b, 5*pg, 2*pg); !isZero(p) {
		t.Error("reserved pages made data do not read as zeros")
	}
}

// TestReopenReserved: pages allocated without data (Allocate, with and
// without keepSize, ZeroRange) stay reserved across a reopen when the
// caller keeps Reserved's runs: the same allocation, holes to SeekData,
// zeros to reads; and with a size limit that is then reached, writes into
// them still succeed.
func TestReopenReserved(t *testing.T) {
	for _, lent := range []bool{false, true} {
		t.Run(fmt.Sprintf("lent=%v", lent), func(t *testing.T) {
			dir := testDir(t)
			opts := smallOpts()
			opts.Dir = dir
			if !lent {
				opts.SizeLimit = 64 * PageSize
			}
			s := newStore(t, opts)
			b := mustCreate(t, s)
			mustWrite(t, b, pattern(3*PageSize, 1), 0)
			if err := b.Allocate(4*PageSize, 4*PageSize, false); err != nil { // pages 4-7, size 8 pages
				t.Fatal(err)
			}
			if err := b.ZeroRange(PageSize, PageSize, false); err != nil { // page 1: reserved, no data
				t.Fatal(err)
			}
			if err := b.Allocate(10*PageSize, 2*PageSize, true); err != nil { // pages 10-11, past the end
				t.Fatal(err)
			}
			if lent {
				fd, err := b.Lend(false)
				if err != nil {
					t.Fatal(err)
				}
				if fd >= 0 {
					unix.Close(fd)
				}
			}
			size, alloc := b.Size(), b.Allocated()
			runs := b.Reserved(100)
			want := [][2]int64{{1, 2}, {4, 8}, {10, 12}}
			if fmt.Sprint(runs) != fmt.Sprint(want) {
				t.Fatalf("Reserved = %v, want %v", runs, want)
			}
			if got := b.Reserved(2); len(got) != 2 {
				t.Fatalf("Reserved(2) = %v", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s2 := newStore(t, opts)
			b2, err := s2.OpenBlob(b.ID(), size, runs)
			if err != nil {
				t.Fatal(err)
			}
			if b2.Size() != size || b2.Allocated() != alloc {
				t.Fatalf("after reopen: size %d allocated %d, want %d %d", b2.Size(), b2.Allocated(), size, alloc)
			}
			if got := b2.Reserved(100); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Reserved after reopen = %v, want %v", got, want)
			}
			if pos, err := b2.SeekHole(0); err != nil || pos != PageSize {
				t.Errorf("SeekHole(0) = %d, %v; want %d", pos, err, PageSize)
			}
			if pos, err := b2.SeekData(PageSize); err != nil || pos != 2*PageSize {
				t.Errorf("SeekData(page 1) = %d, %v; want %d", pos, err, 2*PageSize)
			}
			wantData := pattern(3*PageSize, 1)
			clear(wantData[PageSize : 2*PageSize])
			wantData = append(wantData, make([]byte, 5*PageSize)...)
			if !bytes.Equal(contents(t, b2), wantData) {
				t.Error("contents after reopen differ")
			}
			if lent {
				return
			}
			// Fill the limit; the reserved pages still take writes.
			fill := mustCreate(t, s2)
			for off := int64(0); ; off += PageSize {
				if _, err := fill.WriteAt(pattern(PageSize, 3), off); err != nil {
					if !errors.Is(err, ErrNoSpace) {
						t.Fatal(err)
					}
					break
				}
			}
			mustWrite(t, b2, pattern(4*PageSize, 4), 4*PageSize)
			mustWrite(t, b2, pattern(PageSize, 5), 10*PageSize)
			mustWrite(t, b2, pattern(PageSize, 6), PageSize)
		})
	}
}
