package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// Passthrough: an open of a regular file lends the file's store file to
// the kernel (see the package doc), which then reads, writes and maps it
// without the server; the server takes what the kernel changed in it into
// the node when it looks (observe).

// fileTimes are the times of a store file, as fstat gives them.
type fileTimes struct{ m, c, a unix.Timespec }

func timesOf(st *unix.Stat_t) fileTimes { return fileTimes{st.Mtim, st.Ctim, st.Atim} }

// handle is an open file. The node keeps the state; the handle exists so
// that Release is called once per open, and to give go-fuse the store file
// for passthrough.
type handle struct {
	f    *File
	lent bool // the handle holds a loan of the store file
	// fd is a descriptor of the lent store file for go-fuse to hand to
	// the kernel, or -1. It is closed when the open request ends
	// (serveOpen), or with ownFD at Release.
	fd    int
	ownFD bool
	// cached: the handle was not offered the store file, so the kernel
	// may cache it (unless the node had a backing file already).
	cached bool
	// writer: a lent handle open for writing, counted in File.writers.
	writer bool
}

var _ = (gofs.FilePassthroughFder)((*handle)(nil))

// PassthroughFd implements gofs.FilePassthroughFder: with it the kernel
// reads, writes and maps the store file itself. go-fuse asks only while
// serving the open.
func (h *handle) PassthroughFd() (int, bool) { return h.fd, h.fd >= 0 }

// opened counts a new open handle, as openedLocked does, for an open that
// records nothing: one of a file that is no one else's yet, whose record
// the caller commits after (Create, Tmpfile).
//
// Preconditions: f is not visible to anyone yet.
func (f *File) opened(ctx context.Context, flags uint32) (*handle, uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, fuseFlags, _, _ := f.openedLocked(ctx, flags, true)
	return h, fuseFlags
}

// lendsForWriting reports whether an open with flags may lend a store file
// that the journal must then record as lent.
func (fsys *filesystem) lendsForWriting(flags uint32) bool {
	return fsys.persist != nil && fsys.passthrough.Load() && writable(flags)
}

// lentLocked reports whether the blob is lent: by an open handle, or by the
// loan a close kept.
//
// Preconditions: f.mu is held.
func (f *File) lentLocked() bool { return f.loans > 0 || f.keptLoan }

// openedLocked counts a new open handle. With passthrough on, every handle
// holds a loan of the store file (even one the kernel is not to get:
// go-fuse passes through every open of a node that has a backing file
// already), and is offered the file for passthrough when mayLendLocked
// allows. A blob that cannot be lent (its store file is gone, descriptors
// ran out, it was freed after the last unlink) is served through the
// server; a blob already lent always can be.
//
// With a store, a handle open for writing that holds a loan makes the
// file lent for writing in the journal (package store, loans.go): when it
// is the first, record says that the caller must commit the file's record
// before the open is answered, and undo the open (unopenLocked) if that
// fails. Without room for that record (room false) the open is served
// through the server instead, or fails with ENOSPC if other loans of the
// file would make go-fuse pass it through all the same.
//
// Preconditions: f.mu is held.
func (f *File) openedLocked(ctx context.Context, flags uint32, room bool) (h *handle, fuseFlags uint32, record bool, errno syscall.Errno) {
	h = &handle{f: f, fd: -1}
	if f.fsys.passthrough.Load() {
		forWriting := f.fsys.lendsForWriting(flags)
		if forWriting && !room {
			if f.loans > 0 {
				return nil, 0, false, syscall.ENOSPC
			}
			h.cached = true
			f.cached++
			f.opens++
			return h, f.fuseFlagsLocked(), false, 0
		}
		// Not while a handle the kernel caches is open: the kernel
		// refuses (EIO) a passthrough open of an inode it caches, and
		// the other way round.
		offer := f.mayLendLocked() && f.cached == 0
		fd, err := f.blob.Lend(offer)
		switch {
		case errors.Is(err, mapstore.ErrClosed):
		case err != nil:
			// Once at WARN: under descriptor pressure every open
			// may fail so, and each still works through the server.
			lvl := zap.DebugLevel
			if !f.fsys.lendWarned.Swap(true) {
				lvl = zap.WarnLevel
			}
			f.fsys.log.Log(lvl, "passthrough: cannot lend a store file; its open goes through the server (further cases at debug level)",
				zap.Uint64("ino", f.ino), zap.Error(err))
		default:
			if !f.lentLocked() {
				if st, ok, err := f.blob.FileStat(); ok && err == nil {
					f.setSeen(&st)
				}
			}
			f.loans++
			h.lent, h.fd = true, fd
			if writable(flags) {
				h.writer = true
				f.writers++
				record = forWriting && f.writers == 1
			}
		}
		if fd >= 0 {
			h.ownFD = !f.fsys.closeAfterOpen(ctx, fd)
		} else {
			h.cached = true
			f.cached++
		}
	}
	f.opens++
	return h, f.fuseFlagsLocked(), record, 0
}

// fuseFlagsLocked returns the FOPEN flags of a new open handle.
//
// Preconditions: f.mu is held; the handle is counted in f.opens.
func (f *File) fuseFlagsLocked() uint32 {
	// Flush does nothing (data is in the store as soon as a write is
	// answered, and the kernel keeps POSIX locks itself), so the kernel
	// need not send it at every close: one round trip fewer per close.
	// It also spares a process that closes a descriptor between fork
	// and exec (dup2 onto it) a wait on the server, which deadlocks if
	// the server is that process (in-process tests: the forking thread
	// cannot stop for the garbage collector until the child execs).
	fuseFlags := uint32(fuse.FOPEN_NOFLUSH)
	if !f.fsys.passthrough.Load() && (f.opens > 1 || !f.atimeDueLocked(time.Now())) {
		// Data changes only through the kernel, which keeps its page
		// cache right itself (it drops the pages a write, punch,
		// truncate or copy_file_range replaces; the mount asks for
		// explicit data cache control, see Mount), so the cache may
		// outlive an open. But reads from the cache do not reach the
		// server, which keeps atime: when the next read is to update
		// it (relatime; always under strictatime; never under noatime
		// or on a read-only mount), an open with no other open of the
		// file drops the cache. (Not while another is open: a drop
		// while one of its writes is on its way to the server can
		// bring old bytes back into the cache.) So under strictatime
		// the first read of each page of an open reaches the server
		// and updates atime, but a read the cache answers later in
		// the same open, or while another open of the file exists
		// (one closed a moment ago counts until its RELEASE arrives,
		// which close does not wait for), does not. Every read would
		// reach the server only with FOPEN_DIRECT_IO, which gives up
		// the page cache and readahead for every read, and whose mmap
		// coherency with cached opens of the same file the kernel
		// keeps only in part.
		//
		// With passthrough the kernel's writes of an earlier open may
		// have gone to the store file around that cache, so an open
		// the kernel caches always starts afresh. (go-fuse drops the
		// flag for a passthrough open: the kernel then keeps no cache
		// of its own.)
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return fuseFlags
}

// unopened undoes opened.
//
// Preconditions: f is not visible to anyone yet.
func (f *File) unopened(h *handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unopenLocked(h)
}

// unopenLocked undoes openedLocked, for an open that then fails: the kernel
// never gets the handle.
//
// Preconditions: f.mu is held.
func (f *File) unopenLocked(h *handle) {
	if h.lent {
		f.loans--
		if h.writer {
			f.writers--
		}
		if err := f.blob.Return(); err != nil {
			f.fsys.log.Error("passthrough: taking back a store file", zap.Uint64("ino", f.ino), zap.Error(err))
		}
		if h.ownFD {
			unix.Close(h.fd)
		}
		// A descriptor closeAfterOpen took is closed as the request
		// ends; go-fuse hands nothing to the kernel for a failed open.
	}
	if h.cached {
		f.cached--
	}
	f.opens--
}

// mayLendLocked reports whether the kernel may write the file without the
// server: not when a write must drop set-id bits or a file capability
// (killpriv.go), which the server does on the writes it sees.
//
// Preconditions: f.mu is held.
func (f *File) mayLendLocked() bool {
	if f.mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
		return false
	}
	_, hasCap := f.xattr["security.capability"]
	return !hasCap
}

// observe takes what the kernel changed in a lent store file into the
// node: size (which the store reads from the file), mtime, ctime and atime.
// With save, a change is saved to the journal; without (stat, which
// writes nothing), it is saved at the next close or fsync, or with the next
// snapshot. A save changes one node and no name, under the node's lock, so
// it needs no quiesce lock (changes_test.go says why).
func (f *File) observe(save bool) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.observeLocked(save)
}

// observeLocked is observe with f.mu held.
//
// Preconditions: f.mu is held.
func (f *File) observeLocked(save bool) syscall.Errno {
	if save && f.unsaved && !f.lentLocked() {
		return f.saveUnsavedLocked()
	}
	if !f.lentLocked() {
		return 0
	}
	st, ok, err := f.blob.FileStat()
	if !ok || err != nil {
		return 0
	}
	now := timesOf(&st)
	if f.seen == nil {
		f.seen = new(fileTimes)
	}
	if now == *f.seen {
		return 0
	}
	changed := false
	if now.m != f.seen.m {
		f.times.set(tMtime, time.Unix(now.m.Unix()))
		changed = true
	}
	if now.c != f.seen.c {
		f.times.set(tCtime, time.Unix(now.c.Unix()))
		changed = true
	}
	if now.a != f.seen.a {
		// The kernel read the file. The store file's atime follows
		// the store mount's rules on the store file's own times; the
		// node's follows this mount's rule on the node's times
		// (touchAtime): under noatime or on a read-only mount the
		// read changes nothing. (No strictatime mount lends files:
		// the store file's atime cannot tell every read; Mount.)
		at := time.Unix(now.a.Unix())
		if f.fsys.atime.Load().due(false, f.times.get(tAtime), f.times.get(tMtime), f.times.get(tCtime), at) {
			f.times.set(tAtime, at)
			if f.fsys.persist != nil {
				f.fsys.persist.atimeDirty.Store(true)
			}
		}
	}
	*f.seen = now
	f.unsaved = f.unsaved || changed
	if save && f.unsaved {
		return f.saveUnsavedLocked()
	}
	return 0
}

// saveUnsavedLocked commits what observe took into the node: the times and
// size the kernel gave the lent store file.
//
// Preconditions: f.mu is held.
func (f *File) saveUnsavedLocked() syscall.Errno {
	if errno := f.saveLocked(); errno != 0 {
		return errno
	}
	f.unsaved = false
	return 0
}

// lentFDs are the store file descriptors an open request lent for
// passthrough (File.opened).
type lentFDs struct{ fds []int }

// serveOpen is called as an open, create or tmpfile request starts; the
// function it returns, as it ends. go-fuse hands the descriptors the
// request lent to the kernel before it ends, and the kernel keeps a
// reference of its own: so they are closed then, and the server holds no
// descriptor per open file. The request's cancel channel names it (go-fuse
// passes it to the node in the context).
func (fsys *filesystem) serveOpen(cancel <-chan struct{}) func() {
	if !fsys.passthrough.Load() {
		return func() {}
	}
	l := &lentFDs{}
	fsys.lent.Store(cancel, l)
	return func() {
		fsys.lent.Delete(cancel)
		for _, fd := range l.fds {
			unix.Close(fd)
		}
	}
}

// closeAfterOpen arranges for fd to be closed when the open request of ctx
// ends, and reports whether it could.
func (fsys *filesystem) closeAfterOpen(ctx context.Context, fd int) bool {
	c, ok := ctx.(*fuse.Context)
	if !ok {
		return false
	}
	v, ok := fsys.lent.Load(c.Cancel)
	if !ok {
		return false
	}
	l := v.(*lentFDs)
	l.fds = append(l.fds, fd)
	return true
}

// setSeen records st's times as those of the store file when the server
// last looked.
//
// Preconditions: f.mu is held.
func (f *File) setSeen(st *unix.Stat_t) {
	if f.seen == nil {
		f.seen = new(fileTimes)
	}
	*f.seen = timesOf(st)
}
