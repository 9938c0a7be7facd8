package mapstore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

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
	// s and id are set by newBlob, then read-only. The store file's
	// name is storeName(id) (name), made when needed: a million blobs
	// keep no strings.
	s  *Store
	id uint64

	// mu is the blob lock: readers share it, changes take it
	// exclusively, and a View holds it for reading until Release.
	mu sync.RWMutex
	// dead is set when the blob is freed or the store closed. Protected
	// by mu.
	// +checklocks:mu
	dead bool
	// hasFile is whether the store file exists. Protected by mu (set to
	// true also under Store.mu, by openFDLocked).
	// +checklocks:mu
	hasFile bool
	// size is the blob's size in bytes (not while lent: the store file's
	// length is). Protected by mu.
	// +checklocks:mu
	size int64
	// alloc holds the pages with space in the store file; they are
	// accounted in Store.used. Pages past size may be allocated (Allocate
	// with keepSize). Protected by mu.
	// +checklocks:mu
	alloc extents
	// data holds the pages written, a subset of alloc. They lie below
	// size rounded up to a page, except on a tmpfs, where allocating
	// again pages reserved past the size makes them data
	// (fallocAgainLocked). Protected by mu.
	// +checklocks:mu
	data extents
	// fileSize is the store file's size: it covers every allocated page.
	// When the blob grows it is rounded up to a window (or to
	// Store.mapLimit, or Store.fileLimit for lastPage); after a loan it
	// is the file's own length (Return), and the last window it does not
	// cover whole is read and written with pread and pwrite
	// (forWindowsLocked). Every window that is mapped lies inside the
	// file: it never shrinks below a mapped window (freeing lastPage cuts
	// the file short for a moment; Lend cuts it to the size once the
	// windows are unmapped). Protected by mu.
	// +checklocks:mu
	fileSize int64
	// loan is set while the blob is lent (lend.go). Protected by mu.
	// +checklocks:mu
	loan *loan

	// wins holds the mapped windows by index. Protected by Store.mu.
	wins map[int64]*window
	// fd is the store file's descriptor slot. Protected by Store.mu.
	fd fdSlot
}

func newBlob(s *Store, id uint64) *Blob {
	b := &Blob{s: s, id: id}
	b.fd.b = b
	b.fd.fd = -1
	return b
}

// name returns the name of the blob's store file.
func (b *Blob) name() string { return storeName(b.id) }

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
//
// +checklocks:b.mu
func (b *Blob) writeLocked(p []byte, off int64) (int, error) {
	m, short := b.allocWriteLocked(off, int64(len(p)))
	if m == 0 {
		return 0, short
	}
	n, err := b.copyInLocked(p[:m], off)
	if e := off + int64(n); n > 0 && e > b.size {
		b.size = e
	}
	if err != nil {
		return n, err
	}
	return n, short
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

// Allocate allocates store space for [off, off+length), as fallocate(2)
// with mode 0 or, with keepSize, FALLOC_FL_KEEP_SIZE does: all of it, or
// nothing and ErrNoSpace. Unless keepSize, Size grows to off+length. The
// new pages read as zeros.
func (b *Blob) Allocate(off, length int64, keepSize bool) error {
	return b.fallocate(keepMode(keepSize), off, length)
}

// PunchHole makes [off, off+length) read as zeros, as fallocate(2) with
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE does: whole pages inside are
// freed, the rest is zeroed in place. Size does not change; the range may
// reach past it.
func (b *Blob) PunchHole(off, length int64) error {
	return b.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
}

// ZeroRange makes [off, off+length) read as zeros with its pages allocated,
// as FALLOC_FL_ZERO_RANGE does on filesystems that have it (tmpfs does
// not): space for the whole range is allocated first, all or nothing; whole
// pages with data are then punched and allocated again, partial pages are
// zeroed in place. Unless keepSize, Size grows to off+length.
func (b *Blob) ZeroRange(off, length int64, keepSize bool) error {
	return b.fallocate(unix.FALLOC_FL_ZERO_RANGE|keepMode(keepSize), off, length)
}

// keepMode is FALLOC_FL_KEEP_SIZE with keepSize, else 0.
func keepMode(keepSize bool) uint32 {
	if keepSize {
		return unix.FALLOC_FL_KEEP_SIZE
	}
	return 0
}

// fallocate is Allocate, PunchHole (mode FALLOC_FL_PUNCH_HOLE) and
// ZeroRange (FALLOC_FL_ZERO_RANGE), with FALLOC_FL_KEEP_SIZE for keepSize,
// as fallocate(2) takes them. It checks the blob and the range as
// fallocate(2) does, then goes to the lent blob's store file or to the
// page sets (alloc.go).
func (b *Blob) fallocate(mode uint32, off, length int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.dead:
		return errClosed
	case off < 0 || length <= 0:
		return errInvalid
	case off > b.s.maxFile-length:
		return errTooBig
	}
	end := off + length
	keepSize := mode&unix.FALLOC_FL_KEEP_SIZE != 0
	switch {
	case b.loan != nil && mode&unix.FALLOC_FL_ZERO_RANGE != 0:
		return b.loanZeroRangeLocked(off, length, keepSize)
	case b.loan != nil:
		return b.loanFallocateLocked(mode, off, length)
	case mode&unix.FALLOC_FL_PUNCH_HOLE != 0:
		return b.zeroLocked(off, end)
	case mode&unix.FALLOC_FL_ZERO_RANGE != 0:
		return b.zeroRangeLocked(off, end, keepSize)
	}
	return b.allocateLocked(off, end, keepSize)
}

// SeekData returns the first offset ≥ off inside a page with data, as
// lseek(2) SEEK_DATA does on tmpfs: pages that are only allocated count as
// holes, and ErrNoData comes back if off is negative, at or past Size, or
// followed by no data.
func (b *Blob) SeekData(off int64) (int64, error) { return b.seek(off, unix.SEEK_DATA) }

// SeekHole returns the first offset ≥ off inside a page without data, or
// Size if there is none before it, as lseek(2) SEEK_HOLE does on tmpfs.
// ErrNoData comes back if off is negative or at or past Size.
func (b *Blob) SeekHole(off int64) (int64, error) { return b.seek(off, unix.SEEK_HOLE) }

// seek is SeekData (whence SEEK_DATA) or SeekHole.
func (b *Blob) seek(off int64, whence int) (int64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return 0, errClosed
	case b.loan != nil:
		return b.loanSeekLocked(off, whence)
	case off < 0 || off >= b.size:
		return 0, errNoData
	case whence == unix.SEEK_HOLE:
		q := b.data.nextOut(off >> pageShift)
		return min(max(off, pageOff(q)), b.size), nil
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

// Sync writes the blob's bytes in [off, off+length) to the store file's
// storage: msync(MS_SYNC) of the mapped windows in the range, then
// fdatasync of the store file. A length of 0 means to the end of the blob.
// A lent blob's bytes are all in the file: only fdatasync runs.
func (b *Blob) Sync(off, length int64) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.dead:
		return errClosed
	case off < 0 || length < 0:
		return errInvalid
	case b.loan == nil && !b.hasFile:
		return nil
	case b.loan == nil:
		end := int64(math.MaxInt64)
		if length > 0 && off <= math.MaxInt64-length {
			end = off + length
		}
		if err := b.msyncLocked(off, end); err != nil {
			return err
		}
	}
	s := b.s
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer s.releaseFD(b)
	if err := s.sys.Fdatasync(fd); err != nil {
		return fmt.Errorf("mapstore: fdatasync %s: %w", b.name(), err)
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
		if e := unlinkat(s.dirfd, b.name()); e != nil && !isENOENT(e) {
			err = errors.Join(err, fmt.Errorf("mapstore: remove store file %s: %w", b.name(), e))
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
