package mapstore

import (
	"errors"
	"fmt"
	"math"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A store directory can outlive its Store (mmapfs --store keeps it across
// mounts). OpenBlob takes a store file back as a blob; what a blob knows
// only in memory (its page sets) is rebuilt from the file.

// AddBlob takes back blob id, which has no store file, as an empty blob of
// the given size: OpenBlob without looking for the file, for a caller that
// has listed the store (Files) already. Create never returns id afterwards.
func (s *Store) AddBlob(id uint64, size int64) (*Blob, error) {
	if size < 0 || size > s.maxFile {
		return nil, fmt.Errorf("%w: blob size %d", errInvalid, size)
	}
	b := newBlob(s, id)
	b.size = size // +checklocksignore: b is not published yet.
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, errClosed
	case s.blobs[id] != nil:
		return nil, fmt.Errorf("%w: blob %x is open already", errInvalid, id)
	}
	s.blobs[id] = b
	s.nextID = max(s.nextID, id+1)
	return b, nil
}

// OpenBlob adopts the store file of blob id, left in Dir by an earlier Open,
// as a blob of the given size. If there is no such file the blob is empty
// (a blob never written has none). The blob's pages are rebuilt from the
// store file: pages holding data stay, and so do the runs of pages in
// reserved ([start, end) page numbers, ascending: what Reserved returned,
// kept by the caller), allocated without data, past size too; other pages
// without data and data past size are freed. Create never returns id
// afterwards.
func (s *Store) OpenBlob(id uint64, size int64, reserved [][2]int64) (*Blob, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: blob size %d", errInvalid, size)
	}
	if size > s.maxFile {
		return nil, fmt.Errorf("%w: blob size %d", errTooBig, size)
	}
	b := newBlob(s, id)
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, errClosed
	case s.blobs[id] != nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: blob %x is open already", errInvalid, id)
	}
	s.blobs[id] = b
	s.nextID = max(s.nextID, id+1)
	s.mu.Unlock()

	if err := b.adoptLocked(size, reserved); err != nil {
		b.dead = true
		s.mu.Lock()
		s.used -= b.alloc.pages * PageSize
		s.dropBlobLocked(b)
		delete(s.blobs, id)
		s.mu.Unlock()
		return nil, err
	}
	return b, nil
}

// adoptLocked rebuilds the blob from its store file for OpenBlob.
//
// Preconditions: b.mu is held for writing; b is registered in the store but
// not yet returned to anyone.
//
// +checklocks:b.mu
func (b *Blob) adoptLocked(size int64, reserved [][2]int64) error {
	s := b.s
	var st unix.Stat_t
	// b is live and its mu held: Close cannot close dirfd meanwhile.
	if err := unix.Fstatat(s.dirfd, b.name(), &st, unix.AT_SYMLINK_NOFOLLOW); isENOENT(err) { // +checklocksignore
		// Never written: a blob without a store file.
		b.size = size
		return nil
	}
	b.hasFile = true
	fd, err := s.acquireFD(b, false)
	if err != nil {
		b.hasFile = false
		if isENOENT(err) {
			b.size = size
			return nil
		}
		return err
	}
	defer s.releaseFD(b)
	fi, err := fstat(fd)
	if err == nil && !isRegular(fi.mode) {
		err = errors.New("not a regular file")
	}
	if err == nil {
		err = dataRanges(fd, fi.size, func(start, end int64) {
			b.data.add(start>>pageShift, pageUp(end)) // +checklocksignore: fn runs under b.mu.
		})
	}
	if err != nil {
		return fmt.Errorf("mapstore: adopt store file %s: %w", b.name(), err)
	}
	b.fileSize = fi.size
	// The reserved runs, below the largest file; past the file's end,
	// the file grows to cover them (a lent file may end before its
	// reserved pages).
	var keep extents
	for _, r := range reserved {
		ps, pe := max(r[0], 0), min(r[1], pageUp(s.fileLimit))
		if ps < pe {
			keep.add(ps, pe)
		}
	}
	if target := s.fileTarget(max(fi.size, pageOff(keep.last()))); fi.size < target {
		if err := s.sys.Ftruncate(fd, target); err != nil {
			return fmt.Errorf("mapstore: grow store file %s to %d: %w", b.name(), target, err)
		}
		b.fileSize = target
	}
	alloc := extents{es: append([]extent(nil), b.data.es...), pages: b.data.pages}
	for _, e := range keep.es {
		alloc.add(e.start, e.end)
	}
	switch have := fi.blocks * 512; {
	case have > alloc.pages*PageSize:
		// Preallocated pages without data that were not recorded as
		// reserved cannot be told apart from holes (tmpfs has no
		// FIEMAP), so they are freed; st_blocks says whether there
		// are any (on a tmpfs exactly; elsewhere it may also count
		// the filesystem's own blocks, and then the punch finds
		// nothing).
		for p := int64(0); ; {
			gs, ge, ok := alloc.nextGap(p, pageUp(b.fileSize))
			if !ok {
				break
			}
			if _, err := b.punchFileLocked(fd, gs, ge); err != nil {
				return fmt.Errorf("mapstore: adopt store file %s: %w", b.name(), err)
			}
			p = ge
		}
	case have < alloc.pages*PageSize && len(keep.es) > 0:
		// Some reserved pages are not in the file (it was copied
		// without them, say): reserve them again, or give them up.
		for _, e := range keep.es {
			if err := s.sys.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, pageOff(e.start), pageOff(e.end)-pageOff(e.start)); err != nil {
				s.log.Warn("reserving again the pages a file had reserved: they are given up",
					zap.String("file", b.name()), zap.Error(err))
				alloc = extents{es: append([]extent(nil), b.data.es...), pages: b.data.pages}
				break
			}
		}
	}
	b.alloc = alloc
	s.mu.Lock()
	s.used += b.alloc.pages * PageSize
	s.mu.Unlock()
	// Past size: data pages go, but reserved pages stay reserved (as
	// fallocate with KEEP_SIZE leaves them on tmpfs).
	from := pageUp(size)
	for _, e := range keep.es {
		if e.end <= from {
			continue
		}
		if e.start > from {
			if err := b.freePagesLocked(from, e.start); err != nil {
				return err
			}
		}
		from = max(from, e.end)
		b.data.remove(max(e.start, pageUp(size)), e.end)
	}
	if err := b.freePagesLocked(from, math.MaxInt64); err != nil {
		return err
	}
	b.size = size
	return b.zeroPartialLocked(size, pageOff(pageUp(size)))
}

// Reserved returns the runs of the blob's pages that are allocated without
// data ([start, end) page numbers, ascending), at most max of them (the
// first ones): for OpenBlob to keep them reserved at a later Open.
func (b *Blob) Reserved(max int) [][2]int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var runs [][2]int64
	if l := b.loan; l != nil {
		for _, e := range l.reserved.es {
			if len(runs) == max {
				break
			}
			runs = append(runs, [2]int64{e.start, e.end})
		}
		return runs
	}
	if b.alloc.pages == b.data.pages {
		return nil // data is a subset of alloc: nothing else allocated
	}
	for _, e := range b.alloc.es {
		for q := e.start; len(runs) < max; {
			gs, ge, ok := b.data.nextGap(q, e.end)
			if !ok {
				break
			}
			runs = append(runs, [2]int64{gs, ge})
			q = ge
		}
	}
	return runs
}
