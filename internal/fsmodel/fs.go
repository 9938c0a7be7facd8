package fsmodel

import (
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// FS is the model of one directory tree: its root and the umask that
// creating calls apply.
type FS struct {
	root  *Node
	Umask uint32
}

// New returns a model holding only a root directory with permission bits
// rootPerm; umask is applied to the modes of the nodes created later.
func New(rootPerm, umask uint32) *FS {
	r := newNode(Dir, rootPerm)
	r.Parent = r
	return &FS{root: r, Umask: umask}
}

// Root is the root directory.
func (m *FS) Root() *Node { return m.root }

// Join joins a directory path of the model ("" is the root) and a name.
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// PathName is how messages name a path of the model.
func PathName(p string) string {
	if p == "" {
		return "/ (root)"
	}
	return p
}

// Resolve walks p ("a/b/c", relative to the root; "" is the root): it
// returns the directory that holds the last name, that name, the node
// there (nil if there is none), or the errno of walking to the directory.
// The model does not follow symlinks: one in the middle of a path ends the
// walk with ENOENT, as a symlink to nothing does.
func (m *FS) Resolve(p string) (dir *Node, name string, n *Node, e unix.Errno) {
	if p == "" {
		return nil, "", m.root, 0
	}
	comps := strings.Split(p, "/")
	cur := m.root
	for _, c := range comps[:len(comps)-1] {
		nx, ok := cur.Kids[c]
		if !ok {
			return nil, "", nil, unix.ENOENT
		}
		switch nx.Type {
		case Dir:
		case Symlink:
			return nil, "", nil, unix.ENOENT
		default:
			return nil, "", nil, unix.ENOTDIR
		}
		cur = nx
	}
	name = comps[len(comps)-1]
	return cur, name, cur.Kids[name], 0
}

// resolveExisting is Resolve for a name that must be there: ENOENT if it
// is not.
func (m *FS) resolveExisting(p string) (dir *Node, name string, n *Node, e unix.Errno) {
	dir, name, n, e = m.Resolve(p)
	if e == 0 && n == nil {
		e = unix.ENOENT
	}
	return dir, name, n, e
}

// Lookup returns the node at p, or nil.
func (m *FS) Lookup(p string) *Node {
	_, _, n, _ := m.Resolve(p)
	return n
}

// OpenFile models open(p, O_NOFOLLOW) of a regular file: ENOENT, ELOOP on
// a symlink, EISDIR on a directory.
func (m *FS) OpenFile(p string) (*Node, unix.Errno) {
	_, _, n, e := m.resolveExisting(p)
	switch {
	case e != 0:
		return nil, e
	case n.Type == Symlink:
		return nil, unix.ELOOP
	case n.Type == Dir:
		return nil, unix.EISDIR
	}
	return n, 0
}

// newEntry makes a node of type t at the free name p.
func (m *FS) newEntry(p string, t Type, perm uint32) (*Node, unix.Errno) {
	d, name, n, e := m.Resolve(p)
	if e != 0 {
		return nil, e
	}
	if n != nil {
		return nil, unix.EEXIST
	}
	n = newNode(t, perm)
	if t == Dir {
		n.Parent = d
	} else {
		n.Nlink = 1
	}
	d.Kids[name] = n
	d.Mtime = nil
	return n, 0
}

// Create models open(p, O_CREAT|O_EXCL) with mode.
func (m *FS) Create(p string, mode uint32) (*Node, unix.Errno) {
	return m.newEntry(p, File, mode&^m.Umask&0o7777)
}

// Mkdir models mkdir(p, mode).
func (m *FS) Mkdir(p string, mode uint32) (*Node, unix.Errno) {
	return m.newEntry(p, Dir, mode&^m.Umask&0o7777)
}

// Mkfifo models mknod(p, S_IFIFO|mode).
func (m *FS) Mkfifo(p string, mode uint32) (*Node, unix.Errno) {
	return m.newEntry(p, FIFO, mode&^m.Umask&0o7777)
}

// Symlink models symlink(target, p).
func (m *FS) Symlink(target, p string) (*Node, unix.Errno) {
	n, e := m.newEntry(p, Symlink, 0o777)
	if e == 0 {
		n.Target, n.Size = target, int64(len(target))
	}
	return n, e
}

// Link models link(old, p): EPERM for a directory.
func (m *FS) Link(old, p string) unix.Errno {
	_, _, o, e := m.resolveExisting(old)
	if e != 0 {
		return e
	}
	d, name, n, e := m.Resolve(p)
	switch {
	case e != 0:
		return e
	case n != nil:
		return unix.EEXIST
	case o.Type == Dir:
		return unix.EPERM
	}
	d.Kids[name] = o
	o.Nlink++
	d.Mtime = nil
	return 0
}

// Unlink models unlink(p).
func (m *FS) Unlink(p string) unix.Errno {
	d, name, n, e := m.resolveExisting(p)
	switch {
	case e != 0:
		return e
	case n.Type == Dir:
		return unix.EISDIR
	}
	delete(d.Kids, name)
	d.Mtime = nil
	n.Nlink--
	return 0
}

// Rmdir models rmdir(p).
func (m *FS) Rmdir(p string) unix.Errno {
	d, name, n, e := m.resolveExisting(p)
	switch {
	case e != 0:
		return e
	case n.Type != Dir:
		return unix.ENOTDIR
	case n == m.root:
		return unix.EBUSY
	case len(n.Kids) > 0:
		return unix.ENOTEMPTY
	}
	delete(d.Kids, name)
	d.Mtime = nil
	return 0
}

// isAncestor reports whether a is d or an ancestor of directory d.
func (m *FS) isAncestor(a, d *Node) bool {
	for {
		if a == d {
			return true
		}
		if d == m.root {
			return false
		}
		d = d.Parent
	}
}

// Rename models renameat2(old, p, flags) with flags 0, RENAME_NOREPLACE
// or RENAME_EXCHANGE, following do_renameat2 and vfs_rename (and
// shmem_rename2).
func (m *FS) Rename(old, p string, flags int) unix.Errno {
	od, oname, o, e := m.Resolve(old)
	if e != 0 {
		return e
	}
	nd, nname, nw, e := m.Resolve(p)
	if e != 0 {
		return e
	}
	exch := flags&unix.RENAME_EXCHANGE != 0
	switch {
	case o == nil:
		return unix.ENOENT
	case o == m.root || nw == m.root:
		return unix.EBUSY
	case flags&unix.RENAME_NOREPLACE != 0 && nw != nil:
		return unix.EEXIST
	case exch && nw == nil:
		return unix.ENOENT
	}
	if od != nd {
		if o.Type == Dir && m.isAncestor(o, nd) {
			return unix.EINVAL
		}
		if nw != nil && nw.Type == Dir && m.isAncestor(nw, od) {
			if exch {
				return unix.EINVAL
			}
			return unix.ENOTEMPTY
		}
	}
	if nw == o {
		return 0
	}
	if exch {
		od.Kids[oname], nd.Kids[nname] = nw, o
		if o.Type == Dir {
			o.Parent = nd
		}
		if nw.Type == Dir {
			nw.Parent = od
		}
		od.Mtime, nd.Mtime = nil, nil
		return 0
	}
	if nw != nil {
		switch {
		case o.Type == Dir && nw.Type != Dir:
			return unix.ENOTDIR
		case o.Type != Dir && nw.Type == Dir:
			return unix.EISDIR
		case nw.Type == Dir && len(nw.Kids) > 0:
			return unix.ENOTEMPTY
		}
		if nw.Type != Dir {
			nw.Nlink--
		}
	}
	delete(od.Kids, oname)
	nd.Kids[nname] = o
	if o.Type == Dir {
		o.Parent = nd
	}
	od.Mtime, nd.Mtime = nil, nil
	return 0
}

// following resolves p for a call that follows a final symlink (truncate,
// chmod): the model's symlinks point at nothing, so one is ENOENT.
func (m *FS) following(p string) (*Node, unix.Errno) {
	_, _, n, e := m.Resolve(p)
	switch {
	case e != 0:
		return nil, e
	case n == nil || n.Type == Symlink:
		return nil, unix.ENOENT
	}
	return n, 0
}

// Truncate models truncate(p, size).
func (m *FS) Truncate(p string, size int64) unix.Errno {
	if size < 0 {
		return unix.EINVAL
	}
	n, e := m.following(p)
	switch {
	case e != 0:
		return e
	case n.Type == Dir:
		return unix.EISDIR
	case n.Type != File:
		return unix.EINVAL
	}
	return n.Truncate(size)
}

// Chmod models chmod(p, mode).
func (m *FS) Chmod(p string, mode uint32) unix.Errno {
	n, e := m.following(p)
	if e != 0 {
		return e
	}
	n.Perm = mode & 0o7777
	return 0
}

// Lchown models lchown(p, uid, gid).
func (m *FS) Lchown(p string, uid, gid uint32) unix.Errno {
	_, _, n, e := m.resolveExisting(p)
	if e != 0 {
		return e
	}
	n.Uid, n.Gid = uid, gid
	return 0
}

// SetMtime models utimensat(p, ..., AT_SYMLINK_NOFOLLOW) setting the mtime
// to ts: from then on, until a change of the node's data or names, the
// model knows its mtime.
func (m *FS) SetMtime(p string, ts unix.Timespec) unix.Errno {
	_, _, n, e := m.resolveExisting(p)
	if e != 0 {
		return e
	}
	n.Mtime = &ts
	return 0
}

// xattrNode resolves p for the l*xattr calls on user.* names, which only
// regular files and directories have and take (others: EPERM; for a get,
// ENODATA).
func (m *FS) xattrNode(p string, get bool) (*Node, unix.Errno) {
	_, _, n, e := m.resolveExisting(p)
	switch {
	case e != 0:
		return nil, e
	case n.Type != File && n.Type != Dir && get:
		return nil, unix.ENODATA
	case n.Type != File && n.Type != Dir:
		return nil, unix.EPERM
	}
	return n, 0
}

// Setxattr models lsetxattr(p, name, val, flags) of a user.* name.
func (m *FS) Setxattr(p, name string, val []byte, flags int) unix.Errno {
	n, e := m.xattrNode(p, false)
	if e != 0 {
		return e
	}
	_, has := n.Xattrs[name]
	if flags == unix.XATTR_CREATE && has {
		return unix.EEXIST
	}
	if flags == unix.XATTR_REPLACE && !has {
		return unix.ENODATA
	}
	n.Xattrs[name] = append([]byte{}, val...)
	return 0
}

// Removexattr models lremovexattr(p, name) of a user.* name.
func (m *FS) Removexattr(p, name string) unix.Errno {
	n, e := m.xattrNode(p, false)
	if e != 0 {
		return e
	}
	if _, has := n.Xattrs[name]; !has {
		return unix.ENODATA
	}
	delete(n.Xattrs, name)
	return 0
}

// Getxattr models lgetxattr(p, name) of a user.* name.
func (m *FS) Getxattr(p, name string) ([]byte, unix.Errno) {
	n, e := m.xattrNode(p, true)
	if e != 0 {
		return nil, e
	}
	v, has := n.Xattrs[name]
	if !has {
		return nil, unix.ENODATA
	}
	return v, 0
}

// Entry is one path of the tree.
type Entry struct {
	Path  string // "" is the root
	Node  *Node
	Depth int // the root's is 0
}

// Entries lists every path, the root first, then depth first in the order
// of the names (a directory before what it holds). A node with several
// names is listed at each.
func (m *FS) Entries() []Entry {
	var out []Entry
	var walk func(p string, n *Node, depth int)
	walk = func(p string, n *Node, depth int) {
		out = append(out, Entry{p, n, depth})
		for _, k := range sortedNames(n.Kids) {
			walk(Join(p, k), n.Kids[k], depth+1)
		}
	}
	walk("", m.root, 0)
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Clone returns a deep copy of the model; the links of one node stay
// links of one node in the copy.
func (m *FS) Clone() *FS {
	seen := map[*Node]*Node{}
	var cp func(n, parent *Node) *Node
	cp = func(n, parent *Node) *Node {
		if c, ok := seen[n]; ok {
			return c
		}
		c := n.clone()
		seen[n] = c
		if n.Kids != nil {
			c.Parent = parent
			c.Kids = make(map[string]*Node, len(n.Kids))
			for k, v := range n.Kids {
				c.Kids[k] = cp(v, c)
			}
		}
		return c
	}
	r := cp(m.root, nil)
	r.Parent = r
	return &FS{root: r, Umask: m.Umask}
}
