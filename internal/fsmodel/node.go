package fsmodel

import (
	"bytes"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// PageSize is the unit in which the model allocates a file's data.
const PageSize = 4096

// Type is the kind of a node: the S_IFMT bits of its st_mode.
type Type uint32

// The node types the model keeps.
const (
	File    Type = unix.S_IFREG
	Dir     Type = unix.S_IFDIR
	Symlink Type = unix.S_IFLNK
	FIFO    Type = unix.S_IFIFO
)

// TypeOf returns the type in an st_mode.
func TypeOf(mode uint32) Type { return Type(mode & unix.S_IFMT) }

// String names the type in words ("file", "directory", ...).
func (t Type) String() string {
	switch uint32(t) {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("type %#o", uint32(t))
}

// dirEntType is the type readdir reports for t.
func (t Type) dirEntType() os.FileMode {
	switch t {
	case Dir:
		return os.ModeDir
	case Symlink:
		return os.ModeSymlink
	case FIFO:
		return os.ModeNamedPipe
	}
	return 0
}

// Page states.
const (
	pageFalloc byte = 1 // allocated by fallocate, never written: a hole for SEEK_DATA
	pageData   byte = 2 // written (or copied, or mapped and stored)
)

// page is one PageSize page of a file.
type page struct {
	state byte
	b     []byte // PageSize bytes, nil while all zero
}

// Node is an inode of the model. Hard links are names of one Node.
type Node struct {
	Type     Type
	Perm     uint32 // permission bits (st_mode & 07777)
	Uid, Gid uint32
	Nlink    int    // names of a non-directory (a directory's is 2 + its subdirectories)
	Size     int64  // st_size of a file or symlink (a directory's is not modelled)
	Target   string // symlinks
	Xattrs   map[string][]byte
	Kids     map[string]*Node // directories: name -> node
	Parent   *Node            // directories: the one that holds it (the root: itself)
	// Mtime is the mtime when the model knows it (set by Utimes), nil
	// when the filesystem may have set it.
	Mtime *unix.Timespec

	pages map[int64]*page

	// ambiguous: the data may be as now or as before (see MarkAmbiguous).
	ambiguous bool
	before    []byte
}

func newNode(t Type, perm uint32) *Node {
	n := &Node{Type: t, Perm: perm, Xattrs: map[string][]byte{}}
	switch t {
	case Dir:
		n.Kids = map[string]*Node{}
	case File:
		n.pages = map[int64]*page{}
	}
	return n
}

// Subdirs counts the directories in directory n.
func (n *Node) Subdirs() int {
	c := 0
	for _, k := range n.Kids {
		if k.Type == Dir {
			c++
		}
	}
	return c
}

// WantNlink is the st_nlink the model expects of n.
func (n *Node) WantNlink() int {
	if n.Type == Dir {
		return 2 + n.Subdirs()
	}
	return n.Nlink
}

// MarkAmbiguous records the data of n as it is now, before an operation
// whose outcome is unknown is applied: Compare then accepts each byte as
// before or after it, and the size of either (or, for an operation that
// grew the file, a page boundary between them). Marking an ambiguous node
// again keeps the first record.
func (n *Node) MarkAmbiguous() {
	if !n.ambiguous {
		n.ambiguous = true
		n.before = n.Data()
	}
}

// Ambiguous reports whether n was marked and not settled since.
func (n *Node) Ambiguous() bool { return n.ambiguous }

// Before is the data of an ambiguous node before the operation.
func (n *Node) Before() []byte { return n.before }

// Settle makes data, what the filesystem shows, the data of n, which is
// no longer ambiguous.
func (n *Node) Settle(data []byte) {
	n.SetData(data)
	n.ambiguous, n.before = false, nil
}

// SetData replaces the data of file n by b, every page of it data.
func (n *Node) SetData(b []byte) {
	n.pages = map[int64]*page{}
	n.Size = 0
	n.WriteAt(b, 0)
}

// Data returns the whole content of file n.
func (n *Node) Data() []byte { return n.ReadAt(0, n.Size) }

func (n *Node) page(i int64) *page {
	pg := n.pages[i]
	if pg == nil {
		pg = &page{state: pageFalloc}
		n.pages[i] = pg
	}
	return pg
}

// WriteAt writes b at off, as pwrite(2) does: the pages become data and
// the file grows to off+len(b) if it was shorter.
func (n *Node) WriteAt(b []byte, off int64) {
	if len(b) == 0 {
		return // pwrite(2) of nothing changes nothing
	}
	for len(b) > 0 {
		i := off / PageSize
		po := off % PageSize
		k := min(int64(len(b)), PageSize-po)
		pg := n.page(i)
		pg.state = pageData
		if pg.b == nil {
			pg.b = make([]byte, PageSize)
		}
		copy(pg.b[po:], b[:k])
		b = b[k:]
		off += k
	}
	n.Size = max(n.Size, off)
	n.Mtime = nil
}

// ReadAt returns the bytes of [off, off+ln), zeros where nothing was
// written (it does not stop at the end of the file).
func (n *Node) ReadAt(off, ln int64) []byte {
	out := make([]byte, ln)
	for d := int64(0); d < ln; {
		i := (off + d) / PageSize
		po := (off + d) % PageSize
		k := min(ln-d, PageSize-po)
		if pg := n.pages[i]; pg != nil && pg.b != nil {
			copy(out[d:d+k], pg.b[po:po+k])
		}
		d += k
	}
	return out
}

// Read returns what pread(2) of ln bytes at off returns: up to the end of
// the file.
func (n *Node) Read(off, ln int64) []byte {
	return n.ReadAt(off, max(0, min(ln, n.Size-off)))
}

// zeroBytes zeroes [off, end) inside pages without changing their state.
func (n *Node) zeroBytes(off, end int64) {
	for off < end {
		i := off / PageSize
		po := off % PageSize
		k := min(end-off, PageSize-po)
		if pg := n.pages[i]; pg != nil && pg.b != nil {
			clear(pg.b[po : po+k])
		}
		off += k
	}
}

// punch frees the whole pages of [off, end) and zeroes the partial ones.
func (n *Node) punch(off, end int64) {
	first := (off + PageSize - 1) / PageSize
	last := end / PageSize // exclusive
	for i := range n.pages {
		if i >= first && i < last {
			delete(n.pages, i)
		}
	}
	n.zeroBytes(off, end)
}

// Truncate sets the size as shmem_setattr does: to a size not above the
// old one, every page past the new size goes (KEEP_SIZE allocations beyond
// EOF included) and the tail of the partial page is zeroed. A negative
// size is EINVAL.
func (n *Node) Truncate(sz int64) unix.Errno {
	if sz < 0 {
		return unix.EINVAL
	}
	if sz <= n.Size {
		keep := (sz + PageSize - 1) / PageSize
		for i := range n.pages {
			if i >= keep {
				delete(n.pages, i)
			}
		}
		n.zeroBytes(sz, keep*PageSize)
	}
	n.Size = sz
	n.Mtime = nil
	return 0
}

// Fallocate does fallocate(2) with mode 0, FALLOC_FL_KEEP_SIZE,
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE or FALLOC_FL_ZERO_RANGE (with
// or without KEEP_SIZE); other modes are EOPNOTSUPP. tmpfs has no
// ZERO_RANGE: the model makes its range read as zeros, its whole pages
// fallocated and its partial ones keep their state.
func (n *Node) Fallocate(mode uint32, off, ln int64) unix.Errno {
	if off < 0 || ln <= 0 {
		return unix.EINVAL
	}
	switch mode {
	case 0, unix.FALLOC_FL_KEEP_SIZE:
		// tmpfs (shmem_get_folio_gfp with SGP_FALLOC) initialises a
		// page fallocated by an earlier call and marks it uptodate: it
		// becomes data. A page new to this call stays a hole.
		for i := off / PageSize; i < (off+ln+PageSize-1)/PageSize; i++ {
			if pg := n.pages[i]; pg != nil {
				pg.state = pageData
			} else {
				n.page(i)
			}
		}
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		n.punch(off, off+ln)
	case unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE:
		n.punch(off, off+ln)
		for i := (off + PageSize - 1) / PageSize; i < (off+ln)/PageSize; i++ {
			n.page(i)
		}
	default:
		return unix.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		n.Size = max(n.Size, off+ln)
	}
	n.Mtime = nil
	return 0
}

// AllData reports whether every page that [off, end) touches is data.
func (n *Node) AllData(off, end int64) bool {
	for i := off / PageSize; i*PageSize < end; i++ {
		if pg := n.pages[i]; pg == nil || pg.state != pageData {
			return false
		}
	}
	return true
}

// AnyFalloc reports whether a page that [off, end) touches is allocated
// without data.
func (n *Node) AnyFalloc(off, end int64) bool {
	if end-off > 64<<20 {
		for i, pg := range n.pages {
			if pg.state == pageFalloc && i >= off/PageSize && i*PageSize < end {
				return true
			}
		}
		return false
	}
	for i := off / PageSize; i*PageSize < end; i++ {
		if pg := n.pages[i]; pg != nil && pg.state == pageFalloc {
			return true
		}
	}
	return false
}

// Blocks is the st_blocks (512-byte units) of the pages allocated.
func (n *Node) Blocks() int64 { return int64(len(n.pages)) * PageSize / 512 }

// Pages is the number of pages allocated (data or fallocated).
func (n *Node) Pages() int { return len(n.pages) }

// DataExtents are the [start, end) ranges SEEK_DATA/SEEK_HOLE report on
// tmpfs: the pages with data below EOF, adjacent ones merged.
func (n *Node) DataExtents() [][2]int64 {
	return n.pageRuns(func(state byte) bool { return state == pageData })
}

// AllocRuns are the runs of allocated pages (data or fallocated) below EOF.
func (n *Node) AllocRuns() [][2]int64 {
	return n.pageRuns(func(byte) bool { return true })
}

// pageRuns are the byte ranges below EOF of the pages whose state keep
// accepts, adjacent pages merged.
func (n *Node) pageRuns(keep func(byte) bool) [][2]int64 {
	var idx []int64
	for i, pg := range n.pages {
		if keep(pg.state) && i*PageSize < n.Size {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	var runs [][2]int64
	for _, i := range idx {
		s, e := i*PageSize, min((i+1)*PageSize, n.Size)
		if len(runs) > 0 && runs[len(runs)-1][1] == s {
			runs[len(runs)-1][1] = e
		} else {
			runs = append(runs, [2]int64{s, e})
		}
	}
	return runs
}

// clone copies n's own state (not its Kids or Parent).
func (n *Node) clone() *Node {
	c := *n
	c.Xattrs = make(map[string][]byte, len(n.Xattrs))
	for k, v := range n.Xattrs {
		c.Xattrs[k] = bytes.Clone(v)
	}
	if n.pages != nil {
		c.pages = make(map[int64]*page, len(n.pages))
		for i, pg := range n.pages {
			cp := *pg
			cp.b = bytes.Clone(pg.b)
			c.pages[i] = &cp
		}
	}
	if n.Mtime != nil {
		ts := *n.Mtime
		c.Mtime = &ts
	}
	c.before = bytes.Clone(n.before)
	c.Kids, c.Parent = nil, nil
	return &c
}
