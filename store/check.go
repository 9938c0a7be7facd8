package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"mmapfs/journal"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Repair repairs what can be repaired safely, and rewrites the
	// metadata; without it nothing is changed.
	Repair bool
	// Progress, if not nil, is told how far a long part of the check
	// is: done of total items, then total of total when it ends.
	Progress func(label string, done, total int)
}

// CheckProblem is one thing wrong with a store, and what repair does
// about it.
type CheckProblem struct {
	What   string
	Repair string // what repairing does; "" = fsck cannot repair it
	// Err, with CheckOptions.Repair, says why the repair failed.
	Err error
	fix func(st *journal.State) error
}

// CheckReport is what Check found, and with Repair what it did.
type CheckReport struct {
	Dir      string   // the store directory, absolute
	Repair   bool     // repairs were made (CheckOptions.Repair)
	Tidied   []string // with Repair: stale files removed on the way
	Problems []CheckProblem
	Warnings []string // files mmapfs did not make, left alone
	// RewriteErr, with Repair, says why the repaired metadata could not
	// be written: the store cannot be called checked.
	RewriteErr error
	// The tree as checked: counts by type, and the bytes of file data.
	Dirs, Files, Symlinks, Other int64
	Data                         int64
	Took                         time.Duration
}

// Unrepaired returns the number of problems left: all of them without
// Repair, else those fsck cannot repair or whose repair failed.
func (r *CheckReport) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if p.Repair == "" || !r.Repair || p.Err != nil {
			n++
		}
	}
	return n
}

// checker is the state of one Check.
type checker struct {
	dir      string
	opts     CheckOptions
	rep      *CheckReport
	parent   map[uint64]parentRef // a name of every reachable inode
	rewrite  bool                 // the metadata must be rewritten
	progress func(label string, done, total int)
}

// parentRef is the directory and name an inode is reached by.
type parentRef struct {
	dir  uint64
	name string
}

// Check checks a persistent store that nothing serves: the metadata
// (snapshot and journal), the tree (every entry names an inode, every
// inode is reached from the root, link counts), and every file's data in
// the store against what the metadata recorded. With Repair it repairs
// what can be repaired safely and rewrites the metadata. The error is for
// a store that could not be checked at all (missing, in use: ErrInUse, a
// newer format, unreadable).
func Check(dir string, opts CheckOptions) (*CheckReport, error) {
	start := time.Now()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, MetaDir)); err != nil {
		return nil, fmt.Errorf("%s is not an mmapfs store (no %s/): %s", dir, MetaDir, errnoText(err))
	}
	ms, err := openMeta(dir, !opts.Repair, true, Options{})
	if err != nil {
		return nil, err
	}
	defer ms.close()
	c := &checker{dir: dir, opts: opts, rep: &CheckReport{Dir: dir, Repair: opts.Repair}, progress: opts.Progress}
	if c.progress == nil {
		c.progress = func(string, int, int) {}
	}
	rep, st := ms.rep, ms.state
	damaged := len(rep.Damage) > 0
	for _, d := range rep.Damage {
		c.problem("metadata: "+d, "rewrite the metadata from what could be read", nil)
		c.rewrite = true
	}
	if rep.Dropped > 0 {
		c.problem(fmt.Sprintf("metadata: the journal ends in %d bytes of a write that did not finish", rep.Dropped),
			"cut them off (the change they held was never acknowledged)", nil)
	}
	for _, r := range rep.Repaired {
		c.problem(r, "done when the store was opened", nil)
	}
	if opts.Repair {
		c.rep.Tidied = rep.Notes
	}

	// Files open for writing with passthrough when the server stopped,
	// as a mount would take them (recovery, not a problem).
	settleLoans(st, blobsPath(dir), zap.NewNop())
	c.checkTree(st, damaged)
	c.checkData(st, damaged)
	c.checkForeign()
	c.count(st)
	if opts.Repair {
		c.repair(ms.meta, st)
	}
	c.rep.Took = time.Since(start)
	return c.rep, nil
}

// problem records a problem; fix, if not nil, is its repair in st (or in
// the store directory), run with Repair.
func (c *checker) problem(what, repair string, fix func(*journal.State) error) {
	c.rep.Problems = append(c.rep.Problems, CheckProblem{What: what, Repair: repair, fix: fix})
}

// warn records a note.
func (c *checker) warn(format string, args ...any) {
	c.rep.Warnings = append(c.rep.Warnings, fmt.Sprintf(format, args...))
}

// count counts the tree's inodes by type, as checked.
func (c *checker) count(st *journal.State) {
	r := c.rep
	for _, in := range st.Inodes {
		switch in.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			r.Dirs++
		case syscall.S_IFREG:
			r.Files++
			r.Data += in.Alloc
		case syscall.S_IFLNK:
			r.Symlinks++
		default:
			r.Other++
		}
	}
}

// repair runs the repairs, in order, and rewrites the metadata if
// anything was wrong.
func (c *checker) repair(meta *journal.Meta, st *journal.State) {
	for i := range c.rep.Problems {
		p := &c.rep.Problems[i]
		if p.Repair != "" && p.fix != nil {
			p.Err = p.fix(st)
		}
	}
	if len(c.rep.Problems) == 0 && !c.rewrite {
		return
	}
	// Link counts as the repaired tree gives them.
	_, nlink := st.Validate()
	for ino, n := range nlink {
		st.Inodes[ino].Nlink = n
	}
	c.rep.RewriteErr = meta.Rewrite(st)
}

// path returns a readable name of a reachable inode.
func (c *checker) path(ino uint64) string {
	if ino == journal.RootIno {
		return "/"
	}
	var parts []string
	for i := 0; ino != journal.RootIno && i < 4096; i++ {
		p, ok := c.parent[ino]
		if !ok {
			return fmt.Sprintf("inode %d", ino)
		}
		parts = append(parts, p.name)
		ino = p.dir
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}
