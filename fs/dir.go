package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
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

// changed records an entry added (+1) or removed (-1), of a subdirectory
// if subdir, and updates mtime and ctime.
func (d *Dir) changed(delta int, subdir bool, now time.Time) {
	d.mu.Lock()
	d.nent += delta
	if subdir {
		d.nlink = uint32(int(d.nlink) + delta)
	}
	d.mtime, d.ctime = now, now
	d.saveLocked()
	d.mu.Unlock()
}

func (d *Dir) entries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nent
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
	nodeOf(ch.Operations()).attr(&out.Attr)
	return ch, 0
}

// add makes a new node of the given mode for the caller in ctx, lets
// setup fill in its kind's fields, and links it into d as name.
func (d *Dir) add(ctx context.Context, name string, mode uint32, ops gofs.InodeEmbedder, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
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
	ch := d.NewPersistentInode(ctx, ops, n.stable())
	// After NewPersistentInode: the record needs n.Operations().
	if errno := d.fsys.saveEntries(n, []*Dir{d}, []string{name}, []*node{n}); errno != 0 {
		d.fsys.freeIno()
		return nil, errno
	}
	d.changed(+1, n.isDir(), n.ctime)
	n.attr(&out.Attr)
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
	ch, errno := d.add(ctx, name, syscall.S_IFREG|mode&07777, f, out)
	if errno != 0 {
		f.blob.Free()
		return nil, nil, 0, errno
	}
	fh, fuseFlags := f.opened(ctx, flags)
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
	f.mu.Lock()
	errno = f.saveLocked()
	f.mu.Unlock()
	if errno != 0 {
		d.fsys.freeIno()
		f.blob.Free()
		return nil, nil, 0, errno
	}
	f.attr(&out.Attr)
	fh, fuseFlags := f.opened(ctx, flags)
	return ch, fh, fuseFlags, 0
}

// Mkdir implements gofs.NodeMkdirer.
func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return d.add(ctx, name, syscall.S_IFDIR|mode&07777, &Dir{}, out)
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
		ch, errno := d.add(ctx, name, syscall.S_IFREG|mode&07777, f, out)
		if errno != 0 {
			f.blob.Free()
		}
		return ch, errno
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		s := &Special{}
		s.rdev = dev
		return d.add(ctx, name, mode&(syscall.S_IFMT|07777), s, out)
	}
	return nil, syscall.EINVAL
}

// Symlink implements gofs.NodeSymlinker.
func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(target) > symlinkMax {
		return nil, syscall.ENAMETOOLONG
	}
	return d.add(ctx, name, syscall.S_IFLNK|0o777, &Symlink{target: []byte(target)}, out)
}

// Link implements gofs.NodeLinker.
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
	if errno := n.addLink(now); errno != 0 {
		return nil, errno
	}
	if errno := d.fsys.saveEntries(n, []*Dir{d}, []string{name}, []*node{n}); errno != 0 {
		d.fsys.dropLink(n, now)
		return nil, errno
	}
	d.changed(+1, false, now)
	n.attr(&out.Attr)
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
	if errno := d.fsys.saveEntries(nil, []*Dir{d}, []string{name}, []*node{nil}); errno != 0 {
		return errno
	}
	now := time.Now()
	d.changed(-1, false, now)
	d.fsys.dropLink(n, now)
	return 0
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
	if sub.entries() > 0 {
		return syscall.ENOTEMPTY
	}
	if errno := d.fsys.saveEntries(nil, []*Dir{d}, []string{name}, []*node{nil}); errno != 0 {
		return errno
	}
	now := time.Now()
	d.changed(-1, true, now)
	d.fsys.dropDir(sub, now)
	return 0
}

// Rename implements gofs.NodeRenamer, with RENAME_NOREPLACE and
// RENAME_EXCHANGE. The kernel has already refused renaming a directory
// into itself, and renames of a name onto another link of the same inode.
func (d *Dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	const (
		noreplace = 1 // RENAME_NOREPLACE
		exchange  = 2 // RENAME_EXCHANGE
	)
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if errno := checkName(newName); errno != 0 {
		return errno
	}
	if flags&^(noreplace|exchange) != 0 || flags == noreplace|exchange {
		// RENAME_WHITEOUT is done by wireFS.Rename.
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
	dstIn := np.GetChild(newName)
	now := time.Now()

	if flags&exchange != 0 {
		if dstIn == nil {
			return syscall.ENOENT
		}
		dst := nodeOf(dstIn.Operations())
		if errno := d.fsys.saveEntries(nil, []*Dir{d, np}, []string{name, newName}, []*node{dst, src}); errno != 0 {
			return errno
		}
		if d != np && src.isDir() != dst.isDir() {
			// A directory changes parent: move its ".." link.
			if src.isDir() {
				d.addLinks(-1, now)
				np.addLinks(+1, now)
			} else {
				d.addLinks(+1, now)
				np.addLinks(-1, now)
			}
		}
		src.touchCtime(now)
		dst.touchCtime(now)
		d.changed(0, false, now)
		np.changed(0, false, now)
		return 0
	}

	if dstIn != nil {
		if flags&noreplace != 0 {
			return syscall.EEXIST
		}
		dst := nodeOf(dstIn.Operations())
		switch {
		case src.isDir() && !dst.isDir():
			return syscall.ENOTDIR
		case !src.isDir() && dst.isDir():
			return syscall.EISDIR
		case dst.isDir():
			if dstIn.Operations().(*Dir).entries() > 0 {
				return syscall.ENOTEMPTY
			}
		}
	}
	if errno := d.fsys.saveEntries(nil, []*Dir{d, np}, []string{name, newName}, []*node{nil, src}); errno != 0 {
		return errno
	}
	if dstIn != nil {
		dst := nodeOf(dstIn.Operations())
		// The old entry goes away; the new one takes its place.
		np.changed(-1, dst.isDir(), now)
		if dst.isDir() {
			d.fsys.dropDir(dstIn.Operations().(*Dir), now)
		} else {
			d.fsys.dropLink(dst, now)
		}
	}
	d.changed(-1, src.isDir(), now)
	np.changed(+1, src.isDir(), now)
	src.touchCtime(now)
	return 0
}

// addLink adds a link to n. A file made with O_TMPFILE gets its first
// link with its inode already counted; every further link counts as one
// more inode, as on tmpfs.
func (n *node) addLink(now time.Time) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.reclaimed {
		return syscall.ENOENT
	}
	if n.nlink > 0 {
		if errno := n.fsys.reserveInode(); errno != 0 {
			return errno
		}
	}
	n.nlink++
	n.ctime = now
	n.saveLocked()
	return 0
}

// dropLink removes one link of a non-directory and reclaims it when no
// link and no open file is left.
func (fsys *filesystem) dropLink(n *node, now time.Time) {
	n.mu.Lock()
	if n.nlink > 1 {
		fsys.freeIno() // the inode itself goes when it is reclaimed
	}
	if n.nlink > 0 {
		n.nlink--
	}
	n.ctime = now
	if n.nlink > 0 {
		n.saveLocked()
	}
	n.mu.Unlock()
	fsys.maybeReclaim(n)
}

// dropDir marks a removed directory dead and gives back its inode.
func (fsys *filesystem) dropDir(sub *Dir, now time.Time) {
	sub.mu.Lock()
	sub.nlink = 0
	sub.ctime = now
	sub.mu.Unlock()
	fsys.maybeReclaim(&sub.node)
}

// maybeReclaim frees the inode and data of n once it has no link and is
// not open.
func (fsys *filesystem) maybeReclaim(n *node) {
	var f *File
	if ff, ok := n.Operations().(*File); ok {
		f = ff
	}
	n.mu.Lock()
	if n.reclaimed || n.nlink > 0 || (f != nil && f.opens > 0) {
		n.mu.Unlock()
		return
	}
	n.reclaimed = true
	n.xattr = nil
	n.mu.Unlock()
	fsys.saveFree(n.ino)
	if f != nil {
		if err := f.blob.Free(); err != nil {
			fsys.log.Error("freeing the data of a removed file failed",
				zap.Uint64("ino", n.ino), zap.Error(err))
		}
	}
	fsys.freeIno()
}
