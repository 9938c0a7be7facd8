package store

import (
	"fmt"
	"strconv"
	"syscall"
	"time"

	"mmapfs/journal"
)

// checkTree checks entries, reachability and link counts. Inodes nothing
// reaches are freed, or put in /lost+found when the metadata was damaged
// (then they may be files whose names were lost).
func (c *checker) checkTree(st *journal.State, damaged bool) {
	problems, nlink := st.Validate()
	var orphans []uint64
	for _, p := range problems {
		if p.Orphan() {
			continue
		}
		c.problem("tree: "+p.What, p.Repair, nil)
	}
	// Validate again after the entries are fixed: some inodes become
	// orphans only then.
	var entryFixes []journal.Problem
	for _, p := range problems {
		if !p.Orphan() {
			entryFixes = append(entryFixes, p)
		}
	}
	if len(entryFixes) > 0 {
		var scratch journal.Batch
		st.Fix(entryFixes, &scratch)
		problems, nlink = st.Validate()
	}
	for _, p := range problems {
		if p.Orphan() {
			orphans = append(orphans, p.Ino())
		}
	}
	c.parent = make(map[uint64]parentRef, len(st.Inodes))
	for dino, ents := range st.Entries {
		if nlink[dino] == 0 {
			continue
		}
		for name, ino := range ents {
			if _, ok := c.parent[ino]; !ok {
				c.parent[ino] = parentRef{dino, name}
			}
		}
	}
	if len(orphans) > 0 {
		if damaged {
			c.lostFound(st, orphans, problems)
		} else {
			for _, p := range problems {
				if !p.Orphan() {
					continue
				}
				p := p
				c.problem("tree: "+p.What+" (a file unlinked while open when the server stopped, or a lost name)",
					"free it and its data", func(st *journal.State) error {
						var scratch journal.Batch
						st.Fix([]journal.Problem{p}, &scratch)
						return nil
					})
			}
		}
	}
	for ino, n := range nlink {
		in := st.Inodes[ino]
		if in == nil || in.Nlink == n || in.Nlink == 0 && n == 0 {
			continue
		}
		c.problem(fmt.Sprintf("tree: %s has link count %d recorded, %d in the tree", c.path(ino), in.Nlink, n),
			"record the count the tree gives", func(*journal.State) error { in.Nlink = n; return nil })
	}
}

// lostFound puts the orphans that head a subtree into /lost+found as
// #INO; what is left unreachable (cycles) is freed.
func (c *checker) lostFound(st *journal.State, orphans []uint64, problems []journal.Problem) {
	named := make(map[uint64]bool)
	isOrphan := make(map[uint64]bool, len(orphans))
	for _, o := range orphans {
		isOrphan[o] = true
	}
	for _, o := range orphans {
		for _, ch := range st.Entries[o] {
			named[ch] = true
		}
	}
	var heads []uint64
	for _, o := range orphans {
		if !named[o] && o != journal.RootIno {
			heads = append(heads, o)
		}
	}
	for _, h := range heads {
		h := h
		c.problem(fmt.Sprintf("tree: inode %d (%s) is not in the tree", h, journal.TypeName(st.Inodes[h].Mode)),
			fmt.Sprintf("put it in /lost+found as #%d", h), func(st *journal.State) error {
				lf := lostFoundDir(st)
				st.Entries[lf]["#"+strconv.FormatUint(h, 10)] = h
				return nil
			})
	}
	c.problem("tree: what is still unreachable after that (directory cycles)", "free it", func(st *journal.State) error {
		problems, _ := st.Validate()
		var scratch journal.Batch
		st.Fix(problems, &scratch)
		return nil
	})
}

// lostFoundDir returns /lost+found, made if missing.
func lostFoundDir(st *journal.State) uint64 {
	if ino, ok := st.Entries[journal.RootIno][lostFoundName]; ok {
		if in := st.Inodes[ino]; in != nil && in.IsDir() {
			if st.Entries[ino] == nil {
				st.Entries[ino] = make(map[string]uint64)
			}
			return ino
		}
	}
	now := time.Now().UnixNano()
	ino := st.NextIno
	st.NextIno++
	st.Inodes[ino] = &journal.Inode{Ino: ino, Mode: syscall.S_IFDIR | 0o700, Atime: now, Mtime: now, Ctime: now, Btime: now, Nlink: 2}
	if st.Entries[journal.RootIno] == nil {
		st.Entries[journal.RootIno] = make(map[string]uint64)
	}
	st.Entries[journal.RootIno][lostFoundName] = ino
	st.Entries[ino] = make(map[string]uint64)
	return ino
}
