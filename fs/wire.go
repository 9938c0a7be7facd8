package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
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
