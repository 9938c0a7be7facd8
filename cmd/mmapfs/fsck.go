package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/journal"
)

// Exit statuses of fsck, as e2fsck's.
const (
	fsckClean      = 0 // no problems
	fsckRepaired   = 1 // problems found, all repaired
	fsckUnrepaired = 4 // problems left: not asked to repair, or cannot be
	fsckFailed     = 8 // the store could not be checked
)

const fsckUsage = `usage: mmapfs fsck [--repair] [--quiet] --store DIR

Checks a persistent store that no mmapfs is serving: the metadata (snapshot
and journal), the tree (every entry names an inode, every inode is reached
from the root, link counts), and every file's data in the store against
what the metadata recorded. Without --repair nothing is changed.

    --store DIR      the store directory (also the first argument)
    --repair, -y     repair what can be repaired safely: cut a torn journal
                     tail, remove entries that name nothing, free inodes that
                     nothing reaches (after damage they go to /lost+found),
                     remove store files that no file owns, record what the
                     store really holds; then rewrite the metadata
    --quiet, -q      print problems only

Exit status: 0 clean; 1 problems found and all repaired; 4 problems left
unrepaired; 8 the store could not be checked (missing, in use, a newer
format, unreadable).
`

// fsckProblem is one thing wrong, and what --repair does about it.
type fsckProblem struct {
	what   string
	repair string // "" = cannot be repaired here
	fix    func(st *journal.State) error
}

type fscker struct {
	dir      string
	repair   bool
	quiet    bool
	out, err io.Writer
	problems []fsckProblem
	warnings []string
	parent   map[uint64]struct {
		dir  uint64
		name string
	}
	rewrite bool // the metadata must be rewritten
}

func cmdFsck(args []string, stdout, stderr io.Writer) int {
	c := &fscker{out: stdout, err: stderr}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--repair" || a == "-y" || a == "--yes":
			c.repair = true
		case a == "--quiet" || a == "-q":
			c.quiet = true
		case a == "--help" || a == "-h" || a == "help":
			fmt.Fprint(stdout, fsckUsage)
			return 0
		case a == "--store" || a == "-store":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "mmapfs fsck: --store needs a directory\n%s", fsckUsage)
				return 2
			}
			i++
			c.dir = args[i]
		case strings.HasPrefix(a, "--store="):
			c.dir = strings.TrimPrefix(a, "--store=")
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "mmapfs fsck: unknown option %q\n%s", a, fsckUsage)
			return 2
		case c.dir == "":
			c.dir = a
		default:
			fmt.Fprintf(stderr, "mmapfs fsck: too many arguments\n%s", fsckUsage)
			return 2
		}
	}
	if c.dir == "" {
		fmt.Fprintf(stderr, "mmapfs fsck: which store? (--store DIR)\n%s", fsckUsage)
		return 2
	}
	return c.run()
}

func (c *fscker) say(format string, args ...any) {
	if !c.quiet {
		fmt.Fprintf(c.out, format+"\n", args...)
	}
}

func (c *fscker) problem(what, repair string, fix func(*journal.State) error) {
	c.problems = append(c.problems, fsckProblem{what: what, repair: repair, fix: fix})
}

// path returns a readable name of a reachable inode.
func (c *fscker) path(ino uint64) string {
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

func (c *fscker) run() int {
	start := time.Now()
	dir, err := filepath.Abs(c.dir)
	if err != nil {
		fmt.Fprintf(c.err, "mmapfs fsck: %v\n", err)
		return fsckFailed
	}
	c.dir = dir
	if _, err := os.Stat(filepath.Join(dir, journal.MetaDir)); err != nil {
		fmt.Fprintf(c.err, "mmapfs fsck: %s is not an mmapfs store (no %s/): %s\n", dir, journal.MetaDir, errnoText(err))
		return fsckFailed
	}
	meta, st, rep, err := journal.Open(dir, journal.Options{ReadOnly: !c.repair, Salvage: true})
	if err != nil {
		if errors.Is(err, journal.ErrInUse) {
			fmt.Fprintf(c.err, "mmapfs fsck: %v: unmount it first\n", err)
		} else {
			fmt.Fprintf(c.err, "mmapfs fsck: %v\n", err)
		}
		return fsckFailed
	}
	defer meta.Close()
	c.say("mmapfs fsck: store %s", dir)

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
	for _, n := range rep.Notes {
		if c.repair {
			c.say("  tidied: %s", n)
		}
	}

	c.checkTree(st, damaged)
	c.checkData(st, damaged)
	c.checkForeign()

	// Report.
	var dirs, files, links, other, data int64
	for _, in := range st.Inodes {
		switch in.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			dirs++
		case syscall.S_IFREG:
			files++
			data += in.Alloc
		case syscall.S_IFLNK:
			links++
		default:
			other++
		}
	}
	unrepaired := 0
	for _, p := range c.problems {
		fmt.Fprintf(c.out, "  problem: %s\n", p.what)
		switch {
		case p.repair == "":
			fmt.Fprintf(c.out, "    cannot be repaired by fsck\n")
			unrepaired++
		case c.repair:
			if p.fix != nil {
				if err := p.fix(st); err != nil {
					fmt.Fprintf(c.out, "    repair failed: %v\n", err)
					unrepaired++
					continue
				}
			}
			fmt.Fprintf(c.out, "    repaired: %s\n", p.repair)
		default:
			fmt.Fprintf(c.out, "    --repair would %s\n", p.repair)
			unrepaired++
		}
	}
	for _, w := range c.warnings {
		fmt.Fprintf(c.out, "  note: %s\n", w)
	}
	if c.repair && (len(c.problems) > 0 || c.rewrite) {
		// Link counts as the repaired tree gives them.
		_, nlink := st.Validate()
		for ino, n := range nlink {
			st.Inodes[ino].Nlink = n
		}
		if err := meta.Rewrite(st); err != nil {
			fmt.Fprintf(c.err, "mmapfs fsck: rewriting the metadata: %v\n", err)
			return fsckFailed
		}
	}
	c.say("  %d directories, %d files, %d symlinks, %d other; %s of file data; checked in %v",
		dirs, files, links, other, formatBytes(data), time.Since(start).Round(time.Millisecond))
	switch {
	case len(c.problems) == 0:
		c.say("  clean")
		return fsckClean
	case unrepaired == 0:
		fmt.Fprintf(c.out, "  %d problems found, all repaired\n", len(c.problems))
		return fsckRepaired
	case !c.repair:
		fmt.Fprintf(c.out, "  %d problems found; run with --repair to repair them\n", len(c.problems))
	default:
		fmt.Fprintf(c.out, "  %d problems found, %d left unrepaired\n", len(c.problems), unrepaired)
	}
	return fsckUnrepaired
}

// checkTree checks entries, reachability and link counts. Inodes nothing
// reaches are freed, or put in /lost+found when the metadata was damaged
// (then they may be files whose names were lost).
func (c *fscker) checkTree(st *journal.State, damaged bool) {
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
	c.parent = make(map[uint64]struct {
		dir  uint64
		name string
	}, len(st.Inodes))
	for dino, ents := range st.Entries {
		if nlink[dino] == 0 {
			continue
		}
		for name, ino := range ents {
			if _, ok := c.parent[ino]; !ok {
				c.parent[ino] = struct {
					dir  uint64
					name string
				}{dino, name}
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
func (c *fscker) lostFound(st *journal.State, orphans []uint64, problems []journal.Problem) {
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
	if ino, ok := st.Entries[journal.RootIno]["lost+found"]; ok {
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
	st.Entries[journal.RootIno]["lost+found"] = ino
	st.Entries[ino] = make(map[string]uint64)
	return ino
}

// checkData compares every file's data in the store with its metadata.
func (c *fscker) checkData(st *journal.State, damaged bool) {
	blobs := filepath.Join(c.dir, journal.BlobsDir)
	names, err := readDirNames(blobs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.problem(fmt.Sprintf("data: the store files cannot be listed: %s", errnoText(err)), "", nil)
		return
	}
	files := make(map[uint64]bool, len(names))
	for _, n := range names {
		id, err := strconv.ParseUint(n, 16, 64)
		if err != nil || len(n) != 16 || id == 0 {
			c.warnings = append(c.warnings, fmt.Sprintf("%s/%s is not a file mmapfs made; it is left alone", journal.BlobsDir, n))
			continue
		}
		files[id] = true
	}
	var regs []*journal.Inode
	for _, in := range st.Inodes {
		if in.IsReg() {
			regs = append(regs, in)
		}
	}
	slices.SortFunc(regs, func(a, b *journal.Inode) int { return cmp.Compare(a.Ino, b.Ino) })
	owner := make(map[uint64]uint64, len(regs))
	bar := newProgress(c.err, "checking file data", len(regs))
	for i, in := range regs {
		bar.at(i)
		if in.Blob == 0 {
			c.problem(fmt.Sprintf("data: %s has no store file number", c.path(in.Ino)), "", nil)
			continue
		}
		if other, dup := owner[in.Blob]; dup {
			c.problem(fmt.Sprintf("data: %s and %s share one store file", c.path(other), c.path(in.Ino)), "", nil)
			continue
		}
		owner[in.Blob] = in.Ino
		name := fmt.Sprintf("%016x", in.Blob)
		delete(files, in.Blob)
		var sb unix.Stat_t
		err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(blobs, name), &sb, unix.AT_SYMLINK_NOFOLLOW)
		in := in
		switch {
		case errors.Is(err, unix.ENOENT):
			if in.Alloc > 0 {
				c.problem(fmt.Sprintf("data: %s: its data (%s) is missing from the store", c.path(in.Ino), formatBytes(in.Alloc)),
					"keep the file, reading as zeros (its data is lost)", func(*journal.State) error { in.Alloc = 0; return nil })
			}
		case err != nil:
			c.problem(fmt.Sprintf("data: %s: store file %s: %s", c.path(in.Ino), name, errnoText(err)), "", nil)
		case sb.Mode&unix.S_IFMT != unix.S_IFREG:
			p := filepath.Join(blobs, name)
			c.problem(fmt.Sprintf("data: %s: store file %s is not a regular file", c.path(in.Ino), name),
				"move it aside as "+name+".bad; the file reads as zeros (its data is lost)", func(*journal.State) error {
					in.Alloc = 0
					return os.Rename(p, p+".bad")
				})
		case sb.Blocks*512 < in.Alloc:
			have := sb.Blocks * 512
			c.problem(fmt.Sprintf("data: %s: the store holds %s of its data where %s were recorded (data lost, or a hole punch the server did not finish)",
				c.path(in.Ino), formatBytes(have), formatBytes(in.Alloc)),
				"record what the store holds", func(*journal.State) error { in.Alloc = have; return nil })
		}
	}
	bar.done()
	var stray []uint64
	for id := range files {
		stray = append(stray, id)
	}
	slices.Sort(stray)
	for _, id := range stray {
		p := filepath.Join(blobs, fmt.Sprintf("%016x", id))
		what := fmt.Sprintf("data: store file %s/%016x belongs to no file", journal.BlobsDir, id)
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			c.problem(what+" and is not a regular file", fmt.Sprintf("move it aside as %016x.bad", id),
				func(*journal.State) error { return os.Rename(p, p+".bad") })
			continue
		}
		if !damaged {
			// The server stopped between freeing a file and removing its
			// data: nothing refers to it.
			c.problem(what, "remove it", func(*journal.State) error { return os.Remove(p) })
			continue
		}
		// The metadata was damaged: this may be the only copy of a file
		// whose records were lost. It is kept, under a new name.
		id := id
		c.problem(what+" (its file's records may be lost)",
			fmt.Sprintf("keep it as /lost+found/data-%016x", id), func(st *journal.State) error {
				return adoptStray(st, p, id)
			})
	}
}

// checkForeign notes files in the store directory that mmapfs did not make.
func (c *fscker) checkForeign() {
	names, _ := readDirNames(c.dir)
	for _, n := range names {
		switch n {
		case journal.LockName:
			if fi, err := os.Lstat(filepath.Join(c.dir, n)); err == nil && !fi.Mode().IsRegular() {
				c.problem(fmt.Sprintf("%s is not a regular file (it is a %s)", n, fi.Mode().Type()),
					"replace it with a lock file (done when the store is opened for repair)", nil)
			}
		case journal.MetaDir, journal.BlobsDir, "lost+found":
		default:
			c.warnings = append(c.warnings, fmt.Sprintf("%s is not a file mmapfs made; it is left alone", n))
		}
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// progress draws a progress bar on a terminal for long checks.
type progress struct {
	w     io.Writer
	label string
	total int
	last  time.Time
	on    bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total}
	if f, ok := w.(*os.File); ok && total >= 10000 {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) at(i int) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width * i / p.total
	fmt.Fprintf(p.w, "\r  %s [%s%s] %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), i, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 80))
	}
}

// adoptStray makes a store file no file owns into a file in /lost+found,
// as long as its data reaches.
func adoptStray(st *journal.State, path string, id uint64) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sb unix.Stat_t
	if err := unix.Fstat(fd, &sb); err != nil {
		return err
	}
	if sb.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", path)
	}
	// The size: the end of the last data.
	var size int64
	for off := int64(0); off < sb.Size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			break
		}
		size, off = hole, hole
	}
	lf := lostFoundDir(st)
	now := time.Now().UnixNano()
	ino := st.NextIno
	st.NextIno++
	st.NextBlob = max(st.NextBlob, id+1)
	st.Inodes[ino] = &journal.Inode{Ino: ino, Mode: syscall.S_IFREG | 0o600, Atime: now, Mtime: now, Ctime: now, Btime: now,
		Size: size, Blob: id, Alloc: sb.Blocks * 512, Nlink: 1}
	st.Entries[lf][fmt.Sprintf("data-%016x", id)] = ino
	return nil
}
