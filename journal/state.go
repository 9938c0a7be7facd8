package journal

import (
	"fmt"
	"slices"
	"syscall"
)

// RootIno is the inode number of the root directory.
const RootIno = 1

// State is the metadata of a whole tree, as loaded from a store.
type State struct {
	Inodes map[uint64]*Inode
	// Entries maps a directory's inode number to its entries.
	Entries map[uint64]map[string]uint64
	// NextIno and NextBlob are above every number handed out.
	NextIno, NextBlob uint64
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Inodes:   make(map[uint64]*Inode),
		Entries:  make(map[uint64]map[string]uint64),
		NextIno:  RootIno + 1,
		NextBlob: 1,
	}
}

// apply applies one record.
func (s *State) apply(r *record) {
	switch r.typ {
	case recInode:
		in := r.inode
		if old := s.Inodes[in.Ino]; old != nil {
			in.Xattr = old.Xattr
		}
		s.Inodes[in.Ino] = &in
		s.NextIno = max(s.NextIno, in.Ino+1)
		if in.Blob != 0 {
			s.NextBlob = max(s.NextBlob, in.Blob+1)
		}
	case recEntry:
		m := s.Entries[r.ino]
		if r.child == 0 {
			delete(m, r.name)
			return
		}
		if m == nil {
			m = make(map[string]uint64)
			s.Entries[r.ino] = m
		}
		m[r.name] = r.child
	case recXattr:
		if in := s.Inodes[r.ino]; in != nil {
			if in.Xattr == nil {
				in.Xattr = make(map[string][]byte)
			}
			in.Xattr[r.name] = r.value
		}
	case recXattrDel:
		if in := s.Inodes[r.ino]; in != nil {
			delete(in.Xattr, r.name)
		}
	case recReserved:
		if in := s.Inodes[r.ino]; in != nil {
			in.Reserved = r.inode.Reserved
		}
	case recLoan:
		if in := s.Inodes[r.ino]; in != nil {
			in.Lent = true
			in.FileMtime, in.FileCtime = r.inode.FileMtime, r.inode.FileCtime
		}
	case recFree:
		delete(s.Inodes, r.ino)
		delete(s.Entries, r.ino)
	case recNext:
		s.NextIno = max(s.NextIno, r.next1)
		s.NextBlob = max(s.NextBlob, r.next2)
	}
}

// IsDir reports whether in is a directory.
func (in *Inode) IsDir() bool { return in.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// IsReg reports whether in is a regular file.
func (in *Inode) IsReg() bool { return in.Mode&syscall.S_IFMT == syscall.S_IFREG }

// Problem is something wrong in a state, in plain words, and whether Fix
// repairs it.
type Problem struct {
	What    string
	Repair  string // what Fix does about it
	entry   *entryRef
	orphan  uint64 // an unreachable inode to free
	missing bool   // the root is missing
}

type entryRef struct {
	parent uint64
	name   string
}

func (p Problem) String() string { return p.What }

// Orphan reports whether the problem is an inode nothing reaches: after a
// crash, a file that was unlinked while open, whose freeing is normal
// recovery.
func (p Problem) Orphan() bool { return p.orphan != 0 }

// Ino returns the inode of an orphan problem.
func (p Problem) Ino() uint64 { return p.orphan }

// Validate checks the tree: the root is a directory, every entry is in a
// directory and names an inode that exists, a directory has one name, no
// directory is its own ancestor, and every inode is reachable from the
// root. It returns the problems in a stable order, and the link counts
// the tree gives every reachable inode (directories: 2 + subdirectories).
//
// Inodes that are unreachable are reported as orphans: after a crash they
// are the files that were unlinked while open, and freeing them is normal
// recovery. Entries are checked first: an inode whose only entries are bad
// becomes an orphan.
func (s *State) Validate() (problems []Problem, nlink map[uint64]uint32) {
	nlink = make(map[uint64]uint32, len(s.Inodes))
	root := s.Inodes[RootIno]
	if root == nil || !root.IsDir() {
		problems = append(problems, Problem{
			What:    "the root directory is missing",
			Repair:  "make an empty root directory; everything else becomes orphaned",
			missing: true,
		})
	}
	// Directories whose entries exist but that are not directories.
	for _, dino := range sortedKeys(s.Entries) {
		if d := s.Inodes[dino]; d == nil || !d.IsDir() {
			for _, name := range sortedKeys(s.Entries[dino]) {
				problems = append(problems, Problem{
					What:   fmt.Sprintf("entry %q of inode %d: inode %d is not a directory", name, dino, dino),
					Repair: "remove the entry",
					entry:  &entryRef{dino, name},
				})
			}
		}
	}
	// Walk from the root, breadth first, in name order.
	seenDir := make(map[uint64]bool)
	if root != nil && root.IsDir() {
		seenDir[RootIno] = true
		nlink[RootIno] = 2
		queue := []uint64{RootIno}
		for len(queue) > 0 {
			dino := queue[0]
			queue = queue[1:]
			ents := s.Entries[dino]
			for _, name := range sortedKeys(ents) {
				child := ents[name]
				in := s.Inodes[child]
				bad := ""
				switch {
				case name == "" || name == "." || name == ".." || len(name) > 255 || containsSlashOrNUL(name):
					bad = fmt.Sprintf("entry %q in directory %d is not a valid name", name, dino)
				case in == nil:
					bad = fmt.Sprintf("entry %q in directory %d names inode %d, which does not exist", name, dino, child)
				case child == RootIno:
					bad = fmt.Sprintf("entry %q in directory %d names the root", name, dino)
				case in.IsDir() && seenDir[child]:
					bad = fmt.Sprintf("entry %q in directory %d is a second name of directory %d", name, dino, child)
				}
				if bad != "" {
					problems = append(problems, Problem{What: bad, Repair: "remove the entry", entry: &entryRef{dino, name}})
					continue
				}
				if in.IsDir() {
					seenDir[child] = true
					nlink[child] = 2
					nlink[dino]++
					queue = append(queue, child)
				} else {
					nlink[child]++
				}
			}
		}
	}
	// Entries of directories that are not reachable are dropped with
	// them; inodes nothing reaches are orphans.
	var orphans []uint64
	for ino := range s.Inodes {
		if nlink[ino] == 0 {
			orphans = append(orphans, ino)
		}
	}
	slices.Sort(orphans)
	for _, ino := range orphans {
		in := s.Inodes[ino]
		what := fmt.Sprintf("inode %d (%s) is not in the tree", ino, TypeName(in.Mode))
		if ino == RootIno {
			what = fmt.Sprintf("inode 1 should be the root directory but is a %s", TypeName(in.Mode))
		}
		problems = append(problems, Problem{What: what, Repair: "free it and its data", orphan: ino})
	}
	return problems, nlink
}

func containsSlashOrNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}

// Fix repairs the problems Validate found, in s, and returns the records
// that make the same repairs in a journal. It frees nothing in blobs: the
// caller frees the data of the orphans it is given back.
func (s *State) Fix(problems []Problem, b *Batch) (orphans []*Inode) {
	for _, p := range problems {
		switch {
		case p.missing:
			if old := s.Inodes[RootIno]; old != nil {
				// Inode 1 is something else: it goes, with its entries
				// and xattrs (the Free record clears them on replay);
				// its data, if any, is the caller's to free.
				orphans = append(orphans, old)
				delete(s.Inodes, RootIno)
				delete(s.Entries, RootIno)
				b.Free(RootIno)
			}
			root := &Inode{Ino: RootIno, Mode: syscall.S_IFDIR | 0o1777, Nlink: 2}
			s.Inodes[RootIno] = root
			b.Inode(root)
		case p.entry != nil:
			delete(s.Entries[p.entry.parent], p.entry.name)
			b.Entry(p.entry.parent, p.entry.name, 0)
		case p.orphan != 0:
			if in := s.Inodes[p.orphan]; in != nil && p.orphan != RootIno {
				orphans = append(orphans, in)
				delete(s.Inodes, p.orphan)
				delete(s.Entries, p.orphan)
				b.Free(p.orphan)
			}
		}
	}
	return orphans
}

// TypeName names the file type in mode, in words.
func TypeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "directory"
	case syscall.S_IFLNK:
		return "symlink"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFSOCK:
		return "socket"
	case syscall.S_IFCHR:
		return "character device"
	case syscall.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("unknown type %#o", mode&syscall.S_IFMT)
}

func sortedKeys[K uint64 | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
