package fs

import (
	"context"
	"errors"
	"io"
	"math"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// File is a regular file. Its data is a mapstore blob; reads and writes
// go through the blob's mappings.
type File struct {
	node
	blob *mapstore.Blob // immutable; safe for concurrent use

	// Protected by node.mu.
	opens int // open handles; the data outlives the last link until 0
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

// handle is an open file. The node keeps the state; the handle only
// exists so that Release is called once per open.
type handle struct{ f *File }

func (f *File) sizeBlocks() (uint64, uint64) {
	return uint64(f.blob.Size()), uint64(f.blob.Allocated()) / 512
}

// opened counts a new open handle.
func (f *File) opened(flags uint32) (gofs.FileHandle, uint32) {
	f.mu.Lock()
	f.opens++
	f.mu.Unlock()
	// Data changes only through the kernel, which keeps its page cache
	// right itself (it drops the pages a punch or copy_file_range
	// replaces), so the cache may outlive an open.
	return &handle{f: f}, fuse.FOPEN_KEEP_CACHE
}

// Open implements gofs.NodeOpener.
func (f *File) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if errno := f.truncate(0); errno != 0 {
			return nil, 0, errno
		}
	}
	fh, fuseFlags := f.opened(flags)
	return fh, fuseFlags, 0
}

// Release implements gofs.NodeReleaser.
func (f *File) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	f.mu.Lock()
	f.opens--
	f.mu.Unlock()
	f.fsys.maybeReclaim(&f.node)
	return 0
}

// Flush implements gofs.NodeFlusher: data is in the store already.
func (f *File) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return 0 }

// Fsync implements gofs.NodeFsyncer.
func (f *File) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	if errno := toErrno(f.fsys.log, "fsync", f.blob.Sync(0, math.MaxInt64)); errno != 0 {
		return errno
	}
	return f.fsys.syncMeta()
}

// Read implements gofs.NodeReader. The data is copied into dest, so the
// reply holds no reference to a mapping once Read returns.
func (f *File) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.blob.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno(f.fsys.log, "read", err)
	}
	f.touchAtime()
	return fuse.ReadResultData(dest[:n]), 0
}

// touchAtime updates atime as a relatime mount does: when it is older
// than mtime or ctime, or a day old. It reports whether atime changed.
func (n *node) touchAtime() bool {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.atime.After(n.mtime) || !n.atime.After(n.ctime) || now.Sub(n.atime) > 24*time.Hour {
		n.atime = now
		if n.fsys.persist != nil {
			n.fsys.persist.atimeDirty.Store(true)
		}
		return true
	}
	return false
}

// Write implements gofs.NodeWriter. A write that fills the store returns
// what it wrote; the kernel then asks again and gets ENOSPC.
func (f *File) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.blob.WriteAt(data, off)
	if n > 0 {
		if errno := f.touchMtime(); errno != 0 {
			return 0, errno
		}
	}
	if err != nil && n == 0 {
		return 0, toErrno(f.fsys.log, "write", err)
	}
	return uint32(n), 0
}

var _ = (gofs.NodeWritever)((*File)(nil))

// Writev implements gofs.NodeWritever: the request's data arrives in
// pieces (the kernel splits it at page boundaries of the read buffer), and
// writing them one after another saves go-fuse a copy into one buffer.
func (f *File) Writev(ctx context.Context, fh gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	var done int64
	for _, p := range data {
		n, err := f.blob.WriteAt(p, off+done)
		done += int64(n)
		if err != nil || n < len(p) {
			if done == 0 {
				return 0, toErrno(f.fsys.log, "write", err)
			}
			break
		}
	}
	if done > 0 {
		if errno := f.touchMtime(); errno != 0 {
			return 0, errno
		}
	}
	return uint32(done), 0
}

// touchMtime records a change of the data.
func (n *node) touchMtime() syscall.Errno {
	now := time.Now()
	n.mu.Lock()
	n.mtime, n.ctime = now, now
	errno := n.saveLocked()
	n.mu.Unlock()
	return errno
}

// truncate sets the size, as truncate(2) and O_TRUNC do.
func (f *File) truncate(size uint64) syscall.Errno {
	if size > math.MaxInt64 {
		return syscall.EFBIG
	}
	if err := f.blob.Truncate(int64(size)); err != nil {
		return toErrno(f.fsys.log, "truncate", err)
	}
	return f.touchMtime()
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
	var err error
	switch mode &^ unix.FALLOC_FL_KEEP_SIZE {
	case 0:
		err = f.blob.Allocate(int64(off), int64(size), keep)
		if err == nil {
			if errno := f.touchMtime(); errno != 0 {
				return errno
			}
		}
	case unix.FALLOC_FL_PUNCH_HOLE:
		if !keep {
			return syscall.EOPNOTSUPP
		}
		err = f.blob.PunchHole(int64(off), int64(size))
		if err == nil {
			if errno := f.touchMtime(); errno != 0 {
				return errno
			}
		}
	case unix.FALLOC_FL_ZERO_RANGE:
		err = f.blob.ZeroRange(int64(off), int64(size), keep)
		if err == nil {
			if errno := f.touchMtime(); errno != 0 {
				return errno
			}
		}
	default:
		return syscall.EOPNOTSUPP
	}
	return toErrno(f.fsys.log, "fallocate", err)
}

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
	if length > 1<<30 {
		length = 1 << 30
	}
	n, err := dst.blob.CopyFrom(f.blob, int64(offIn), int64(offOut), int64(length))
	if n > 0 {
		dst.touchMtime()
		if f.touchAtime() {
			// The kernel refreshes the destination's attributes after
			// a copy but not the source's: tell it atime changed.
			// With a negative offset the kernel only drops the
			// cached attributes and takes no inode lock, so this
			// cannot wait on the request being served.
			f.NotifyContent(-1, 0)
		}
	}
	if err != nil && n == 0 {
		return 0, toErrno(f.fsys.log, "copy_file_range", err)
	}
	return uint32(n), 0
}
