package fs

import (
	"context"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// wireFS sits between the kernel and go-fuse's node bridge: every request
// that changes the tree passes through its wrappers (changes.go), and it
// serves what go-fuse does not pass on to nodes: the flags of WRITE and
// OPEN (privilege dropping, see killpriv.go), RENAME with
// RENAME_WHITEOUT, and the caching flags of OPENDIR.
type wireFS struct {
	fuse.RawFileSystem
	fsys *filesystem
}

// whiteoutRename is a rename with RENAME_WHITEOUT, which leaves the source
// name holding a whiteout (a character device 0:0 with mode 0, as overlayfs
// uses on an upper layer). Dir.Rename makes the whiteout and commits it
// with the rename, in one frame; go-fuse's bridge then moves the source,
// and the whiteout is put in the tree here, in the name it left. The
// kernel holds both directories locked for the whole request, so no one
// sees the name empty in between.
func (w *wireFS) whiteoutRename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	st := w.RawFileSystem.Rename(cancel, in, oldName, newName)
	v, ok := w.fsys.whiteouts.LoadAndDelete(cancel)
	if st.Ok() && ok {
		e := v.(whiteoutEntry)
		e.dir.AddChild(e.name, e.ch, false)
	}
	return st
}

// whiteoutEntry is a whiteout Dir.Rename made, for whiteoutRename to put
// in the tree.
type whiteoutEntry struct {
	dir  *Dir
	name string
	ch   *gofs.Inode
}

// OpenDir implements fuse.RawFileSystem: the reply says whether the
// kernel may cache the listing and keep what it cached (Dir.cacheFlags).
func (w *wireFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := w.RawFileSystem.OpenDir(cancel, in, out)
	if !st.Ok() {
		return st
	}
	out.OpenFlags &^= fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	if d := w.fsys.dirOf(in.NodeId); d != nil {
		out.OpenFlags |= d.cacheFlags()
	}
	return st
}

// dirMoved drops the kernel's cached listing of a directory a rename
// moved to another parent: its ".." names the old one. It runs as the
// rename ends, once go-fuse's bridge has moved the Inode (which the
// listing's ".." comes from) and before the reply; the kernel holds the
// moved directory locked until then, so no listing of it can start in
// between. dir and name are the directory's new place.
func (w *wireFS) dirMoved(dir uint64, name string) {
	p := w.fsys.dirOf(dir)
	if p == nil {
		return
	}
	ch := p.GetChild(name)
	if ch == nil {
		return
	}
	if _, ok := ch.Operations().(*Dir); ok {
		// An offset of 0 drops the pages of the listing; the kernel
		// takes no lock of the directory for it.
		ch.NotifyContent(0, 0)
	}
}

// dirOf returns the directory numbered ino, or nil.
func (fsys *filesystem) dirOf(ino uint64) *Dir {
	if ino == fsys.root.ino {
		return fsys.root
	}
	n := fsys.nodes.get(ino)
	if n == nil {
		return nil
	}
	d, _ := n.Operations().(*Dir)
	return d
}

// cancelOf returns the cancel channel of the request of ctx, which names
// the request for wireFS (nil if ctx is not a request's).
func cancelOf(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Cancel
	}
	return nil
}
