package fs

import (
	"context"
	"sort"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ = (gofs.NodeOpendirHandler)((*Dir)(nil))

// OpendirHandle implements gofs.NodeOpendirHandler.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

// dirHandle is an open directory stream. It reads a snapshot of the
// entries taken at the first read and again at every rewind to offset 0,
// so offsets stay valid while entries are added and removed: an entry
// present throughout is listed exactly once, and rewinddir sees the
// directory as it is now, as POSIX asks.
type dirHandle struct {
	d *Dir

	mu sync.Mutex
	// Protected by mu.
	list []fuse.DirEntry // nil until the first read after open or rewind
	pos  int
}

var (
	_ = (gofs.FileReaddirenter)((*dirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*dirHandle)(nil))
	_ = (gofs.FileFsyncdirer)((*dirHandle)(nil))
)

// Fsyncdir implements gofs.FileFsyncdirer: with a store, the journal is
// made durable; without one, names and attributes live in memory only.
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return h.d.fsys.syncMeta()
}

// Readdirent implements gofs.FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.list == nil {
		h.list = h.d.snapshot()
		h.d.touchAtime()
	}
	if h.pos >= len(h.list) {
		return nil, 0
	}
	e := h.list[h.pos]
	h.pos++
	e.Off = uint64(h.pos)
	return &e, 0
}

// Seekdir implements gofs.FileSeekdirer.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 {
		h.list = nil
	} else if h.list == nil || off > uint64(len(h.list)) {
		return syscall.EINVAL
	}
	h.pos = int(off)
	return 0
}

// snapshot lists d's entries: ".", "..", then the others newest first,
// as tmpfs lists them.
func (d *Dir) snapshot() []fuse.DirEntry {
	children := d.Children()
	list := make([]fuse.DirEntry, 0, len(children)+2)
	parentIno := d.ino
	if _, p := d.Parent(); p != nil {
		parentIno = p.StableAttr().Ino
	}
	list = append(list,
		fuse.DirEntry{Name: ".", Ino: d.ino, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: parentIno, Mode: syscall.S_IFDIR})
	for name, ch := range children {
		st := ch.StableAttr()
		list = append(list, fuse.DirEntry{Name: name, Ino: st.Ino, Mode: st.Mode})
	}
	ents := list[2:]
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].Ino != ents[j].Ino {
			return ents[i].Ino > ents[j].Ino
		}
		return ents[i].Name < ents[j].Name
	})
	return list
}
