package fs

import (
	"context"
	"math"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node holds what every kind of inode has: attributes and extended
// attributes. Dir, File, Symlink and Special embed it.
type node struct {
	gofs.Inode

	fsys *filesystem
	ino  uint64 // immutable
	typ  uint32 // S_IFMT bits; immutable

	mu sync.Mutex
	// Protected by mu.
	mode  uint32 // type and permission bits
	uid   uint32
	gid   uint32
	nlink uint32
	rdev  uint32
	times stamps // atime, mtime, ctime and btime (stamps.go)
	xattr map[string][]byte
	// reclaimed is set once the inode's number and data were given back;
	// it guards against releasing them twice.
	reclaimed bool
	// queried: the times were handed out (an attribute reply) since they
	// last changed (dataTimeLocked).
	queried bool
}

var (
	_ = (gofs.NodeGetattrer)((*node)(nil))
	_ = (gofs.NodeSetattrer)((*node)(nil))
	_ = (gofs.NodeStatfser)((*node)(nil))
	_ = (gofs.NodeGetxattrer)((*node)(nil))
	_ = (gofs.NodeSetxattrer)((*node)(nil))
	_ = (gofs.NodeListxattrer)((*node)(nil))
	_ = (gofs.NodeRemovexattrer)((*node)(nil))
)

// initNode sets the attributes of a node being created by caller, inside
// parent (nil for the root). It takes parent's mu for a moment, to read its
// mode and group; n is no one else's yet.
func (n *node) initNode(fsys *filesystem, ino uint64, mode uint32, caller *fuse.Caller, parent *Dir) {
	now := time.Now()
	n.fsys = fsys
	n.ino = ino
	n.typ = mode & syscall.S_IFMT
	n.mode = mode
	n.nlink = 1
	n.times.setAll(now)
	if caller != nil {
		n.uid, n.gid = caller.Uid, caller.Gid
	}
	if parent != nil {
		parent.mu.Lock()
		pmode, pgid := parent.mode, parent.gid
		parent.mu.Unlock()
		// BSD group semantics in a setgid directory, as tmpfs
		// (inode_init_owner).
		if pmode&syscall.S_ISGID != 0 {
			n.gid = pgid
			if mode&syscall.S_IFMT == syscall.S_IFDIR {
				n.mode |= syscall.S_ISGID
			}
		}
	}
	// A new non-directory keeps S_ISGID only if its creator could set it.
	if mode&syscall.S_IFMT != syscall.S_IFDIR && n.mode&syscall.S_ISGID != 0 &&
		caller != nil && caller.Uid != 0 && caller.Gid != n.gid {
		n.mode &^= syscall.S_ISGID
	}
}

// stable returns the go-fuse identity of n.
func (n *node) stable() gofs.StableAttr {
	return gofs.StableAttr{Mode: n.typ, Ino: n.ino}
}

// fillAttrLocked fills out with the attributes common to all kinds.
//
// Preconditions: n.mu is held.
func (n *node) fillAttrLocked(out *fuse.Attr) {
	n.queried = true
	out.Ino = n.ino
	out.Mode = n.mode
	out.Nlink = n.nlink
	out.Owner = fuse.Owner{Uid: n.uid, Gid: n.gid}
	out.Rdev = n.rdev
	out.Blksize = 4096
	t := &n.times
	out.Atime, out.Atimensec = uint64(t.sec[tAtime]), t.nsec[tAtime]
	out.Mtime, out.Mtimensec = uint64(t.sec[tMtime]), t.nsec[tMtime]
	out.Ctime, out.Ctimensec = uint64(t.sec[tCtime]), t.nsec[tCtime]
}

// sizer is a node kind whose content has a size: sizeBlocks returns the
// size and 512-byte block count of it. Dir, File and Symlink implement it;
// a Special has size 0.
type sizer interface {
	sizeBlocks() (size, blocks uint64)
}

// attr fills out with n's attributes, its size and blocks included. A
// File with loans first takes in what the kernel changed in its store file
// (observe). It reports whether n is a file lent to the kernel, whose
// attributes the kernel is to keep only for lentAttrTimeout. It takes n.mu,
// so n.mu must not be held.
func (n *node) attr(out *fuse.Attr) (lent bool) {
	f, isFile := n.Operations().(*File)
	if isFile {
		f.observe(false)
	}
	var size, blocks uint64
	if s, ok := n.Operations().(sizer); ok {
		size, blocks = s.sizeBlocks()
	}
	n.mu.Lock()
	n.fillAttrLocked(out)
	lent = isFile && f.lentLocked()
	n.mu.Unlock()
	out.Size = size
	out.Blocks = blocks
	return lent
}

// The kernel keeps names and attributes for long (Mount): only it changes
// them, and it drops what a request changes. The exception is a file lent
// to passthrough: the kernel writes its store file without the server, and
// a store through a shared mapping changes the store file's mtime without
// the kernel's inode hearing of it. So a lent file's attributes are kept
// for the shortest time the kernel knows (a tick), and the kernel's cached
// attributes are dropped when a file is first lent (File.Open).
const lentAttrTimeout = time.Nanosecond

// entryOut fills out with n's attributes, and a short attribute timeout
// for a lent file.
func (n *node) entryOut(out *fuse.EntryOut) {
	if n.attr(&out.Attr) {
		out.SetAttrTimeout(lentAttrTimeout)
	}
}

// attrOut fills out with n's attributes, and a short timeout for a lent
// file.
func (n *node) attrOut(out *fuse.AttrOut) {
	if n.attr(&out.Attr) {
		out.SetTimeout(lentAttrTimeout)
	}
}

// Getattr implements gofs.NodeGetattrer.
func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attrOut(out)
	return 0
}

// Setattr implements gofs.NodeSetattrer: chmod, chown, truncate and
// utimensat, as one change. Permission checks are the kernel's
// (default_permissions).
func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, resize := in.GetSize()
	f, isFile := n.Operations().(*File)
	if resize {
		switch {
		case n.isDir():
			return syscall.EISDIR
		case !isFile:
			return syscall.EINVAL
		case size > math.MaxInt64:
			return syscall.EFBIG
		}
	}
	// One instant for every time set here: utimensat(UTIME_NOW, UTIME_NOW)
	// makes atime, mtime and ctime equal, as on tmpfs.
	now := time.Now()
	c := n.fsys.begin(n)
	defer c.end()
	if resize {
		// A file cut short cannot get its data back if the commit
		// then failed.
		if errno := c.reserve(); errno != 0 {
			return errno
		}
	}
	if isFile && f.loans > 0 {
		f.observeLocked(false)
	}
	a := n.attrsLocked()
	changed, dropCap := false, false
	// The kernel asks to drop privileges with FATTR_KILL_SUIDGID, or,
	// from its own file_remove_privs and from chown(f, -1, -1), with a
	// SETATTR that sets nothing at all.
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 || in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0 {
		// Before the new owner is set: the group rule is about the
		// group the caller wrote to.
		dropCap = n.killPrivLocked(&a, callerOf(ctx))
		changed = true
	}
	if mode, ok := in.GetMode(); ok {
		a.mode = a.mode&syscall.S_IFMT | mode&07777
		changed = true
	}
	if uid, ok := in.GetUID(); ok {
		a.uid = uid
		changed = true
	}
	if gid, ok := in.GetGID(); ok {
		a.gid = gid
		changed = true
	}
	if resize {
		a.mtime, a.ctime = now, now
	}
	if in.Valid&fuse.FATTR_ATIME != 0 {
		a.atime = now
		if in.Valid&fuse.FATTR_ATIME_NOW == 0 {
			a.atime = time.Unix(int64(in.Atime), int64(in.Atimensec))
		}
		changed = true
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		a.mtime = now
		if in.Valid&fuse.FATTR_MTIME_NOW == 0 {
			a.mtime = time.Unix(int64(in.Mtime), int64(in.Mtimensec))
		}
		changed = true
	}
	if in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == fuse.FATTR_KILL_SUIDGID && a.mode == n.mode && !dropCap {
		// Privileges to drop for a write or an O_TRUNC open, and none
		// there: nothing changes (that request changes ctime itself).
		c.end()
		n.attrOut(out)
		return 0
	}
	if ctime, ok := in.GetCTime(); ok {
		a.ctime = ctime
	} else if changed {
		a.ctime = now
	}
	var undo func()
	if resize {
		var errno syscall.Errno
		if undo, errno = f.resize(int64(size)); errno != 0 {
			return errno
		}
		if f.loans > 0 {
			// The store file's times changed with it.
			if st, ok, err := f.blob.FileStat(); ok && err == nil {
				f.setSeen(&st)
			}
		}
	}
	if dropCap {
		c.xattr(n, "security.capability", nil, false)
	}
	c.inode(n, &a)
	if errno := c.commit(); errno != 0 {
		if undo != nil {
			undo()
		}
		return errno
	}
	n.setAttrsLocked(&a)
	if dropCap {
		delete(n.xattr, "security.capability")
	}
	if isFile {
		f.unsaved = false
	}
	c.end()
	n.attrOut(out)
	return 0
}

// Statfs implements gofs.NodeStatfser with the mount's size and inode
// limits.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.fsys.statfs(out)
	return 0
}

func (n *node) isDir() bool { return n.typ == syscall.S_IFDIR }

// nodeOf returns the embedded node of any of this package's node kinds.
func nodeOf(ops gofs.InodeEmbedder) *node {
	switch v := ops.(type) {
	case *Dir:
		return &v.node
	case *File:
		return &v.node
	case *Symlink:
		return &v.node
	case *Special:
		return &v.node
	}
	return nil
}

var _ = (gofs.NodeStatxer)((*node)(nil))

// Statx implements gofs.NodeStatxer, which adds the birth time.
func (n *node) Statx(ctx context.Context, fh gofs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	var a fuse.Attr
	n.attr(&a)
	n.mu.Lock()
	btime := n.times.get(tBtime)
	n.mu.Unlock()
	sx := &out.Statx
	sx.Mask = unix.STATX_BASIC_STATS | unix.STATX_BTIME
	sx.Blksize = a.Blksize
	sx.Nlink = a.Nlink
	sx.Uid, sx.Gid = a.Uid, a.Gid
	sx.Mode = uint16(a.Mode)
	sx.Ino = a.Ino
	sx.Size = a.Size
	sx.Blocks = a.Blocks
	sx.Atime = fuse.SxTime{Sec: a.Atime, Nsec: a.Atimensec}
	sx.Mtime = fuse.SxTime{Sec: a.Mtime, Nsec: a.Mtimensec}
	sx.Ctime = fuse.SxTime{Sec: a.Ctime, Nsec: a.Ctimensec}
	sx.Btime = fuse.SxTime{Sec: uint64(btime.Unix()), Nsec: uint32(btime.Nanosecond())}
	sx.RdevMajor, sx.RdevMinor = unix.Major(uint64(a.Rdev)), unix.Minor(uint64(a.Rdev))
	return 0
}
