package mapstore

import (
	"fmt"
	"math"
)

// CopyFrom copies n bytes at srcOff of src to dstOff of b inside the store,
// as copy_file_range(2) does: the count is cut at the end of src (0 at or
// past it) and at the maximum file size (ErrTooBig if dstOff is at or past
// it), and overlapping ranges of one blob are ErrInvalid. Holes in src
// become holes in b wherever whole pages of b allow. If the size limit
// stops it, CopyFrom returns the bytes copied with ErrNoSpace. Size of b
// grows to dstOff plus the bytes copied.
//
// The analyzer cannot follow the locks of two blobs taken in id order, or
// once when src is b.
//
// +checklocksignore
func (b *Blob) CopyFrom(src *Blob, srcOff, dstOff, n int64) (int64, error) {
	switch {
	case src == nil || src.s != b.s:
		return 0, fmt.Errorf("%w: copy between stores", errInvalid)
	case srcOff < 0 || dstOff < 0 || n < 0:
		return 0, errInvalid
	case srcOff > math.MaxInt64-n || dstOff > math.MaxInt64-n:
		return 0, errTooBig
	}
	switch {
	case src == b:
		b.mu.Lock()
		defer b.mu.Unlock()
	case src.id < b.id:
		src.mu.RLock()
		defer src.mu.RUnlock()
		b.mu.Lock()
		defer b.mu.Unlock()
	default:
		b.mu.Lock()
		defer b.mu.Unlock()
		src.mu.RLock()
		defer src.mu.RUnlock()
	}
	if b.dead || src.dead {
		return 0, errClosed
	}
	n = max(0, min(n, src.sizeLocked()-srcOff))
	if dstOff >= b.s.maxFile {
		return 0, errTooBig
	}
	n = min(n, b.s.maxFile-dstOff)
	if src == b && dstOff+n > srcOff && dstOff < srcOff+n {
		return 0, fmt.Errorf("%w: overlapping copy within one blob", errInvalid)
	}
	if b.loan != nil || src.loan != nil {
		return b.copyLoanLocked(src, srcOff, dstOff, n)
	}
	var done int64
	var err error
	for done < n && err == nil {
		sp, dp := srcOff+done, dstOff+done
		pg := sp >> pageShift
		var c int64
		if src.data.contains(pg) {
			c = min(n-done, pageOff(src.data.nextOut(pg))-sp)
			c, err = b.copyRunLocked(src, sp, dp, c)
		} else {
			c = n - done
			if d, ok := src.data.nextIn(pg); ok {
				c = min(c, d<<pageShift-sp)
			}
			if err = b.zeroLocked(dp, dp+c); err != nil {
				c = 0
			}
		}
		done += c
	}
	if e := dstOff + done; done > 0 && e > b.size {
		b.size = e
	}
	return done, err
}

// copyRunLocked copies n bytes of data at sp of src to dp of b, allocating
// b's pages first, and returns the bytes copied.
//
// Preconditions: b.mu is held for writing and src.mu for reading (one lock
// if src == b); the bytes of src are data.
//
// +checklocks:b.mu
// +checklocksread:src.mu
func (b *Blob) copyRunLocked(src *Blob, sp, dp, n int64) (int64, error) {
	n, short := b.allocWriteLocked(dp, n)
	if n == 0 {
		return 0, short
	}
	// Window by window of b, each piece copied from src's windows.
	end, err := b.forWindowsLocked(dp, dp+n, true, nil, func(mem []byte, pos int64) error {
		return src.copyOutLocked(mem, sp+pos-dp) // +checklocksignore: fn runs under src.mu.
	})
	b.markDataLocked(dp, end)
	if err != nil {
		return end - dp, err
	}
	return n, short
}
