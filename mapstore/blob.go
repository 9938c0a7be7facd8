package mapstore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Blob is the data of one file. Its bytes live at the same offsets in its
// store file. Its methods are safe for concurrent use: reads share the blob,
// changes take it exclusively.
//
// A page of a blob is in one of three states, as a page of a tmpfs file is:
// a hole (no space, reads as zeros), allocated (space reserved by Allocate
// or ZeroRange, reads as zeros, a hole to SeekData), or data (written).
// Reads copy only data pages out of the mapping and fill the rest with
// zeros, so that reading never allocates store pages.
type Blob struct {
	s    *Store
	id   uint64
	name string // store file name

	mu   sync.RWMutex
	dead bool  // Protected by mu: freed, or the store closed.
	size int64 // Protected by mu.
	// alloc holds the pages with space in the store file; they are
	// accounted in Store.used. Pages past size may be allocated (Allocate
	// with keepSize). Protected by mu.
	alloc extents
	// data holds the pages written, a subset of alloc, all below size
	// rounded up to a page. Protected by mu.
	data extents
	// hasFile is whether the store file exists. Protected by mu.
	hasFile bool
	// fileSize is the store file's size: it covers every allocated page,
	// rounded up to a window (or to Store.mapLimit, or Store.fileLimit for
	// lastPage), so every window that is mapped lies inside the file. It
	// never shrinks below a mapped window (only freeing lastPage cuts the
	// file short for a moment). Protected by mu.
	fileSize int64
	// loan is set while the blob is lent (lend.go). Protected by mu.
	loan *loan

	wins map[int64]*window // Protected by Store.mu: mapped windows by index.
	fd   fdSlot            // Protected by Store.mu.
}

func newBlob(s *Store, id uint64) *Blob {
	b := &Blob{s: s, id: id, name: storeName(id)}
	b.fd.b = b
	b.fd.fd = -1
	return b
}

// pageUp returns the number of the page that starts at or after off ≥ 0,
// without overflow: pageUp(math.MaxInt64) is lastPage+1.
func pageUp(off int64) int64 {
	p := off >> pageShift
	if off&(PageSize-1) != 0 {
		p++
	}
	return p
}

// pageOff returns the offset of page p ≥ 0, or math.MaxInt64 for a page
// past lastPage (whose offset 2^63 does not fit): the end of the bytes of
// pages [0, p).
func pageOff(p int64) int64 {
	if p > lastPage {
		return math.MaxInt64
	}
	return p << pageShift
}

// ID returns the blob's id, which names its store file.
func (b *Blob) ID() uint64 { return b.id }

// Size returns the blob's size in bytes.
func (b *Blob) Size() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sizeLocked()
}

// Allocated returns the bytes of store space the blob holds: its allocated
// pages, those past Size included.
func (b *Blob) Allocated() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.allocatedLocked()
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt does: it returns
// n < len(p) with io.EOF when it reaches Size, and (0, io.EOF) at or past
// it. Holes and allocated pages without data read as zeros without touching
// the mapping. p is used only during the call.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return 0, errClosed
	case off < 0:
		return 0, errInvalid
	case len(p) == 0:
		return 0, nil
	case b.loan != nil:
		return b.loanIOLocked(p, off, false)
	case off >= b.size:
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > b.size-off {
		p = p[:b.size-off]
		eof = io.EOF
	}
	if n, err := b.readLocked(p, off); err != nil {
		return n, err
	}
	return len(p), eof
}

// readLocked fills p with the blob's bytes at off: data pages from the
// mapping, the rest with zeros.
//
// Preconditions: b.mu is held.
func (b *Blob) readLocked(p []byte, off int64) (int, error) {
	done := off
	err := b.runsLocked(off, off+int64(len(p)), func(pos, next int64, data bool) error {
		if !data {
			clear(p[pos-off : next-off])
		} else if err := b.copyOutLocked(p[pos-off:next-off], pos); err != nil {
			return err
		}
		done = next
		return nil
	})
	return int(done - off), err
}

// runsLocked calls fn for the runs of data pages and of other pages
// (holes, allocated) that make up [off, end), in order, and stops at the
// first error.
//
// Preconditions: b.mu is held.
func (b *Blob) runsLocked(off, end int64, fn func(pos, next int64, data bool) error) error {
	for pos := off; pos < end; {
		pg := pos >> pageShift
		data := b.data.contains(pg)
		next := end
		if data {
			next = min(end, pageOff(b.data.nextOut(pg)))
		} else if d, ok := b.data.nextIn(pg); ok {
			next = min(end, d<<pageShift)
		}
		if err := fn(pos, next, data); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// copyOutLocked copies the mapped bytes at off into p.
//
// Preconditions: b.mu is held; the pages are data.
func (b *Blob) copyOutLocked(p []byte, off int64) error {
	s := b.s
	for done := 0; done < len(p); {
		pos := off + int64(done)
		if pos >= s.mapLimit {
			_, err := b.tailIOLocked(p[done:], pos, false)
			return err
		}
		idx := pos >> s.winShift
		w, err := s.pinWindow(b, idx)
		if err != nil {
			return err
		}
		wo := pos - idx<<s.winShift
		c := int(min(int64(len(w.mem))-wo, int64(len(p)-done)))
		populate(w, wo, c, false)
		err = b.copyGuarded(p[done:done+c], w.mem[wo:wo+int64(c)], pos)
		s.unpinWindow(w)
		if err != nil {
			return err
		}
		done += c
	}
	return nil
}

// WriteAt writes p at off and extends Size to off+n. Store space for pages
// not allocated yet is allocated first. If the size limit leaves room for
// only some of them, WriteAt writes the part that fits and returns n > 0
// with ErrNoSpace; if nothing fits, or the filesystem under the store is
// full, it writes nothing and returns ErrNoSpace. A write reaching past the
// maximum file size is cut short there with ErrTooBig, or fails if off is
// at or past it. In every case the first n bytes were written. p is used
// only during the call.
func (b *Blob) WriteAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	switch {
	case b.dead:
		return 0, errClosed
	case off < 0:
		return 0, errInvalid
	case len(p) == 0:
		return 0, nil
	case off >= s.maxFile:
		return 0, errTooBig
	}
	var short error
	if int64(len(p)) > s.maxFile-off {
		p = p[:s.maxFile-off]
		short = errTooBig
	}
	var n int
	var err error
	if b.loan != nil {
		n, err = b.loanIOLocked(p, off, true)
	} else {
		n, err = b.writeLocked(p, off)
	}
	if err == nil {
		err = short
	}
	return n, err
}

// writeLocked writes p at off: WriteAt of a blob that is not lent, once
// its arguments are checked. If the size limit has room for only some of
// the pages, it writes what fits and returns ErrNoSpace.
//
// Preconditions: b.mu is held for writing; off ≥ 0; off+len(p) is at most
// the maximum file size.
func (b *Blob) writeLocked(p []byte, off int64) (int, error) {
	var short error
	if ps, pe := off>>pageShift, pageUp(off+int64(len(p))); !b.alloc.covers(ps, pe) {
		got, err := b.allocLocked(ps, pe, true)
		if err != nil {
			return 0, err
		}
		if got < pe {
			p = p[:got<<pageShift-off]
			short = errNoSpace
		}
	}
	n, err := b.copyInLocked(p, off)
	if e := off + int64(n); n > 0 && e > b.size {
		b.size = e
	}
	if err != nil {
		return n, err
	}
	return n, short
}

// copyInLocked copies p into the mapping at off and marks the pages as
// data.
//
// Preconditions: b.mu is held for writing; the pages are allocated.
func (b *Blob) copyInLocked(p []byte, off int64) (int, error) {
	s := b.s
	for done := 0; done < len(p); {
		pos := off + int64(done)
		// Past the mappable range, and on a store that is not a tmpfs,
		// writes go through pwrite: a page fault on a disk-backed
		// mapping reads ahead (read_ahead_kb) and fills the page cache
		// with the zeros of pages about to be written.
		if pos >= s.mapLimit || !s.tmpfs {
			n, err := b.tailIOLocked(p[done:], pos, true)
			if n > 0 {
				b.markDataLocked(pos, pos+int64(n))
			}
			return done + n, err
		}
		idx := pos >> s.winShift
		w, err := s.pinWindow(b, idx)
		if err != nil {
			return done, err
		}
		wo := pos - idx<<s.winShift
		c := int(min(int64(len(w.mem))-wo, int64(len(p)-done)))
		populate(w, wo, c, true)
		err = b.copyGuarded(w.mem[wo:wo+int64(c)], p[done:done+c], pos)
		s.unpinWindow(w)
		if err != nil {
			return done, err
		}
		b.markDataLocked(pos, pos+int64(c))
		done += c
	}
	return len(p), nil
}

// markDataLocked records that the bytes [off, end) were written.
//
// Preconditions: b.mu is held for writing; the pages are allocated.
func (b *Blob) markDataLocked(off, end int64) {
	if ps, pe := off>>pageShift, pageUp(end); !b.data.covers(ps, pe) {
		b.data.add(ps, pe)
	}
}

// zeroPage is a page of zeros for pwrite; nothing writes to it.
var zeroPage [PageSize]byte

// tailIOLocked reads the bytes at off into p, or with write writes p there,
// with pread or pwrite on the store file, and returns the bytes done. They
// lie at or past mapLimit, in lastPage, which no mapping can reach.
//
// Preconditions: b.mu is held, for writing if write; the pages are
// allocated, and data for a read.
func (b *Blob) tailIOLocked(p []byte, off int64, write bool) (int, error) {
	s := b.s
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return 0, err
	}
	defer s.releaseFD(b)
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		var n int
		op := "pread"
		if write {
			op = "pwrite"
			n, err = s.sys.Pwrite(fd, p[done:], pos)
		} else {
			n, err = s.sys.Pread(fd, p[done:], pos)
		}
		switch {
		case isEINTR(err):
			continue
		case isENOSPC(err):
			return done, fmt.Errorf("%w: %s %s at %d: %w", errNoSpace, op, b.name, pos, err)
		case err != nil:
			return done, fmt.Errorf("mapstore: %s %s at %d: %w", op, b.name, pos, err)
		case n <= 0:
			return done, fmt.Errorf("mapstore: %s %s at %d: %w", op, b.name, pos, io.ErrUnexpectedEOF)
		}
		done += n
	}
	return done, nil
}

// allocLocked allocates the pages of [ps, pe) that are not allocated yet,
// and returns q such that [ps, q) is now allocated: pe, or with partial a
// smaller q if the size limit has room for only some of the pages. If it
// has room for none, or not for all without partial, or fallocate fails,
// nothing changes and the error says why.
//
// Preconditions: b.mu is held for writing.
func (b *Blob) allocLocked(ps, pe int64, partial bool) (int64, error) {
	missing := (pe - ps) - b.alloc.count(ps, pe)
	if missing == 0 {
		return pe, nil
	}
	got := b.s.reserve(missing, partial)
	if got == 0 {
		return ps, errNoSpace
	}
	if got < missing {
		pe = b.alloc.prefixEnd(ps, got)
	}
	if kept, err := b.fallocateLocked(ps, pe); err != nil {
		b.s.unreserve(got - kept)
		return ps, err
	}
	return pe, nil
}

// fallocateLocked allocates the missing pages of [ps, pe) in the store file,
// creating it and growing it first as needed, and adds them to b.alloc. On
// failure it gives back what it allocated and returns how many pages it
// could not give back (and kept in b.alloc).
//
// Preconditions: b.mu is held for writing; the pages are reserved.
func (b *Blob) fallocateLocked(ps, pe int64) (kept int64, err error) {
	s := b.s
	fd, err := s.acquireFD(b, true)
	if err != nil {
		return 0, err
	}
	defer s.releaseFD(b)
	if err := b.growFileLocked(fd, pe); err != nil {
		return 0, err
	}
	for p := ps; ; {
		gs, ge, ok := b.alloc.nextGap(p, pe)
		if !ok {
			break
		}
		if err := b.fallocFileLocked(fd, gs, ge); err != nil {
			return b.unallocateLocked(fd, ps, gs), err
		}
		p = ge
	}
	b.alloc.add(ps, pe)
	return 0, nil
}

// growFileLocked grows the store file to cover the pages below pe.
//
// Preconditions: b.mu is held for writing; fd is b's pinned descriptor.
func (b *Blob) growFileLocked(fd int, pe int64) error {
	s := b.s
	if target := s.fileTarget(pageOff(pe)); b.fileSize < target {
		if err := s.sys.Ftruncate(fd, target); err != nil {
			return fmt.Errorf("mapstore: grow store file %s to %d: %w", b.name, target, err)
		}
		b.fileSize = target
	}
	return nil
}

// fallocFileLocked allocates the pages [ps, pe) in the store file, which
// covers them. The range of lastPage ends at math.MaxInt64, not 2^63, which
// fallocate would refuse (EFBIG).
//
// Preconditions: b.mu is held for writing; fd is b's pinned descriptor.
func (b *Blob) fallocFileLocked(fd int, ps, pe int64) error {
	off, end := pageOff(ps), pageOff(pe)
	if err := b.s.sys.Fallocate(fd, fallocAlloc, off, end-off); err != nil {
		if isENOSPC(err) {
			b.s.warnFull(err)
			return fmt.Errorf("%w: fallocate %s [%d, %d): %w", ErrNoSpace, b.name, off, end, err)
		}
		return fmt.Errorf("mapstore: fallocate %s [%d, %d): %w", b.name, off, end, err)
	}
	return nil
}

// punchFileLocked frees the pages [ps, pe) of the store file and returns
// q such that [ps, q) is free: pe, or less with an error. fallocate cannot
// free lastPage (a punch reaching 2^63 is EFBIG, and one ending at
// math.MaxInt64 only zeroes the partial page), so that page is freed by
// cutting the file short at its start and growing it back. No window
// reaches into lastPage, so no mapping notices.
//
// Preconditions: b.mu is held for writing; fd is b's pinned descriptor.
func (b *Blob) punchFileLocked(fd int, ps, pe int64) (int64, error) {
	s := b.s
	q := min(pe, lastPage)
	if ps < q {
		off, end := ps<<pageShift, q<<pageShift
		if err := s.sys.Fallocate(fd, fallocPunch, off, end-off); err != nil {
			return ps, fmt.Errorf("mapstore: punch %s [%d, %d): %w", b.name, off, end, err)
		}
		s.unfillLocked(b, off, end)
	}
	if pe <= lastPage || b.fileSize <= maxMappable {
		return pe, nil
	}
	if err := s.sys.Ftruncate(fd, maxMappable); err != nil {
		return max(ps, q), fmt.Errorf("mapstore: punch %s [%d, %d): cut store file: %w", b.name, int64(maxMappable), int64(math.MaxInt64), err)
	}
	if err := s.sys.Ftruncate(fd, b.fileSize); err != nil {
		// The page is free all the same. The file stays short (no window
		// reaches past it) and grows again when the page is allocated.
		s.log.Warn("growing a store file back after freeing its last page",
			zap.String("file", b.name), zap.Error(err))
		b.fileSize = maxMappable
	}
	return pe, nil
}

// unallocateLocked punches the pages of [ps, pe) missing from b.alloc, which
// a failed fallocateLocked has just allocated, and returns the number it
// could not punch, which it adds to b.alloc.
//
// Preconditions: b.mu is held for writing; fd is b's pinned descriptor.
func (b *Blob) unallocateLocked(fd int, ps, pe int64) int64 {
	var kept int64
	for p := ps; ; {
		gs, ge, ok := b.alloc.nextGap(p, pe)
		if !ok {
			return kept
		}
		if q, err := b.punchFileLocked(fd, gs, ge); err != nil {
			kept += b.alloc.add(q, ge)
		}
		p = ge
	}
}

// freePagesLocked frees the allocated pages of [ps, pe): punches them out
// of the store file, forgets them and gives back their space.
//
// Preconditions: b.mu is held for writing.
func (b *Blob) freePagesLocked(ps, pe int64) error {
	first, ok := b.alloc.nextIn(ps)
	if !ok || first >= pe {
		return nil
	}
	last := min(pe, b.alloc.last())
	s := b.s
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer s.releaseFD(b)
	q, err := b.punchFileLocked(fd, first, last)
	b.data.remove(first, q)
	s.unreserve(b.alloc.remove(first, q))
	return err
}

// zeroMappedLocked zeroes the bytes [off, end) through the mapping.
//
// Preconditions: b.mu is held for writing; the pages are data.
func (b *Blob) zeroMappedLocked(off, end int64) error {
	s := b.s
	for pos := off; pos < end; {
		if pos >= s.mapLimit {
			_, err := b.tailIOLocked(zeroPage[:end-pos], pos, true)
			return err
		}
		idx := pos >> s.winShift
		w, err := s.pinWindow(b, idx)
		if err != nil {
			return err
		}
		wo := pos - idx<<s.winShift
		c := min(int64(len(w.mem))-wo, end-pos)
		err = b.clearGuarded(w.mem[wo:wo+c], pos)
		s.unpinWindow(w)
		if err != nil {
			return err
		}
		pos += c
	}
	return nil
}

// zeroLocked makes [off, end) read as zeros: whole pages are freed, data in
// partial pages at the ends is zeroed in place.
//
// Preconditions: b.mu is held for writing.
func (b *Blob) zeroLocked(off, end int64) error {
	if err := b.freePagesLocked(pageUp(off), end>>pageShift); err != nil {
		return err
	}
	return b.zeroPartialLocked(off, end)
}

// zeroPartialLocked zeroes the data of [off, end) that lies in pages only
// partly inside it.
//
// Preconditions: b.mu is held for writing.
func (b *Blob) zeroPartialLocked(off, end int64) error {
	const mask = PageSize - 1
	head := off >> pageShift
	if off&mask != 0 && b.data.contains(head) {
		if err := b.zeroMappedLocked(off, min(end, pageOff(head+1))); err != nil {
			return err
		}
	}
	tail := end >> pageShift
	if end&mask != 0 && (tail != head || off&mask == 0) && b.data.contains(tail) {
		return b.zeroMappedLocked(max(off, tail<<pageShift), end)
	}
	return nil
}

// Truncate sets the size. Growing leaves a hole; shrinking zeroes the rest
// of the last page and frees every page past it, those allocated past the
// old size included (as tmpfs does, even when the size does not change).
func (b *Blob) Truncate(size int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.dead:
		return errClosed
	case size < 0:
		return errInvalid
	case size > b.s.maxFile:
		return errTooBig
	case b.loan != nil:
		return b.loanTruncateLocked(size)
	case size > b.size:
		b.size = size
		return nil
	}
	return b.truncateLocked(size)
}

// truncateLocked shrinks the blob to size.
//
// Preconditions: b.mu is held for writing; size ≤ b.size, or the blob is
// being adopted.
func (b *Blob) truncateLocked(size int64) error {
	if err := b.freePagesLocked(pageUp(size), math.MaxInt64); err != nil {
		return err
	}
	b.size = size
	return b.zeroPartialLocked(size, pageOff(pageUp(size)))
}

// rangeArgs checks the offset and length of Allocate, PunchHole and
// ZeroRange as fallocate(2) does, and returns the end of the range.
func (b *Blob) rangeArgs(off, length int64) (int64, error) {
	switch {
	case off < 0 || length <= 0:
		return 0, errInvalid
	case off > b.s.maxFile-length:
		return 0, errTooBig
	}
	return off + length, nil
}

// Allocate allocates store space for [off, off+length), as fallocate(2)
// with mode 0 or, with keepSize, FALLOC_FL_KEEP_SIZE does: all of it, or
// nothing and ErrNoSpace. Unless keepSize, Size grows to off+length. The
// new pages read as zeros.
func (b *Blob) Allocate(off, length int64, keepSize bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return errClosed
	}
	end, err := b.rangeArgs(off, length)
	if err != nil {
		return err
	}
	if b.loan != nil {
		mode := uint32(0)
		if keepSize {
			mode = unix.FALLOC_FL_KEEP_SIZE
		}
		return b.loanFallocate(mode, off, length)
	}
	ps, pe := off>>pageShift, pageUp(end)
	newSize := b.size
	if !keepSize && end > newSize {
		newSize = end
	}
	// Also past the end of the file, as on tmpfs: reads and seeks stop at
	// Size, and a later truncate up shows the pages as data.
	again := b.reservedOnlyLocked(ps, pe)
	if _, err := b.allocLocked(ps, pe, false); err != nil {
		return err
	}
	if err := b.fallocAgainLocked(again); err != nil {
		return err
	}
	b.size = newSize
	return nil
}

// reservedOnlyLocked returns the runs of [ps, pe) that are allocated but
// hold no data.
//
// Preconditions: b.mu is held.
func (b *Blob) reservedOnlyLocked(ps, pe int64) []extent {
	var runs []extent
	for p := ps; p < pe; {
		s, ok := b.alloc.nextIn(p)
		if !ok || s >= pe {
			break
		}
		e := min(b.alloc.nextOut(s), pe)
		for q := s; q < e; {
			gs, ge, ok := b.data.nextGap(q, e)
			if !ok {
				break
			}
			runs = append(runs, extent{gs, ge})
			q = ge
		}
		p = e
	}
	return runs
}

// fallocAgainLocked allocates again pages an earlier Allocate reserved.
// On tmpfs that makes them data: zero pages that SEEK_DATA reports
// (shmem_get_folio_gfp with SGP_FALLOC clears a folio it finds not
// uptodate). The store file and the blob's data set both follow.
//
// Preconditions: b.mu is held for writing; the runs are allocated.
func (b *Blob) fallocAgainLocked(runs []extent) error {
	if len(runs) == 0 {
		return nil
	}
	s := b.s
	fd, err := s.acquireFD(b, true)
	if err != nil {
		return err
	}
	defer s.releaseFD(b)
	for _, r := range runs {
		if err := b.fallocFileLocked(fd, r.start, r.end); err != nil {
			return err
		}
		b.data.add(r.start, r.end)
	}
	return nil
}

// PunchHole makes [off, off+length) read as zeros, as fallocate(2) with
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE does: whole pages inside are
// freed, the rest is zeroed in place. Size does not change; the range may
// reach past it.
func (b *Blob) PunchHole(off, length int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return errClosed
	}
	end, err := b.rangeArgs(off, length)
	if err != nil {
		return err
	}
	if b.loan != nil {
		return b.loanFallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	}
	return b.zeroLocked(off, end)
}

// ZeroRange makes [off, off+length) read as zeros with its pages allocated,
// as FALLOC_FL_ZERO_RANGE does on filesystems that have it (tmpfs does
// not): space for the whole range is allocated first, all or nothing; whole
// pages with data are then punched and allocated again, partial pages are
// zeroed in place. Unless keepSize, Size grows to off+length.
func (b *Blob) ZeroRange(off, length int64, keepSize bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return errClosed
	}
	end, err := b.rangeArgs(off, length)
	if err != nil {
		return err
	}
	if b.loan != nil {
		return b.loanZeroRangeLocked(off, length, keepSize)
	}
	if _, err := b.allocLocked(off>>pageShift, pageUp(end), false); err != nil {
		return err
	}
	if err := b.reallocDataLocked(pageUp(off), end>>pageShift); err != nil {
		return err
	}
	if err := b.zeroPartialLocked(off, end); err != nil {
		return err
	}
	if !keepSize && end > b.size {
		b.size = end
	}
	return nil
}

// reallocDataLocked turns the data pages of [ps, pe) into allocated pages
// without data: they are punched and allocated again.
//
// Preconditions: b.mu is held for writing; [ps, pe) is allocated.
func (b *Blob) reallocDataLocked(ps, pe int64) error {
	first, ok := b.data.nextIn(ps)
	if !ok || first >= pe {
		return nil
	}
	s := b.s
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer s.releaseFD(b)
	for p := first; p < pe; {
		ds, ok := b.data.nextIn(p)
		if !ok || ds >= pe {
			break
		}
		de := min(pe, b.data.nextOut(ds))
		if q, err := b.punchFileLocked(fd, ds, de); err != nil {
			// What was punched reads as zeros, but its space is gone.
			b.data.remove(ds, q)
			s.unreserve(b.alloc.remove(ds, q))
			return err
		}
		b.data.remove(ds, de)
		err := b.growFileLocked(fd, de)
		if err == nil {
			err = b.fallocFileLocked(fd, ds, de)
		}
		if err != nil {
			// The range reads as zeros, but its space is gone.
			s.unreserve(b.alloc.remove(ds, de))
			return err
		}
		p = de
	}
	return nil
}

// SeekData returns the first offset ≥ off inside a page with data, as
// lseek(2) SEEK_DATA does on tmpfs: pages that are only allocated count as
// holes, and ErrNoData comes back if off is negative, at or past Size, or
// followed by no data.
func (b *Blob) SeekData(off int64) (int64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return 0, errClosed
	case b.loan != nil:
		return b.loanSeekLocked(off, unix.SEEK_DATA)
	case off < 0 || off >= b.size:
		return 0, errNoData
	}
	p, ok := b.data.nextIn(off >> pageShift)
	if !ok {
		return 0, errNoData
	}
	if pos := max(off, p<<pageShift); pos < b.size {
		return pos, nil
	}
	return 0, errNoData
}

// SeekHole returns the first offset ≥ off inside a page without data, or
// Size if there is none before it, as lseek(2) SEEK_HOLE does on tmpfs.
// ErrNoData comes back if off is negative or at or past Size.
func (b *Blob) SeekHole(off int64) (int64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return 0, errClosed
	case b.loan != nil:
		return b.loanSeekLocked(off, unix.SEEK_HOLE)
	case off < 0 || off >= b.size:
		return 0, errNoData
	}
	q := b.data.nextOut(off >> pageShift)
	return min(max(off, pageOff(q)), b.size), nil
}

// Sync writes the blob's bytes in [off, off+length) to the store file's
// storage: msync(MS_SYNC) of the mapped windows in the range, then
// fdatasync of the store file. A length of 0 means to the end of the blob.
func (b *Blob) Sync(off, length int64) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return errClosed
	case off < 0 || length < 0:
		return errInvalid
	case b.loan != nil:
		fd, err := b.s.acquireFD(b, false)
		if err != nil {
			return err
		}
		defer b.s.releaseFD(b)
		if err := b.s.sys.Fdatasync(fd); err != nil {
			return fmt.Errorf("mapstore: fdatasync %s: %w", b.name, err)
		}
		return b.s.syncDir()
	case !b.hasFile:
		return nil
	}
	end := int64(math.MaxInt64)
	if length > 0 && off <= math.MaxInt64-length {
		end = off + length
	}
	s := b.s
	s.mu.Lock()
	var wins []*window
	for idx, w := range b.wins {
		if ws := idx << s.winShift; ws < end && ws+int64(len(w.mem)) > off {
			w.refs++
			wins = append(wins, w)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, w := range wins {
		ws := w.idx << s.winShift
		lo := max(off, ws) &^ (PageSize - 1)
		hi := min(end-ws, int64(len(w.mem)))
		if err := s.sys.Msync(w.mem[lo-ws:hi], msyncFlags); err != nil {
			errs = append(errs, fmt.Errorf("mapstore: msync %s [%d, %d): %w", b.name, lo, ws+hi, err))
		}
		s.unpinWindow(w)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer s.releaseFD(b)
	if err := s.sys.Fdatasync(fd); err != nil {
		return fmt.Errorf("mapstore: fdatasync %s: %w", b.name, err)
	}
	return s.syncDir()
}

// syncDir makes the names of new store files durable: a store file whose
// data was synced is no use if its directory entry is lost.
func (s *Store) syncDir() error {
	if !s.dirDirty.Swap(false) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := s.sys.Fsync(s.dirfd); err != nil {
		s.dirDirty.Store(true)
		return fmt.Errorf("mapstore: fsync store directory: %w", err)
	}
	return nil
}

// Free frees the blob: its windows are unmapped, its store file removed and
// its space given back. Afterwards every method returns ErrClosed.
func (b *Blob) Free() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return errClosed
	}
	b.dead = true
	s := b.s
	s.mu.Lock()
	if b.loan != nil {
		delete(s.loans, b)
		b.loan = nil
	}
	err := s.dropBlobLocked(b)
	if b.hasFile && !s.closed {
		// Under s.mu, so that Close cannot close dirfd meanwhile.
		if e := unlinkat(s.dirfd, b.name); e != nil && !isENOENT(e) {
			err = errors.Join(err, fmt.Errorf("mapstore: remove store file %s: %w", b.name, e))
		}
	}
	delete(s.blobs, b.id)
	s.used -= b.alloc.pages * PageSize
	s.mu.Unlock()
	b.alloc.reset()
	b.data.reset()
	b.size = 0
	b.hasFile = false
	return err
}
