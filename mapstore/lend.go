package mapstore

import (
	"errors"
	"fmt"
	"io"
	"math"

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
//     (pread, pwrite, ftruncate, fallocate, lseek) on a descriptor of the
//     loan, leaving the windows and page sets alone: the kernel's writes do
//     not show in them.
//   - Return rebuilds the page sets from the file, as OpenBlob does, and
//     grows the file back to a window.
//
// The kernel's writes are not counted against the size limit, so only a
// store without one lends (CanLend): the filesystem under the store then
// enforces the limit, for the kernel's writes and the store's alike.

// loan is a blob's state while it is lent.
type loan struct {
	fd   int // the store file, read-write; the loan's own descriptor
	refs int // Lend calls not yet matched by Return
}

// ErrNoLend is returned by Lend on a store with a size limit.
var ErrNoLend = errors.New("mapstore: a store with a size limit does not lend blobs")

// CanLend reports whether the store lends blobs: whether it has no size
// limit of its own.
func (s *Store) CanLend() bool { return s.limit == 0 }

// Lend lends the blob: it returns a read-write descriptor of its store file
// (created if needed) that the caller may hand to the kernel, and keeps the
// blob lent until Return is called as many times as Lend. The descriptor
// is the blob's: it stays valid until the last Return and must not be
// closed by the caller. Pages allocated past the size are freed.
func (b *Blob) Lend() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	switch {
	case b.dead:
		return -1, errClosed
	case b.loan != nil:
		b.loan.refs++
		return b.loan.fd, nil
	case s.limit > 0:
		return -1, ErrNoLend
	}
	if err := b.freePagesLocked(pageUp(b.size), math.MaxInt64); err != nil {
		return -1, err
	}
	fd, err := s.acquireFD(b, true)
	if err != nil {
		return -1, err
	}
	own, err := dupFD(fd)
	s.releaseFD(b)
	if err != nil {
		return -1, fmt.Errorf("mapstore: lend %s: dup: %w", b.name, err)
	}
	s.mu.Lock()
	err = s.unmapBlobWindowsLocked(b, 0)
	s.mu.Unlock()
	if err == nil {
		err = s.sys.Ftruncate(own, b.size)
	}
	if err != nil {
		closeFD(own)
		return -1, fmt.Errorf("mapstore: lend %s: %w", b.name, err)
	}
	b.fileSize = b.size
	b.loan = &loan{fd: own, refs: 1}
	return own, nil
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
	b.loan = nil
	defer closeFD(l.fd)
	if b.dead {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(l.fd, &st); err != nil {
		return fmt.Errorf("mapstore: take back %s: %w", b.name, err)
	}
	s := b.s
	// Pages past the end (fallocate with KEEP_SIZE) would turn into
	// data when the file grows back to a window: free them first.
	if from := pageOff(pageUp(st.Size)); from < s.mapLimit {
		err := s.sys.Fallocate(l.fd, fallocPunch, from, s.mapLimit-from)
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			s.log.Warn("freeing the pages past the end of a store file taken back",
				zap.String("file", b.name), zap.Error(err))
		}
	}
	s.mu.Lock()
	s.used -= b.alloc.pages * PageSize
	s.mu.Unlock()
	b.alloc.reset()
	b.data.reset()
	return b.adoptLocked(st.Size)
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
	if err := unix.Fstat(b.loan.fd, &st); err != nil {
		return st, true, fmt.Errorf("mapstore: stat %s: %w", b.name, err)
	}
	return st, true, nil
}

// sizeLocked returns the blob's size: the store file's length while lent.
//
// Preconditions: b.mu is held.
func (b *Blob) sizeLocked() int64 {
	if b.loan != nil {
		var st unix.Stat_t
		if unix.Fstat(b.loan.fd, &st) == nil {
			return st.Size
		}
	}
	return b.size
}

// allocatedLocked returns the bytes of store space the blob holds.
//
// Preconditions: b.mu is held.
func (b *Blob) allocatedLocked() int64 {
	if b.loan != nil {
		var st unix.Stat_t
		if unix.Fstat(b.loan.fd, &st) == nil {
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
		return fmt.Errorf("%w: %s %s: %w", ErrNoSpace, op, b.name, err)
	case errors.Is(err, unix.EFBIG):
		return fmt.Errorf("%w: %s %s: %w", ErrTooBig, op, b.name, err)
	}
	return fmt.Errorf("mapstore: %s %s: %w", op, b.name, err)
}

// loanReadLocked is ReadAt of a lent blob.
//
// Preconditions: b.mu is held; b is lent; off ≥ 0.
func (b *Blob) loanReadLocked(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := b.s.sys.Pread(b.loan.fd, p[done:], off+int64(done))
		switch {
		case isEINTR(err):
			continue
		case err != nil:
			return done, b.loanErr("pread", err)
		case n == 0:
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// loanWriteLocked is WriteAt of a lent blob, once its arguments are checked
// and p is cut at the maximum file size.
//
// Preconditions: b.mu is held; b is lent; off ≥ 0.
func (b *Blob) loanWriteLocked(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := b.s.sys.Pwrite(b.loan.fd, p[done:], off+int64(done))
		switch {
		case isEINTR(err):
			continue
		case err != nil:
			return done, b.loanErr("pwrite", err)
		case n == 0:
			return done, b.loanErr("pwrite", io.ErrShortWrite)
		}
		done += n
	}
	return done, nil
}

// loanFallocate runs fallocate on a lent blob's store file.
//
// Preconditions: b.mu is held for writing; b is lent.
func (b *Blob) loanFallocate(mode uint32, off, length int64) error {
	for {
		err := b.s.sys.Fallocate(b.loan.fd, mode, off, length)
		if isEINTR(err) {
			continue
		}
		if err != nil {
			return b.loanErr("fallocate", err)
		}
		return nil
	}
}

// loanZeroRangeLocked is ZeroRange of a lent blob: FALLOC_FL_ZERO_RANGE
// where the filesystem has it; elsewhere (tmpfs) the range is allocated
// first, so that a full store changes nothing, then punched and allocated
// again.
//
// Preconditions: b.mu is held for writing; b is lent; the range is checked.
func (b *Blob) loanZeroRangeLocked(off, length int64, keepSize bool) error {
	keep := uint32(0)
	if keepSize {
		keep = unix.FALLOC_FL_KEEP_SIZE
	}
	err := b.s.sys.Fallocate(b.loan.fd, unix.FALLOC_FL_ZERO_RANGE|keep, off, length)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		if err != nil {
			return b.loanErr("fallocate", err)
		}
		return nil
	}
	if err := b.loanFallocate(unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return err
	}
	if err := b.loanFallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return err
	}
	return b.loanFallocate(keep, off, length)
}

// loanSeekLocked is SeekData (whence SEEK_DATA) or SeekHole of a lent blob.
//
// Preconditions: b.mu is held; b is lent.
func (b *Blob) loanSeekLocked(off int64, whence int) (int64, error) {
	if off < 0 {
		return 0, errNoData
	}
	pos, err := unix.Seek(b.loan.fd, off, whence)
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
func (b *Blob) copyLoanLocked(src *Blob, srcOff, dstOff, n int64) (int64, error) {
	buf := make([]byte, min(n, 1<<20))
	var done int64
	for done < n {
		p := buf[:min(n-done, int64(len(buf)))]
		var r int
		var err error
		if src.loan != nil {
			r, err = src.loanReadLocked(p, srcOff+done)
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
			w, err = b.loanWriteLocked(p[:r], dstOff+done)
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
