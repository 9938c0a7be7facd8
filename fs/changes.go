package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Every request that changes the tree, or commits to the journal, comes
// through here. With a store, each holds the quiesce lock for reading
// while go-fuse's bridge and the node serve it, so that compaction never
// sees a change half made (commit.go); the bridge changes its own tree of
// Inodes after the node's method returns, so the lock is taken here, around
// the bridge, not in the nodes. A request served inside one of these (the
// SETATTR that kills privileges before a write or an open) calls the
// embedded RawFileSystem directly and does not take it again.
//
// Adding a FUSE operation: if it can change anything a snapshot records
// (names, attributes, xattrs, sizes, the end of an inode), add its wrapper
// here, starting with `defer w.fsys.changing()()`; if it cannot, add it to
// the reviewed list of unwrapped operations in changes_test.go, with the
// reason. That test fails for an operation of fuse.RawFileSystem that is in
// neither.

// Create implements fuse.RawFileSystem.
func (w *wireFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	defer w.fsys.changing()()
	defer w.fsys.serveOpen(cancel)()
	return w.RawFileSystem.Create(cancel, in, name, out)
}

// Tmpfile implements fuse.RawFileSystem.
func (w *wireFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	defer w.fsys.changing()()
	defer w.fsys.serveOpen(cancel)()
	return w.RawFileSystem.Tmpfile(cancel, in, out)
}

// Open implements fuse.RawFileSystem: O_TRUNC, and privileges dropped
// (killpriv.go).
func (w *wireFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer w.fsys.changing()()
	defer w.fsys.serveOpen(cancel)()
	if in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		w.kill(cancel, &in.InHeader)
	}
	return w.RawFileSystem.Open(cancel, in, out)
}

// Mknod implements fuse.RawFileSystem.
func (w *wireFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Mknod(cancel, in, name, out)
}

// Mkdir implements fuse.RawFileSystem.
func (w *wireFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Mkdir(cancel, in, name, out)
}

// Symlink implements fuse.RawFileSystem.
func (w *wireFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Symlink(cancel, header, target, name, out)
}

// Link implements fuse.RawFileSystem.
func (w *wireFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Link(cancel, in, name, out)
}

// Unlink implements fuse.RawFileSystem.
func (w *wireFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Unlink(cancel, header, name)
}

// Rmdir implements fuse.RawFileSystem.
func (w *wireFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Rmdir(cancel, header, name)
}

// Rename implements fuse.RawFileSystem, with RENAME_WHITEOUT; a directory
// moved to another parent has its cached listing dropped (wire.go).
func (w *wireFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	defer w.fsys.changing()()
	var st fuse.Status
	if in.Flags&unix.RENAME_WHITEOUT != 0 {
		st = w.whiteoutRename(cancel, in, oldName, newName)
	} else {
		st = w.RawFileSystem.Rename(cancel, in, oldName, newName)
	}
	if st.Ok() && in.Newdir != in.NodeId {
		w.dirMoved(in.Newdir, newName)
		if in.Flags&unix.RENAME_EXCHANGE != 0 {
			w.dirMoved(in.NodeId, oldName)
		}
	}
	return st
}

// SetAttr implements fuse.RawFileSystem.
func (w *wireFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.SetAttr(cancel, in, out)
}

// SetXAttr implements fuse.RawFileSystem.
func (w *wireFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

// RemoveXAttr implements fuse.RawFileSystem.
func (w *wireFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.RemoveXAttr(cancel, header, attr)
}

// Write implements fuse.RawFileSystem: privileges dropped (killpriv.go).
func (w *wireFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	defer w.fsys.changing()()
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		w.kill(cancel, &in.InHeader)
	}
	return w.RawFileSystem.Write(cancel, in, data)
}

// Writev implements fuse.RawFileSystem; go-fuse tries it before Write.
func (w *wireFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	defer w.fsys.changing()()
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		w.kill(cancel, &in.InHeader)
	}
	return w.RawFileSystem.Writev(cancel, in, data)
}

// Fallocate implements fuse.RawFileSystem.
func (w *wireFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	defer w.fsys.changing()()
	return w.RawFileSystem.Fallocate(cancel, in)
}

// CopyFileRange implements fuse.RawFileSystem.
func (w *wireFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	defer w.fsys.changing()()
	return w.RawFileSystem.CopyFileRange(cancel, in)
}
