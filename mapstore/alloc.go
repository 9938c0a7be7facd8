package mapstore

import (
	"fmt"
	"math"

	"go.uber.org/zap"
)

// Space allocation: how the pages of a blob move between the three states
// (hole, allocated, data; see Blob) and how the store file and the size
// limit follow.
//
//   - hole → allocated: allocLocked reserves the pages against the size
//     limit (Store.reserve), grows the store file to cover them
//     (growFileLocked) and fallocates them (fallocFileLocked).
//   - allocated → data: a write through the mapping or pwrite
//     (mappedio.go), recorded by markDataLocked; also Allocate of pages
//     reserved already (fallocAgainLocked), whose second fallocate makes
//     them data on tmpfs.
//   - data → allocated: punched and fallocated again (reallocDataLocked,
//     ZeroRange).
//   - allocated or data → hole: punched out of the store file and given
//     back to the size limit (freePagesLocked, punchFileLocked).
//
// b.alloc, b.data, the store file and Store.used agree after every step
// (Check verifies it); a step whose system call fails half way leaves them
// agreeing on what it did.

// allocLocked allocates the pages of [ps, pe) that are not allocated yet,
// and returns q such that [ps, q) is now allocated: pe, or with partial a
// smaller q if the size limit has room for only some of the pages. If it
// has room for none, or not for all without partial, or fallocate fails,
// nothing changes and the error says why.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
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

// allocWriteLocked allocates the pages of [off, off+n) that are not
// allocated yet, ahead of a write, as many as the size limit has room for,
// and returns how many of the n bytes they cover: n; or fewer, not 0, with
// ErrNoSpace if the limit has room for only some of the pages; or 0 with
// the error if it has room for none or fallocate fails.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
func (b *Blob) allocWriteLocked(off, n int64) (int64, error) {
	ps, pe := off>>pageShift, pageUp(off+n)
	if b.alloc.covers(ps, pe) {
		if b.fileSize < b.s.fileTarget(pageOff(pe)) {
			// A store file taken back from a loan at its own length
			// (Return) grows as it would have for the pages.
			fd, err := b.s.acquireFD(b, false)
			if err != nil {
				return 0, err
			}
			defer b.s.releaseFD(b)
			if err := b.growFileLocked(fd, pe); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	got, err := b.allocLocked(ps, pe, true)
	switch {
	case err != nil:
		return 0, err
	case got < pe:
		return got<<pageShift - off, errNoSpace
	}
	return n, nil
}

// fallocateLocked allocates the missing pages of [ps, pe) in the store file,
// creating it and growing it first as needed, and adds them to b.alloc. On
// failure it gives back what it allocated and returns how many pages it
// could not give back (and kept in b.alloc).
//
// Preconditions: b.mu is held for writing; the pages are reserved.
//
// +checklocks:b.mu
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
//
// +checklocks:b.mu
func (b *Blob) growFileLocked(fd int, pe int64) error {
	s := b.s
	if target := s.fileTarget(pageOff(pe)); b.fileSize < target {
		if err := s.sys.Ftruncate(fd, target); err != nil {
			return fmt.Errorf("mapstore: grow store file %s to %d: %w", b.name(), target, err)
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
//
// +checklocks:b.mu
func (b *Blob) fallocFileLocked(fd int, ps, pe int64) error {
	off, end := pageOff(ps), pageOff(pe)
	if err := b.s.sys.Fallocate(fd, fallocAlloc, off, end-off); err != nil {
		if isENOSPC(err) {
			b.s.warnFull(err)
			return fmt.Errorf("%w: fallocate %s [%d, %d): %w", ErrNoSpace, b.name(), off, end, err)
		}
		return fmt.Errorf("mapstore: fallocate %s [%d, %d): %w", b.name(), off, end, err)
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
//
// +checklocks:b.mu
func (b *Blob) punchFileLocked(fd int, ps, pe int64) (int64, error) {
	s := b.s
	q := min(pe, lastPage)
	if ps < q {
		off, end := ps<<pageShift, q<<pageShift
		if err := s.sys.Fallocate(fd, fallocPunch, off, end-off); err != nil {
			return ps, fmt.Errorf("mapstore: punch %s [%d, %d): %w", b.name(), off, end, err)
		}
		s.unfillLocked(b, off, end)
	}
	if pe <= lastPage || b.fileSize <= maxMappable {
		return pe, nil
	}
	if err := s.sys.Ftruncate(fd, maxMappable); err != nil {
		return max(ps, q), fmt.Errorf("mapstore: punch %s [%d, %d): cut store file: %w", b.name(), int64(maxMappable), int64(math.MaxInt64), err)
	}
	if err := s.sys.Ftruncate(fd, b.fileSize); err != nil {
		// The page is free all the same. The file stays short (no window
		// reaches past it) and grows again when the page is allocated.
		s.log.Warn("growing a store file back after freeing its last page",
			zap.String("file", b.name()), zap.Error(err))
		b.fileSize = maxMappable
	}
	return pe, nil
}

// unallocateLocked punches the pages of [ps, pe) missing from b.alloc, which
// a failed fallocateLocked has just allocated, and returns the number it
// could not punch, which it adds to b.alloc.
//
// Preconditions: b.mu is held for writing; fd is b's pinned descriptor.
//
// +checklocks:b.mu
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
//
// +checklocks:b.mu
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

// markDataLocked records that the bytes [off, end) were written; nothing if
// the range is empty.
//
// Preconditions: b.mu is held for writing; the pages are allocated.
//
// +checklocks:b.mu
func (b *Blob) markDataLocked(off, end int64) {
	if ps, pe := off>>pageShift, pageUp(end); off < end && !b.data.covers(ps, pe) {
		b.data.add(ps, pe)
	}
}

// zeroLocked makes [off, end) read as zeros: whole pages are freed, data in
// partial pages at the ends is zeroed in place.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
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
//
// +checklocks:b.mu
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

// truncateLocked shrinks the blob to size.
//
// Preconditions: b.mu is held for writing; size ≤ b.size, or the blob is
// being adopted.
//
// +checklocks:b.mu
func (b *Blob) truncateLocked(size int64) error {
	if err := b.freePagesLocked(pageUp(size), math.MaxInt64); err != nil {
		return err
	}
	b.size = size
	return b.zeroPartialLocked(size, pageOff(pageUp(size)))
}

// allocateLocked is Allocate of a blob that is not lent, once its
// arguments are checked: it allocates [off, end), all or nothing, and
// grows the size to end unless keepSize.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
func (b *Blob) allocateLocked(off, end int64, keepSize bool) error {
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

// zeroRangeLocked is ZeroRange of a blob that is not lent, once its
// arguments are checked: [off, end) is allocated, all or nothing, then its
// data pages are punched and allocated again and its partial pages zeroed;
// the size grows to end unless keepSize.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
func (b *Blob) zeroRangeLocked(off, end int64, keepSize bool) error {
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

// reservedOnlyLocked returns the runs of [ps, pe) that are allocated but
// hold no data.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
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
//
// +checklocks:b.mu
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

// reallocDataLocked turns the data pages of [ps, pe) into allocated pages
// without data: they are punched and allocated again.
//
// Preconditions: b.mu is held for writing; [ps, pe) is allocated.
//
// +checklocks:b.mu
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
