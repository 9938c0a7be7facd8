package fsmodel

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Options choose what Compare compares besides what it always does: the
// names of every directory, the type of every node (readdir's and
// lstat's), that the names of one node are one inode and those of
// different nodes different ones, the link counts, the sizes of files and
// symlinks, the mtimes the model knows, the extended attributes, symlink
// targets and file contents. The zero value compares that much.
type Options struct {
	// Perm compares permission bits; Owner, uid and gid.
	Perm, Owner bool
	// Holes compares st_blocks and the SEEK_DATA/SEEK_HOLE extents of
	// files with the model's pages (tmpfs's allocation).
	Holes bool
	// NlinkPresent compares the st_nlink of a non-directory with the
	// number of its names the walk found, and a directory's not at all:
	// for trees some paths of which may be missing (MayLack).
	NlinkPresent bool
	// XattrPrefix limits the extended attributes compared to the names
	// that begin with it ("" compares all).
	XattrPrefix string
	// SampleAbove, if positive, reads a file larger than it in pieces:
	// every allocated run, the first and the last page and three pieces
	// at places Rand picks; a smaller file is read whole, as every file
	// is by default.
	SampleAbove int64
	Rand        *rand.Rand
	// Limit stops the walk once it found that many differences (0: no
	// limit).
	Limit int
	// MayLack reports whether the model's path may be missing (and, if
	// it is a directory, which of its paths may then be missing too).
	MayLack func(path string) bool
	// Extra reports whether a path the model lacks may be there; what
	// lies below it is not walked.
	Extra func(path string) bool
	// Content, if set, judges the whole content got of file n instead of
	// ContentDiff, and the size with it: it returns "" when it agrees.
	Content func(path string, n *Node, got []byte) string
}

// checker is one comparison in progress.
type checker struct {
	o      *Options
	dir    string
	diffs  []Diff
	inoOf  map[*Node]uint64
	nodeOf map[uint64]inoSeen
	// NlinkPresent: the names of each node found, and what they said.
	names  map[*Node]int
	nlinks []nlinkSeen
}

type inoSeen struct {
	n    *Node
	path string
}

type nlinkSeen struct {
	n     *Node
	path  string
	nlink uint64
}

func newChecker(dir string, o *Options) *checker {
	if o == nil {
		o = &Options{}
	}
	return &checker{o: o, dir: dir, inoOf: map[*Node]uint64{}, nodeOf: map[uint64]inoSeen{}, names: map[*Node]int{}}
}

func (c *checker) full() bool { return c.o.Limit > 0 && len(c.diffs) >= c.o.Limit }

func (c *checker) add(path, class, format string, args ...any) {
	if !c.full() {
		c.diffs = append(c.diffs, Diff{Path: path, Class: class, Msg: fmt.Sprintf(format, args...)})
	}
}

func (c *checker) abs(p string) string { return filepath.Join(c.dir, p) }

// Compare walks the tree at dir and returns how it differs from the model,
// directory by directory in the order of the names (see Options for what
// is compared). No difference: nil.
func Compare(dir string, m *FS, o *Options) []Diff {
	c := newChecker(dir, o)
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		c.add("", "stat", "lstat %s: %v", dir, err)
		return c.diffs
	}
	root := m.Root()
	c.ino(root, st.Ino, "")
	if c.node("", root, handle{path: dir, fd: -1}, &st) {
		c.walk("", root)
	}
	c.nlinkPresent()
	return c.diffs
}

// CompareFD compares node n with the file open as fd (one without a name,
// for one), called label in the diffs.
func CompareFD(fd int, label string, n *Node, o *Options) []Diff {
	c := newChecker("", o)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		c.add(label, "stat", "fstat: %v", err)
		return c.diffs
	}
	c.node(label, n, handle{fd: fd}, &st)
	return c.diffs
}

// walk compares the entries of directory d at rel.
func (c *checker) walk(rel string, d *Node) {
	ents, err := os.ReadDir(c.abs(rel))
	if err != nil {
		c.add(rel, "names", "readdir: %v", err)
		return
	}
	got := map[string]os.DirEntry{}
	all := map[string]bool{}
	for _, e := range ents {
		got[e.Name()] = e
		all[e.Name()] = true
	}
	for name := range d.Kids {
		all[name] = true
	}
	names := sortedNames(all)
	for _, name := range names {
		p := Join(rel, name)
		n, e := d.Kids[name], got[name]
		switch {
		case n != nil && e == nil:
			if c.o.MayLack != nil && c.o.MayLack(p) {
				c.lacking(p, n)
			} else {
				c.add(p, "names", "missing (want a %s)", n.Type)
			}
		case n == nil && (c.o.Extra == nil || !c.o.Extra(p)):
			var st unix.Stat_t
			if err := unix.Lstat(c.abs(p), &st); err != nil {
				c.add(p, "names", "unexpected name (lstat: %v)", err)
			} else {
				c.add(p, "names", "unexpected %s (mode %07o, size %d)", TypeOf(st.Mode), st.Mode, st.Size)
			}
		}
	}
	for _, name := range names {
		n, e := d.Kids[name], got[name]
		if n == nil || e == nil || c.full() {
			continue
		}
		p := Join(rel, name)
		if want := n.Type.dirEntType(); e.Type() != want {
			c.add(p, "type", "readdir type %v, want %v (a %s)", e.Type(), want, n.Type)
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(c.abs(p), &st); err != nil {
			c.add(p, "stat", "lstat: %v", err)
			continue
		}
		c.ino(n, st.Ino, p)
		if c.node(p, n, handle{path: c.abs(p), fd: -1}, &st) && n.Type == Dir {
			c.walk(p, n)
		}
	}
}

// lacking checks, below a directory allowed to be missing, that every
// path is allowed to be missing too.
func (c *checker) lacking(p string, n *Node) {
	for _, k := range sortedNames(n.Kids) {
		q := Join(p, k)
		if c.o.MayLack(q) {
			c.lacking(q, n.Kids[k])
		} else {
			c.add(q, "names", "missing (want a %s; the directory holding it is missing too)", n.Kids[k].Type)
		}
	}
}

// ino checks that the names of one node are one inode, and those of
// different nodes different ones.
func (c *checker) ino(n *Node, ino uint64, p string) {
	if prev, ok := c.inoOf[n]; ok && prev != ino {
		c.add(p, "ino", "st_ino %d, but another name of the same inode has %d", ino, prev)
	}
	if prev, ok := c.nodeOf[ino]; ok && prev.n != n {
		c.add(p, "ino", "st_ino %d is also that of %s, another inode of the model", ino, PathName(prev.path))
	}
	c.inoOf[n] = ino
	if _, ok := c.nodeOf[ino]; !ok {
		c.nodeOf[ino] = inoSeen{n, p}
	}
}

// nlinkPresent does the link count check of Options.NlinkPresent, once
// the walk has counted the names.
func (c *checker) nlinkPresent() {
	for _, s := range c.nlinks {
		if int(s.nlink) != c.names[s.n] {
			c.add(s.path, "nlink", "st_nlink %d, but %d of its names are there", s.nlink, c.names[s.n])
		}
	}
}

// node compares one node (reached through h) with what lstat or fstat
// said of it. It returns false if the types differ: nothing more of it
// was compared.
func (c *checker) node(p string, n *Node, h handle, st *unix.Stat_t) bool {
	if c.full() {
		return false
	}
	if TypeOf(st.Mode) != n.Type {
		c.add(p, "type", "a %s (mode %07o), want a %s", TypeOf(st.Mode), st.Mode, n.Type)
		return false
	}
	if c.o.Perm && st.Mode&0o7777 != n.Perm {
		c.add(p, "mode", "permissions %04o, model %04o", st.Mode&0o7777, n.Perm)
	}
	if c.o.Owner && (st.Uid != n.Uid || st.Gid != n.Gid) {
		c.add(p, "owner", "owner %d:%d, model %d:%d", st.Uid, st.Gid, n.Uid, n.Gid)
	}
	switch {
	case !c.o.NlinkPresent:
		if int(st.Nlink) != n.WantNlink() {
			c.add(p, "nlink", "st_nlink %d, model %d", st.Nlink, n.WantNlink())
		}
	case n.Type != Dir:
		c.names[n]++
		c.nlinks = append(c.nlinks, nlinkSeen{n, p, uint64(st.Nlink)})
	}
	if n.Mtime != nil && st.Mtim != *n.Mtime {
		c.add(p, "mtime", "mtime %d.%09d, model (set by utimensat) %d.%09d", st.Mtim.Sec, st.Mtim.Nsec, n.Mtime.Sec, n.Mtime.Nsec)
	}
	if n.Type != Dir && !n.ambiguous && (n.Type != File || c.o.Content == nil) && st.Size != n.Size {
		c.add(p, "size", "st_size %d, model %d", st.Size, n.Size)
	}
	if x, err := readXattrs(h, c.o.XattrPrefix); err != nil {
		c.add(p, "xattr", "%v", err)
	} else {
		want := map[string][]byte{}
		for k, v := range n.Xattrs {
			if len(k) >= len(c.o.XattrPrefix) && k[:len(c.o.XattrPrefix)] == c.o.XattrPrefix {
				want[k] = v
			}
		}
		if d := XattrDiff(want, x); d != "" {
			c.add(p, "xattr", "xattrs: %s", d)
		}
	}
	switch n.Type {
	case Symlink:
		buf := make([]byte, 4096)
		k, err := unix.Readlink(h.path, buf)
		if err != nil || string(buf[:k]) != n.Target {
			c.add(p, "readlink", "readlink: %q %v, model %q", buf[:max(k, 0)], err, n.Target)
		}
	case File:
		if c.o.Holes && st.Blocks != n.Blocks() {
			c.add(p, "blocks", "st_blocks %d, model %d (%d pages allocated)", st.Blocks, n.Blocks(), n.Pages())
		}
		c.data(p, n, h, st)
	}
	return true
}

// data compares the extents (Options.Holes) and the contents of file n.
func (c *checker) data(p string, n *Node, h handle, st *unix.Stat_t) {
	if c.full() {
		return
	}
	fd := h.fd
	if fd < 0 {
		var err error
		fd, err = unix.Open(h.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			c.add(p, "open", "open for the check: %v", err)
			return
		}
		defer unix.Close(fd)
	}
	if c.o.Holes {
		got, err := extents(fd, n.Size)
		if err != nil {
			c.add(p, "holes", "%v", err)
			return
		}
		if want := n.DataExtents(); fmt.Sprint(got) != fmt.Sprint(want) {
			c.add(p, "holes", "data extents (SEEK_DATA/SEEK_HOLE) %v, model %v", extString(got), extString(want))
			return
		}
	}
	if c.o.SampleAbove <= 0 || n.Size <= c.o.SampleAbove || c.o.Content != nil || n.ambiguous {
		// Whole, and one byte past every size in view: what is read
		// must end where st_size says.
		limit := max(st.Size, n.Size, int64(len(n.before))) + 1
		got, err := preadFull(fd, 0, limit)
		if err != nil {
			c.add(p, "content", "%v", err)
			return
		}
		if int64(len(got)) != st.Size {
			c.add(p, "content", "st_size %d, but %d bytes read", st.Size, len(got))
		}
		var d string
		if c.o.Content != nil {
			d = c.o.Content(p, n, got)
		} else {
			d = ContentDiff(n, got)
		}
		if d != "" {
			c.add(p, "content", "content: %s", d)
		}
		return
	}
	// A large file: every allocated run, the first and last pages and a
	// few holes (they are holes for SEEK_DATA already).
	regions := append(n.AllocRuns(), [2]int64{0, min(n.Size, PageSize)}, [2]int64{max(0, n.Size-PageSize-1), n.Size})
	r := c.o.Rand
	if r == nil {
		r = rand.New(rand.NewSource(n.Size))
	}
	for i := 0; i < 3; i++ {
		o := r.Int63n(n.Size)
		regions = append(regions, [2]int64{o, min(n.Size, o+PageSize+100)})
	}
	for _, rg := range regions {
		ln := rg[1] - rg[0]
		got, err := preadFull(fd, rg[0], ln)
		if err != nil {
			c.add(p, "content", "%v", err)
			return
		}
		if int64(len(got)) != ln {
			c.add(p, "content", "pread [%d,%d): only %d bytes (size %d)", rg[0], rg[1], len(got), n.Size)
			return
		}
		if d := DataDiff(n.ReadAt(rg[0], ln), got, rg[0]); d != "" {
			c.add(p, "content", "content: %s", d)
			return
		}
	}
	var one [1]byte
	if k, err := unix.Pread(fd, one[:], n.Size); k != 0 || err != nil {
		c.add(p, "content", "pread at EOF %d: %d bytes, %v", n.Size, k, err)
	}
}
