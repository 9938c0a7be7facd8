package fs

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// File is a regular file. Its data is a mapstore blob; reads and writes
// go through the blob's mappings.
type File struct {
	node
	blob *mapstore.Blob // immutable; safe for concurrent use

	// Protected by node.mu.
	opens int32 // open handles; the data outlives the last link until 0
	// loans counts the handles whose store file the kernel reads and
	// writes itself (passthrough). While it is not 0, the store file's
	// status is the truth about size and times: seen is its mtime, ctime
	// and atime when the server last looked (observeLocked).
	loans int32
	seen  *fileTimes // nil until the file was first lent
	// writers counts the lent handles open for writing: while it is not
	// 0, the journal records the file as lent (package store, loans.go).
	// keptLoan: the record that ends a loan could not be committed at a
	// close, so one loan of the blob is kept without a handle (the store
	// file stays the truth), counted in writers but not in loans, until a
	// later close can end it.
	writers  int32
	keptLoan bool
	// unsaved: observe took a change into the node that the journal
	// does not have yet.
	unsaved bool
	// cached counts the open handles not offered for passthrough.
	cached int32
}

var (
	_ = (gofs.NodeOpener)((*File)(nil))
	_ = (gofs.NodeReader)((*File)(nil))
	_ = (gofs.NodeWriter)((*File)(nil))
	_ = (gofs.NodeReleaser)((*File)(nil))
	_ = (gofs.NodeFlusher)((*File)(nil))
	_ = (gofs.NodeFsyncer)((*File)(nil))
	_ = (gofs.NodeLseeker)((*File)(nil))
	_ = (gofs.NodeAllocater)((*File)(nil))
	_ = (gofs.NodeCopyFileRanger)((*File)(nil))
)

func (f *File) sizeBlocks() (uint64, uint64) {
	return uint64(f.blob.Size()), uint64(f.blob.Allocated()) / 512
}

// Open implements gofs.NodeOpener: O_TRUNC, and the record of a loan for
// writing (lend.go), in one frame.
func (f *File) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	trunc := flags&syscall.O_TRUNC != 0 && writable(flags)
	lentNow := false
	defer func() {
		if lentNow {
			// Attributes the kernel cached before the file was lent
			// may be kept for long (node.entryOut): drop them. (With
			// a negative offset the kernel takes no inode lock, so
			// this cannot wait on the request being served.)
			f.NotifyContent(-1, 0)
		}
	}()
	c := f.fsys.begin()
	defer c.end()
	room := true
	if trunc || f.fsys.lendsForWriting(flags) {
		if errno := c.reserve(); errno != 0 {
			if trunc {
				return nil, 0, errno
			}
			room = false
		}
	}
	var undo func()
	if trunc {
		var errno syscall.Errno
		if undo, errno = f.resize(0); errno != 0 {
			return nil, 0, errno
		}
	}
	c.lock(&f.node)
	wasLent := f.lentLocked()
	h, fuseFlags, record, errno := f.openedLocked(ctx, flags, room)
	if errno != 0 {
		return nil, 0, errno
	}
	lentNow = !wasLent && f.lentLocked()
	switch {
	case trunc:
		errno = f.commitDataLocked(&c, undo, false)
	case record:
		a := f.attrsLocked()
		c.inode(&f.node, &a)
		errno = c.commit()
	}
	if errno != 0 {
		f.unopenLocked(h)
		return nil, 0, errno
	}
	return h, fuseFlags, 0
}

// writable reports whether open flags allow writing.
func writable(flags uint32) bool { return flags&syscall.O_ACCMODE != syscall.O_RDONLY }

// Release implements gofs.NodeReleaser. The last release of a file with
// no link left reclaims it.
func (f *File) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	h, _ := fh.(*handle)
	c := f.fsys.begin(&f.node)
	wasLent := f.writers > 0
	returns := 0 // loans of the blob to give back
	if h != nil && h.lent {
		f.observeLocked(false)
		f.loans--
		returns++
		if h.writer {
			f.writers--
		}
	}
	if f.keptLoan && f.writers == 1 {
		// Only the loan kept at an earlier close is left: end it now.
		f.keptLoan = false
		f.writers--
		returns++
	}
	if h != nil && h.cached {
		f.cached--
	}
	f.opens--
	gone := f.unusedLocked(f.nlink)
	// The record that ends a loan for writing comes before the store file
	// is given back to the mapped path: until it is committed,
	// the journal says the store file's length is the size.
	endLoan := wasLent && f.writers == 0
	save := !gone && (endLoan || f.unsaved && f.loans == 0)
	if gone {
		c.free(&f.node)
	} else if save {
		a := f.attrsLocked()
		c.inode(&f.node, &a)
	}
	// A failure is logged by commit; a close cannot fail. Unsaved times
	// stay unsaved, and a file whose end is not recorded is reclaimed at
	// the next mount, as one unlinked while open.
	errno := c.commit()
	if errno == 0 && save {
		f.unsaved = false
	}
	if errno != 0 && endLoan && !gone {
		// The journal still records the loan: one loan of the blob is
		// kept, without a handle, so that the store file stays the
		// truth, until a later close can end it.
		f.keptLoan = true
		f.writers++
		returns--
	}
	for ; returns > 0; returns-- {
		if err := f.blob.Return(); err != nil {
			f.fsys.log.Error("passthrough: taking back a store file", zap.Uint64("ino", f.ino), zap.Error(err))
		}
	}
	if gone {
		f.markReclaimedLocked()
	}
	c.end()
	if gone {
		f.fsys.reclaim(&f.node)
	}
	if h != nil && h.lent && h.ownFD {
		unix.Close(h.fd)
	}
	return 0
}

// Flush implements gofs.NodeFlusher: data is in the store already.
func (f *File) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return 0 }

// Fsync implements gofs.NodeFsyncer.
func (f *File) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	if errno := f.observe(true); errno != 0 {
		return errno
	}
	if errno := toErrno(f.fsys.log, "fsync", f.blob.Sync(0, math.MaxInt64)); errno != 0 {
		return errno
	}
	return f.fsys.syncMeta()
}

// Read implements gofs.NodeReader. The reply is written from the store's
// mappings themselves (a mapstore.View, released when go-fuse has written
// it), not copied into dest first.
func (f *File) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	// atime first: the view holds the blob until go-fuse has written
	// the reply, and the node's lock must not be taken while it does
	// (a write holds the node's lock while it reads the blob's
	// attributes for the journal: lock order node, then blob).
	f.touchAtime()
	v, err := f.blob.ReadView(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno(f.fsys.log, "read", err)
	}
	if v.Len() == 0 {
		// go-fuse does not call Done on an empty result.
		v.Release()
		return fuse.ReadResultData(nil), 0
	}
	r := viewResults.Get().(*viewResult)
	r.v = v
	return r, 0
}

// viewResult is a fuse.ReadResult made of a mapstore.View. go-fuse takes
// its Slices and writes them to the kernel with writev, then calls Done.
type viewResult struct{ v *mapstore.View }

var viewResults = sync.Pool{New: func() any { return new(viewResult) }}

func (r *viewResult) Size() int { return r.v.Len() }

// Slices makes go-fuse write the view's slices as they are (its
// unexported withSlice interface).
func (r *viewResult) Slices() ([][]byte, fuse.Status) { return r.v.Slices(), fuse.OK }

// Bytes copies the view into buf, for go-fuse's other ways of replying.
func (r *viewResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(buf) < r.v.Len() {
		buf = make([]byte, r.v.Len())
	}
	n, err := r.v.CopyTo(buf)
	if err != nil {
		return nil, fuse.EIO
	}
	return buf[:n], fuse.OK
}

func (r *viewResult) Done() {
	r.v.Release()
	r.v = nil
	viewResults.Put(r)
}

// touchAtime updates atime for a read, by the mount's rule (atime.go):
// under relatime when it is not later than mtime or ctime, or a day old.
// It reports whether atime changed.
func (n *node) touchAtime() bool {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.atimeDueLocked(now) {
		n.times.set(tAtime, now)
		if n.fsys.persist != nil {
			n.fsys.persist.atimeDirty.Store(true)
		}
		return true
	}
	return false
}

// atimeDueLocked reports whether a read at now updates atime under the
// mount's rule.
//
// Preconditions: n.mu is held.
func (n *node) atimeDueLocked(now time.Time) bool {
	t := &n.times
	return n.fsys.atime.Load().due(n.isDir(), t.get(tAtime), t.get(tMtime), t.get(tCtime), now)
}

// Write implements gofs.NodeWriter. A write that fills the store returns
// what it wrote; the kernel then asks again and gets ENOSPC. A write whose
// new size and mtime cannot be committed fails, and what it added past
// the old end is cut off again (the kernel takes a file's new size only
// from the reply, so no one has seen it).
func (f *File) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n, errno := f.write("write", func() (int64, error) {
		n, err := f.blob.WriteAt(data, off)
		return int64(n), err
	})
	return uint32(n), errno
}

// write writes the file's data with op (what names it in a log line),
// which returns the bytes it
// wrote, and commits the new size and times. Journal room is reserved
// first, so that data written cannot be left with a commit that failed
// for want of space: on a full store the write fails before op. If the
// commit fails all the same (EIO), what op added past the old end is cut
// off again (the kernel takes a file's new size only from the reply, so no
// one has seen it).
func (f *File) write(what string, op func() (int64, error)) (int64, syscall.Errno) {
	c := f.fsys.begin()
	defer c.end()
	if errno := c.reserve(); errno != 0 {
		return 0, errno
	}
	old := f.blob.Size()
	n, err := op()
	if n == 0 {
		return 0, toErrno(f.fsys.log, what, err)
	}
	c.lock(&f.node)
	if errno := f.commitDataLocked(&c, f.cutBack(old), f.blob.Size() == old); errno != 0 {
		return 0, errno
	}
	return n, 0
}

var _ = (gofs.NodeWritever)((*File)(nil))

// Writev implements gofs.NodeWritever: the request's data arrives in
// pieces (the kernel splits it at page boundaries of the read buffer), and
// writing them one after another saves go-fuse a copy into one buffer.
func (f *File) Writev(ctx context.Context, fh gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	n, errno := f.write("write", func() (int64, error) {
		var done int64
		for _, p := range data {
			n, err := f.blob.WriteAt(p, off+done)
			done += int64(n)
			if err != nil || n < len(p) {
				return done, err
			}
		}
		return done, nil
	})
	return uint32(n), errno
}

// changeData makes a change of the data (truncate, fallocate) with op, and
// commits it with commitDataLocked. Journal room is reserved before op
// runs, so the commit cannot then fail for want of space: a full store
// fails the request before op. op runs without f.mu (the kernel holds the
// inode's lock for the request, so no other change of the data runs) and
// returns how to undo what it can (or nil) if the commit fails all the
// same.
func (f *File) changeData(op func() (undo func(), errno syscall.Errno)) syscall.Errno {
	c := f.fsys.begin()
	defer c.end()
	if errno := c.reserve(); errno != 0 {
		return errno
	}
	undo, errno := op()
	if errno != 0 {
		return errno
	}
	c.lock(&f.node)
	return f.commitDataLocked(&c, undo, false)
}

// timeTick is the granularity of the times of a change of data when no
// one has looked at them since the last change (dataTimeLocked): the
// kernel's coarse clock ticks at 4 ms with HZ=250.
const timeTick = 4 * time.Millisecond

// dataTimeLocked returns the mtime and ctime of a change of f's data, as
// a tmpfs with multigrain timestamps keeps them: the time of the clock's
// last tick, unless the times were handed out since they last changed (or
// the tick is older than them), then the time now. So writes that follow
// each other within a tick, unobserved, leave the times as they are:
// with a store, such a write that does not change the size has nothing
// to record.
//
// Preconditions: f.mu is held.
func (f *File) dataTimeLocked() time.Time {
	now := time.Now()
	tick := now.Truncate(timeTick)
	if f.queried || tick.Before(f.times.get(tMtime)) || tick.Before(f.times.get(tCtime)) {
		return now
	}
	return tick
}

// commitDataLocked commits a change of the data made by the server: the
// new size and mtime and ctime, in one frame. If the commit fails, undo
// (if any) takes back what it can of the change, and nothing else is
// applied. While the store file is lent, the file's own times changed too:
// they count as seen, so that observe does not take them over times set
// later. A write that left the size as it was (sameSize) and the times too
// (dataTimeLocked) writes no frame: the journal has the file's state
// already (every earlier change of its size and times was committed, but
// the times observe took, which unsaved marks).
//
// Preconditions: f is locked by c.
func (f *File) commitDataLocked(c *change, undo func(), sameSize bool) syscall.Errno {
	now := f.dataTimeLocked()
	if f.lentLocked() {
		f.observeLocked(false)
		if st, ok, err := f.blob.FileStat(); ok && err == nil {
			f.setSeen(&st)
		}
	}
	a := f.attrsLocked()
	a.mtime, a.ctime = now, now
	if sameSize && !f.unsaved && !f.lentLocked() && a.mtime.Equal(f.times.get(tMtime)) && a.ctime.Equal(f.times.get(tCtime)) {
		return 0
	}
	c.inode(&f.node, &a)
	if errno := c.commit(); errno != 0 {
		if undo != nil {
			undo()
		}
		return errno
	}
	f.setAttrsLocked(&a)
	f.unsaved = false
	f.queried = false
	return 0
}

// resize sets the blob's size, and returns how to take that back if the
// change it is part of cannot be committed: a file made longer is cut
// back (what it gained was a hole).
func (f *File) resize(size int64) (undo func(), errno syscall.Errno) {
	old := f.blob.Size()
	if err := f.blob.Truncate(size); err != nil {
		return nil, toErrno(f.fsys.log, "truncate", err)
	}
	return f.cutBack(old), 0
}

// cutBack returns a function that cuts the blob back to old bytes if it
// has grown past them, or nil if it has not.
func (f *File) cutBack(old int64) func() {
	if f.blob.Size() <= old {
		return nil
	}
	return func() {
		if err := f.blob.Truncate(old); err != nil {
			f.fsys.log.Error("cutting a file back after a failed change", zap.Uint64("ino", f.ino), zap.Error(err))
		}
	}
}

// truncate sets the size, as O_TRUNC does.
func (f *File) truncate(size uint64) syscall.Errno {
	if size > math.MaxInt64 {
		return syscall.EFBIG
	}
	return f.changeData(func() (func(), syscall.Errno) { return f.resize(int64(size)) })
}

// Lseek implements gofs.NodeLseeker for SEEK_DATA and SEEK_HOLE; the
// kernel answers the other kinds itself.
func (f *File) Lseek(ctx context.Context, fh gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off > math.MaxInt64 {
		return 0, syscall.ENXIO
	}
	var pos int64
	var err error
	switch whence {
	case unix.SEEK_DATA:
		pos, err = f.blob.SeekData(int64(off))
	case unix.SEEK_HOLE:
		pos, err = f.blob.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, toErrno(f.fsys.log, "lseek", err)
	}
	return uint64(pos), 0
}

// Allocate implements gofs.NodeAllocater: fallocate with mode 0,
// FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE.
func (f *File) Allocate(ctx context.Context, fh gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if off > math.MaxInt64 || size > math.MaxInt64 || off+size > math.MaxInt64 {
		return syscall.EFBIG
	}
	keep := mode&unix.FALLOC_FL_KEEP_SIZE != 0
	var op func() error
	switch mode &^ unix.FALLOC_FL_KEEP_SIZE {
	case 0:
		op = func() error { return f.blob.Allocate(int64(off), int64(size), keep) }
	case unix.FALLOC_FL_PUNCH_HOLE:
		if !keep {
			return syscall.EOPNOTSUPP
		}
		op = func() error { return f.blob.PunchHole(int64(off), int64(size)) }
	case unix.FALLOC_FL_ZERO_RANGE:
		op = func() error { return f.blob.ZeroRange(int64(off), int64(size), keep) }
	default:
		return syscall.EOPNOTSUPP
	}
	return f.changeData(func() (func(), syscall.Errno) {
		old := f.blob.Size()
		if err := op(); err != nil {
			return nil, toErrno(f.fsys.log, "fallocate", err)
		}
		return f.cutBack(old), 0
	})
}

// copyMax bounds the bytes one copy_file_range request copies, so that one
// request does not hold the files for long; the caller gets a short count
// and asks again for the rest, as copy_file_range(2) allows.
const copyMax = 1 << 30

// CopyFileRange implements gofs.NodeCopyFileRanger: the copy is made
// inside the store, holes included, without the data passing through the
// kernel.
func (f *File) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	dst, ok := out.Operations().(*File)
	if !ok {
		return 0, syscall.EINVAL
	}
	if flags != 0 {
		return 0, syscall.EINVAL
	}
	if offIn > math.MaxInt64 || offOut > math.MaxInt64 {
		return 0, syscall.EFBIG
	}
	length = min(length, copyMax)
	n, errno := dst.write("copy_file_range", func() (int64, error) {
		return dst.blob.CopyFrom(f.blob, int64(offIn), int64(offOut), int64(length))
	})
	if errno != 0 {
		return 0, errno
	}
	if n > 0 {
		if f.touchAtime() {
			// The kernel refreshes the destination's attributes after
			// a copy but not the source's: tell it atime changed.
			// With a negative offset the kernel only drops the
			// cached attributes and takes no inode lock, so this
			// cannot wait on the request being served.
			f.NotifyContent(-1, 0)
		}
	}
	return uint32(n), 0
}
