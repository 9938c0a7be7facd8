package fs

import (
	"context"

	gofs "github.com/hanwen/go-fuse/v2/fs"
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
