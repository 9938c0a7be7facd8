package mapstore

import (
	"errors"
	"fmt"
	"io"
)

// Mapped I/O: the bytes of a blob go in and out through its windows
// (windows.go), each copy guarded against memory faults (fault.go). The
// bytes no window maps (lastPage, past mapLimit) and, on a store that is
// not a tmpfs, the bytes written go through pread and pwrite on the store
// file instead.

// forWindowsLocked walks the bytes [off, end) of b through its mappings,
// window by window, and calls fn for each piece in order with the piece's
// bytes, mem, and their blob offset, pos. During the call the window is
// mapped and pinned, and its pages in the piece are populated ahead for
// reading or, with write, for writing; after it the window is unpinned, or
// with keep appended to *keep, for the caller to unpin once done with mem.
// The bytes at or past mapLimit (lastPage), which no window maps, come last
// as one piece in a buffer: read into it with pread before fn, or with write
// written out of it with pwrite after fn; so do those of a window the store
// file does not cover whole (after a loan, see Return), one piece each. With write, fn must fill all of
// mem. It must not keep mem past the call, except a window's with keep, and
// the buffer, which is its own.
//
// forWindowsLocked stops at the first error and returns the offset up to
// which the pieces are done.
//
// Preconditions: b.mu is held, for writing if write; the pages of
// [off, end) are data or, with write, allocated.
//
// +checklocksread:b.mu
func (b *Blob) forWindowsLocked(off, end int64, write bool, keep *[]*window, fn func(mem []byte, pos int64) error) (int64, error) {
	s := b.s
	for pos := off; pos < end; {
		if pos >= s.mapLimit {
			return b.bounceLocked(pos, end, write, fn)
		}
		idx := pos >> s.winShift
		if wend := idx<<s.winShift + s.windowLen(idx); b.fileSize < wend {
			// The store file does not cover the window (it was
			// taken back from a loan at its own length): through
			// pread and pwrite.
			next := min(end, wend)
			if done, err := b.bounceLocked(pos, next, write, fn); err != nil {
				return done, err
			}
			pos = next
			continue
		}
		w, err := s.pinWindow(b, idx)
		if err != nil {
			return pos, err
		}
		wo := pos - idx<<s.winShift
		c := min(int64(len(w.mem))-wo, end-pos)
		populate(w, wo, int(c), write)
		err = fn(w.mem[wo:wo+c], pos)
		if keep != nil {
			*keep = append(*keep, w)
		} else {
			s.unpinWindow(w)
		}
		if err != nil {
			return pos, err
		}
		pos += c
	}
	return end, nil
}

// bounceLocked is forWindowsLocked for [off, end) at or past mapLimit, in
// lastPage (less than a page), or in a window the store file does not
// cover: fn gets a buffer instead of a mapping.
//
// Preconditions: as forWindowsLocked.
//
// +checklocksread:b.mu
func (b *Blob) bounceLocked(off, end int64, write bool, fn func(mem []byte, pos int64) error) (int64, error) {
	buf := make([]byte, end-off)
	if !write {
		// Past the end of a store file taken back from a loan, in its
		// last page, the bytes read as zeros, as in a mapping of the
		// page (buf is zeros).
		if n, err := b.fileIOLocked(buf, off, false); err != nil &&
			!(errors.Is(err, io.ErrUnexpectedEOF) && off+int64(n) >= b.fileSize) {
			return off, err
		}
	}
	if err := fn(buf, off); err != nil {
		return off, err
	}
	if !write {
		return end, nil
	}
	out := buf
	if keep := b.fileSize - off; keep >= 0 && keep < int64(len(out)) && isZero(out[keep:]) {
		// Zeros past the end of a store file taken back from a loan
		// (the rest of its last page) read as zeros already; writing
		// them would make the file longer than the blob knows.
		out = out[:keep]
	}
	n, err := b.fileIOLocked(out, off, true)
	if err == nil {
		return end, nil
	}
	return off + int64(n), err
}

// isZero reports whether p holds only zeros.
func isZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// readLocked fills p with the blob's bytes at off: data pages from the
// mapping, the rest with zeros.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) readLocked(p []byte, off int64) (int, error) {
	done := off
	err := b.runsLocked(off, off+int64(len(p)), func(pos, next int64, data bool) error {
		if !data {
			clear(p[pos-off : next-off])
		} else if err := b.copyOutLocked(p[pos-off:next-off], pos); err != nil { // +checklocksignore: fn runs under b.mu.
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
//
// +checklocksread:b.mu
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
//
// +checklocksread:b.mu
func (b *Blob) copyOutLocked(p []byte, off int64) error {
	_, err := b.forWindowsLocked(off, off+int64(len(p)), false, nil, func(mem []byte, pos int64) error {
		return b.copyGuarded(p[pos-off:], mem, pos)
	})
	return err
}

// copyInLocked copies p into the blob at off, marks the pages as data, and
// returns the bytes copied.
//
// Preconditions: b.mu is held for writing; the pages are allocated.
//
// +checklocks:b.mu
func (b *Blob) copyInLocked(p []byte, off int64) (int, error) {
	end := off
	var err error
	if b.s.tmpfs {
		end, err = b.forWindowsLocked(off, off+int64(len(p)), true, nil, func(mem []byte, pos int64) error {
			return b.copyGuarded(mem, p[pos-off:], pos)
		})
	} else {
		// On a store that is not a tmpfs, writes go through pwrite: a
		// page fault on a disk-backed mapping reads ahead
		// (read_ahead_kb) and fills the page cache with the zeros of
		// pages about to be written.
		var n int
		n, err = b.fileIOLocked(p, off, true)
		end = off + int64(n)
	}
	b.markDataLocked(off, end)
	return int(end - off), err
}

// zeroMappedLocked zeroes the bytes [off, end) through the mapping.
//
// Preconditions: b.mu is held for writing; the pages are data.
//
// +checklocks:b.mu
func (b *Blob) zeroMappedLocked(off, end int64) error {
	_, err := b.forWindowsLocked(off, end, true, nil, func(mem []byte, pos int64) error {
		return b.clearGuarded(mem, pos)
	})
	return err
}

// msyncLocked writes the mapped windows of b that hold bytes of [off, end)
// to the store file's storage with msync(MS_SYNC). Windows not mapped hold
// nothing to write back.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) msyncLocked(off, end int64) error {
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
			errs = append(errs, fmt.Errorf("mapstore: msync %s [%d, %d): %w", b.name(), lo, ws+hi, err))
		}
		s.unpinWindow(w)
	}
	return errors.Join(errs...)
}

// fileIOLocked reads the bytes at off into p, or with write writes p there,
// with pread or pwrite on the store file, and returns the bytes done.
//
// Preconditions: b.mu is held, for writing if write; the pages are
// allocated, and data for a read.
//
// +checklocksread:b.mu
func (b *Blob) fileIOLocked(p []byte, off int64, write bool) (int, error) {
	s := b.s
	fd, err := s.acquireFD(b, false)
	if err != nil {
		return 0, err
	}
	defer s.releaseFD(b)
	n, err := s.fileIO(fd, p, off, write)
	if err == nil && n == len(p) {
		return n, nil
	}
	op, pos := ioName(write), off+int64(n)
	switch {
	case err == nil:
		return n, fmt.Errorf("mapstore: %s %s at %d: %w", op, b.name(), pos, io.ErrUnexpectedEOF)
	case isENOSPC(err):
		return n, fmt.Errorf("%w: %s %s at %d: %w", errNoSpace, op, b.name(), pos, err)
	}
	return n, fmt.Errorf("mapstore: %s %s at %d: %w", op, b.name(), pos, err)
}

// fileIO reads len(p) bytes at off of the file fd into p with pread or,
// with write, writes p there with pwrite, call after call, and returns the
// bytes done: all of p; or fewer with the error of the call that failed
// (EINTR is tried again); or fewer with a nil error after a call that did
// nothing (for a read, the end of the file). Errors are the system call's,
// unwrapped.
func (s *Store) fileIO(fd int, p []byte, off int64, write bool) (int, error) {
	call := s.sys.Pread
	if write {
		call = s.sys.Pwrite
	}
	done := 0
	for done < len(p) {
		n, err := call(fd, p[done:], off+int64(done))
		switch {
		case isEINTR(err):
			continue
		case err != nil:
			return done, err
		case n <= 0:
			return done, nil
		}
		done += n
	}
	return done, nil
}

// ioName names the system call of fileIO, for errors.
func ioName(write bool) string {
	if write {
		return "pwrite"
	}
	return "pread"
}
