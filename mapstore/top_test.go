package mapstore

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"

	"golang.org/x/sys/unix"
)

// The top of the range: files may be math.MaxInt64 bytes long, as on
// tmpfs. The last page, [top, math.MaxInt64), cannot be mapped and goes
// through pread and pwrite; everything else about it must be as for any
// other page. Every test here ends with Check (newStore's cleanup), which
// compares the store file's pages with the blob's.

const top = math.MaxInt64 &^ (pg - 1) // start of the last page

// topStore returns a store whose files may reach math.MaxInt64, or skips
// the test if the filesystem under it does not allow that.
func topStore(t *testing.T, o Options) *Store {
	t.Helper()
	s := newStore(t, o)
	if s.MaxFileSize() != math.MaxInt64 {
		t.Skipf("maximum file size %d: the filesystem under the store stops short of 2^63-1", s.MaxFileSize())
	}
	return s
}

func mustCheck(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestTopLimits(t *testing.T) {
	s := topStore(t, smallOpts())
	if s.tmpfs && maxFile != math.MaxInt64 {
		t.Errorf("maximum file size on a tmpfs %d, want math.MaxInt64", maxFile)
	}
	if s.mapLimit != top || s.fileLimit != math.MaxInt64 {
		t.Errorf("mapLimit %d fileLimit %d", s.mapLimit, s.fileLimit)
	}
	// The window holding the page below the last one stops before it.
	idx := int64(top-1) >> s.winShift
	if end := idx<<s.winShift + s.windowLen(idx); end != top {
		t.Errorf("last window ends at %d, want %d", end, int64(top))
	}
	for _, c := range []struct{ off, want int64 }{
		{0, 0}, {1, 1}, {pg, 1}, {pg + 1, 2}, {top, lastPage}, {top + 1, lastPage + 1},
		{math.MaxInt64 - 1, lastPage + 1}, {math.MaxInt64, lastPage + 1},
	} {
		if got := pageUp(c.off); got != c.want {
			t.Errorf("pageUp(%d) = %d, want %d", c.off, got, c.want)
		}
	}
	if pageOff(lastPage) != top || pageOff(lastPage+1) != math.MaxInt64 || pageOff(3) != 3*pg {
		t.Error("pageOff")
	}
}

func TestTopWriteRead(t *testing.T) {
	tests := []struct {
		name     string
		off      int64
		n        int
		wantN    int
		wantErr  error
		wantSize int64
		wantPgs  int64
	}{
		{"last byte", math.MaxInt64 - 1, 1, 1, nil, math.MaxInt64, 1},
		{"two bytes at the last", math.MaxInt64 - 1, 2, 1, ErrTooBig, math.MaxInt64, 1},
		{"at max", math.MaxInt64, 1, 0, ErrTooBig, 0, 0},
		{"whole last page", top, pg - 1, pg - 1, nil, math.MaxInt64, 1},
		{"cut at max", top + 10, pg, pg - 11, ErrTooBig, math.MaxInt64, 1},
		{"start of last page", top, 3, 3, nil, top + 3, 1},
		{"across into the last page", top - 100, 200, 200, nil, top + 100, 2},
		{"across windows into the last page", top - 2*win - 5, 2*win + 10, 2*win + 10, nil, top + 5, 2*win/pg + 2},
		{"last mappable byte", top - 1, 1, 1, nil, top, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := topStore(t, smallOpts())
			b := mustCreate(t, s)
			p := pattern(tt.n, 7)
			n, err := b.WriteAt(p, tt.off)
			if n != tt.wantN || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WriteAt = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if b.Size() != tt.wantSize || b.Allocated() != tt.wantPgs*pg {
				t.Errorf("size %d allocated %d, want %d %d", b.Size(), b.Allocated(), tt.wantSize, tt.wantPgs*pg)
			}
			if n > 0 {
				if got := readRange(t, b, tt.off, n); !bytes.Equal(got, p[:n]) {
					t.Error("read back differs")
				}
				// The rest of the pages written reads as zeros.
				lo := tt.off &^ (pg - 1)
				if got := readRange(t, b, lo, int(tt.off-lo)); !isZero(got) {
					t.Error("bytes before the write are not zeros")
				}
				if end := tt.off + int64(n); end < b.Size() {
					if got := readRange(t, b, end, int(min(pg, b.Size()-end))); !isZero(got) {
						t.Error("bytes after the write are not zeros")
					}
				}
			}
			mustCheck(t, s)
		})
	}
}

func TestTopReadAt(t *testing.T) {
	s := topStore(t, smallOpts())
	b := mustCreate(t, s)
	if err := b.Truncate(math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte{0xee}, 20)
	if n, err := b.ReadAt(p, math.MaxInt64-10); n != 10 || err != io.EOF || !isZero(p[:10]) {
		t.Errorf("ReadAt of a hole at the end = %d, %v", n, err)
	}
	if n, err := b.ReadAt(p, math.MaxInt64); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	mustWrite(t, b, []byte("abc"), math.MaxInt64-3)
	if n, err := b.ReadAt(p, math.MaxInt64-10); n != 10 || err != io.EOF || !bytes.Equal(p[:10], []byte("\x00\x00\x00\x00\x00\x00\x00abc")) {
		t.Errorf("ReadAt = %d, %v, %q", n, err, p[:n])
	}
	if b.Allocated() != pg {
		t.Errorf("Allocated = %d", b.Allocated())
	}
}

func TestTopTruncate(t *testing.T) {
	s := topStore(t, smallOpts())
	b := mustCreate(t, s)
	if err := b.Truncate(math.MaxInt64); err != nil || b.Size() != math.MaxInt64 || b.Allocated() != 0 {
		t.Fatalf("Truncate(max) = %v; size %d allocated %d", err, b.Size(), b.Allocated())
	}
	mustWrite(t, b, pattern(2*pg, 1), top-2*pg)
	mustWrite(t, b, pattern(pg-1, 2), top)
	mustCheck(t, s)
	// Shrinking into the last page keeps it and zeroes its tail.
	if err := b.Truncate(top + 5); err != nil {
		t.Fatal(err)
	}
	if b.Allocated() != 3*pg {
		t.Errorf("Allocated = %d, want %d", b.Allocated(), 3*pg)
	}
	mustCheck(t, s)
	if err := b.Truncate(math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	got := readRange(t, b, top, pg-1)
	if !bytes.Equal(got[:5], pattern(5, 2)) || !isZero(got[5:]) {
		t.Error("last page after shrink and grow")
	}
	// Shrinking to its start frees it: the store file is cut and grown
	// back.
	if err := b.Truncate(top); err != nil {
		t.Fatal(err)
	}
	if b.Allocated() != 2*pg {
		t.Errorf("Allocated = %d, want %d", b.Allocated(), 2*pg)
	}
	if !bytes.Equal(readRange(t, b, top-2*pg, 2*pg), pattern(2*pg, 1)) {
		t.Error("pages below the last changed")
	}
	mustCheck(t, s)
	// And it can be written again.
	mustWrite(t, b, []byte{9}, math.MaxInt64-1)
	if b.Allocated() != 3*pg || !bytes.Equal(readRange(t, b, math.MaxInt64-1, 1), []byte{9}) {
		t.Error("write after freeing the last page")
	}
	mustCheck(t, s)
	if err := b.Truncate(0); err != nil || b.Allocated() != 0 || s.Stats().Used != 0 {
		t.Errorf("Truncate(0) = %v; allocated %d", err, b.Allocated())
	}
}

func TestTopAllocate(t *testing.T) {
	s := topStore(t, smallOpts())
	b := mustCreate(t, s)
	if err := b.Allocate(math.MaxInt64-pg, pg+1, false); !errors.Is(err, ErrTooBig) {
		t.Errorf("Allocate past max = %v", err)
	}
	if err := b.Allocate(math.MaxInt64-pg, 2*pg, false); !errors.Is(err, ErrTooBig) {
		t.Errorf("Allocate past max = %v", err)
	}
	if err := b.Allocate(top-pg, pg+pg-1, false); err != nil {
		t.Fatal(err)
	}
	if b.Size() != math.MaxInt64 || b.Allocated() != 2*pg {
		t.Errorf("size %d allocated %d", b.Size(), b.Allocated())
	}
	if _, err := b.SeekData(0); !errors.Is(err, ErrNoData) {
		t.Errorf("SeekData over allocated pages = %v", err)
	}
	if got := readRange(t, b, top-10, 20); !isZero(got) {
		t.Error("allocated pages do not read as zeros")
	}
	mustCheck(t, s)
	// Written into, the allocated last page becomes data.
	mustWrite(t, b, []byte{1}, top+7)
	if d, err := b.SeekData(0); d != top || err != nil {
		t.Errorf("SeekData = %d, %v", d, err)
	}
	mustCheck(t, s)

	c := mustCreate(t, s)
	if err := c.Allocate(math.MaxInt64-1, 1, true); err != nil || c.Size() != 0 || c.Allocated() != pg {
		t.Errorf("Allocate keep size = %v; size %d allocated %d", err, c.Size(), c.Allocated())
	}
	mustCheck(t, s)
	// Truncate frees pages past the size, the last one too.
	if err := c.Truncate(0); err != nil || c.Allocated() != 0 {
		t.Errorf("Truncate = %v; allocated %d", err, c.Allocated())
	}
}

func TestTopAllocateNoSpace(t *testing.T) {
	o := smallOpts()
	o.SizeLimit = pg
	s := topStore(t, o)
	b := mustCreate(t, s)
	if err := b.Allocate(top-pg, 2*pg-1, false); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Allocate = %v, want ErrNoSpace", err)
	}
	// A write gets the part that fits.
	n, err := b.WriteAt(pattern(2*pg-1, 1), top-pg)
	if n != pg || !errors.Is(err, ErrNoSpace) || b.Size() != top {
		t.Errorf("WriteAt = %d, %v; size %d", n, err, b.Size())
	}
	if b.Allocated() != pg || s.Stats().Used != pg {
		t.Errorf("allocated %d", b.Allocated())
	}
}

func TestTopPunchAndZero(t *testing.T) {
	s := topStore(t, smallOpts())
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(3*pg-1, 1), top-2*pg)
	// A range reaching math.MaxInt64 never covers the last page whole
	// (as on tmpfs, which only zeroes it): the page stays, zeroed.
	if err := b.PunchHole(top-pg, pg+pg-1); err != nil {
		t.Fatal(err)
	}
	if b.Allocated() != 2*pg || b.Size() != math.MaxInt64 {
		t.Errorf("after punch: allocated %d size %d", b.Allocated(), b.Size())
	}
	if got := readRange(t, b, top-pg, 2*pg-1); !isZero(got) {
		t.Error("punched range does not read as zeros")
	}
	if !bytes.Equal(readRange(t, b, top-2*pg, pg), pattern(pg, 1)) {
		t.Error("page below the punched range changed")
	}
	if h, err := b.SeekHole(top - 2*pg); h != top-pg || err != nil {
		t.Errorf("SeekHole = %d, %v", h, err)
	}
	if d, err := b.SeekData(top - pg); d != top || err != nil {
		t.Errorf("SeekData = %d, %v", d, err)
	}
	mustCheck(t, s)
	if err := b.PunchHole(math.MaxInt64-1, 2); !errors.Is(err, ErrTooBig) {
		t.Errorf("PunchHole past max = %v", err)
	}

	mustWrite(t, b, pattern(3*pg-1, 2), top-2*pg)
	if err := b.ZeroRange(top-pg-3, pg+pg+2, true); err != nil {
		t.Fatal(err)
	}
	// Page top-pg is whole in the range: allocated without data; the
	// others are zeroed in place.
	if b.Allocated() != 3*pg {
		t.Errorf("after zero range: allocated %d", b.Allocated())
	}
	got := readRange(t, b, top-2*pg, 3*pg-1)
	if !bytes.Equal(got[:pg-3], pattern(pg-3, 2)) || !isZero(got[pg-3:]) {
		t.Error("zero range contents")
	}
	if h, err := b.SeekHole(top - 2*pg); h != top-pg || err != nil {
		t.Errorf("SeekHole = %d, %v", h, err)
	}
	mustCheck(t, s)
	if err := b.ZeroRange(top, pg, false); !errors.Is(err, ErrTooBig) {
		t.Errorf("ZeroRange past max = %v", err)
	}
}

func TestTopSeek(t *testing.T) {
	s := topStore(t, smallOpts())
	b := mustCreate(t, s)
	mustWrite(t, b, []byte{1}, math.MaxInt64-1)
	for _, c := range []struct {
		off          int64
		data, hole   int64
		dataErr, hoE error
	}{
		{0, top, 0, nil, nil},
		{top - 1, top, top - 1, nil, nil},
		{top, top, math.MaxInt64, nil, nil},
		{math.MaxInt64 - 1, math.MaxInt64 - 1, math.MaxInt64, nil, nil},
		{math.MaxInt64, 0, 0, ErrNoData, ErrNoData},
	} {
		d, err := b.SeekData(c.off)
		if d != c.data || err != c.dataErr {
			t.Errorf("SeekData(%d) = %d, %v; want %d, %v", c.off, d, err, c.data, c.dataErr)
		}
		h, err := b.SeekHole(c.off)
		if h != c.hole || err != c.hoE {
			t.Errorf("SeekHole(%d) = %d, %v; want %d, %v", c.off, h, err, c.hole, c.hoE)
		}
	}
	// Data running into the last page.
	mustWrite(t, b, pattern(pg, 1), top-pg)
	if h, err := b.SeekHole(top - pg); h != math.MaxInt64 || err != nil {
		t.Errorf("SeekHole = %d, %v", h, err)
	}
	if d, err := b.SeekData(top - 2*pg); d != top-pg || err != nil {
		t.Errorf("SeekData = %d, %v", d, err)
	}
}

func TestTopCopyFrom(t *testing.T) {
	s := topStore(t, smallOpts())
	src, dst := mustCreate(t, s), mustCreate(t, s)
	mustWrite(t, src, pattern(2*pg, 1), 0)
	// Into the top: [top-100, MaxInt64), across the last mappable page.
	n := int64(math.MaxInt64 - (top - 100))
	if got, err := dst.CopyFrom(src, 0, top-100, n); got != n || err != nil {
		t.Fatalf("CopyFrom to the top = %d, %v", got, err)
	}
	if dst.Size() != math.MaxInt64 || dst.Allocated() != 2*pg {
		t.Errorf("dst size %d allocated %d", dst.Size(), dst.Allocated())
	}
	if !bytes.Equal(readRange(t, dst, top-100, int(n)), pattern(2*pg, 1)[:n]) {
		t.Error("bytes copied to the top differ")
	}
	mustCheck(t, s)
	// Past the end of the range: the count does not fit.
	if got, err := dst.CopyFrom(src, 0, math.MaxInt64-10, 11); got != 0 || !errors.Is(err, ErrTooBig) {
		t.Errorf("CopyFrom past max = %d, %v", got, err)
	}
	if got, err := dst.CopyFrom(src, 0, math.MaxInt64, 1); got != 0 || !errors.Is(err, ErrTooBig) {
		t.Errorf("CopyFrom at max = %d, %v", got, err)
	}
	// Out of the top, into another blob and into the same one.
	back := mustCreate(t, s)
	if got, err := back.CopyFrom(dst, top-100, 10, n); got != n || err != nil {
		t.Fatalf("CopyFrom out of the top = %d, %v", got, err)
	}
	if !bytes.Equal(readRange(t, back, 10, int(n)), pattern(2*pg, 1)[:n]) {
		t.Error("bytes copied out of the top differ")
	}
	if got, err := dst.CopyFrom(dst, top-100, 5*pg+3, n); got != n || err != nil {
		t.Fatalf("CopyFrom within = %d, %v", got, err)
	}
	if !bytes.Equal(readRange(t, dst, 5*pg+3, int(n)), pattern(2*pg, 1)[:n]) {
		t.Error("bytes copied within the blob differ")
	}
	// From the top to the top of another blob: the last page, byte for
	// byte.
	other := mustCreate(t, s)
	if got, err := other.CopyFrom(dst, top, top, pg-1); got != pg-1 || err != nil {
		t.Fatalf("CopyFrom top to top = %d, %v", got, err)
	}
	if !bytes.Equal(readRange(t, other, top, pg-1), readRange(t, dst, top, pg-1)) || other.Allocated() != pg {
		t.Error("last page copied differs")
	}
	// A hole copied over the last page zeroes it (the page is not whole
	// in the range, so it stays allocated).
	hole := mustCreate(t, s)
	if err := hole.Truncate(2 * pg); err != nil {
		t.Fatal(err)
	}
	if got, err := other.CopyFrom(hole, 0, top, pg-1); got != pg-1 || err != nil {
		t.Fatalf("CopyFrom hole = %d, %v", got, err)
	}
	if !isZero(readRange(t, other, top, pg-1)) || other.Allocated() != pg {
		t.Error("hole copied over the last page")
	}
	mustCheck(t, s)
}

func TestTopSyncFreeReopen(t *testing.T) {
	dir := testDir(t)
	o := smallOpts()
	o.Dir = dir
	s := topStore(t, o)
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(pg+10, 3), top-pg)
	c := mustCreate(t, s)
	if err := c.Allocate(top, pg-1, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(0, 0); err != nil {
		t.Error(err)
	}
	if err := b.Sync(top, 100); err != nil {
		t.Error(err)
	}
	mustCheck(t, s)
	id, cid := b.ID(), c.ID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := newStore(t, o)
	b2, err := s2.OpenBlob(id, math.MaxInt64, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Allocated() != 2*pg || !bytes.Equal(readRange(t, b2, top-pg, pg+10), pattern(pg+10, 3)) {
		t.Errorf("reopened: allocated %d, or contents differ", b2.Allocated())
	}
	// An allocated page without data cannot be told from a hole: it is
	// freed, the last one too.
	c2, err := s2.OpenBlob(cid, math.MaxInt64, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Allocated() != 0 {
		t.Errorf("reopened allocated-only blob: allocated %d", c2.Allocated())
	}
	mustCheck(t, s2)
	if err := b2.Free(); err != nil {
		t.Error(err)
	}
	if s2.Stats().Used != 0 {
		t.Errorf("used %d after Free", s2.Stats().Used)
	}
}

// TestTopInjectedFailures: pread, pwrite and the ftruncate that frees the
// last page fail; the error comes back and the store stays consistent.
func TestTopInjectedFailures(t *testing.T) {
	f := &faults{}
	o := smallOpts()
	o.Sys = f.sys()
	s := topStore(t, o)
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(10, 1), top)

	f.pwrite.set(unix.EIO, 0, 1)
	if n, err := b.WriteAt(pattern(10, 2), top+100); n != 0 || !errors.Is(err, unix.EIO) {
		t.Errorf("WriteAt with pwrite failing = %d, %v", n, err)
	}
	mustCheck(t, s)
	f.pwrite.set(unix.ENOSPC, 0, 1)
	if n, err := b.WriteAt(pattern(10, 2), top+100); n != 0 || !errors.Is(err, ErrNoSpace) {
		t.Errorf("WriteAt with pwrite ENOSPC = %d, %v", n, err)
	}
	mustCheck(t, s)
	f.pread.set(unix.EIO, 0, 1)
	if _, err := b.ReadAt(make([]byte, 10), top); !errors.Is(err, unix.EIO) {
		t.Errorf("ReadAt with pread failing = %v", err)
	}
	if !bytes.Equal(readRange(t, b, top, 10), pattern(10, 1)) {
		t.Error("acknowledged data changed")
	}

	// The cut of the store file fails: nothing is freed.
	f.ftruncate.set(unix.EIO, 0, 1)
	if err := b.Truncate(top - 1); !errors.Is(err, unix.EIO) {
		t.Errorf("Truncate with ftruncate failing = %v", err)
	}
	if b.Allocated() != pg {
		t.Errorf("allocated %d", b.Allocated())
	}
	mustCheck(t, s)
	// Growing the file back fails: the page is free all the same, and
	// the file grows again when it is next allocated.
	if err := b.Truncate(math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	f.ftruncate.set(unix.EIO, 1, 1)
	if err := b.Truncate(top); err != nil {
		t.Errorf("Truncate with the regrow failing = %v", err)
	}
	if b.Allocated() != 0 || fileSizeOf(b) != top {
		t.Errorf("allocated %d, store file size %d", b.Allocated(), fileSizeOf(b))
	}
	mustCheck(t, s)
	mustWrite(t, b, pattern(5, 4), math.MaxInt64-5)
	if b.Allocated() != pg || fileSizeOf(b) != math.MaxInt64 {
		t.Errorf("allocated %d, store file size %d", b.Allocated(), fileSizeOf(b))
	}
	mustCheck(t, s)
	f.reset()
}
