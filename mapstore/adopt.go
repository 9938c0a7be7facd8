package mapstore

import (
	"errors"
	"fmt"
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
// store file: pages holding data stay; preallocated pages without data and
// anything past size are freed. Create never returns id afterwards.
func (s *Store) OpenBlob(id uint64, size int64) (*Blob, error) {
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

	if err := b.adoptLocked(size); err != nil {
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
func (b *Blob) adoptLocked(size int64) error {
	s := b.s
	var st unix.Stat_t
	// b is live and its mu held: Close cannot close dirfd meanwhile.
	if err := unix.Fstatat(s.dirfd, b.name, &st, unix.AT_SYMLINK_NOFOLLOW); isENOENT(err) { // +checklocksignore
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
		return fmt.Errorf("mapstore: adopt store file %s: %w", b.name, err)
	}
	b.fileSize = fi.size
	if target := s.fileTarget(fi.size); fi.size < target {
		if err := s.sys.Ftruncate(fd, target); err != nil {
			return fmt.Errorf("mapstore: grow store file %s to %d: %w", b.name, target, err)
		}
		b.fileSize = target
	}
	// Preallocated pages without data cannot be told apart from holes
	// (tmpfs has no FIEMAP), so they are freed; st_blocks says whether
	// there are any (on a tmpfs exactly; elsewhere it may also count
	// the filesystem's own blocks, and then the punch finds nothing).
	if fi.blocks*512 > b.data.pages*PageSize {
		for p := int64(0); ; {
			gs, ge, ok := b.data.nextGap(p, pageUp(b.fileSize))
			if !ok {
				break
			}
			if _, err := b.punchFileLocked(fd, gs, ge); err != nil {
				return fmt.Errorf("mapstore: adopt store file %s: %w", b.name, err)
			}
			p = ge
		}
	}
	b.alloc.es = append([]extent(nil), b.data.es...)
	b.alloc.pages = b.data.pages
	s.mu.Lock()
	s.used += b.alloc.pages * PageSize
	s.mu.Unlock()
	return b.truncateLocked(size)
}
