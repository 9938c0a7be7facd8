package mapstore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Lending a blob to the kernel.
//
// With FUSE passthrough the kernel reads, writes and maps an open file's
// store file itself; the server never sees those requests. The blob is then
// lent: from Lend until the last matching Return, the store file is the
// truth about the blob.
//   - The file's length is the blob's size, not rounded up to a window: the
//     kernel reads up to the end of the file, so it must end where the blob
//     does. The blob's windows are unmapped for the loan, so no mapping
//     reaches past that end.
//   - The blob's methods work on the file with ordinary system calls
//     (pread, pwrite, ftruncate, fallocate, lseek) on its descriptor (the
//     store's, as for any blob), leaving the windows and page sets alone:
//     the kernel's writes do not show in them.
//   - Return rebuilds the page sets from the file, which keeps its length
//     (until the blob grows: growFileLocked). Data pages are what SEEK_DATA finds. Pages reserved by
//     fallocate without data cannot be found that way (tmpfs reports them
//     as holes, and mincore does not see them), so the loan keeps them: it
//     starts with the blob's and follows the fallocate calls, punches and
//     truncates made through the store. The kernel only writes; it never
//     reserves or frees pages of its own accord.
//
// The kernel's writes are not counted against the size limit, so only a
// store without one lends (CanLend): the filesystem under the store then
// enforces the limit, for the kernel's writes and the store's alike.

// loan is a blob's state while it is lent. It is reached through Blob.loan
// and Store.loans.
type loan struct {
	// refs counts the Lend calls not yet matched by Return. Protected by
	// the blob's mu.
	refs int
	// reserved holds pages that may be allocated without data: those
	// of the blob at Lend, and those fallocated since. Protected by the
	// blob's mu.
	reserved extents
	// accounted is the blob's allocation when lent, counted in Store.used
	// until Return. Set before the loan is in Store.loans, then read-only:
	// Stats reads it under Store.mu alone.
	accounted int64
}

// rereads counts the returns that had to read a store file's pages again
// (tests expect none).
var rereads atomic.Int64

// ErrNoLend is returned by Lend on a store with a size limit.
var ErrNoLend = errors.New("mapstore: a store with a size limit does not lend blobs")

// CanLend reports whether the store lends blobs: whether it has no size
// limit of its own.
func (s *Store) CanLend() bool { return s.limit.Load() == 0 }

// Lend lends the blob, and keeps it lent until Return is called as many
// times as Lend. With withFD it also returns a new read-write descriptor
// of its store file (created if needed), for the caller to hand to the
// kernel and then close; -1 if none could be had (descriptors ran out),
// which does not stop the loan. An error means the blob is not lent.
func (b *Blob) Lend(withFD bool) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	switch {
	case b.dead:
		return -1, errClosed
	case b.loan == nil && s.limit.Load() > 0:
		return -1, ErrNoLend
	case b.loan != nil:
		b.loan.refs++
		if !withFD {
			return -1, nil
		}
		fd, err := s.acquireFD(b, false)
		if err != nil {
			return -1, nil
		}
		defer s.releaseFD(b)
		return b.dupLocked(fd), nil
	}
	fd, err := s.acquireFD(b, true)
	if err != nil {
		return -1, err
	}
	defer s.releaseFD(b)
	own := -1
	if withFD {
		own = b.dupLocked(fd)
	}
	s.mu.Lock()
	err = s.unmapBlobWindowsLocked(b, 0)
	s.mu.Unlock()
	if err == nil {
		err = s.sys.Ftruncate(fd, b.size)
	}
	if err != nil {
		if own >= 0 {
			closeFD(own)
		}
		return -1, fmt.Errorf("mapstore: lend %s: %w", b.name(), err)
	}
	b.fileSize = b.size
	l := &loan{refs: 1, accounted: b.alloc.pages * PageSize}
	for _, e := range b.alloc.es {
		for q := e.start; ; {
			gs, ge, ok := b.data.nextGap(q, e.end)
			if !ok {
				break
			}
			l.reserved.add(gs, ge)
			q = ge
		}
	}
	// Cutting the file at the size freed the pages reserved past it
	// (fallocate with KEEP_SIZE): reserve them again.
	from := pageUp(b.size)
	for _, e := range l.reserved.es {
		if e.end <= from {
			continue
		}
		ps := max(e.start, from)
		if err := s.sys.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, pageOff(ps), pageOff(e.end)-pageOff(ps)); err != nil {
			l.reserved.remove(ps, math.MaxInt64)
			s.log.Warn("reserving again the pages past the end of a lent store file",
				zap.String("file", b.name()), zap.Error(err))
			break
		}
	}
	b.loan = l
	s.mu.Lock()
	s.loans[b] = l
	s.mu.Unlock()
	return own, nil
}

// dupLocked duplicates fd, b's pinned descriptor, giving back the store's
// idle descriptors and trying again if there are none left; -1 if that
// fails too.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) dupLocked(fd int) int {
	own, err := dupFD(fd)
	if isEMFILE(err) {
		b.s.mu.Lock()
		b.s.evictFDsLocked(0)
		b.s.mu.Unlock()
		own, err = dupFD(fd)
	}
	if err != nil {
		b.s.log.Debug("no descriptor to lend", zap.String("file", b.name()), zap.Error(err))
		return -1
	}
	return own
}

// Return ends one Lend. The last one takes the blob back: its size is the
// store file's length, its data the pages SEEK_DATA finds there; pages
// reserved by fallocate without data are freed, as OpenBlob frees them.
func (b *Blob) Return() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.loan
	switch {
	case l == nil:
		return fmt.Errorf("%w: blob %x is not lent", errInvalid, b.id)
	case l.refs > 1:
		l.refs--
		return nil
	}
	s := b.s
	b.loan = nil
	s.mu.Lock()
	delete(s.loans, b)
	s.mu.Unlock()
	if b.dead {
		return nil
	}
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return fmt.Errorf("mapstore: take back %s: %w", b.name(), err)
	}
	defer s.releaseFD(b)
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	// The file keeps its length, which is the blob's size: a crash
	// before the server's record of the returned file is durable leaves
	// the store file the truth about its size (package store, loans.go),
	// and forWindowsLocked reads what no whole window of it covers with
	// pread. It grows to cover the pages reserved past the end only, as
	// the page sets require, before its data is read: pages there that
	// a second fallocate made data (tmpfs) show then.
	target := max(st.Size, pageOff(l.reserved.last()))
	if err == nil && st.Size < target {
		err = s.sys.Ftruncate(fd, target)
	}
	var data extents
	if err == nil {
		b.fileSize = target
		err = dataRanges(fd, target, func(start, end int64) {
			data.add(start>>pageShift, pageUp(end))
		})
	}
	if err != nil {
		// The page sets stay as they were at Lend; Check will say
		// how they differ from the file.
		return fmt.Errorf("mapstore: take back %s: %w", b.name(), err)
	}
	alloc := extents{es: append([]extent(nil), data.es...), pages: data.pages}
	for _, e := range l.reserved.es {
		alloc.add(e.start, e.end)
	}
	if s.tmpfs && st.Blocks*512 != alloc.pages*PageSize {
		// The file holds pages the loan did not follow: read them
		// again from the file as OpenBlob does, which frees pages
		// reserved without data.
		rereads.Add(1)
		s.log.Debug("store file taken back holds other pages than followed",
			zap.String("file", b.name()), zap.Int64("bytes", st.Blocks*512), zap.Int64("followed", alloc.pages*PageSize))
		if from := pageOff(pageUp(st.Size)); from < s.mapLimit {
			if err := s.sys.Fallocate(fd, fallocPunch, from, s.mapLimit-from); err != nil {
				s.log.Warn("freeing the pages past the end of a store file taken back",
					zap.String("file", b.name()), zap.Error(err))
			}
		}
		s.mu.Lock()
		s.used -= b.alloc.pages * PageSize
		s.mu.Unlock()
		b.alloc.reset()
		b.data.reset()
		return b.adoptLocked(st.Size, nil)
	}
	b.size = st.Size
	b.data = data
	s.mu.Lock()
	s.used += (alloc.pages - b.alloc.pages) * PageSize
	s.mu.Unlock()
	b.alloc = alloc
	return nil
}

// Lent reports whether the blob is lent.
func (b *Blob) Lent() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.loan != nil
}

// FileStat returns the status of a lent blob's store file: the kernel keeps
// its size, times and blocks as it reads and writes. ok is false if the
// blob is not lent.
func (b *Blob) FileStat() (st unix.Stat_t, ok bool, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.loan == nil {
		return st, false, nil
	}
	return st, true, b.loanStatLocked(&st)
}

// loanStatLocked fstats a lent blob's store file.
//
// Preconditions: b.mu is held; b is lent.
//
// +checklocksread:b.mu
func (b *Blob) loanStatLocked(st *unix.Stat_t) error {
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer b.s.releaseFD(b)
	if err := unix.Fstat(fd, st); err != nil {
		return fmt.Errorf("mapstore: stat %s: %w", b.name(), err)
	}
	return nil
}

// sizeLocked returns the blob's size: the store file's length while lent.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) sizeLocked() int64 {
	if b.loan != nil {
		var st unix.Stat_t
		if b.loanStatLocked(&st) == nil {
			return st.Size
		}
	}
	return b.size
}

// allocatedLocked returns the bytes of store space the blob holds.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) allocatedLocked() int64 {
	if b.loan != nil {
		var st unix.Stat_t
		if b.loanStatLocked(&st) == nil {
			return st.Blocks * 512
		}
	}
	return b.alloc.pages * PageSize
}

// loanErr turns the error of a system call on a lent blob's store file into
// the store's errors.
func (b *Blob) loanErr(op string, err error) error {
	switch {
	case isENOSPC(err):
		b.s.warnFull(err)
		return fmt.Errorf("%w: %s %s: %w", ErrNoSpace, op, b.name(), err)
	case errors.Is(err, unix.EFBIG):
		return fmt.Errorf("%w: %s %s: %w", ErrTooBig, op, b.name(), err)
	}
	return fmt.Errorf("mapstore: %s %s: %w", op, b.name(), err)
}

// loanIOLocked is ReadAt (pread) or, with write, WriteAt (pwrite) of a
// lent blob, once the arguments are checked and a write is cut at the
// maximum file size. A read stops at the end of the file with io.EOF.
//
// Preconditions: b.mu is held (for writing if write); b is lent; off ≥ 0.
//
// +checklocksread:b.mu
func (b *Blob) loanIOLocked(p []byte, off int64, write bool) (int, error) {
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return 0, err
	}
	defer b.s.releaseFD(b)
	n, err := b.s.fileIO(fd, p, off, write)
	switch {
	case err != nil:
		return n, b.loanErr(ioName(write), err)
	case n < len(p) && write:
		return n, b.loanErr(ioName(write), io.ErrShortWrite)
	case n < len(p):
		return n, io.EOF
	}
	return n, nil
}

// loanFallocateLocked runs fallocate on a lent blob's store file, and follows
// the pages it reserves or frees.
//
// Preconditions: b.mu is held for writing; b is lent.
//
// +checklocks:b.mu
func (b *Blob) loanFallocateLocked(mode uint32, off, length int64) error {
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer b.s.releaseFD(b)
	for {
		err := b.s.sys.Fallocate(fd, mode, off, length)
		if isEINTR(err) {
			continue
		}
		if err != nil {
			return b.loanErr("fallocate", err)
		}
		if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
			b.loan.reserved.remove(pageUp(off), (off+length)>>pageShift)
		} else {
			b.loan.reserved.add(off>>pageShift, pageUp(off+length))
		}
		return nil
	}
}

// loanTruncateLocked is Truncate of a lent blob.
//
// Preconditions: b.mu is held for writing; b is lent; size is checked.
//
// +checklocks:b.mu
func (b *Blob) loanTruncateLocked(size int64) error {
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return err
	}
	defer b.s.releaseFD(b)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return b.loanErr("fstat", err)
	}
	if err := b.s.sys.Ftruncate(fd, size); err != nil {
		return b.loanErr("ftruncate", err)
	}
	// Growing keeps the pages reserved past the end; a truncate to the
	// same size or less frees them, as it does on tmpfs.
	if size <= st.Size {
		b.loan.reserved.remove(pageUp(size), math.MaxInt64)
	}
	return nil
}

// loanZeroRangeLocked is ZeroRange of a lent blob: FALLOC_FL_ZERO_RANGE
// where the filesystem has it; elsewhere (tmpfs) the range is allocated
// first, so that a full store changes nothing, then punched and allocated
// again.
//
// Preconditions: b.mu is held for writing; b is lent; the range is checked.
//
// +checklocks:b.mu
func (b *Blob) loanZeroRangeLocked(off, length int64, keepSize bool) error {
	keep := uint32(0)
	if keepSize {
		keep = unix.FALLOC_FL_KEEP_SIZE
	}
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return err
	}
	err = b.s.sys.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|keep, off, length)
	b.s.releaseFD(b)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		if err != nil {
			return b.loanErr("fallocate", err)
		}
		b.loan.reserved.add(off>>pageShift, pageUp(off+length))
		return nil
	}
	if err := b.loanFallocateLocked(unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return err
	}
	if err := b.loanFallocateLocked(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return err
	}
	return b.loanFallocateLocked(keep, off, length)
}

// loanSeekLocked is SeekData (whence SEEK_DATA) or SeekHole of a lent blob.
//
// Preconditions: b.mu is held; b is lent.
//
// +checklocksread:b.mu
func (b *Blob) loanSeekLocked(off int64, whence int) (int64, error) {
	if off < 0 {
		return 0, errNoData
	}
	fd, err := b.s.acquireFD(b, false)
	if err != nil {
		return 0, err
	}
	defer b.s.releaseFD(b)
	pos, err := unix.Seek(fd, off, whence)
	switch {
	case errors.Is(err, unix.ENXIO):
		return 0, errNoData
	case err != nil:
		return 0, b.loanErr("lseek", err)
	}
	return pos, nil
}

// copyLoanLocked is CopyFrom when src or b is lent: the bytes go through a
// buffer, holes included.
//
// Preconditions: as copyRunLocked; n is cut to src's size and the maximum
// file size.
//
// +checklocks:b.mu
// +checklocksread:src.mu
func (b *Blob) copyLoanLocked(src *Blob, srcOff, dstOff, n int64) (int64, error) {
	buf := make([]byte, min(n, 1<<20))
	var done int64
	for done < n {
		p := buf[:min(n-done, int64(len(buf)))]
		var r int
		var err error
		if src.loan != nil {
			r, err = src.loanIOLocked(p, srcOff+done, false)
		} else {
			r, err = src.readLocked(p, srcOff+done)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return done, err
		}
		if r == 0 {
			return done, nil
		}
		var w int
		if b.loan != nil {
			w, err = b.loanIOLocked(p[:r], dstOff+done, true)
		} else {
			w, err = b.writeLocked(p[:r], dstOff+done)
		}
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// loanedBytesLocked returns the bytes the lent blobs' store files hold,
// less what Store.used counts for them.
//
// Preconditions: s.mu is held.
//
// +checklocks:s.mu
func (s *Store) loanedBytesLocked() int64 {
	var d int64
	for b, l := range s.loans {
		var st unix.Stat_t
		if !s.closed && unix.Fstatat(s.dirfd, b.name(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			d += st.Blocks*512 - l.accounted
		}
	}
	return d
}
