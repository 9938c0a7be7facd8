package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Dir is a directory. Its entries are the children of its go-fuse Inode;
// it keeps their count for st_size and the emptiness check of rmdir.
type Dir struct {
	node

	// Protected by node.mu.
	nent int // entries, not counting "." and ".."
}

var (
	_ = (gofs.NodeLookuper)((*Dir)(nil))
	_ = (gofs.NodeCreater)((*Dir)(nil))
	_ = (gofs.NodeTmpfiler)((*Dir)(nil))
	_ = (gofs.NodeMkdirer)((*Dir)(nil))
	_ = (gofs.NodeMknoder)((*Dir)(nil))
	_ = (gofs.NodeSymlinker)((*Dir)(nil))
	_ = (gofs.NodeLinker)((*Dir)(nil))
	_ = (gofs.NodeUnlinker)((*Dir)(nil))
	_ = (gofs.NodeRmdirer)((*Dir)(nil))
	_ = (gofs.NodeRenamer)((*Dir)(nil))
)

// bogoDirent is what tmpfs adds to a directory's size per entry.
const bogoDirent = 20

func (d *Dir) sizeBlocks() (uint64, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return uint64(bogoDirent * (d.nent + 2)), 0
}

// entriesChanged sets in a the attributes of a directory after an entry
// was added (+1) or removed (-1) at now, of a subdirectory if subdir (whose
// ".." links to it); 0 changes times only.
func entriesChanged(a *attrs, delta int, subdir bool, now time.Time) {
	if subdir {
		a.nlink = uint32(int(a.nlink) + delta)
	}
	a.mtime, a.ctime = now, now
}

// Lookup implements gofs.NodeLookuper.
func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	ch := d.GetChild(name)
	if ch == nil {
		return nil, syscall.ENOENT
	}
	nodeOf(ch.Operations()).entryOut(out)
	return ch, 0
}

// add makes a new node of the given mode for the caller in ctx and links
// it into d as name: one record of the new inode, its entry and d's new
// times. ready, if not nil, runs once the node is made and before it is
// recorded (Create opens the new file there); if the change then fails,
// undo runs.
func (d *Dir) add(ctx context.Context, name string, mode uint32, ops gofs.InodeEmbedder, out *fuse.EntryOut, ready, undo func()) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	ino, errno := d.fsys.allocIno()
	if errno != 0 {
		return nil, errno
	}
	n := nodeOf(ops)
	n.initNode(d.fsys, ino, mode, callerOf(ctx), d)
	if n.isDir() {
		n.nlink = 2
	}
	// Before the record: it needs n.Operations(). The Inode is only
	// go-fuse's once this returns it.
	ch := d.NewPersistentInode(ctx, ops, n.stable())
	d.fsys.nodes.add(n)
	if ready != nil {
		ready()
	}
	na := n.attrsLocked() // n is no one else's yet
	c := d.fsys.begin(&d.node)
	da := d.attrsLocked()
	entriesChanged(&da, +1, n.isDir(), na.ctime)
	c.newInode(n, &na)
	c.entry(d, name, n)
	c.inode(&d.node, &da)
	if errno := c.commit(); errno != 0 {
		c.end()
		if undo != nil {
			undo()
		}
		d.fsys.nodes.remove(n)
		d.fsys.freeIno()
		return nil, errno
	}
	d.setAttrsLocked(&da)
	d.nent++
	c.end()
	n.entryOut(out)
	return ch, 0
}

// newFile makes a regular file node with an empty blob.
func (d *Dir) newFile() (*File, syscall.Errno) {
	blob, err := d.fsys.store.Create()
	if err != nil {
		return nil, toErrno(d.fsys.log, "create", err)
	}
	return &File{blob: blob}, 0
}

// Create implements gofs.NodeCreater.
func (d *Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f, errno := d.newFile()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// Opened before it is recorded: a loan for writing is recorded with
	// the new inode (lend.go).
	var fh *handle
	var fuseFlags uint32
	ch, errno := d.add(ctx, name, syscall.S_IFREG|mode&07777, f, out,
		func() { fh, fuseFlags = f.opened(ctx, flags) },
		func() { f.unopened(fh) })
	if errno != 0 {
		f.blob.Free()
		return nil, nil, 0, errno
	}
	return ch, fh, fuseFlags, 0
}

// Tmpfile implements gofs.NodeTmpfiler: an open file with no name, which
// linkat may give one later.
func (d *Dir) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f, errno := d.newFile()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	ino, errno := d.fsys.allocIno()
	if errno != 0 {
		f.blob.Free()
		return nil, nil, 0, errno
	}
	f.initNode(d.fsys, ino, syscall.S_IFREG|mode&07777, callerOf(ctx), d)
	f.nlink = 0
	ch := d.NewPersistentInode(ctx, f, f.stable())
	d.fsys.nodes.add(&f.node)
	fh, fuseFlags := f.opened(ctx, flags) // recorded with the inode
	fa := f.attrsLocked()                 // f is no one else's yet
	c := d.fsys.begin()
	defer c.end()
	c.newInode(&f.node, &fa)
	if errno := c.commit(); errno != 0 {
		f.unopened(fh)
		d.fsys.nodes.remove(&f.node)
		d.fsys.freeIno()
		f.blob.Free()
		return nil, nil, 0, errno
	}
	f.entryOut(out)
	return ch, fh, fuseFlags, 0
}

// Mkdir implements gofs.NodeMkdirer.
func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return d.add(ctx, name, syscall.S_IFDIR|mode&07777, &Dir{}, out, nil, nil)
}

// Mknod implements gofs.NodeMknoder: FIFOs, sockets, device nodes, and
// regular files made with mknod.
func (d *Dir) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case 0, syscall.S_IFREG:
		f, errno := d.newFile()
		if errno != 0 {
			return nil, errno
		}
		ch, errno := d.add(ctx, name, syscall.S_IFREG|mode&07777, f, out, nil, nil)
		if errno != 0 {
			f.blob.Free()
		}
		return ch, errno
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		s := &Special{}
		s.rdev = dev
		return d.add(ctx, name, mode&(syscall.S_IFMT|07777), s, out, nil, nil)
	}
	return nil, syscall.EINVAL
}

// Symlink implements gofs.NodeSymlinker.
func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(target) > symlinkMax {
		return nil, syscall.ENAMETOOLONG
	}
	return d.add(ctx, name, syscall.S_IFLNK|0o777, &Symlink{target: []byte(target)}, out, nil, nil)
}

// Link implements gofs.NodeLinker. A file made with O_TMPFILE gets its
// first link with its inode already counted; every further link counts as
// one more inode, as on tmpfs.
func (d *Dir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	n := nodeOf(target)
	if n == nil || n.isDir() {
		return nil, syscall.EPERM
	}
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	now := time.Now()
	c := d.fsys.begin(&d.node, n)
	if n.reclaimed {
		c.end()
		return nil, syscall.ENOENT
	}
	counted := n.nlink > 0
	if counted {
		if errno := d.fsys.reserveInode(); errno != 0 {
			c.end()
			return nil, errno
		}
	}
	na, da := n.attrsLocked(), d.attrsLocked()
	na.nlink++
	na.ctime = now
	entriesChanged(&da, +1, false, now)
	c.newInode(n, &na) // an O_TMPFILE file gets its first name
	c.entry(d, name, n)
	c.inode(&d.node, &da)
	if errno := c.commit(); errno != 0 {
		c.end()
		if counted {
			d.fsys.freeIno()
		}
		return nil, errno
	}
	n.setAttrsLocked(&na)
	d.setAttrsLocked(&da)
	d.nent++
	c.end()
	n.entryOut(out)
	return n.EmbeddedInode(), 0
}

// Unlink implements gofs.NodeUnlinker.
func (d *Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := checkName(name); errno != 0 {
		return errno
	}
	ch := d.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	n := nodeOf(ch.Operations())
	if n.isDir() {
		return syscall.EISDIR
	}
	return d.remove(name, n)
}

// Rmdir implements gofs.NodeRmdirer.
func (d *Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := checkName(name); errno != 0 {
		return errno
	}
	ch := d.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	sub, ok := ch.Operations().(*Dir)
	if !ok {
		return syscall.ENOTDIR
	}
	return d.remove(name, &sub.node)
}

// remove removes name, which names n, from d: one change of d's entry and
// times and of n's link count (or its end). A directory must be empty.
func (d *Dir) remove(name string, n *node) syscall.Errno {
	now := time.Now()
	c := d.fsys.begin(&d.node, n)
	if sub, ok := n.Operations().(*Dir); ok && sub.nent > 0 {
		c.end()
		return syscall.ENOTEMPTY
	}
	da := d.attrsLocked()
	entriesChanged(&da, -1, n.isDir(), now)
	c.entry(d, name, nil)
	c.inode(&d.node, &da)
	drop := n.dropLinkLocked(&c, now)
	if errno := c.commit(); errno != 0 {
		c.end()
		return errno
	}
	d.setAttrsLocked(&da)
	d.nent--
	drop.apply()
	c.end()
	drop.done(d.fsys)
	return 0
}

// Rename implements gofs.NodeRenamer, with RENAME_NOREPLACE and
// RENAME_EXCHANGE. The kernel has already refused renaming a directory
// into itself, and renames of a name onto another link of the same inode.
func (d *Dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	const (
		noreplace = unix.RENAME_NOREPLACE
		exchange  = unix.RENAME_EXCHANGE
		whiteout  = unix.RENAME_WHITEOUT
	)
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if errno := checkName(newName); errno != 0 {
		return errno
	}
	if flags&^(noreplace|exchange|whiteout) != 0 || flags&exchange != 0 && flags&(noreplace|whiteout) != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*Dir)
	if !ok {
		return syscall.ENOTDIR
	}
	srcIn := d.GetChild(name)
	if srcIn == nil {
		return syscall.ENOENT
	}
	src := nodeOf(srcIn.Operations())
	var dst *node
	if dstIn := np.GetChild(newName); dstIn != nil {
		dst = nodeOf(dstIn.Operations())
	}
	if flags&exchange != 0 && dst == nil {
		return syscall.ENOENT
	}
	// A whiteout is made ready before the change: it is no one's until
	// the change commits it, and wireFS.whiteoutRename puts it in the
	// tree once the bridge has moved the source (wire.go).
	var wo *Special
	var woIn *gofs.Inode
	if flags&whiteout != 0 {
		ino, errno := d.fsys.allocIno()
		if errno != 0 {
			return errno
		}
		wo = &Special{}
		wo.initNode(d.fsys, ino, syscall.S_IFCHR, callerOf(ctx), d)
		woIn = d.NewPersistentInode(ctx, wo, wo.stable())
		d.fsys.nodes.add(&wo.node)
	}
	done := false
	defer func() {
		if wo != nil && !done {
			d.fsys.nodes.remove(&wo.node)
			d.fsys.freeIno()
		}
	}()
	now := time.Now()
	c := d.fsys.begin(&d.node, &np.node, src, dst)
	defer c.end()
	// The directories' new attributes; one set when d is np.
	da := d.attrsLocked()
	pa := &da
	var npa attrs
	if np != d {
		npa = np.attrsLocked()
		pa = &npa
	}
	sa := src.attrsLocked()
	sa.ctime = now
	commitApply := func(more func()) syscall.Errno {
		c.inode(&d.node, &da)
		if np != d {
			c.inode(&np.node, pa)
		}
		c.inode(src, &sa)
		if errno := c.commit(); errno != 0 {
			return errno
		}
		d.setAttrsLocked(&da)
		if np != d {
			np.setAttrsLocked(pa)
		}
		src.setAttrsLocked(&sa)
		more()
		return 0
	}

	if flags&exchange != 0 {
		c.entry(d, name, dst)
		c.entry(np, newName, src)
		ta := dst.attrsLocked()
		ta.ctime = now
		entriesChanged(&da, 0, false, now)
		entriesChanged(pa, 0, false, now)
		if d != np && src.isDir() != dst.isDir() {
			// A directory changes parent: its ".." link moves.
			if src.isDir() {
				entriesChanged(&da, -1, true, now)
				entriesChanged(pa, +1, true, now)
			} else {
				entriesChanged(&da, +1, true, now)
				entriesChanged(pa, -1, true, now)
			}
		}
		c.inode(dst, &ta)
		return commitApply(func() { dst.setAttrsLocked(&ta) })
	}

	var drop linkDrop
	if dst != nil {
		if flags&noreplace != 0 {
			return syscall.EEXIST
		}
		switch {
		case src.isDir() && !dst.isDir():
			return syscall.ENOTDIR
		case !src.isDir() && dst.isDir():
			return syscall.EISDIR
		case dst.isDir():
			if dst.Operations().(*Dir).nent > 0 {
				return syscall.ENOTEMPTY
			}
		}
	}
	var woa attrs
	if wo != nil {
		woa = wo.attrsLocked() // wo is no one else's yet
		c.newInode(&wo.node, &woa)
		c.entry(d, name, &wo.node)
	} else {
		c.entry(d, name, nil)
	}
	c.entry(np, newName, src)
	entriesChanged(&da, -1, src.isDir(), now)
	entriesChanged(pa, +1, src.isDir(), now)
	if wo != nil {
		entriesChanged(&da, +1, false, now)
	}
	if dst != nil {
		// The old entry goes away; the new one takes its place.
		entriesChanged(pa, -1, dst.isDir(), now)
		drop = dst.dropLinkLocked(&c, now)
	}
	errno := commitApply(func() {
		d.nent--
		np.nent++
		if dst != nil {
			np.nent--
			drop.apply()
		}
		if wo != nil {
			d.nent++
			done = true
			d.fsys.whiteouts.Store(cancelOf(ctx), whiteoutEntry{d, name, woIn})
		}
	})
	if errno == 0 && dst != nil {
		c.end()
		drop.done(d.fsys)
	}
	return errno
}

// A linkDrop is the removal of one link of a node by a change (unlink,
// rmdir, rename over it): what the change records of the node, and what
// it applies once committed.
type linkDrop struct {
	n     *node
	a     attrs
	gone  bool // no link and no open file is left: the node is reclaimed
	extra bool // a link beyond the first, which counts as an inode
}

// dropLinkLocked records in c that n loses a link at now (a directory:
// its only one), and returns what to apply once c is committed.
//
// Preconditions: n is locked by c.
func (n *node) dropLinkLocked(c *change, now time.Time) linkDrop {
	l := linkDrop{n: n, a: n.attrsLocked()}
	l.a.ctime = now
	switch {
	case n.isDir():
		l.a.nlink = 0
	case l.a.nlink > 0:
		l.extra = l.a.nlink > 1
		l.a.nlink--
	}
	l.gone = n.unusedLocked(l.a.nlink)
	if l.gone {
		c.free(n)
	} else {
		c.inode(n, &l.a)
	}
	return l
}

// apply applies a committed drop.
//
// Preconditions: l.n is locked by the change.
func (l *linkDrop) apply() {
	l.n.setAttrsLocked(&l.a)
	if l.gone {
		l.n.markReclaimedLocked()
	}
}

// done gives back what the drop freed, once the change has ended.
func (l *linkDrop) done(fsys *filesystem) {
	if l.extra {
		fsys.freeIno() // the inode itself goes when it is reclaimed
	}
	if l.gone {
		fsys.reclaim(l.n)
	}
}

// unusedLocked reports whether n, with nlink links, is to be reclaimed: no
// link, no open file, and not reclaimed already.
//
// Preconditions: n.mu is held.
func (n *node) unusedLocked(nlink uint32) bool {
	if n.reclaimed || nlink > 0 {
		return false
	}
	f, ok := n.Operations().(*File)
	return !ok || f.opens == 0
}

// markReclaimedLocked marks n as reclaimed: its number and data are
// given back (reclaim) once its change has ended.
//
// Preconditions: n.mu is held; the end of n is committed.
func (n *node) markReclaimedLocked() {
	n.reclaimed = true
	n.xattr = nil
}

// reclaim frees the data and the inode of n, marked reclaimed.
func (fsys *filesystem) reclaim(n *node) {
	fsys.nodes.remove(n)
	if f, ok := n.Operations().(*File); ok {
		if err := f.blob.Free(); err != nil {
			fsys.log.Error("freeing the data of a removed file failed",
				zap.Uint64("ino", n.ino), zap.Error(err))
		}
	}
	fsys.freeIno()
}
