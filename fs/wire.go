package fs

import (
	"context"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
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

// cancelOf returns the cancel channel of the request of ctx, which names
// the request for wireFS (nil if ctx is not a request's).
func cancelOf(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Cancel
	}
	return nil
}
