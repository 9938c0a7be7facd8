package mapstore

import (
	"io"
	"sync"
)

// A View is a read of a blob handed out without copying: slices of the
// blob's mappings for its data pages, and of a shared buffer of zeros for
// the rest (the bytes of a lent blob, and those past the mappable range,
// are copied into buffers after all). Until Release, the blob is held for reading (so it cannot
// change, be truncated or be lent) and the windows the slices lie in are
// pinned (so the store's LRU cannot unmap them): the slices stay valid
// while a reply made of them is still being written to the kernel
// (docs/design.md, hazard 2).
//
// The slices may only be read, and only by system calls (writev to the
// FUSE device): a page the kernel cannot back then fails that call with
// EFAULT, where a copy by Go code would take a SIGBUS.
//
// A View belongs to one goroutine at a time, the one that called ReadView
// and then the one that calls Release; its fields are not shared. While it
// is out, that goroutine holds b.mu for reading: it must not call methods
// of b that change it (they would wait for Release), nor, while a change of
// b waits, methods that share it (Go's RWMutex makes a new reader wait for
// a waiting writer).
type View struct {
	b      *Blob
	slices [][]byte
	wins   []*window // the pinned windows, unpinned by Release
	n      int       // bytes in slices
}

// zeros backs the slices of holes: never written.
var zeros = make([]byte, 1<<20)

var viewPool = sync.Pool{New: func() any { return new(View) }}

// ReadView reads len(buf) bytes at off as ReadAt does, with the same
// results, but hands out the mapped bytes themselves where it can. buf
// holds a lent blob's bytes, which must be copied after all; the bytes past
// the mappable range come in a buffer of their own. The caller reads
// v.Slices() and then calls v.Release() exactly once. On error there is no
// view.
//
// The view holds b.mu for reading from here to Release, which the analyzer
// cannot follow.
//
// +checklocksignore
func (b *Blob) ReadView(buf []byte, off int64) (*View, error) {
	b.mu.RLock()
	v := viewPool.Get().(*View)
	v.b = b
	err := v.readLocked(buf, off)
	if err != nil && err != io.EOF {
		v.Release()
		return nil, err
	}
	return v, err
}

// readLocked fills the view as ReadAt fills its buffer, with the same
// errors.
//
// Preconditions: v.b.mu is held for reading.
//
// +checklocksread:v.b.mu
func (v *View) readLocked(buf []byte, off int64) error {
	b := v.b
	switch {
	case b.dead:
		return errClosed
	case off < 0:
		return errInvalid
	case len(buf) == 0:
		return nil
	case b.loan != nil:
		n, err := b.loanIOLocked(buf, off, false)
		v.add(buf[:n])
		return err
	case off >= b.size:
		return io.EOF
	}
	var eof error
	if int64(len(buf)) > b.size-off {
		buf = buf[:b.size-off]
		eof = io.EOF
	}
	if err := v.fillLocked(off, off+int64(len(buf))); err != nil {
		return err
	}
	return eof
}

func (v *View) add(p []byte) {
	if len(p) > 0 {
		v.slices = append(v.slices, p)
		v.n += len(p)
	}
}

// fillLocked adds the blob's bytes [off, end), all below the blob's size:
// slices of zeros for the pages without data, slices of the mappings for
// the data pages, whose windows stay pinned until Release.
//
// Preconditions: v.b.mu is held for reading.
//
// +checklocksread:v.b.mu
func (v *View) fillLocked(off, end int64) error {
	b := v.b
	return b.runsLocked(off, end, func(pos, next int64, data bool) error {
		if data {
			_, err := b.forWindowsLocked(pos, next, false, &v.wins, func(mem []byte, _ int64) error { // +checklocksignore: fn runs under b.mu.
				v.add(mem)
				return nil
			})
			return err
		}
		for pos < next {
			c := min(next-pos, int64(len(zeros)))
			v.add(zeros[:c])
			pos += c
		}
		return nil
	})
}

// Slices returns the view's bytes, in order.
func (v *View) Slices() [][]byte { return v.slices }

// CopyTo copies the view's bytes into p, which must hold Len of them,
// guarded against memory faults as every copy out of a mapping is.
func (v *View) CopyTo(p []byte) (int, error) {
	n := 0
	for _, s := range v.slices {
		if err := v.b.copyGuarded(p[n:n+len(s)], s, -1); err != nil {
			return n, err
		}
		n += len(s)
	}
	return n, nil
}

// Len returns the number of bytes in the view.
func (v *View) Len() int { return v.n }

// Release unpins the view's windows and lets the blob change again. The
// view and its slices must not be used after.
//
// +checklocksignore: b.mu is ReadView's.
func (v *View) Release() {
	for _, w := range v.wins {
		v.b.s.unpinWindow(w)
	}
	v.b.mu.RUnlock()
	clear(v.slices)
	clear(v.wins)
	*v = View{slices: v.slices[:0], wins: v.wins[:0]}
	viewPool.Put(v)
}
