package fs

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ = (gofs.NodeOpendirHandler)((*Dir)(nil))

// OpendirHandle implements gofs.NodeOpendirHandler. The flags of the
// reply are set by wireFS.OpenDir (cacheFlags): go-fuse's bridge would
// turn FOPEN_CACHE_DIR alone into FOPEN_CACHE_DIR|FOPEN_KEEP_CACHE.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

// cacheFlags returns the FOPEN flags of a new open of d: whether the
// kernel may cache the listing (FOPEN_CACHE_DIR), and whether it may keep
// the listing it cached for earlier opens (FOPEN_KEEP_CACHE; without it
// the kernel drops the listing as the open is answered).
//
// The kernel drops a cached listing itself when it changes the directory
// through a request (create, mkdir, mknod, symlink, link, unlink, rmdir,
// rename, whose replies bump the directory's i_version; the kernel checks
// it, and mtime, at every read from offset 0). The server changes a
// listing on its own in one case, the ".." of a directory moved to
// another parent, and drops it then (wireFS.dirMoved). A RENAME_WHITEOUT's
// whiteout is added within the rename's request, which the kernel counts
// as a change of the directory.
//
// But a listing the kernel's cache answers does not reach the server,
// which keeps atime (atime.go). So the cache is kept only while the next
// read would not update atime (relatime: until the directory changes, its
// ctime moves, or a day passes; always under noatime, nodiratime and on a
// read-only mount); when it would, the open starts afresh from the server
// and caches what it reads. Under strictatime every listing updates
// atime (unless nodiratime), and the kernel caches none. As with a file's page cache (lend.go)
// a rewinddir within one open may be answered from what the open cached,
// though a chmod since would make it due under relatime.
func (d *Dir) cacheFlags() uint32 {
	if r := d.fsys.atime.Load(); r.strict && !r.noDir {
		return 0
	}
	d.mu.Lock()
	due := d.atimeDueLocked(time.Now())
	d.mu.Unlock()
	if due {
		return fuse.FOPEN_CACHE_DIR
	}
	return fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
}

// dirHandle is an open directory stream. It reads a snapshot of the
// entries taken at the first read and again at every rewind to offset 0,
// so offsets stay valid while entries are added and removed: an entry
// present throughout is listed exactly once, and rewinddir sees the
// directory as it is now, as POSIX asks.
//
// An offset names a place in the order of the entries, not an index in
// one snapshot (dirCookie), so that a stream resumes at the right entry in
// any snapshot: the kernel's cache of the listing (cacheFlags) holds the
// offsets of whichever open filled it, and a stream it served in part
// goes on through the server, on a handle that has read nothing yet, when
// the cache is dropped under it.
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
	h.loadLocked()
	if h.pos >= len(h.list) {
		return nil, 0
	}
	e := h.list[h.pos]
	h.pos++
	return &e, 0
}

// loadLocked takes the snapshot, if there is none, and updates atime for
// the read.
//
// Preconditions: h.mu is held.
func (h *dirHandle) loadLocked() {
	if h.list == nil {
		h.list = h.d.snapshot()
		h.d.touchAtime()
	}
}

// Seekdir implements gofs.FileSeekdirer. Offset 0 rewinds; any other is
// the offset of an entry listed before (by this handle or, through the
// kernel's cache, by another), and the stream goes on after the place
// that entry has in the order, whether or not it is still there.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 {
		h.list = nil
		h.pos = 0
		return 0
	}
	h.loadLocked()
	h.pos = seekCookie(h.list, off)
	return 0
}

// The offsets of a listing (dirCookie). "." and ".." come first, then the
// others newest first: by inode number, highest first, and the links of one
// inode by name. The entry that is the rank'th link of inode ino so listed
// has the offset ino<<cookieRankBits | rank (the rank saturates: past
// cookieRankMax links of one inode in one directory, a seek lands after
// the cookieRankMax'th).
const (
	cookieDot      = 1 // the offset of "."
	cookieDotDot   = 2 // of ".."
	cookieRankBits = 8
	cookieRankMax  = 1<<cookieRankBits - 1
)

// dirCookie is the offset of the rank'th link of ino in the listing.
func dirCookie(ino uint64, rank int) uint64 {
	return ino<<cookieRankBits | uint64(min(rank, cookieRankMax))
}

// seekCookie returns the index in list (a snapshot) of the first entry
// after the place off names.
func seekCookie(list []fuse.DirEntry, off uint64) int {
	switch {
	case off == cookieDot:
		return 1
	case off == cookieDotDot:
		return 2
	case off < 1<<cookieRankBits:
		// No entry has it; the whole listing follows "." and "..".
		return 2
	}
	ents := list[2:]
	ino, rank := off>>cookieRankBits, int(off&cookieRankMax)
	// The first entry of inode ino or of a lower one.
	i := sort.Search(len(ents), func(i int) bool { return ents[i].Ino <= ino })
	for r := 0; i < len(ents) && ents[i].Ino == ino && r <= rank; r++ {
		i++
	}
	return 2 + i
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
		fuse.DirEntry{Name: ".", Ino: d.ino, Mode: syscall.S_IFDIR, Off: cookieDot},
		fuse.DirEntry{Name: "..", Ino: parentIno, Mode: syscall.S_IFDIR, Off: cookieDotDot})
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
	rank := 0
	for i := range ents {
		if i > 0 && ents[i].Ino == ents[i-1].Ino {
			rank++
		} else {
			rank = 0
		}
		ents[i].Off = dirCookie(ents[i].Ino, rank)
	}
	return list
}
