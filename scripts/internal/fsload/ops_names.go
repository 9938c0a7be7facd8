package main

// The soak worker's operations on names, attributes and trees: stat,
// readdir, rename, unlink, xattrs, directory trees, hard links and
// symlinks.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// opStat stats a file and checks its size, type and link count.
func (w *worker) opStat() {
	f := w.pick()
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(f.rel), &st); err != nil {
		w.fail("stat %s: %v", f.rel, err)
		return
	}
	if st.Size != f.n.Size || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		w.fail("stat %s: size %d mode %o nlink %d, want size %d regular nlink 1", f.rel, st.Size, st.Mode, st.Nlink, f.n.Size)
		w.reload(f)
	}
	w.done(opStat, 0)
}

// opReaddir reads one of the worker's directories and checks its names.
func (w *worker) opReaddir() {
	w.checkDir(w.rng.IntN(nSubdirs))
	w.done(opReaddir, 0)
}

// opRename renames a file to a new name or over another file (then now and
// then first with RENAME_NOREPLACE, which must fail with EEXIST).
func (w *worker) opRename() {
	f := w.pick()
	var to string
	var victim *wfile
	if w.rng.IntN(4) == 0 && len(w.files) > 1 {
		victim = w.pick() // replace an existing file
		if victim == f {
			victim = nil
		}
	}
	if victim != nil {
		to = victim.rel
		if w.rng.IntN(2) == 0 {
			err := unix.Renameat2(unix.AT_FDCWD, w.abs(f.rel), unix.AT_FDCWD, w.abs(to), unix.RENAME_NOREPLACE)
			if err != unix.EEXIST {
				w.fail("rename NOREPLACE %s onto %s: %v, want EEXIST", f.rel, to, err)
				return
			}
		}
	} else {
		to = w.newName()
	}
	if err := os.Rename(w.abs(f.rel), w.abs(to)); err != nil {
		w.fail("rename %s to %s: %v", f.rel, to, err)
		return
	}
	from := f.rel
	w.agree("rename", from+" to "+to, w.rename(f, to, victim))
	if _, err := os.Lstat(w.abs(to)); err != nil {
		w.fail("stat after rename %s: %v", to, err)
	}
	w.done(opRename, 0)
}

// opUnlink removes a file and checks that it is gone.
func (w *worker) opUnlink() {
	f := w.pick()
	if err := unix.Unlink(w.abs(f.rel)); err != nil {
		w.fail("unlink %s: %v", f.rel, err)
		return
	}
	w.agree("unlink", f.rel, w.unlink(f))
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(f.rel), &st); err != unix.ENOENT {
		w.fail("stat after unlink %s: %v, want ENOENT", f.rel, err)
	}
	w.done(opUnlink, 0)
}

// opXattr sets or removes a user.* attribute, then checks them all.
func (w *worker) opXattr() {
	f := w.pick()
	p := w.abs(f.rel)
	name := fmt.Sprintf("user.k%d", w.rng.IntN(6))
	switch w.rng.IntN(4) {
	case 0, 1:
		v := w.randBytes(w.rng.IntN(512))
		if err := unix.Setxattr(p, name, v, 0); err != nil {
			w.fail("setxattr %s %s: %v", f.rel, name, err)
			return
		}
		w.agree("setxattr "+name, f.rel, w.m.Setxattr(f.rel, name, v, 0))
	case 2:
		err := unix.Removexattr(p, name)
		// The model's errno is the one expected: ENODATA if the
		// attribute was not there.
		if want := w.m.Removexattr(f.rel, name); want == 0 && err != nil || want != 0 && err != want {
			w.fail("removexattr %s %s: %v (present %v)", f.rel, name, err, want == 0)
		}
	}
	w.checkXattrs(f)
	w.done(opXattr, 0)
}

// opMkdirTree makes a directory with a subdirectory of small files, checks
// that rmdir of the full one fails with ENOTEMPTY, and removes it all.
func (w *worker) opMkdirTree() {
	w.seq++
	dir := w.abs(fmt.Sprintf("t%d", w.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		w.fail("mkdir %s: %v", dir, err)
		return
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		w.fail("mkdir %s: %v", sub, err)
		return
	}
	n := 1 + w.rng.IntN(16)
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			w.fail("create in %s: %v", sub, err)
			return
		}
	}
	names, err := readNames(sub)
	if err != nil || len(names) != n {
		w.fail("readdir %s: %d names, %v; want %d", sub, len(names), err, n)
	}
	if err := unix.Rmdir(sub); err != unix.ENOTEMPTY {
		w.fail("rmdir non-empty %s: %v, want ENOTEMPTY", sub, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		w.fail("remove %s: %v", dir, err)
	}
	w.done(opMkdirTree, 0)
}

// opLink makes a hard link to a file, checks it through the link, and
// removes the link.
func (w *worker) opLink() {
	f := w.pick()
	w.seq++
	l := fmt.Sprintf("l%d", w.seq)
	if err := os.Link(w.abs(f.rel), w.abs(l)); err != nil {
		w.fail("link %s %s: %v", f.rel, l, err)
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(l), &st); err != nil || st.Nlink != 2 || st.Size != f.n.Size {
		w.fail("stat link %s: nlink %d size %d, %v; want 2, %d", l, st.Nlink, st.Size, err, f.n.Size)
	}
	got, err := os.ReadFile(w.abs(l))
	if err != nil || int64(len(got)) != f.n.Size {
		w.fail("read link %s: %d bytes, %v", l, len(got), err)
	} else {
		w.check(f, "read via link", 0, got)
	}
	if err := unix.Unlink(w.abs(l)); err != nil {
		w.fail("unlink %s: %v", l, err)
	}
	w.done(opLink, len(got))
}

// opSymlink makes a symlink, reads it back and removes it.
func (w *worker) opSymlink() {
	w.seq++
	target := fmt.Sprintf("some/target/%d/%s", w.seq, strings.Repeat("x", w.rng.IntN(200)))
	l := w.abs(fmt.Sprintf("s%d", w.seq))
	if err := os.Symlink(target, l); err != nil {
		w.fail("symlink %s: %v", l, err)
		return
	}
	if got, err := os.Readlink(l); err != nil || got != target {
		w.fail("readlink %s: %q, %v", l, got, err)
	}
	if err := os.Remove(l); err != nil {
		w.fail("remove %s: %v", l, err)
	}
	w.done(opSymlink, 0)
}
