package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// wireFS sits between the kernel and go-fuse's node bridge for the few
// requests whose flags go-fuse does not pass on to nodes: WRITE and OPEN
// (privilege dropping, see killpriv.go) and RENAME with RENAME_WHITEOUT.
type wireFS struct {
	fuse.RawFileSystem
	fsys *filesystem
}

// renameWhiteout is RENAME_WHITEOUT: the source name is left holding a
// whiteout, a character device 0:0 with mode 0, as overlayfs uses on an
// upper layer.
const renameWhiteout = 4

// Rename implements fuse.RawFileSystem. A whiteout rename is a plain
// rename followed by a mknod of the whiteout; the kernel holds both
// directories locked for the whole request, so no one sees the name
// empty in between. The whiteout's inode is taken before the rename, so a
// full inode table refuses the whole request.
func (w *wireFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	defer w.fsys.changing()()
	if in.Flags&renameWhiteout == 0 {
		return w.RawFileSystem.Rename(cancel, in, oldName, newName)
	}
	if in.Flags&^renameWhiteout != 0 && in.Flags&^renameWhiteout != 1 /* RENAME_NOREPLACE */ {
		return fuse.EINVAL
	}
	if errno := w.fsys.reserveInode(); errno != 0 {
		return fuse.Status(errno)
	}
	plain := *in
	plain.Flags &^= renameWhiteout
	st := w.RawFileSystem.Rename(cancel, &plain, oldName, newName)
	w.fsys.freeIno() // Mknod takes it again
	if !st.Ok() {
		return st
	}
	mk := fuse.MknodIn{InHeader: in.InHeader, Mode: syscall.S_IFCHR, Rdev: 0}
	var out fuse.EntryOut
	if st := w.RawFileSystem.Mknod(cancel, &mk, oldName, &out); !st.Ok() {
		w.fsys.log.Warn("rename: the whiteout could not be made after the rename")
		return st
	}
	// The kernel never looked the whiteout up: drop the reference the
	// reply would have given it.
	w.RawFileSystem.Forget(out.NodeId, 1)
	return fuse.OK
}

// The requests below change the tree. With a store, each holds the
// quiesce lock for reading while go-fuse's bridge and the node serve it,
// so that compaction sees no change half made (see persist.go). Requests
// served inside them (kill, the whiteout's mknod) call RawFileSystem
// directly and do not take it again.

func (w *wireFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	defer w.fsys.changing()()
	defer w.fsys.serveOpen(cancel)()
	return w.RawFileSystem.Create(cancel, in, name, out)
}

func (w *wireFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	defer w.fsys.changing()()
	defer w.fsys.serveOpen(cancel)()
	return w.RawFileSystem.Tmpfile(cancel, in, out)
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

func (w *wireFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Mknod(cancel, in, name, out)
}

func (w *wireFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (w *wireFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Symlink(cancel, header, target, name, out)
}

func (w *wireFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Link(cancel, in, name, out)
}

func (w *wireFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Unlink(cancel, header, name)
}

func (w *wireFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Rmdir(cancel, header, name)
}

func (w *wireFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.SetAttr(cancel, in, out)
}

func (w *wireFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (w *wireFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.RemoveXAttr(cancel, header, attr)
}

func (w *wireFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Fallocate(cancel, in)
}

func (w *wireFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	defer w.fsys.changing()()
	return w.RawFileSystem.CopyFileRange(cancel, in)
}
