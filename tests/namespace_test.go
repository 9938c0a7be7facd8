package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dirent is one linux_dirent64 record.
type dirent struct {
	ino  uint64
	off  int64
	typ  uint8
	name string
}

// parseDirents decodes a getdents64 buffer.
func parseDirents(buf []byte) []dirent {
	var out []dirent
	for len(buf) >= 19 {
		reclen := int(binary.LittleEndian.Uint16(buf[16:18]))
		if reclen < 19 || reclen > len(buf) {
			break
		}
		name := buf[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, dirent{
			ino:  binary.LittleEndian.Uint64(buf[0:8]),
			off:  int64(binary.LittleEndian.Uint64(buf[8:16])),
			typ:  buf[18],
			name: string(name),
		})
		buf = buf[reclen:]
	}
	return out
}

// getdents reads one batch of entries with a buffer of size bufSize.
func getdents(t testing.TB, fd, bufSize int) []dirent {
	t.Helper()
	buf := make([]byte, bufSize)
	n, err := unix.Getdents(fd, buf)
	noErr(t, err, "getdents")
	return parseDirents(buf[:n])
}

// readAllDirents reads a directory to its end.
func readAllDirents(t testing.TB, dir string) []dirent {
	t.Helper()
	fd := openFd(t, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer closeFd(fd)
	var all []dirent
	for {
		d := getdents(t, fd, 4096)
		if len(d) == 0 {
			return all
		}
		all = append(all, d...)
	}
}

// TestRename: plain renames and every refusal, for files and directories.
func TestRename(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }

	// A file within and across directories keeps its inode and content.
	writeFile(t, j("a"), []byte("A"))
	ino := lstat(t, j("a")).Ino
	noErr(t, os.Mkdir(j("d1"), 0o755), "mkdir")
	noErr(t, os.Mkdir(j("d2"), 0o755), "mkdir")
	noErr(t, unix.Rename(j("a"), j("b")), "rename a b")
	noErr(t, unix.Rename(j("b"), j("d1", "c")), "rename b d1/c")
	if st := lstat(t, j("d1", "c")); st.Ino != ino {
		t.Errorf("inode changed by rename: %d -> %d", ino, st.Ino)
	}
	if _, err := os.Lstat(j("a")); !os.IsNotExist(err) {
		t.Errorf("old name still there: %v", err)
	}
	if got := string(readFile(t, j("d1", "c"))); got != "A" {
		t.Errorf("content %q", got)
	}

	// Over an existing file: the target is replaced; an open fd of the
	// replaced file still reads its data.
	writeFile(t, j("victim"), []byte("VICTIM"))
	vfd := openFd(t, j("victim"), unix.O_RDONLY, 0)
	defer closeFd(vfd)
	noErr(t, unix.Rename(j("d1", "c"), j("victim")), "rename over a file")
	if got := string(readFile(t, j("victim"))); got != "A" {
		t.Errorf("after replacing rename: %q", got)
	}
	b := make([]byte, 6)
	if n := preadFull(t, vfd, b, 0); string(b[:n]) != "VICTIM" {
		t.Errorf("replaced file via open fd: %q", b[:n])
	}
	if st := fstat(t, vfd); st.Nlink != 0 {
		t.Errorf("replaced file: nlink %d, want 0", st.Nlink)
	}

	// Renaming onto itself, or onto another hard link of the same inode, is a
	// successful no-op that keeps both names.
	noErr(t, unix.Rename(j("victim"), j("victim")), "rename onto itself")
	noErr(t, os.Link(j("victim"), j("victim2")), "link")
	noErr(t, unix.Rename(j("victim"), j("victim2")), "rename onto a hard link of itself")
	for _, n := range []string{"victim", "victim2"} {
		if st := lstat(t, j(n)); st.Nlink != 2 {
			t.Errorf("%s: nlink %d, want 2 (rename between links is a no-op)", n, st.Nlink)
		}
	}

	// Directories.
	noErr(t, os.MkdirAll(j("full", "x"), 0o755), "mkdir")
	noErr(t, os.Mkdir(j("empty"), 0o755), "mkdir")
	noErr(t, os.MkdirAll(j("src", "inner"), 0o755), "mkdir")
	wantErrno(t, unix.Rename(j("src"), j("full")), unix.ENOTEMPTY, "rename dir over a non-empty dir")
	wantErrno(t, unix.Rename(j("src"), j("src", "inner", "x")), unix.EINVAL, "rename dir into its own subdir")
	wantErrno(t, unix.Rename(j("src"), j("src", "y")), unix.EINVAL, "rename dir into itself")
	wantErrno(t, unix.Rename(j("victim"), j("empty")), unix.EISDIR, "rename file over a dir")
	wantErrno(t, unix.Rename(j("empty"), j("victim")), unix.ENOTDIR, "rename dir over a file")
	wantErrno(t, unix.Rename(j("nothing"), j("x")), unix.ENOENT, "rename a missing name")
	wantErrno(t, unix.Rename(j("victim"), j("nodir", "x")), unix.ENOENT, "rename into a missing dir")
	wantErrno(t, unix.Rename(j("victim"), j("victim2", "x")), unix.ENOTDIR, "rename under a file")
	wantErrno(t, unix.Rename(j("src", "inner"), j("src", "inner")+"/."), unix.EBUSY, "rename to a dot name")
	// Dir over an empty dir works; nlink of the parents follows.
	rootN := lstat(t, mnt).Nlink
	noErr(t, unix.Rename(j("src"), j("empty")), "rename dir over an empty dir")
	if n := lstat(t, mnt).Nlink; n != rootN-1 {
		t.Errorf("root nlink %d after a dir replaced another, want %d", n, rootN-1)
	}
	if _, err := os.Lstat(j("empty", "inner")); err != nil {
		t.Errorf("content of the moved dir: %v", err)
	}
	// Moving a dir to another parent moves one link of '..'.
	d1N, rootN := lstat(t, j("d1")).Nlink, lstat(t, mnt).Nlink
	noErr(t, unix.Rename(j("empty"), j("d1", "moved")), "move dir")
	if n := lstat(t, j("d1")).Nlink; n != d1N+1 {
		t.Errorf("new parent nlink %d, want %d", n, d1N+1)
	}
	if n := lstat(t, mnt).Nlink; n != rootN-1 {
		t.Errorf("old parent nlink %d, want %d", n, rootN-1)
	}
	// '..' of the moved dir is the new parent.
	if a, b := lstat(t, j("d1", "moved")+"/..").Ino, lstat(t, j("d1")).Ino; a != b {
		t.Errorf("'..' of moved dir is inode %d, want %d", a, b)
	}
}

// TestRenameNoReplace: RENAME_NOREPLACE refuses an existing target (EEXIST)
// and leaves both in place.
func TestRenameNoReplace(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	writeFile(t, j("a"), []byte("A"))
	writeFile(t, j("b"), []byte("B"))
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	noErr(t, os.Mkdir(j("e"), 0o755), "mkdir")
	rn := func(a, b string) error {
		return unix.Renameat2(unix.AT_FDCWD, j(a), unix.AT_FDCWD, j(b), unix.RENAME_NOREPLACE)
	}
	wantErrno(t, rn("a", "b"), unix.EEXIST, "NOREPLACE file over file")
	wantErrno(t, rn("d", "e"), unix.EEXIST, "NOREPLACE dir over empty dir")
	wantErrno(t, rn("a", "d"), unix.EEXIST, "NOREPLACE file over dir")
	wantErrno(t, rn("d", "a"), unix.EEXIST, "NOREPLACE dir over file")
	noErr(t, os.Symlink("dangling", j("l")), "symlink")
	wantErrno(t, rn("a", "l"), unix.EEXIST, "NOREPLACE over a dangling symlink")
	if string(readFile(t, j("a"))) != "A" || string(readFile(t, j("b"))) != "B" {
		t.Errorf("files changed by refused renames")
	}
	noErr(t, rn("a", "c"), "NOREPLACE to a free name")
	noErr(t, rn("d", "e/d"), "NOREPLACE dir to a free name")
	if string(readFile(t, j("c"))) != "A" {
		t.Errorf("renamed file content wrong")
	}
	wantErrno(t, unix.Renameat2(unix.AT_FDCWD, j("c"), unix.AT_FDCWD, j("x"), unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE), unix.EINVAL, "NOREPLACE|EXCHANGE")
	wantErrno(t, unix.Renameat2(unix.AT_FDCWD, j("c"), unix.AT_FDCWD, j("x"), 1<<10), unix.EINVAL, "unknown rename flag")
}

// TestRenameExchange: RENAME_EXCHANGE swaps two names atomically, for files,
// directories and a mix, across directories.
func TestRenameExchange(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	ex := func(a, b string) error {
		return unix.Renameat2(unix.AT_FDCWD, j(a), unix.AT_FDCWD, j(b), unix.RENAME_EXCHANGE)
	}
	writeFile(t, j("a"), []byte("A"))
	writeFile(t, j("b"), []byte("BB"))
	ia, ib := lstat(t, j("a")).Ino, lstat(t, j("b")).Ino
	noErr(t, ex("a", "b"), "exchange files")
	if string(readFile(t, j("a"))) != "BB" || string(readFile(t, j("b"))) != "A" {
		t.Errorf("files not exchanged")
	}
	if lstat(t, j("a")).Ino != ib || lstat(t, j("b")).Ino != ia {
		t.Errorf("inodes not exchanged")
	}

	// Directories in different parents, with different contents.
	noErr(t, os.MkdirAll(j("p1", "d", "sub1"), 0o755), "mkdir")
	noErr(t, os.MkdirAll(j("p2", "e"), 0o755), "mkdir")
	writeFile(t, j("p2", "e", "file"), nil)
	noErr(t, ex("p1/d", "p2/e"), "exchange dirs")
	if _, err := os.Lstat(j("p1", "d", "file")); err != nil {
		t.Errorf("p1/d is not the old p2/e: %v", err)
	}
	if _, err := os.Lstat(j("p2", "e", "sub1")); err != nil {
		t.Errorf("p2/e is not the old p1/d: %v", err)
	}
	if a, b := lstat(t, j("p1", "d")+"/..").Ino, lstat(t, j("p1")).Ino; a != b {
		t.Errorf("'..' of exchanged dir: %d, want %d", a, b)
	}
	if n1, n2 := lstat(t, j("p1")).Nlink, lstat(t, j("p2")).Nlink; n1 != 3 || n2 != 3 {
		t.Errorf("parents' nlink after dir<->dir exchange: %d %d, want 3 3", n1, n2)
	}

	// A directory and a file in different parents: the parents' link counts
	// move with the directory.
	writeFile(t, j("p2", "f"), []byte("F"))
	noErr(t, ex("p1/d", "p2/f"), "exchange dir and file")
	if st := lstat(t, j("p1", "d")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("p1/d is not a file after exchange: mode %o", st.Mode)
	}
	if st := lstat(t, j("p2", "f")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("p2/f is not a dir after exchange: mode %o", st.Mode)
	}
	if n1, n2 := lstat(t, j("p1")).Nlink, lstat(t, j("p2")).Nlink; n1 != 2 || n2 != 4 {
		t.Errorf("parents' nlink after dir<->file exchange: %d %d, want 2 4", n1, n2)
	}
	if a, b := lstat(t, j("p2", "f")+"/..").Ino, lstat(t, j("p2")).Ino; a != b {
		t.Errorf("'..' of exchanged dir: %d, want %d", a, b)
	}

	wantErrno(t, ex("a", "missing"), unix.ENOENT, "exchange with a missing name")
	wantErrno(t, ex("missing", "a"), unix.ENOENT, "exchange a missing name")
	wantErrno(t, ex("p2", "p2/f"), unix.EINVAL, "exchange a dir with its descendant")
	noErr(t, ex("a", "a"), "exchange a name with itself")
}

// TestRmdirUnlink: rmdir and unlink refusals.
func TestRmdirUnlink(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	noErr(t, os.MkdirAll(j("d", "e"), 0o755), "mkdir")
	writeFile(t, j("f"), nil)
	wantErrno(t, unix.Rmdir(j("d")), unix.ENOTEMPTY, "rmdir a dir holding a dir")
	noErr(t, os.Mkdir(j("g"), 0o755), "mkdir")
	writeFile(t, j("g", "x"), nil)
	wantErrno(t, unix.Rmdir(j("g")), unix.ENOTEMPTY, "rmdir a dir holding a file")
	noErr(t, unix.Unlink(j("g", "x")), "unlink")
	noErr(t, unix.Rmdir(j("g")), "rmdir once empty")
	wantErrno(t, unix.Rmdir(j("f")), unix.ENOTDIR, "rmdir a file")
	wantErrno(t, unix.Rmdir(j("d", "e")+"/."), unix.EINVAL, "rmdir .")
	wantErrno(t, unix.Rmdir(j("d", "e")+"/.."), unix.ENOTEMPTY, "rmdir ..")
	wantErrno(t, unix.Rmdir(j("nope")), unix.ENOENT, "rmdir missing")
	wantErrno(t, unix.Unlink(j("d")), unix.EISDIR, "unlink a dir")
	wantErrno(t, unix.Unlink(j("nope")), unix.ENOENT, "unlink missing")
	wantErrno(t, unix.Mkdir(j("d"), 0o755), unix.EEXIST, "mkdir existing")
	wantErrno(t, unix.Mkdir(j("f"), 0o755), unix.EEXIST, "mkdir over a file")
	wantErrno(t, unix.Mkdir(j("f", "x"), 0o755), unix.ENOTDIR, "mkdir under a file")
	// A removed directory that is still open: cwd-like use fails cleanly.
	noErr(t, os.Mkdir(j("gone"), 0o755), "mkdir")
	dfd := openFd(t, j("gone"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer closeFd(dfd)
	noErr(t, unix.Rmdir(j("gone")), "rmdir open dir")
	if st := fstat(t, dfd); st.Nlink != 0 {
		t.Errorf("removed dir: nlink %d, want 0", st.Nlink)
	}
	_, err := unix.Openat(dfd, "new", unix.O_CREAT|unix.O_WRONLY, 0o644)
	wantErrno(t, err, unix.ENOENT, "create in a removed dir")
	if ents := parseDirents(func() []byte { b := make([]byte, 4096); n, _ := unix.Getdents(dfd, b); return b[:max(n, 0)] }()); len(ents) != 0 {
		t.Errorf("readdir of a removed dir: %v, want nothing", ents)
	}
}

// TestHardLinks: nlink of files through link and unlink, and of directories
// (2 + number of subdirectories).
func TestHardLinks(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }

	if n := lstat(t, mnt).Nlink; n != 2 {
		t.Errorf("empty root: nlink %d, want 2", n)
	}
	writeFile(t, j("f"), []byte("data"))
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	for i := 1; i <= 3; i++ {
		noErr(t, os.Link(j("f"), j("d", fmt.Sprintf("l%d", i))), "link")
		if n := lstat(t, j("f")).Nlink; n != uint64(i+1) {
			t.Errorf("after %d links: nlink %d", i, n)
		}
	}
	if a, b := lstat(t, j("f")), lstat(t, j("d", "l2")); a.Ino != b.Ino || a.Nlink != b.Nlink {
		t.Errorf("links differ: ino %d/%d nlink %d/%d", a.Ino, b.Ino, a.Nlink, b.Nlink)
	}
	// Data written through one name is seen through another.
	writeFile(t, j("d", "l3"), []byte("changed"))
	if got := string(readFile(t, j("f"))); got != "changed" {
		t.Errorf("through another link: %q", got)
	}
	noErr(t, unix.Unlink(j("f")), "unlink")
	if n := lstat(t, j("d", "l1")).Nlink; n != 3 {
		t.Errorf("after unlink: nlink %d, want 3", n)
	}
	wantErrno(t, unix.Link(j("d"), j("dlink")), unix.EPERM, "link a directory")
	wantErrno(t, unix.Link(j("d", "l1"), j("d", "l2")), unix.EEXIST, "link over an existing name")
	wantErrno(t, unix.Link(j("nope"), j("x")), unix.ENOENT, "link a missing file")
	// Symlinks, FIFOs get links too; link does not follow a symlink.
	noErr(t, os.Symlink("d/l1", j("s")), "symlink")
	noErr(t, unix.Link(j("s"), j("s2")), "link a symlink")
	if st := lstat(t, j("s2")); st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Nlink != 2 {
		t.Errorf("hard link of a symlink: mode %o nlink %d", st.Mode, st.Nlink)
	}
	noErr(t, unix.Linkat(unix.AT_FDCWD, j("s"), unix.AT_FDCWD, j("s3"), unix.AT_SYMLINK_FOLLOW), "linkat AT_SYMLINK_FOLLOW")
	if st := lstat(t, j("s3")); st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 4 {
		t.Errorf("linkat following a symlink: mode %o nlink %d, want a file with 4 links", st.Mode, st.Nlink)
	}

	// Directories: 2 + subdirectories; files do not count.
	noErr(t, os.MkdirAll(j("top", "a"), 0o755), "mkdir")
	noErr(t, os.Mkdir(j("top", "b"), 0o755), "mkdir")
	writeFile(t, j("top", "file"), nil)
	if n := lstat(t, j("top")).Nlink; n != 4 {
		t.Errorf("dir with 2 subdirs and a file: nlink %d, want 4", n)
	}
	if n := lstat(t, mnt).Nlink; n != 4 {
		t.Errorf("root with subdirs d and top: nlink %d, want 4", n)
	}
	noErr(t, unix.Rmdir(j("top", "a")), "rmdir")
	if n := lstat(t, j("top")).Nlink; n != 3 {
		t.Errorf("after rmdir: nlink %d, want 3", n)
	}
	// unlink of the last name while open: fstat shows 0 links.
	fd := openFd(t, j("top", "file"), unix.O_RDONLY, 0)
	defer closeFd(fd)
	noErr(t, unix.Unlink(j("top", "file")), "unlink")
	if n := fstat(t, fd).Nlink; n != 0 {
		t.Errorf("unlinked open file: nlink %d, want 0", n)
	}
}

// TestUnlinkWhileOpen: an unlinked file keeps its data while open; its space
// is freed at the last close.
func TestUnlinkWhileOpen(t *testing.T) {
	t.Parallel()
	mnt, _, st := mountFS(t, withSize(64<<20))
	p := filepath.Join(mnt, "f")
	free0 := statfs(t, mnt).Bfree
	var used0 int64
	if st != nil {
		used0 = st.Stats().Used
	}
	data := pattern(1<<20, 7)
	writeFile(t, p, data)
	fd := openFd(t, p, unix.O_RDWR, 0)
	fd2 := openFd(t, p, unix.O_RDONLY, 0)
	noErr(t, unix.Unlink(p), "unlink")
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("name still there after unlink: %v", err)
	}
	if s := fstat(t, fd); s.Nlink != 0 || s.Size != 1<<20 {
		t.Errorf("fstat of unlinked file: nlink %d size %d", s.Nlink, s.Size)
	}
	got := make([]byte, len(data))
	preadFull(t, fd, got, 0)
	if !bytes.Equal(got, data) {
		t.Errorf("unlinked file data differs at %d", firstDiff(got, data))
	}
	pwriteAll(t, fd, []byte("still writable"), 100)
	noErr(t, unix.Ftruncate(fd, 2<<20), "ftruncate unlinked file")
	pwriteAll(t, fd, []byte("end"), 2<<20-3)
	b := make([]byte, 14)
	preadFull(t, fd2, b, 100)
	if string(b) != "still writable" {
		t.Errorf("write to unlinked file not seen by the other fd: %q", b)
	}
	if n := statfs(t, mnt).Bfree; n >= free0 {
		t.Errorf("statfs Bfree %d while the unlinked file is open, want < %d", n, free0)
	}
	// A new file of the same name is a different file.
	writeFile(t, p, []byte("new"))
	preadFull(t, fd2, b[:3], 0)
	if bytes.Equal(b[:3], []byte("new")) {
		t.Errorf("the unlinked file's fd reads the new file")
	}
	noErr(t, unix.Unlink(p), "unlink new")
	closeFd(fd)
	if st != nil {
		if u := st.Stats().Used; u < used0+1<<20 {
			t.Errorf("store Used %d dropped while a descriptor is still open (was %d)", u, used0)
		}
	}
	closeFd(fd2)
	// Space comes back after the last close (the kernel releases the file
	// asynchronously: allow a moment).
	if !eventually(5*time.Second, func() bool { return statfs(t, mnt).Bfree == free0 }) {
		t.Errorf("statfs Bfree %d after the last close, want %d", statfs(t, mnt).Bfree, free0)
	}
	if st != nil {
		if !eventually(5*time.Second, func() bool { return st.Stats().Used == used0 }) {
			t.Errorf("store Used %d after the last close, want %d", st.Stats().Used, used0)
		}
	}
}

// TestReaddirStableOffsets: while entries are added and removed between
// getdents calls, entries present all along are returned exactly once, and
// seeking back to a saved offset resumes at the same place.
func TestReaddirStableOffsets(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	dir := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(dir, 0o755), "mkdir")
	const n = 300
	name := func(i int) string { return fmt.Sprintf("file-%03d-%s", i, strings.Repeat("x", i%40)) }
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(dir, name(i)), nil)
	}
	fd := openFd(t, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer closeFd(fd)

	seen := map[string]int{}
	removed := map[string]bool{}
	var order []string
	var mark int64 = -1
	var afterMark []string
	batch := 0
	created := 0
	for {
		ents := getdents(t, fd, 600) // a few entries per call
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			seen[e.name]++
			order = append(order, e.name)
			if mark >= 0 {
				afterMark = append(afterMark, e.name)
			}
		}
		batch++
		if batch == 3 {
			cur, err := unix.Seek(fd, 0, 1)
			noErr(t, err, "telldir")
			if cur != ents[len(ents)-1].off {
				t.Errorf("directory offset %d after getdents, want the last d_off %d", cur, ents[len(ents)-1].off)
			}
			mark = cur
		}
		// Remove two entries not yet seen and one already seen, add two.
		for k := 0; k < n && len(removed) < 3*batch; k++ {
			i := (k*37 + batch*11) % n
			nm := name(i)
			if removed[nm] || (seen[nm] > 0) == (len(removed)%3 != 2) {
				continue
			}
			noErr(t, unix.Unlink(filepath.Join(dir, nm)), "unlink")
			removed[nm] = true
		}
		for k := 0; k < 2; k++ {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("new-%03d", created)), nil)
			created++
		}
	}
	for nm, c := range seen {
		if c > 1 {
			t.Errorf("entry %q returned %d times", nm, c)
		}
	}
	for _, special := range []string{".", ".."} {
		if seen[special] != 1 {
			t.Errorf("%q returned %d times, want once", special, seen[special])
		}
	}
	for i := 0; i < n; i++ {
		if nm := name(i); !removed[nm] && seen[nm] != 1 {
			t.Errorf("entry %q, present all along, returned %d times", nm, seen[nm])
		}
	}
	if t.Failed() {
		return
	}
	if mark < 0 {
		t.Fatalf("directory too short for the test: %d entries", len(order))
	}

	// seekdir back to the mark: the same entries follow, except those removed
	// since; nothing from before the mark comes again.
	before := map[string]bool{}
	for _, nm := range order[:len(order)-len(afterMark)] {
		before[nm] = true
	}
	off, err := unix.Seek(fd, mark, 0)
	if err != nil || off != mark {
		t.Fatalf("seekdir(%d) = %d, %v", mark, off, err)
	}
	again := map[string]int{}
	for {
		ents := getdents(t, fd, 600)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			again[e.name]++
			if before[e.name] {
				t.Errorf("after seekdir to the mark, %q came again though it was before the mark", e.name)
			}
		}
	}
	for _, nm := range afterMark {
		if removed[nm] {
			continue
		}
		if again[nm] != 1 {
			t.Errorf("after seekdir to the mark, %q returned %d times, want once", nm, again[nm])
		}
	}
	// Rewind gives everything that exists now, once.
	_, err = unix.Seek(fd, 0, 0)
	noErr(t, err, "rewinddir")
	var names []string
	for {
		ents := getdents(t, fd, 4096)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			names = append(names, e.name)
		}
	}
	sort.Strings(names)
	ls, _ := os.ReadDir(dir)
	want := []string{".", ".."}
	for _, e := range ls {
		want = append(want, e.Name())
	}
	sort.Strings(want)
	if strings.Join(names, "/") != strings.Join(want, "/") {
		t.Errorf("after rewind: %d names, want %d", len(names), len(want))
	}
	if len(want) != n-len(removed)+created+2 {
		t.Errorf("directory has %d entries, want %d", len(want), n-len(removed)+created+2)
	}
}

// TestReaddirTypes: d_type and d_ino of every file type, '.' and '..'.
func TestReaddirTypes(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	writeFile(t, j("d", "reg"), nil)
	noErr(t, os.Mkdir(j("d", "dir"), 0o755), "mkdir")
	noErr(t, os.Symlink("x", j("d", "lnk")), "symlink")
	noErr(t, unix.Mkfifo(j("d", "fifo"), 0o644), "mkfifo")
	noErr(t, unix.Mknod(j("d", "sock"), unix.S_IFSOCK|0o644, 0), "mknod socket")
	want := map[string]uint8{
		".": unix.DT_DIR, "..": unix.DT_DIR, "reg": unix.DT_REG, "dir": unix.DT_DIR,
		"lnk": unix.DT_LNK, "fifo": unix.DT_FIFO, "sock": unix.DT_SOCK,
	}
	if os.Geteuid() == 0 {
		noErr(t, unix.Mknod(j("d", "chr"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))), "mknod chr")
		noErr(t, unix.Mknod(j("d", "blk"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))), "mknod blk")
		want["chr"], want["blk"] = unix.DT_CHR, unix.DT_BLK
	}
	got := map[string]bool{}
	for _, e := range readAllDirents(t, j("d")) {
		got[e.name] = true
		w, ok := want[e.name]
		if !ok {
			t.Errorf("unexpected entry %q", e.name)
			continue
		}
		if e.typ != w {
			t.Errorf("%q: d_type %d, want %d", e.name, e.typ, w)
		}
		var st unix.Stat_t
		noErr(t, unix.Lstat(j("d")+"/"+e.name, &st), "lstat")
		if e.ino != st.Ino {
			t.Errorf("%q: d_ino %d, st_ino %d", e.name, e.ino, st.Ino)
		}
	}
	for nm := range want {
		if !got[nm] {
			t.Errorf("entry %q missing", nm)
		}
	}
	// Inode numbers are distinct and stable across rename.
	inos := map[uint64]string{}
	for nm := range want {
		if nm == "." || nm == ".." {
			continue
		}
		ino := lstat(t, j("d", nm)).Ino
		if o, dup := inos[ino]; dup {
			t.Errorf("%q and %q share inode %d", nm, o, ino)
		}
		inos[ino] = nm
	}
	if lstat(t, mnt).Ino == lstat(t, j("d")).Ino {
		t.Errorf("root and d share an inode number")
	}
	for _, p := range []string{mnt, j("d"), j("d", "reg")} {
		if ino := lstat(t, p).Ino; ino == 0 {
			t.Errorf("%s has inode number 0 (many programs take 0 for no inode)", p)
		}
	}
	// All on one device.
	if a, b := lstat(t, mnt).Dev, lstat(t, j("d", "reg")).Dev; a != b {
		t.Errorf("st_dev differs within the mount: %d %d", a, b)
	}
}

// TestSymlinks: symlink, readlink, and following them.
func TestSymlinks(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	writeFile(t, j("d", "f"), []byte("target data"))
	for _, c := range []struct{ name, target string }{
		{"rel", "d/f"}, {"abs", j("d", "f")}, {"dangling", "no/such/file"}, {"dotdot", "../m/d/f"},
		{"dirlink", "d"}, {"weird", "a\x01b\xff c"},
	} {
		noErr(t, os.Symlink(c.target, j(c.name)), "symlink %s", c.name)
		got, err := os.Readlink(j(c.name))
		if err != nil || got != c.target {
			t.Errorf("readlink %s: %q, %v; want %q", c.name, got, err, c.target)
		}
		st := lstat(t, j(c.name))
		if st.Mode != unix.S_IFLNK|0o777 || st.Size != int64(len(c.target)) || st.Nlink != 1 {
			t.Errorf("lstat %s: mode %o size %d nlink %d; want %o %d 1", c.name, st.Mode, st.Size, st.Nlink, unix.S_IFLNK|0o777, len(c.target))
		}
	}
	if got := string(readFile(t, j("rel"))); got != "target data" {
		t.Errorf("through relative symlink: %q", got)
	}
	if got := string(readFile(t, j("abs"))); got != "target data" {
		t.Errorf("through absolute symlink: %q", got)
	}
	if got := string(readFile(t, j("dirlink", "f"))); got != "target data" {
		t.Errorf("through a symlink to a dir: %q", got)
	}
	_, err := os.ReadFile(j("dangling"))
	wantErrno(t, err, unix.ENOENT, "open a dangling symlink")
	// readlink into a short buffer truncates silently.
	buf := make([]byte, 3)
	n, err := unix.Readlink(j("rel"), buf)
	if err != nil || n != 3 || string(buf) != "d/f"[:3] {
		t.Errorf("readlink into 3 bytes: %d %q %v", n, buf[:max(n, 0)], err)
	}
	_, err = unix.Readlink(j("d", "f"), make([]byte, 10))
	wantErrno(t, err, unix.EINVAL, "readlink of a file")
	_, err = unix.Readlink(j("d"), make([]byte, 10))
	wantErrno(t, err, unix.EINVAL, "readlink of a dir")
	// Loops.
	noErr(t, os.Symlink("loop2", j("loop1")), "symlink")
	noErr(t, os.Symlink("loop1", j("loop2")), "symlink")
	_, err = os.ReadFile(j("loop1"))
	wantErrno(t, err, unix.ELOOP, "open a symlink loop")
	// Refusals.
	wantErrno(t, unix.Symlink("x", j("rel")), unix.EEXIST, "symlink over an existing name")
	wantErrno(t, unix.Symlink("", j("empty")), unix.ENOENT, "symlink with an empty target")
	// Longest target: 4095 bytes; 4096 is too long.
	long := strings.Repeat("abcdefg/", 512)[:4095]
	noErr(t, unix.Symlink(long, j("long")), "symlink with a 4095-byte target")
	if got, err := os.Readlink(j("long")); err != nil || got != long {
		t.Errorf("readlink of a 4095-byte target: %d bytes, %v", len(got), err)
	}
	if st := lstat(t, j("long")); st.Size != 4095 {
		t.Errorf("size of a 4095-byte symlink: %d", st.Size)
	}
	wantErrno(t, unix.Symlink(long+"x", j("toolong")), unix.ENAMETOOLONG, "symlink with a 4096-byte target")
	// A symlink in the middle of a path is followed, at the end of lstat not.
	if st := lstat(t, j("dirlink", "f")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("lstat through a dir symlink: mode %o", st.Mode)
	}
	// chmod through a symlink changes the target.
	noErr(t, os.Chmod(j("rel"), 0o600), "chmod via symlink")
	if st := lstat(t, j("d", "f")); st.Mode&0o7777 != 0o600 {
		t.Errorf("chmod via symlink: target mode %o", st.Mode&0o7777)
	}
	if st := lstat(t, j("rel")); st.Mode&0o7777 != 0o777 {
		t.Errorf("chmod via symlink changed the link: %o", st.Mode&0o7777)
	}
}

// TestNames: 255-byte names work, 256 bytes are ENAMETOOLONG everywhere, and
// every byte but '/' and NUL may be in a name.
func TestNames(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	n255 := strings.Repeat("n", 255)
	n256 := strings.Repeat("n", 256)
	writeFile(t, j(n255), []byte("x"))
	if got := string(readFile(t, j(n255))); got != "x" {
		t.Errorf("255-byte name content %q", got)
	}
	noErr(t, os.Mkdir(j("d"+n255[1:]), 0o755), "mkdir 255")
	noErr(t, os.Symlink("t", j("s"+n255[1:])), "symlink 255")
	noErr(t, os.Link(j(n255), j("l"+n255[1:])), "link 255")
	noErr(t, unix.Rename(j("l"+n255[1:]), j("r"+n255[1:])), "rename 255")
	found := 0
	for _, e := range readAllDirents(t, mnt) {
		if len(e.name) == 255 {
			found++
		}
	}
	if found != 4 {
		t.Errorf("readdir shows %d 255-byte names, want 4", found)
	}
	var st unix.Stat_t
	wantErrno(t, unix.Lstat(j(n256), &st), unix.ENAMETOOLONG, "lstat 256")
	_, err := unix.Open(j(n256), unix.O_CREAT|unix.O_WRONLY, 0o644)
	wantErrno(t, err, unix.ENAMETOOLONG, "create 256")
	_, err = unix.Open(j(n256), unix.O_RDONLY, 0)
	wantErrno(t, err, unix.ENAMETOOLONG, "open 256")
	wantErrno(t, unix.Mkdir(j(n256), 0o755), unix.ENAMETOOLONG, "mkdir 256")
	wantErrno(t, unix.Symlink("t", j(n256)), unix.ENAMETOOLONG, "symlink 256")
	wantErrno(t, unix.Link(j(n255), j(n256)), unix.ENAMETOOLONG, "link 256")
	wantErrno(t, unix.Rename(j(n255), j(n256)), unix.ENAMETOOLONG, "rename to 256")
	wantErrno(t, unix.Mknod(j(n256), unix.S_IFIFO|0o644, 0), unix.ENAMETOOLONG, "mknod 256")
	wantErrno(t, unix.Unlink(j(n256)), unix.ENAMETOOLONG, "unlink 256")
	wantErrno(t, unix.Rmdir(j(n256)), unix.ENAMETOOLONG, "rmdir 256")
	_, err = unix.Getxattr(j(n256), "user.x", nil)
	wantErrno(t, err, unix.ENAMETOOLONG, "getxattr on a 256-byte name")
	if sf := statfs(t, mnt); sf.Namelen != 255 {
		t.Errorf("statfs Namelen %d, want 255", sf.Namelen)
	}

	// Every byte value except '/' and NUL, alone (except '.') and inside a name.
	noErr(t, os.Mkdir(j("bytes"), 0o755), "mkdir")
	want := map[string]bool{}
	for c := 1; c < 256; c++ {
		if c == '/' {
			continue
		}
		names := []string{"a" + string([]byte{byte(c)}) + "z"}
		if c != '.' {
			names = append(names, string([]byte{byte(c)}))
		}
		for _, nm := range names {
			p := j("bytes", nm)
			if err := os.WriteFile(p, []byte(nm), 0o644); err != nil {
				t.Errorf("create name %q: %v", nm, err)
				continue
			}
			want[nm] = true
		}
	}
	got := map[string]bool{}
	for _, e := range readAllDirents(t, j("bytes")) {
		if e.name != "." && e.name != ".." {
			got[e.name] = true
		}
	}
	for nm := range want {
		if !got[nm] {
			t.Errorf("name %q missing from readdir", nm)
			continue
		}
		if b, err := os.ReadFile(j("bytes", nm)); err != nil || string(b) != nm {
			t.Errorf("name %q: read %q, %v", nm, b, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("readdir has %d names, want %d", len(got), len(want))
	}
	for nm := range want {
		if err := unix.Rename(j("bytes", nm), j("bytes", nm+"\xfe")); err != nil {
			t.Errorf("rename %q: %v", nm, err)
		} else if err := unix.Unlink(j("bytes", nm+"\xfe")); err != nil {
			t.Errorf("unlink %q: %v", nm+"\xfe", err)
		}
	}
	noErr(t, unix.Rmdir(j("bytes")), "rmdir the emptied dir")
	// "." and ".." cannot be created.
	wantErrno(t, unix.Mkdir(j("."), 0o755), unix.EEXIST, "mkdir .")
	_, err = unix.Open(j("d"+n255[1:])+"/..", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
	wantErrno(t, err, unix.EEXIST, "create ..")
}

// TestDirectorySize: tmpfs reports a directory's st_size as 20 bytes per
// entry, '.' and '..' included, and st_blocks 0.
func TestDirectorySize(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	d := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	if st := lstat(t, d); st.Size != 40 || st.Blocks != 0 {
		t.Errorf("empty dir: size %d blocks %d, want 40 and 0", st.Size, st.Blocks)
	}
	writeFile(t, filepath.Join(d, "a"), nil)
	noErr(t, os.Mkdir(filepath.Join(d, strings.Repeat("b", 200)), 0o755), "mkdir")
	if st := lstat(t, d); st.Size != 80 {
		t.Errorf("dir with 2 entries: size %d, want 80", st.Size)
	}
	noErr(t, unix.Unlink(filepath.Join(d, "a")), "unlink")
	if st := lstat(t, d); st.Size != 60 {
		t.Errorf("dir with 1 entry: size %d, want 60", st.Size)
	}
}

// TestSymlinkBlocks: as on tmpfs, a symlink target shorter than 128 bytes
// costs no blocks, a longer one a page (what du shows).
func TestSymlinkBlocks(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	for _, c := range []struct {
		n      int
		blocks int64
	}{{1, 0}, {127, 0}, {128, page / 512}, {4095, page / 512}} {
		p := filepath.Join(mnt, fmt.Sprintf("l%d", c.n))
		noErr(t, os.Symlink(strings.Repeat("t", c.n), p), "symlink")
		if st := lstat(t, p); st.Blocks != c.blocks {
			t.Errorf("symlink with a %d-byte target: st_blocks %d, want %d", c.n, st.Blocks, c.blocks)
		}
	}
}

// TestRenameWhiteout: RENAME_WHITEOUT (as overlayfs uses it) leaves a 0:0
// character device in place of the source.
func TestRenameWhiteout(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s string) string { return filepath.Join(mnt, s) }
	writeFile(t, j("a"), []byte("A"))
	ino := lstat(t, j("a")).Ino
	noErr(t, unix.Renameat2(unix.AT_FDCWD, j("a"), unix.AT_FDCWD, j("b"), unix.RENAME_WHITEOUT), "RENAME_WHITEOUT")
	if st := lstat(t, j("b")); st.Ino != ino {
		t.Errorf("target is not the renamed file")
	}
	st := lstat(t, j("a"))
	if st.Mode != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: mode %o rdev %d, want %o and 0", st.Mode, st.Rdev, unix.S_IFCHR)
	}
	// Over an existing target, too.
	writeFile(t, j("c"), []byte("C"))
	noErr(t, unix.Renameat2(unix.AT_FDCWD, j("c"), unix.AT_FDCWD, j("b"), unix.RENAME_WHITEOUT), "RENAME_WHITEOUT over a file")
	if got := string(readFile(t, j("b"))); got != "C" {
		t.Errorf("after whiteout rename over b: %q", got)
	}
	if st := lstat(t, j("c")); st.Mode != unix.S_IFCHR {
		t.Errorf("second whiteout: mode %o", st.Mode)
	}
	wantErrno(t, unix.Renameat2(unix.AT_FDCWD, j("b"), unix.AT_FDCWD, j("x"), unix.RENAME_WHITEOUT|unix.RENAME_EXCHANGE), unix.EINVAL, "WHITEOUT|EXCHANGE")
}
