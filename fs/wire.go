package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// wireFS sits between the kernel and go-fuse's node bridge: every request
// that changes the tree passes through its wrappers (changes.go), and it
// serves what go-fuse does not pass on to nodes: the flags of WRITE and
// OPEN (privilege dropping, see killpriv.go) and RENAME with
// RENAME_WHITEOUT.
type wireFS struct {
	fuse.RawFileSystem
	fsys *filesystem
}

// whiteoutRename is a rename with RENAME_WHITEOUT, which leaves the source
// name holding a whiteout (a character device 0:0 with mode 0, as overlayfs
// uses on an upper layer): a plain rename
// followed by a mknod of the whiteout; the kernel holds both directories
// locked for the whole request, so no one sees the name empty in between.
// The whiteout's inode is taken before the rename, so a full inode table
// refuses the whole request.
func (w *wireFS) whiteoutRename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if in.Flags&^unix.RENAME_WHITEOUT != 0 && in.Flags&^unix.RENAME_WHITEOUT != unix.RENAME_NOREPLACE {
		return fuse.EINVAL
	}
	if errno := w.fsys.reserveInode(); errno != 0 {
		return fuse.Status(errno)
	}
	plain := *in
	plain.Flags &^= unix.RENAME_WHITEOUT
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
